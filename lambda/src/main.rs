use std::time::Duration;

use alert_manager_enricher::Enricher;
use alert_manager_enricher::config::EnricherArgs;
use clap::Parser;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = EnricherArgs::parse().validate()?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        // Enrichment degrades instead of retrying; delivery retries in one place (alert-aws).
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let enricher = Enricher::new(
        config,
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_cloudwatch::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
        region,
    );
    let enricher = &enricher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline_ms = event.context.deadline as i64;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms).max(1000) as u64);
        enricher
            .handle(&event.payload, remaining)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
