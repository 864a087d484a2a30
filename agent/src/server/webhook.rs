//! `POST /webhook`.
//!
//! Checks happen in this order so that an unauthenticated caller learns
//! nothing about the input rules: token (401), content type (415), size
//! (413), JSON shape (400). Then every alert is prepared; only when SNS has
//! accepted all of them is the answer 200. At most `MAX_CONCURRENT_WEBHOOKS`
//! notifications are read and published at once; authenticated ones beyond
//! that wait for a slot before their body is read.

use std::time::Instant;

use alert_envelope::webhook::WebhookMessage;
use alert_envelope::{Envelope, Status};
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use alert_aws::{PreparedMessage, prepare};

fn error(status: StatusCode, message: impl Into<String>, field: Option<&str>) -> Response {
    let mut body = json!({ "error": message.into() });
    if let Some(field) = field {
        body["field"] = json!(field);
    }
    (status, axum::Json(body)).into_response()
}

pub(super) async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = handle(&state, &headers, body).await;
    state.metrics.webhook().response(response.status().as_u16());
    response
}

/// The webhook logic, as a plain function of state, headers and body.
pub async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Response {
    if let Some(tokens) = &state.auth {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !tokens.accepts(given.as_bytes()) {
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
    // The slot is held while the body arrives: a client that sends it slowly
    // must not keep a slot longer than this.
    let bytes = match tokio::time::timeout(
        state.body_read_timeout,
        to_bytes(body, state.max_body_bytes),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Err(_) => {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "body not received within {} s (BODY_READ_TIMEOUT_SECONDS)",
                    state.body_read_timeout.as_secs()
                ),
                None,
            );
        }
        Ok(Err(_)) => {
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
    let mut envelopes: Vec<(usize, Envelope)> = Vec::with_capacity(msg.alerts.len());
    let mut already_published = 0;
    // The alerts move into their envelopes; `msg` keeps the notification's own fields.
    let alerts = std::mem::take(&mut msg.alerts);
    for (i, alert) in alerts.into_iter().enumerate() {
        let env = state.identify(Envelope::from_alertmanager_alert(
            &state.cluster,
            &msg,
            alert,
        ));
        if state.recent.contains(&env.id) {
            // Alertmanager retries the whole notification when one alert of it
            // failed; SNS took this one already.
            already_published += 1;
            continue;
        }
        envelopes.push((i, env));
    }
    // The same alert twice in one notification: one message.
    crate::sns::dedupe_by_id(&mut envelopes, |(_, env)| env.id.as_str());
    state.metrics.already_published(already_published);
    if let Some(context) = &state.context {
        // Pod lookups of one notification run concurrently; each has its own timeout.
        futures::future::join_all(envelopes.iter_mut().map(|(_, env)| context.annotate(env))).await;
    }
    for (_, env) in &mut envelopes {
        state.account.stamp(env);
    }
    let mut prepared: Vec<PreparedMessage> = Vec::with_capacity(envelopes.len());
    let mut too_large = Vec::new();
    for (i, env) in envelopes {
        match prepare(env, fifo) {
            Ok(p) => {
                state.metrics.webhook().envelope(p.size, p.truncated);
                prepared.push(p);
            }
            Err(e) => too_large.push((i, e)),
        }
    }

    let started = Instant::now();
    let outcome = crate::sns::publish(&state.publisher, &prepared).await;
    state
        .recent
        .insert(outcome.accepted.iter().map(|&i| prepared[i].id.as_str()));
    state
        .metrics
        .webhook()
        .publish_took(started.elapsed().as_secs_f64());
    state.metrics.published(outcome.accepted.len());
    for (_, c) in outcome.permanent.iter().chain(outcome.retryable.iter()) {
        state.metrics.failed(&c.reason, 1);
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
    tracing::info!(group_key = %msg.group_key, alerts = total, already_published, ids = ?ids, "published");
    (
        StatusCode::OK,
        axum::Json(
            json!({"status": "ok", "published": total, "already_published": already_published}),
        ),
    )
        .into_response()
}

impl AppState {
    /// The envelope's id as this replica knows it: a firing after a resolve
    /// it saw is a new firing (see [`crate::recent::Resolves`]).
    fn identify(&self, env: Envelope) -> Envelope {
        match (env.status, env.ends_at) {
            (Status::Resolved, Some(ends_at)) => {
                self.resolves
                    .record(&env.cluster, &env.fingerprint, env.starts_at, ends_at);
                env
            }
            (Status::Firing, _) => {
                match self
                    .resolves
                    .last(&env.cluster, &env.fingerprint, env.starts_at)
                {
                    Some(resolved_at) => env.firing_after_resolve(resolved_at),
                    None => env,
                }
            }
            (Status::Resolved, None) => env,
        }
    }
}
