//! Command line and environment. Every flag has an env var.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Error;

/// Receives Prometheus Alertmanager webhooks and publishes one envelope per
/// alert to an SNS topic, answering 2xx only once SNS has accepted them all.
///
/// Credentials come from the AWS default chain: IRSA (AWS_ROLE_ARN +
/// AWS_WEB_IDENTITY_TOKEN_FILE), EKS Pod Identity, or environment keys.
/// Region from AWS_REGION. Run `alert-manager-agent whoami` to see which.
#[derive(Debug, Parser)]
#[command(name = "alert-manager-agent", version, about, long_about)]
pub struct Cli {
    /// What to do; without one, serve the webhook.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings of the agent.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the AWS identity this pod really has, where its credentials come
    /// from, the region, and whether the topic is reachable. Exits non-zero
    /// naming the missing piece.
    Whoami,
}

/// Flags of the agent.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// ARN of the SNS topic to publish to (required). A name ending in .fifo
    /// gets FIFO group and deduplication ids.
    #[arg(long, env = "ALERT_TOPIC_ARN", global = true)]
    pub topic_arn: Option<String>,

    /// Name of this Kubernetes cluster, put into every envelope (required).
    #[arg(long, env = "CLUSTER_NAME", global = true)]
    pub cluster: Option<String>,

    /// Address of the webhook listener (POST /webhook).
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_listen: SocketAddr,

    /// File holding the bearer token Alertmanager must send
    /// (http_config.authorization.credentials_file). Without it the webhook is
    /// unauthenticated, and the agent warns loudly at startup.
    #[arg(long, env = "AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,

    /// Kubernetes context: `auto` uses the in-cluster API when
    /// KUBERNETES_SERVICE_HOST is set; `off` never talks to Kubernetes.
    #[arg(long, env = "KUBERNETES_CONTEXT", value_enum, default_value_t = KubernetesMode::Auto)]
    pub kubernetes: KubernetesMode,

    /// Log format. RUST_LOG sets the level (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,

    /// Largest webhook body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// How long one notification may spend publishing, retries included,
    /// before the agent answers 503 so that Alertmanager retries. Keep it
    /// below Alertmanager's webhook timeout.
    #[arg(long, env = "PUBLISH_DEADLINE_SECONDS", default_value_t = 10)]
    pub publish_deadline_seconds: u64,

    /// On SIGTERM, how long in-flight publishes may take before exit. Keep
    /// terminationGracePeriodSeconds above it.
    #[arg(long, env = "DRAIN_SECONDS", default_value_t = 20)]
    pub drain_seconds: u64,
}

/// Kubernetes context mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KubernetesMode {
    /// In-cluster when KUBERNETES_SERVICE_HOST is set, off otherwise.
    Auto,
    /// No Kubernetes context.
    Off,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// Validated settings of the serving agent.
#[derive(Clone)]
pub struct ServeConfig {
    /// The topic.
    pub topic_arn: String,
    /// The cluster name.
    pub cluster: String,
    /// Webhook address.
    pub listen: SocketAddr,
    /// Metrics address.
    pub metrics_listen: SocketAddr,
    /// The bearer token, if one is configured. Never printed.
    pub auth_token: Option<BearerToken>,
    /// Body limit.
    pub max_body_bytes: usize,
    /// Publish deadline per notification.
    pub publish_deadline: Duration,
    /// Drain time on shutdown.
    pub drain: Duration,
}

/// A secret bearer token whose Debug output is redacted.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    /// The token.
    pub fn new(token: String) -> BearerToken {
        BearerToken(token)
    }

    /// The secret bytes, for constant-time comparison only.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeConfig")
            .field("topic_arn", &self.topic_arn)
            .field("cluster", &self.cluster)
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl ServeArgs {
    /// Checks every setting and reads the token file; errors name the flag and env var.
    pub fn validate(&self) -> Result<ServeConfig, Error> {
        let topic_arn = self
            .topic_arn
            .clone()
            .ok_or_else(|| Error::Config("--topic-arn / ALERT_TOPIC_ARN is required".into()))?;
        validate_topic_arn(&topic_arn)?;
        let cluster = self
            .cluster
            .clone()
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| Error::Config("--cluster / CLUSTER_NAME is required".into()))?;
        let auth_token = match &self.auth_token_file {
            None => None,
            Some(path) => Some(read_token(path)?),
        };
        if self.max_body_bytes < 1024 {
            return Err(Error::Config(format!(
                "--max-body-bytes / MAX_BODY_BYTES is {}; it must be at least 1024",
                self.max_body_bytes
            )));
        }
        if self.publish_deadline_seconds == 0 {
            return Err(Error::Config(
                "--publish-deadline-seconds / PUBLISH_DEADLINE_SECONDS must be at least 1".into(),
            ));
        }
        Ok(ServeConfig {
            topic_arn,
            cluster,
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            auth_token,
            max_body_bytes: self.max_body_bytes,
            publish_deadline: Duration::from_secs(self.publish_deadline_seconds),
            drain: Duration::from_secs(self.drain_seconds),
        })
    }
}

/// `arn:<partition>:sns:<region>:<account>:<name>`.
pub fn validate_topic_arn(arn: &str) -> Result<(), Error> {
    let parts: Vec<&str> = arn.split(':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "sns"
        && !parts[3].is_empty()
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && !parts[5].is_empty();
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--topic-arn / ALERT_TOPIC_ARN {arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
        )))
    }
}

fn read_token(path: &PathBuf) -> Result<BearerToken, Error> {
    let token = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "--auth-token-file / AUTH_TOKEN_FILE {}: cannot read: {e}",
            path.display()
        ))
    })?;
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(Error::Config(format!(
            "--auth-token-file / AUTH_TOKEN_FILE {} is empty",
            path.display()
        )));
    }
    Ok(BearerToken::new(token))
}
