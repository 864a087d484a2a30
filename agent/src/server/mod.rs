//! HTTP: the webhook router, the metrics/health router, and the listeners
//! that serve them ([`listener`]).

mod admission;
pub mod auth;
pub mod listener;
mod reload;
pub mod tls;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use tokio::sync::Semaphore;

pub use auth::TokenStore;
pub use webhook::handle;

use crate::context::ClusterContext;
use crate::metrics::Metrics;
use crate::recent::{RecentIds, Resolves};
use alert_aws::SnsPublisher;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The SNS publisher.
    pub publisher: SnsPublisher,
    /// Cluster name for every envelope.
    pub cluster: String,
    /// The AWS account put into every envelope.
    pub account: crate::account::Account,
    /// Bearer tokens Alertmanager may send, if one is configured.
    pub auth: Option<TokenStore>,
    /// Body limit in bytes.
    pub max_body_bytes: usize,
    /// How long a body may take to arrive once the headers are in.
    pub body_read_timeout: Duration,
    /// One permit per notification processed at once (`MAX_CONCURRENT_WEBHOOKS`).
    pub webhook_slots: Arc<Semaphore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cluster context, when the agent talks to Kubernetes.
    pub context: Option<ClusterContext>,
    /// Ids SNS accepted lately: skipped when Alertmanager retries.
    pub recent: Arc<RecentIds>,
    /// Resolves seen lately: a firing after one gets a new id.
    pub resolves: Arc<Resolves>,
}

/// `POST /webhook`.
pub fn webhook_router(state: AppState) -> Router {
    Router::new()
        .route("/webhook", post(webhook::webhook))
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
                if s.metrics.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        if s.account.get().is_none() {
                            "AWS account not known yet (sts:GetCallerIdentity)"
                        } else {
                            "topic not checked yet"
                        },
                    )
                }
            }),
        )
        .with_state(state)
}

/// Learns the AWS account (unless `AWS_ACCOUNT_ID` gave it) and checks the
/// topic until it answers (GetTopicAttributes), then marks the agent ready.
pub async fn become_ready(state: AppState, sts: aws_sdk_sts::Client) {
    use backon::BackoffBuilder;
    state.account.look_up(&sts).await;
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
                state.metrics.set_ready(true);
                tracing::info!(
                    topic = state.publisher.topic_arn(),
                    "topic reachable; ready"
                );
                return;
            }
            Err(e) => {
                let c = alert_aws::classify_sdk_error(&e);
                tracing::warn!(topic = state.publisher.topic_arn(), reason = %c.reason, detail = %c.detail, "topic check failed; not ready");
            }
        }
        let delay = backoff.next().unwrap_or(std::time::Duration::from_secs(10));
        tokio::time::sleep(delay).await;
    }
}
