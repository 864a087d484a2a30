//! The events source: seen, dropped (by why), the buffer, leadership.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Metrics of the Kubernetes events source.
#[derive(Debug)]
pub struct EventsMetrics {
    seen: Counter,
    dropped: Family<ReasonLabel, Counter>,
    buffer: Gauge,
    leader: Gauge,
}

impl EventsMetrics {
    pub(super) fn register(registry: &mut Registry) -> EventsMetrics {
        let m = EventsMetrics {
            seen: Counter::default(),
            dropped: Family::default(),
            buffer: Gauge::default(),
            leader: Gauge::default(),
        };
        registry.register(
            "events_seen",
            "Warning events seen by the watcher",
            m.seen.clone(),
        );
        registry.register(
            "events_dropped",
            "Warning events that did not become a published alert, by reason",
            m.dropped.clone(),
        );
        registry.register(
            "event_buffer_alerts",
            "Alerts waiting in the event buffer",
            m.buffer.clone(),
        );
        registry.register(
            "leader",
            "Whether this replica holds the events lease (1) or not (0)",
            m.leader.clone(),
        );
        m
    }

    /// Counts a watched event.
    pub fn seen(&self) {
        self.seen.inc();
    }

    /// Counts `n` events that will not be published.
    pub fn dropped(&self, reason: &str, n: usize) {
        if n == 0 {
            return;
        }
        self.dropped
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(n as u64);
    }

    /// Sets the event buffer depth.
    pub fn buffer_depth(&self, alerts: usize) {
        self.buffer.set(alerts as i64);
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
}
