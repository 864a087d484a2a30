//! The webhook and its listeners: answers, publish time, envelope sizes,
//! connections that waited or were refused, token and TLS reloads, TLS handshake failures.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerReason {
    listener: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

/// Metrics of the webhook path and the listeners.
#[derive(Debug)]
pub struct WebhookMetrics {
    responses: Family<CodeLabel, Counter>,
    publish_duration: Histogram,
    envelope_size: Histogram,
    envelopes_truncated: Counter,
    connections_refused: Family<ListenerReason, Counter>,
    connections_waited: Family<ListenerLabel, Counter>,
    auth_token_reloads: Family<ResultLabel, Counter>,
    tls_reloads: Family<ResultLabel, Counter>,
    tls_handshake_failures: Family<ListenerReason, Counter>,
}

impl WebhookMetrics {
    pub(super) fn register(registry: &mut Registry) -> WebhookMetrics {
        let m = WebhookMetrics {
            responses: Family::default(),
            publish_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            envelope_size: Histogram::new(exponential_buckets(256.0, 2.0, 12)),
            envelopes_truncated: Counter::default(),
            connections_refused: Family::default(),
            connections_waited: Family::default(),
            auth_token_reloads: Family::default(),
            tls_reloads: Family::default(),
            tls_handshake_failures: Family::default(),
        };
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
            m.responses.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed unserved, by reason (max_connections: MAX_CONNECTIONS served already; max_connections_per_client: beyond MAX_CONNECTIONS_PER_CLIENT with MAX_CONNECTIONS waiting already; max_connections_per_client_wait: no place within HEADER_READ_TIMEOUT_SECONDS)",
            m.connections_refused.clone(),
        );
        registry.register(
            "connections_waited",
            "Connections beyond MAX_CONNECTIONS_PER_CLIENT that waited for a place of their client",
            m.connections_waited.clone(),
        );
        registry.register(
            "auth_token_reloads",
            "Reads of a changed AUTH_TOKEN_FILE, by result (ok: new token in use; error: kept the current one)",
            m.auth_token_reloads.clone(),
        );
        registry.register(
            "tls_reloads",
            "Reads of a changed TLS_CERT_FILE / TLS_KEY_FILE, by result (ok: new pair served; error: kept the current one)",
            m.tls_reloads.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes that failed (error: a client not trusting the certificate, or plain HTTP; timeout: no handshake within HEADER_READ_TIMEOUT_SECONDS)",
            m.tls_handshake_failures.clone(),
        );
        m
    }

    /// Counts a webhook answer.
    pub fn response(&self, code: u16) {
        self.responses
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// Records how long one notification took to publish.
    pub fn publish_took(&self, seconds: f64) {
        self.publish_duration.observe(seconds);
    }

    /// Records the size of one envelope as sent.
    pub fn envelope(&self, bytes: usize, truncated: bool) {
        self.envelope_size.observe(bytes as f64);
        if truncated {
            self.envelopes_truncated.inc();
        }
    }

    /// Counts a connection that waited for a place of its client.
    pub fn connection_waited(&self, listener: &str) {
        self.connections_waited
            .get_or_create(&ListenerLabel {
                listener: listener.to_string(),
            })
            .inc();
    }

    /// Counts a connection closed unserved by a listener's cap.
    pub fn connection_refused(&self, listener: &str, reason: &str) {
        self.connections_refused
            .get_or_create(&ListenerReason {
                listener: listener.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a reload of the TLS files.
    pub fn tls_reload(&self, result: &str) {
        self.tls_reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    /// Counts a failed TLS handshake.
    pub fn tls_handshake_failed(&self, listener: &str, reason: &str) {
        self.tls_handshake_failures
            .get_or_create(&ListenerReason {
                listener: listener.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a reload of the token file.
    pub fn token_reload(&self, result: &str) {
        self.auth_token_reloads
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }
}
