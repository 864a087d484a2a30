//! Prometheus metrics of the agent, one family per question an SRE asks:
//! did alerts arrive, were they published, and if not, why.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `source` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// `alertmanager` or `kubernetes-event`.
    pub source: String,
}

/// `reason` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why publishing failed.
    pub reason: String,
}

/// `code` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// HTTP status code.
    pub code: String,
}

/// All agent metrics, registered under the `alert_manager_agent` prefix.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Alerts received, by source.
    pub alerts_received: Family<SourceLabel, Counter>,
    /// Alerts SNS accepted.
    pub alerts_published: Counter,
    /// Alerts not published, by reason.
    pub publish_failures: Family<ReasonLabel, Counter>,
    /// Time to publish one notification, retries included.
    pub publish_duration: Histogram,
    /// Size of each envelope as sent (body + attributes).
    pub envelope_size: Histogram,
    /// Envelopes whose annotations were cut to fit.
    pub envelopes_truncated: Counter,
    /// Webhook answers, by status code.
    pub webhook_responses: Family<CodeLabel, Counter>,
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
        let m = Metrics {
            alerts_received: Family::default(),
            alerts_published: Counter::default(),
            publish_failures: Family::default(),
            publish_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            envelope_size: Histogram::new(exponential_buckets(256.0, 2.0, 12)),
            envelopes_truncated: Counter::default(),
            webhook_responses: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "alerts_received",
            "Alerts received, by source",
            m.alerts_received.clone(),
        );
        registry.register(
            "alerts_published",
            "Alerts SNS accepted",
            m.alerts_published.clone(),
        );
        registry.register(
            "publish_failures",
            "Alerts not published, by reason",
            m.publish_failures.clone(),
        );
        registry.register(
            "publish_duration_seconds",
            "Time to publish one notification, retries included",
            m.publish_duration.clone(),
        );
        registry.register(
            "envelope_size_bytes",
            "Size of each envelope as sent, body plus attributes",
            m.envelope_size.clone(),
        );
        registry.register(
            "envelopes_truncated",
            "Envelopes whose annotations were cut to fit SNS",
            m.envelopes_truncated.clone(),
        );
        registry.register(
            "webhook_responses",
            "Webhook answers, by HTTP status code",
            m.webhook_responses.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts failed alerts under a reason.
    pub fn failed(&self, reason: &str, alerts: usize) {
        self.publish_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(alerts as u64);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
