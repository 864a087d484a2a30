//! The cluster context: what was missing, the stores, watch errors.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// Metrics of the Kubernetes context.
#[derive(Debug)]
pub struct ContextMetrics {
    misses: Family<ReasonLabel, Counter>,
    store_objects: Family<KindLabel, Gauge>,
    watch_errors: Family<KindLabel, Counter>,
}

impl ContextMetrics {
    pub(super) fn register(registry: &mut Registry) -> ContextMetrics {
        let m = ContextMetrics {
            misses: Family::default(),
            store_objects: Family::default(),
            watch_errors: Family::default(),
        };
        registry.register(
            "kubernetes_context_misses",
            "Alerts published without part of their cluster context, by reason",
            m.misses.clone(),
        );
        registry.register(
            "kubernetes_store_objects",
            "Objects in the node and namespace stores",
            m.store_objects.clone(),
        );
        registry.register(
            "kubernetes_watch_errors",
            "Kubernetes watch errors, by kind; each is retried with backoff",
            m.watch_errors.clone(),
        );
        m
    }

    /// Counts a missing piece of cluster context.
    pub fn miss(&self, reason: &str) {
        self.misses
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Sets the size of a store.
    pub fn store_objects(&self, kind: &str, objects: usize) {
        self.store_objects
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .set(objects as i64);
    }

    /// Counts a watch error (`node`, `namespace` or `event`).
    pub fn watch_error(&self, kind: &str) {
        self.watch_errors
            .get_or_create(&KindLabel {
                kind: kind.to_string(),
            })
            .inc();
    }
}
