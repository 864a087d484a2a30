//! Shared by the webhook tests: an SNS client faked with aws-smithy-mocks,
//! the agent's state over it, and a POST through the router.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use alert_aws::RetryPolicy;
use alert_manager_agent::SnsPublisher;
use alert_manager_agent::config::BearerToken;
use alert_manager_agent::metrics::Metrics;
use alert_manager_agent::server::{AppState, TokenStore, webhook_router};
use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
use aws_sdk_sns::types::PublishBatchResultEntry;
use aws_smithy_mocks::{Rule, RuleMode, mock};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:alerts";
pub const TOKEN: &str = "s3cr3t-t0ken-value-0123456789";

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../envelope/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub fn client(rules: &[&Rule], mode: RuleMode) -> aws_sdk_sns::Client {
    let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new().rule_mode(mode);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_sns::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_sns::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "AKIDTESTKEY",
            "test-secret-key",
            None,
            None,
            "test",
        ))
        // As in production: the publisher is the one retry stage.
        .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_sns::Client::from_conf(config)
}

/// Accepts every entry of every call.
pub fn accept_all() -> Rule {
    mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(|input| {
        let ok = input
            .publish_batch_request_entries()
            .iter()
            .map(|e| {
                PublishBatchResultEntry::builder()
                    .id(e.id())
                    .message_id(format!("msg-{}", e.id()))
                    .build()
            })
            .collect();
        PublishBatchOutput::builder()
            .set_successful(Some(ok))
            .build()
    })
}

pub fn state(client: aws_sdk_sns::Client, token: Option<&str>, deadline: Duration) -> AppState {
    AppState {
        account: alert_manager_agent::account::Account::default(),
        publisher: SnsPublisher::new(
            client,
            TOPIC.parse().unwrap(),
            RetryPolicy {
                deadline,
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
        ),
        cluster: "prod-eu-1".into(),
        auth: token.map(|t| TokenStore::new(BearerToken::new(t.into()))),
        max_body_bytes: 1024 * 1024,
        body_read_timeout: std::time::Duration::from_secs(10),
        webhook_slots: Arc::new(tokio::sync::Semaphore::new(64)),
        metrics: Arc::new(Metrics::new()),
        context: None,
        recent: Arc::new(alert_manager_agent::recent::RecentIds::new(
            std::num::NonZeroUsize::new(1000).unwrap(),
            std::time::Duration::from_secs(300),
        )),
        resolves: Arc::new(alert_manager_agent::recent::Resolves::new(
            std::num::NonZeroUsize::new(1000).unwrap(),
        )),
    }
}

pub async fn post(
    state: &AppState,
    body: Vec<u8>,
    content_type: Option<&str>,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::post("/webhook");
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = webhook_router(state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{status}: body is not JSON: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, json)
}
