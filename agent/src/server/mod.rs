//! HTTP: the webhook router, the metrics/health router, and `run`.
//!
//! Checks happen in this order so that an unauthenticated caller learns
//! nothing about the input rules: token (401), content type (415), size
//! (413), JSON shape (400). Then every alert is prepared; only when SNS has
//! accepted all of them is the answer 200. At most `MAX_CONCURRENT_WEBHOOKS`
//! notifications are read and published at once; authenticated ones beyond
//! that wait for a slot before their body is read.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use alert_envelope::Envelope;
use alert_envelope::webhook::WebhookMessage;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::config::BearerToken;
use crate::context::ClusterContext;
use crate::metrics::{CodeLabel, Metrics};
use alert_aws::{PreparedMessage, SnsPublisher, prepare};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The SNS publisher.
    pub publisher: SnsPublisher,
    /// Cluster name for every envelope.
    pub cluster: String,
    /// Bearer token Alertmanager must send, if configured.
    pub auth_token: Option<BearerToken>,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// One permit per notification processed at once (`MAX_CONCURRENT_WEBHOOKS`).
    pub webhook_slots: Arc<Semaphore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set once the topic has been checked.
    pub ready: Arc<AtomicBool>,
    /// Cluster context, when the agent talks to Kubernetes.
    pub context: Option<ClusterContext>,
}

/// `POST /webhook`.
pub fn webhook_router(state: AppState) -> Router {
    Router::new()
        .route("/webhook", post(webhook))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// `/metrics`, `/healthz`, `/readyz`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    s.metrics.encode(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<AppState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "topic not checked yet")
                }
            }),
        )
        .with_state(state)
}

fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, axum::Json(body)).into_response()
}

async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let response = handle(&state, &headers, body).await;
    state
        .metrics
        .webhook_responses
        .get_or_create(&CodeLabel {
            code: response.status().as_u16().to_string(),
        })
        .inc();
    response
}

/// The webhook logic, as a plain function of state, headers and body.
pub async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Response {
    if let Some(expected) = &state.auth_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(expected.expose())) {
            tracing::warn!("webhook rejected: missing or wrong bearer token");
            return error(
                StatusCode::UNAUTHORIZED,
                "missing or invalid bearer token",
                None,
            );
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type must be application/json, got {content_type:?}"),
            None,
        );
    }
    // A burst waits here with its bodies still in the socket buffers: memory
    // and the connections to SNS stay bounded, and SNS sees no more
    // concurrent publishes than the slots. The semaphore is never closed.
    let Ok(_slot) = state.webhook_slots.acquire().await else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down", None);
    };
    let bytes = match to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "body larger than {} bytes (MAX_BODY_BYTES)",
                    state.max_body_bytes
                ),
                None,
            );
        }
    };
    let mut msg = match WebhookMessage::from_slice(&bytes) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(field = %e.path, error = %e.message, "webhook rejected: invalid body");
            return error(StatusCode::BAD_REQUEST, e.to_string(), Some(&e.path));
        }
    };
    state
        .metrics
        .alert_received("alertmanager", msg.alerts.len());

    let fifo = state.publisher.is_fifo();
    let mut seen = HashSet::new();
    let mut envelopes: Vec<(usize, Envelope)> = Vec::with_capacity(msg.alerts.len());
    // The alerts move into their envelopes; `msg` keeps the notification's own fields.
    let alerts = std::mem::take(&mut msg.alerts);
    for (i, alert) in alerts.into_iter().enumerate() {
        let env = Envelope::from_alertmanager_alert(&state.cluster, &msg, alert);
        if seen.insert(env.id.clone()) {
            envelopes.push((i, env)); // the same alert twice in one notification: one message
        }
    }
    if let Some(context) = &state.context {
        // Pod lookups of one notification run concurrently; each has its own timeout.
        futures::future::join_all(envelopes.iter_mut().map(|(_, env)| context.annotate(env))).await;
    }
    let mut prepared: Vec<PreparedMessage> = Vec::with_capacity(envelopes.len());
    let mut too_large = Vec::new();
    for (i, env) in envelopes {
        match prepare(env, fifo) {
            Ok(p) => {
                state.metrics.envelope_size.observe(p.size as f64);
                if p.truncated {
                    state.metrics.envelopes_truncated.inc();
                }
                prepared.push(p);
            }
            Err(e) => too_large.push((i, e)),
        }
    }

    let started = Instant::now();
    let outcome = state.publisher.publish(&prepared).await;
    state
        .metrics
        .publish_duration
        .observe(started.elapsed().as_secs_f64());
    state
        .metrics
        .alerts_published
        .inc_by(outcome.accepted.len() as u64);
    for (_, c) in outcome.permanent.iter().chain(outcome.retryable.iter()) {
        state.metrics.failed(c.reason, 1);
    }
    let total = prepared.len();
    if let Some((_, c)) = outcome.retryable.first() {
        let failed = outcome.retryable.len() + outcome.permanent.len();
        let message = format!(
            "{failed} of {total} alerts not accepted by SNS before the deadline: {}",
            c.detail
        );
        tracing::warn!(group_key = %msg.group_key, error = %message, "publish failed; answering 503 so Alertmanager retries");
        return error(StatusCode::SERVICE_UNAVAILABLE, message, None);
    }
    if let Some((_, c)) = outcome.permanent.first() {
        let message = format!(
            "{} of {total} alerts refused by SNS: {}",
            outcome.permanent.len(),
            c.detail
        );
        tracing::error!(group_key = %msg.group_key, error = %message, "publish refused by SNS");
        return error(StatusCode::INTERNAL_SERVER_ERROR, message, None);
    }
    if let Some((index, e)) = too_large.first() {
        state.metrics.failed("too_large", too_large.len());
        tracing::error!(published = total, error = %e, "alert too large for SNS even without annotations");
        return error(
            StatusCode::BAD_REQUEST,
            format!("{e}; the other {total} alerts were published"),
            Some(&format!("alerts[{index}].labels")),
        );
    }
    let ids: Vec<&str> = prepared.iter().map(|p| p.id.as_str()).collect();
    tracing::info!(group_key = %msg.group_key, alerts = total, ids = ?ids, "published");
    (
        StatusCode::OK,
        axum::Json(json!({"status": "ok", "published": total})),
    )
        .into_response()
}

/// Checks the topic until it answers (GetTopicAttributes), then marks the agent ready.
pub async fn check_topic_until_ready(state: AppState) {
    use backon::BackoffBuilder;
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(200))
        .with_max_delay(std::time::Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
        .build();
    loop {
        match state
            .publisher
            .client()
            .get_topic_attributes()
            .topic_arn(state.publisher.topic_arn())
            .send()
            .await
        {
            Ok(_) => {
                state.ready.store(true, Ordering::Relaxed);
                tracing::info!(
                    topic = state.publisher.topic_arn(),
                    "topic reachable; ready"
                );
                return;
            }
            Err(e) => {
                let c = alert_aws::classify_sdk_error(&e);
                tracing::warn!(topic = state.publisher.topic_arn(), reason = c.reason, detail = %c.detail, "topic check failed; not ready");
            }
        }
        let delay = backoff.next().unwrap_or(std::time::Duration::from_secs(10));
        tokio::time::sleep(delay).await;
    }
}
