//! Command line and environment. Every flag has an env var (`flags`);
//! here they are checked, and every error names the flag and its variable.

mod flags;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use flags::{Cli, Command, KubernetesMode, LogFormat, ServeArgs};

use crate::Error;
use crate::context::ContextConfig;
use crate::events::{EventFilter, OverflowPolicy};
use crate::server::listener::{self, Limits};
use crate::server::tls::{ServerTls, TlsFiles};

/// Validated settings of the serving agent.
#[derive(Clone)]
pub struct ServeConfig {
    /// The topic.
    pub topic_arn: String,
    /// The cluster name.
    pub cluster: String,
    /// `AWS_ACCOUNT_ID`; `None`: from STS at startup.
    pub account_id: Option<String>,
    /// Webhook address.
    pub listen: SocketAddr,
    /// Metrics address.
    pub metrics_listen: SocketAddr,
    /// The bearer token, if one is configured. Never printed.
    pub auth_token: Option<BearerToken>,
    /// Its file, re-read when it changes.
    pub auth_token_file: Option<PathBuf>,
    /// How long the previous token stays valid after a change.
    pub auth_token_grace: Duration,
    /// HTTPS on the webhook listener, when configured.
    pub tls: Option<ServerTls>,
    /// Body limit.
    pub max_body_bytes: usize,
    /// Notifications processed at once.
    pub max_concurrent_webhooks: usize,
    /// Publish deadline per notification.
    pub publish_deadline: Duration,
    /// Drain time on shutdown.
    pub drain: Duration,
    /// Header timeout, header cap and connection caps of both listeners.
    pub listener_limits: Limits,
    /// How long a webhook body may take to arrive.
    pub body_read_timeout: Duration,
    /// Size of the maps of recent ids and resolves.
    pub recent_ids_capacity: std::num::NonZeroUsize,
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
            .field("tls", &self.tls)
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
        let tls = self.tls()?;
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
            account_id: crate::account::parse_override(self.aws_account_id.as_deref())?,
            kubernetes: self.kubernetes,
            context,
            events,
            topic_arn,
            cluster,
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            auth_token,
            auth_token_file: self.auth_token_file.clone(),
            auth_token_grace: Duration::from_secs(self.auth_token_grace_seconds),
            tls,
            max_body_bytes: self.max_body_bytes,
            max_concurrent_webhooks: self.max_concurrent_webhooks,
            publish_deadline: Duration::from_secs(self.publish_deadline_seconds),
            drain: Duration::from_secs(self.drain_seconds),
            listener_limits: self.listener_limits()?,
            recent_ids_capacity: std::num::NonZeroUsize::new(self.recent_ids_capacity).ok_or_else(
                || {
                    Error::Config(
                        "--recent-ids-capacity / RECENT_IDS_CAPACITY must be at least 1".into(),
                    )
                },
            )?,
            body_read_timeout: at_least_one_second(
                self.body_read_timeout_seconds,
                "--body-read-timeout-seconds / BODY_READ_TIMEOUT_SECONDS",
            )?,
        })
    }

    /// Both TLS files or neither; a pair that does not load names its setting.
    fn tls(&self) -> Result<Option<ServerTls>, Error> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => ServerTls::load(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .map(Some)
            .map_err(Error::Config),
            _ => Err(Error::Config(
                "--tls-cert-file / TLS_CERT_FILE and --tls-key-file / TLS_KEY_FILE go together: set both for HTTPS on the webhook, or neither".into(),
            )),
        }
    }

    fn listener_limits(&self) -> Result<Limits, Error> {
        let header_bytes = self.max_header_bytes;
        if !(listener::MIN_HEADER_BYTES..=listener::MAX_HEADER_BYTES).contains(&header_bytes) {
            return Err(Error::Config(format!(
                "--max-header-bytes / MAX_HEADER_BYTES is {header_bytes}; it must be between {} and {}",
                listener::MIN_HEADER_BYTES,
                listener::MAX_HEADER_BYTES
            )));
        }
        if self.max_connections == 0 {
            return Err(Error::Config(
                "--max-connections / MAX_CONNECTIONS must be at least 1".into(),
            ));
        }
        if self.max_connections_per_client == 0
            || self.max_connections_per_client > self.max_connections
        {
            return Err(Error::Config(format!(
                "--max-connections-per-client / MAX_CONNECTIONS_PER_CLIENT is {}; it must be between 1 and --max-connections / MAX_CONNECTIONS ({})",
                self.max_connections_per_client, self.max_connections
            )));
        }
        Ok(Limits {
            header_read_timeout: at_least_one_second(
                self.header_read_timeout_seconds,
                "--header-read-timeout-seconds / HEADER_READ_TIMEOUT_SECONDS",
            )?,
            max_header_bytes: header_bytes,
            max_connections: self.max_connections,
            max_connections_per_client: self.max_connections_per_client,
        })
    }
}

fn at_least_one_second(seconds: u64, setting: &str) -> Result<Duration, Error> {
    if seconds == 0 {
        return Err(Error::Config(format!("{setting} must be at least 1")));
    }
    Ok(Duration::from_secs(seconds))
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
        let min_lease = crate::leader::MIN_LEASE_DURATION.as_secs();
        if self.lease_duration_seconds < min_lease {
            return Err(Error::Config(format!(
                "--lease-duration-seconds / LEASE_DURATION_SECONDS is {}; it must be at least {min_lease}, so that the renew deadline (1/2 of it), a retry (1/5) and a request timeout (1/5) fit inside it",
                self.lease_duration_seconds
            )));
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
    alert_aws::TopicArn::parse(arn)
        .map(drop)
        .map_err(|e| Error::Config(format!("--topic-arn / ALERT_TOPIC_ARN {e}")))
}

fn read_token(path: &Path) -> Result<BearerToken, Error> {
    crate::server::auth::read_token_file(path).map_err(|why| {
        Error::Config(format!(
            "--auth-token-file / AUTH_TOKEN_FILE {}: {why}",
            path.display()
        ))
    })
}
