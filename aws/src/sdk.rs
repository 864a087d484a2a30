//! The SDK configuration and the log setup both binaries share.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// Connect timeout of every AWS call.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest single AWS call; a deadline may cut it shorter.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The SDK configuration from the environment (IRSA, Pod Identity, the
/// Lambda role), with the SDK's own retries off: [`crate::retry`] is the one
/// retry stage, and enrichment degrades instead of retrying.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .load()
        .await
}

/// An SNS client for `topic`: the topic's region, whatever the SDK
/// config's (a cluster in one region may publish to a central topic in
/// another).
pub fn sns_client(sdk: &aws_config::SdkConfig, topic: &crate::TopicArn) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(sdk)
            .region(aws_sdk_sns::config::Region::new(topic.region().to_string()))
            .build(),
    )
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (CloudWatch Logs, Loki).
    Json,
    /// Human-readable.
    Text,
}

/// Installs the global subscriber, writing to stderr, level from `RUST_LOG`
/// (default `info`). A second call is a no-op.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
