//! Prometheus metrics of the agent, one family per question an SRE asks:
//! did alerts arrive, were they published, and if not, why. Grouped by
//! concern ([`WebhookMetrics`], [`ContextMetrics`], [`EventsMetrics`]); what
//! both sources share (received, published, failed) is here.

mod context;
mod events;
mod webhook;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

pub use context::ContextMetrics;
pub use events::EventsMetrics;
pub use webhook::WebhookMetrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// All agent metrics, registered under the `alert_manager_agent` prefix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    alerts_received: Family<SourceLabel, Counter>,
    alerts_published: Counter,
    alerts_already_published: Counter,
    publish_failures: Family<ReasonLabel, Counter>,
    ready: Gauge,
    webhook: WebhookMetrics,
    context: ContextMetrics,
    events: EventsMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("alert_manager_agent");
        let alerts_received: Family<SourceLabel, Counter> = Family::default();
        let alerts_published: Counter = Counter::default();
        let alerts_already_published: Counter = Counter::default();
        let publish_failures: Family<ReasonLabel, Counter> = Family::default();
        registry.register(
            "alerts_received",
            "Alerts received, by source",
            alerts_received.clone(),
        );
        registry.register(
            "alerts_published",
            "Alerts SNS accepted",
            alerts_published.clone(),
        );
        registry.register(
            "publish_failures",
            "Alerts not published, by reason",
            publish_failures.clone(),
        );
        registry.register(
            "alerts_already_published",
            "Alerts of a retried notification or a replayed event that SNS had accepted already, not published again",
            alerts_already_published.clone(),
        );
        let ready: Gauge = Gauge::default();
        registry.register(
            "ready",
            "1 once the agent knows its AWS account and the topic answered (what /readyz says), else 0",
            ready.clone(),
        );
        let webhook = WebhookMetrics::register(&mut registry);
        let context = ContextMetrics::register(&mut registry);
        let events = EventsMetrics::register(&mut registry);
        Metrics {
            registry,
            alerts_received,
            alerts_published,
            alerts_already_published,
            publish_failures,
            ready,
            webhook,
            context,
            events,
        }
    }

    /// The webhook path and the listeners.
    pub fn webhook(&self) -> &WebhookMetrics {
        &self.webhook
    }

    /// The Kubernetes context.
    pub fn context(&self) -> &ContextMetrics {
        &self.context
    }

    /// The events source.
    pub fn events(&self) -> &EventsMetrics {
        &self.events
    }

    /// Counts failed alerts under a reason.
    pub fn failed(&self, reason: &str, alerts: usize) {
        self.publish_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(alerts as u64);
    }

    /// Counts received alerts of a source.
    pub fn alert_received(&self, source: &str, alerts: usize) {
        self.alerts_received
            .get_or_create(&SourceLabel {
                source: source.to_string(),
            })
            .inc_by(alerts as u64);
    }

    /// Counts alerts SNS accepted.
    pub fn published(&self, alerts: usize) {
        self.alerts_published.inc_by(alerts as u64);
    }

    /// Counts alerts skipped because SNS accepted them already.
    pub fn already_published(&self, alerts: usize) {
        self.alerts_already_published.inc_by(alerts as u64);
    }

    /// Marks the agent ready (or not): what /readyz answers.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Whether the agent is ready; the gauge is the one record of it.
    pub fn is_ready(&self) -> bool {
        self.ready.get() == 1
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
