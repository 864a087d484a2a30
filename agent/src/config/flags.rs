//! The flags and their environment variables, as clap parses them; the
//! checks that turn them into a [`super::ServeConfig`] live beside, in `mod.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::events::OverflowPolicy;

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

    /// AWS account of this cluster, put into every envelope as
    /// `aws.account_id` so that a central enricher reads the right account's
    /// EC2 instances. Default: the account of the agent's own identity (STS
    /// GetCallerIdentity at startup; the agent is not ready until it knows).
    #[arg(long, env = "AWS_ACCOUNT_ID")]
    pub aws_account_id: Option<String>,

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

    /// PEM certificate chain, server certificate first, for HTTPS on the
    /// webhook listener (with --tls-key-file): for example a cert-manager
    /// Certificate's Secret mounted into the pod (tls.crt). Both files are
    /// read again every 5 s, so a renewal needs no restart. Without it the
    /// webhook speaks plain HTTP; the metrics listener always does.
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of --tls-cert-file (tls.key): PKCS#8, PKCS#1 or SEC1.
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,

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

    /// Lease duration in seconds (at least 10); a replica that loses the
    /// lease stops publishing events within it.
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

    /// Seconds a client may take to send a request line and headers, on both
    /// listeners; it also closes a keep-alive connection left idle this long
    /// (the header timer runs while a connection waits for its next request).
    /// The token is checked only after the headers, so this is what stops an
    /// unauthenticated client from holding a connection open.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub header_read_timeout_seconds: u64,

    /// Seconds a webhook body may take to arrive once its headers are in;
    /// slower bodies get 408.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECONDS", default_value_t = 10)]
    pub body_read_timeout_seconds: u64,

    /// Largest request line plus headers, in bytes (8192 to 65536); larger
    /// heads get 431. Also the most one connection buffers while reading.
    #[arg(long, env = "MAX_HEADER_BYTES", default_value_t = 16 * 1024)]
    pub max_header_bytes: usize,

    /// Connections served at once per listener; a connection beyond it is
    /// closed at once. As many again may wait for a place of their client
    /// (see --max-connections-per-client).
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,

    /// Connections served at once per client address per listener. Pod-to-pod
    /// traffic keeps its source address, so one noisy pod cannot take
    /// Alertmanager's places. A connection beyond it waits, unread, up to
    /// HEADER_READ_TIMEOUT_SECONDS for a place of its client (an Alertmanager
    /// storm opens a connection per group), and meanwhile the client's answers
    /// say `Connection: close` so that places free; when MAX_CONNECTIONS
    /// already wait, it is closed at once.
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64)]
    pub max_connections_per_client: usize,

    /// After the token file changes, the previous token stays valid this many
    /// seconds: Alertmanager's own mounted copy of the Secret updates on the
    /// kubelet's schedule, not at the same moment.
    #[arg(long, env = "AUTH_TOKEN_GRACE_SECONDS", default_value_t = 300)]
    pub auth_token_grace_seconds: u64,

    /// Ids SNS accepted in the last 5 minutes that the agent remembers, so
    /// that an Alertmanager retry of a notification (sent again when one of
    /// its alerts failed) does not publish the others again; also the number
    /// of resolves remembered, so that a re-firing gets an id of its own.
    #[arg(long, env = "RECENT_IDS_CAPACITY", default_value_t = 10_000)]
    pub recent_ids_capacity: usize,
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
