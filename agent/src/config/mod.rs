//! Command line and environment. Every flag has an env var.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Error;
use crate::context::ContextConfig;
use crate::events::{EventFilter, OverflowPolicy};

/// Receives Prometheus Alertmanager webhooks (and, with --events, Kubernetes
/// Warning events), adds what only the cluster knows (owning team, node →
/// EC2 instance), and publishes one envelope per alert to an SNS topic,
/// answering 2xx only once SNS has accepted them all.
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

    /// Kubernetes context: `auto` uses the in-cluster service account (or
    /// KUBECONFIG) when there is one and runs without context otherwise; `off`
    /// never talks to Kubernetes. Needs get/list/watch on nodes and
    /// namespaces and get on pods (see docs/rbac.md).
    #[arg(long, env = "KUBERNETES_CONTEXT", value_enum, default_value_t = KubernetesMode::Auto)]
    pub kubernetes: KubernetesMode,

    /// Namespace annotation naming the team that owns the namespace's alerts
    /// (copied to `kubernetes.team`).
    #[arg(long, env = "TEAM_ANNOTATION", default_value = "alert-manager.io/team")]
    pub team_annotation: String,

    /// Namespace label naming the owning team, read when the annotation is absent.
    #[arg(long, env = "TEAM_LABEL", default_value = "team")]
    pub team_label: String,

    /// Namespace labels copied into `kubernetes.namespace_labels`
    /// (comma-separated, e.g. `env,cost-center`).
    #[arg(long, env = "NAMESPACE_LABELS", value_delimiter = ',')]
    pub namespace_labels: Vec<String>,

    /// How long a pod → node lookup is reused, in seconds.
    #[arg(long, env = "POD_CACHE_TTL_SECONDS", default_value_t = 30)]
    pub pod_cache_ttl_seconds: u64,

    /// Also publish Kubernetes Warning events as alerts (source
    /// `kubernetes-event`). Needs list/watch on events.k8s.io events and
    /// get/create/update on leases in the agent's namespace.
    #[arg(long = "events", env = "EVENTS_ENABLED")]
    pub events: bool,

    /// Only events in these namespaces (comma-separated; default all).
    #[arg(long, env = "EVENT_NAMESPACES", value_delimiter = ',')]
    pub event_namespaces: Vec<String>,

    /// Never events in these namespaces (comma-separated).
    #[arg(long, env = "EVENT_EXCLUDE_NAMESPACES", value_delimiter = ',')]
    pub event_exclude_namespaces: Vec<String>,

    /// Only events with these reasons (comma-separated; `*` for every reason).
    #[arg(
        long,
        env = "EVENT_REASONS",
        value_delimiter = ',',
        default_value = "BackOff,FailedScheduling,OOMKilling,NodeNotReady,FailedMount,FailedAttachVolume,Evicted,FailedCreatePodSandBox"
    )]
    pub event_reasons: Vec<String>,

    /// Never events with these reasons (comma-separated).
    #[arg(long, env = "EVENT_EXCLUDE_REASONS", value_delimiter = ',')]
    pub event_exclude_reasons: Vec<String>,

    /// Only events that happened at least this many times.
    #[arg(long, env = "EVENT_MIN_COUNT", default_value_t = 1)]
    pub event_min_count: u32,

    /// Ignore events last seen longer ago than this, in seconds, so that a
    /// restart does not replay the cluster's event history.
    #[arg(long, env = "EVENT_MAX_AGE_SECONDS", default_value_t = 300)]
    pub event_max_age_seconds: u64,

    /// Alerts buffered between the event watcher and SNS.
    #[arg(long, env = "EVENT_BUFFER_SIZE", default_value_t = 1000)]
    pub event_buffer_size: usize,

    /// What happens when the event buffer is full; every drop is counted in
    /// alert_manager_agent_events_dropped{reason="buffer_full"} and logged.
    #[arg(long, env = "EVENT_OVERFLOW", value_enum, default_value_t = OverflowPolicy::DropOldest)]
    pub event_overflow: OverflowPolicy,

    /// At most this many event alerts per involved object per
    /// --event-rate-window-seconds (a crash-looping pod cannot flood SNS).
    #[arg(long, env = "EVENT_RATE_PER_OBJECT", default_value_t = 5)]
    pub event_rate_per_object: usize,

    /// The window of --event-rate-per-object, in seconds.
    #[arg(long, env = "EVENT_RATE_WINDOW_SECONDS", default_value_t = 600)]
    pub event_rate_window_seconds: u64,

    /// Lease that elects the one replica publishing events.
    #[arg(long, env = "LEASE_NAME", default_value = "alert-manager-agent-events")]
    pub lease_name: String,

    /// Namespace of the lease; the agent's own (downward API), else the
    /// service account's namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,

    /// This replica's identity in the lease (downward API pod name; falls
    /// back to HOSTNAME).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,

    /// Lease duration in seconds; a replica that loses the lease stops
    /// publishing events within it.
    #[arg(long, env = "LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// Log format. RUST_LOG sets the level (default info).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,

    /// Largest webhook body accepted, in bytes; larger bodies get 413.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Webhook notifications processed at once; more wait, their bodies
    /// unread, until one is answered. Bounds memory and the connections to
    /// SNS when Alertmanager sends a burst (after a restart, say).
    #[arg(long, env = "MAX_CONCURRENT_WEBHOOKS", default_value_t = 64)]
    pub max_concurrent_webhooks: usize,

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
    /// The in-cluster service account, else KUBECONFIG; without either, no context.
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
    /// Notifications processed at once.
    pub max_concurrent_webhooks: usize,
    /// Publish deadline per notification.
    pub publish_deadline: Duration,
    /// Drain time on shutdown.
    pub drain: Duration,
    /// Kubernetes context mode.
    pub kubernetes: KubernetesMode,
    /// Team and label settings of the context.
    pub context: ContextConfig,
    /// The events source, when enabled.
    pub events: Option<EventsConfig>,
}

/// Settings of the Kubernetes events source.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// Which events.
    pub filter: EventFilter,
    /// Buffer capacity.
    pub buffer_size: usize,
    /// Overflow policy.
    pub overflow: OverflowPolicy,
    /// Alerts per object per window.
    pub rate_per_object: usize,
    /// The rate window.
    pub rate_window: Duration,
    /// Lease name.
    pub lease_name: String,
    /// Lease namespace; `None`: the client's default namespace.
    pub lease_namespace: Option<String>,
    /// This replica's identity.
    pub identity: String,
    /// Lease duration.
    pub lease_duration: Duration,
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
            .field("max_concurrent_webhooks", &self.max_concurrent_webhooks)
            .field("kubernetes", &self.kubernetes)
            .field("context", &self.context)
            .field("events", &self.events)
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
        if self.max_concurrent_webhooks == 0 {
            return Err(Error::Config(
                "--max-concurrent-webhooks / MAX_CONCURRENT_WEBHOOKS must be at least 1".into(),
            ));
        }
        if self.publish_deadline_seconds == 0 {
            return Err(Error::Config(
                "--publish-deadline-seconds / PUBLISH_DEADLINE_SECONDS must be at least 1".into(),
            ));
        }
        let clean = |v: &[String]| -> Vec<String> {
            v.iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        if self.team_annotation.trim().is_empty() && self.team_label.trim().is_empty() {
            return Err(Error::Config(
                "--team-annotation / TEAM_ANNOTATION and --team-label / TEAM_LABEL are both empty; set at least one".into(),
            ));
        }
        let context = ContextConfig {
            team_annotation: self.team_annotation.trim().to_string(),
            team_label: self.team_label.trim().to_string(),
            namespace_labels: clean(&self.namespace_labels),
            pod_cache_ttl: Duration::from_secs(self.pod_cache_ttl_seconds),
            ..ContextConfig::default()
        };
        let events = if self.events {
            Some(self.events_config(&clean)?)
        } else {
            None
        };
        Ok(ServeConfig {
            kubernetes: self.kubernetes,
            context,
            events,
            topic_arn,
            cluster,
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            auth_token,
            max_body_bytes: self.max_body_bytes,
            max_concurrent_webhooks: self.max_concurrent_webhooks,
            publish_deadline: Duration::from_secs(self.publish_deadline_seconds),
            drain: Duration::from_secs(self.drain_seconds),
        })
    }
}

impl ServeArgs {
    fn events_config(
        &self,
        clean: &dyn Fn(&[String]) -> Vec<String>,
    ) -> Result<EventsConfig, Error> {
        if self.kubernetes == KubernetesMode::Off {
            return Err(Error::Config(
                "--events / EVENTS_ENABLED needs the Kubernetes API, but --kubernetes / KUBERNETES_CONTEXT is off".into(),
            ));
        }
        let mut reasons = clean(&self.event_reasons);
        if reasons.iter().any(|r| r == "*") {
            reasons.clear();
        }
        if self.event_buffer_size == 0 {
            return Err(Error::Config(
                "--event-buffer-size / EVENT_BUFFER_SIZE must be at least 1".into(),
            ));
        }
        if self.event_rate_per_object == 0 || self.event_rate_window_seconds == 0 {
            return Err(Error::Config(
                "--event-rate-per-object / EVENT_RATE_PER_OBJECT and --event-rate-window-seconds / EVENT_RATE_WINDOW_SECONDS must be at least 1".into(),
            ));
        }
        if self.lease_duration_seconds < 2 {
            return Err(Error::Config(
                "--lease-duration-seconds / LEASE_DURATION_SECONDS must be at least 2".into(),
            ));
        }
        let identity = self
            .pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                Error::Config(
                    "--events needs this replica's identity: set --pod-name / POD_NAME (downward API metadata.name)".into(),
                )
            })?;
        Ok(EventsConfig {
            filter: EventFilter {
                namespaces: clean(&self.event_namespaces),
                exclude_namespaces: clean(&self.event_exclude_namespaces),
                reasons,
                exclude_reasons: clean(&self.event_exclude_reasons),
                min_count: self.event_min_count,
                max_age: Duration::from_secs(self.event_max_age_seconds),
            },
            buffer_size: self.event_buffer_size,
            overflow: self.event_overflow,
            rate_per_object: self.event_rate_per_object,
            rate_window: Duration::from_secs(self.event_rate_window_seconds),
            lease_name: self.lease_name.clone(),
            lease_namespace: self.lease_namespace.clone().filter(|n| !n.is_empty()),
            identity,
            lease_duration: Duration::from_secs(self.lease_duration_seconds),
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
