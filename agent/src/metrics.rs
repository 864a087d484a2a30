//! Prometheus metrics of the agent, one family per question an SRE asks:
//! did alerts arrive, were they published, and if not, why.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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

/// `kind` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// `node`, `namespace` or `event`.
    pub kind: String,
}

/// `listener` and `reason` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabel {
    /// `webhook` or `metrics`.
    pub listener: String,
    /// Which cap.
    pub reason: String,
}

/// `result` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
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
    /// Alerts published without part of their cluster context, by why.
    pub kubernetes_context_misses: Family<ReasonLabel, Counter>,
    /// Objects in the node and namespace stores.
    pub kubernetes_store_objects: Family<KindLabel, Gauge>,
    /// Kubernetes watch errors, by kind (each is retried with backoff).
    pub kubernetes_watch_errors: Family<KindLabel, Counter>,
    /// Warning events seen by the watcher.
    pub events_seen: Counter,
    /// Warning events that did not become a published alert, by why.
    pub events_dropped: Family<ReasonLabel, Counter>,
    /// Alerts waiting in the event buffer.
    pub event_buffer: Gauge,
    /// 1 while this replica holds the events lease.
    pub leader: Gauge,
    /// Connections closed at once because a cap was reached.
    connections_refused: Family<RefusedLabel, Counter>,
    /// Alerts of a retried notification that SNS had accepted already.
    alerts_already_published: Counter,
    /// Token file reloads, by result.
    auth_token_reloads: Family<ResultLabel, Counter>,
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
            kubernetes_context_misses: Family::default(),
            kubernetes_store_objects: Family::default(),
            kubernetes_watch_errors: Family::default(),
            events_seen: Counter::default(),
            events_dropped: Family::default(),
            event_buffer: Gauge::default(),
            leader: Gauge::default(),
            connections_refused: Family::default(),
            alerts_already_published: Counter::default(),
            auth_token_reloads: Family::default(),
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
        registry.register(
            "kubernetes_context_misses",
            "Alerts published without part of their cluster context, by reason",
            m.kubernetes_context_misses.clone(),
        );
        registry.register(
            "kubernetes_store_objects",
            "Objects in the node and namespace stores",
            m.kubernetes_store_objects.clone(),
        );
        registry.register(
            "kubernetes_watch_errors",
            "Kubernetes watch errors, by kind; each is retried with backoff",
            m.kubernetes_watch_errors.clone(),
        );
        registry.register(
            "events_seen",
            "Warning events seen by the watcher",
            m.events_seen.clone(),
        );
        registry.register(
            "events_dropped",
            "Warning events that did not become a published alert, by reason",
            m.events_dropped.clone(),
        );
        registry.register(
            "event_buffer_alerts",
            "Alerts waiting in the event buffer",
            m.event_buffer.clone(),
        );
        registry.register(
            "leader",
            "Whether this replica holds the events lease (1) or not (0)",
            m.leader.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed at once because MAX_CONNECTIONS or MAX_CONNECTIONS_PER_CLIENT was reached",
            m.connections_refused.clone(),
        );
        registry.register(
            "alerts_already_published",
            "Alerts of a retried notification or a replayed event that SNS had accepted already, not published again",
            m.alerts_already_published.clone(),
        );
        registry.register(
            "auth_token_reloads",
            "Reads of a changed AUTH_TOKEN_FILE, by result (ok: new token in use; error: kept the current one)",
            m.auth_token_reloads.clone(),
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

    /// Counts a missing piece of cluster context.
    pub fn context_miss(&self, reason: &str) {
        self.kubernetes_context_misses
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Sets the size of a store.
    pub fn store_objects(&self, kind: &str, objects: usize) {
        self.kubernetes_store_objects
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .set(objects as i64);
    }

    /// Counts a watch error.
    pub fn watch_error(&self, kind: &str) {
        self.kubernetes_watch_errors
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Counts a watched event.
    pub fn event_seen(&self) {
        self.events_seen.inc();
    }

    /// Counts an event that will not be published.
    pub fn event_dropped(&self, reason: &str) {
        self.event_dropped_n(reason, 1);
    }

    /// Counts `n` events that will not be published.
    pub fn event_dropped_n(&self, reason: &str, n: usize) {
        self.events_dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(n as u64);
    }

    /// Sets the event buffer depth.
    pub fn event_buffer_depth(&self, alerts: usize) {
        self.event_buffer.set(alerts as i64);
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Counts a connection closed at once by a listener's cap.
    pub fn connection_refused(&self, listener: &str, reason: &str) {
        self.connections_refused
            .get_or_create(&RefusedLabel {
                listener: listener.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts alerts skipped because SNS accepted them already.
    pub fn already_published(&self, alerts: usize) {
        self.alerts_already_published.inc_by(alerts as u64);
    }

    /// Counts a reload of the token file.
    pub fn token_reload(&self, result: &str) {
        self.auth_token_reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
