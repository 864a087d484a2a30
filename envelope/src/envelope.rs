//! The `Envelope`: one JSON message per alert, schema `alert-manager/v1`.
//!
//! Invariants:
//! - `id` is a pure function of cluster, fingerprint, status and `starts_at`,
//!   plus a discriminator where that is not enough: `ends_at` for a resolve,
//!   the resolve a re-firing follows, a Kubernetes event's uid and series
//!   count. A retried publish carries the same id; a resolve never shares its
//!   firing's id, nor a re-firing the first firing's.
//! - Within v1 only additive changes are made. Readers tolerate unknown
//!   fields; a breaking change bumps the major (`alert-manager/v2`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::enrichment::{
    CloudWatchEnrichment, Ec2Enrichment, Enrichment, EnrichmentError, InStorm, MetricPoint,
    MetricSummary, Muted,
};
pub use crate::id::{derive_id, label_fingerprint};
use crate::webhook::{Alert, WebhookMessage, deserialize_naming_path, json_path};

/// The schema identifier this crate writes.
pub const SCHEMA_V1: &str = "alert-manager/v1";
/// The schema major version this crate reads.
pub const SCHEMA_MAJOR: u32 = 1;

/// Where an alert came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A Prometheus Alertmanager webhook.
    Alertmanager,
    /// A Kubernetes Warning event.
    KubernetesEvent,
    /// A CloudWatch alarm's state change (through SNS or EventBridge).
    CloudwatchAlarm,
}

impl Source {
    /// The wire name, also used as the `source` message attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Alertmanager => "alertmanager",
            Source::KubernetesEvent => "kubernetes-event",
            Source::CloudwatchAlarm => "cloudwatch-alarm",
        }
    }
}

/// Firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The condition holds.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

/// Severity normalised to four levels; the raw label is kept in `severity_raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Page someone.
    Critical,
    /// Look at it soon.
    Warning,
    /// For information.
    Info,
    /// No severity label, or one we do not recognise.
    None,
}

impl Severity {
    /// Maps the common spellings of a `severity` label onto four levels.
    pub fn normalise(raw: Option<&str>) -> Severity {
        let Some(raw) = raw else {
            return Severity::None;
        };
        match raw.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "page" | "emergency" | "emerg" | "alert" | "fatal" | "error"
            | "err" | "high" | "p1" | "sev1" | "sev-1" | "major" => Severity::Critical,
            "warning" | "warn" | "medium" | "p2" | "p3" | "sev2" | "sev-2" | "sev3" | "sev-3"
            | "minor" => Severity::Warning,
            "info" | "informational" | "notice" | "low" | "debug" | "p4" | "p5" | "sev4"
            | "sev-4" => Severity::Info,
            _ => Severity::None,
        }
    }

    /// The wire name, also used as the `severity` message attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::None => "none",
        }
    }
}

/// One alert, as it travels from the agent through SNS to the Lambda and on to subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "alert-manager envelope v1")]
pub struct Envelope {
    /// Always `alert-manager/v1` for this version of the contract.
    pub schema: String,
    /// Deterministic id: a hash of cluster, fingerprint, status and `starts_at`, plus `ends_at`
    /// for a resolve, the resolve it follows for a re-firing, and the event's uid and series
    /// count for a Kubernetes event. A retried publish keeps it; dedupe on it.
    pub id: String,
    /// Where the alert came from.
    pub source: Source,
    /// Name of the Kubernetes cluster the alert is about.
    pub cluster: String,
    /// Firing or resolved.
    pub status: Status,
    /// The `alertname` label (for events: the event reason).
    pub alertname: String,
    /// Normalised severity.
    pub severity: Severity,
    /// The `severity` label exactly as it was, if there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_raw: Option<String>,
    /// Alertmanager's fingerprint of the label set (or a stable hash for events).
    pub fingerprint: String,
    /// Alertmanager's aggregation group key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<String>,
    /// Alertmanager receiver that sent the notification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
    /// When the alert started.
    pub starts_at: Timestamp,
    /// When the alert ended; absent while firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    /// Link to the expression that produced the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    /// Alertmanager's external URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_url: Option<String>,
    /// Alerts of the same notification that Alertmanager cut with `max_alerts`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated_alerts: u64,
    /// All labels of the alert.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// All annotations of the alert; may be cut to fit SNS (see `truncated`).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// What the cluster knows: namespace, pod, node, owning team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesContext>,
    /// The machine behind the alert, as the node reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsContext>,
    /// Added by the enricher Lambda only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,
    /// True when annotations were cut to fit SNS's 256 KiB message limit.
    #[serde(default)]
    pub truncated: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Context only the cluster knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct KubernetesContext {
    /// Namespace of the object the alert is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Node name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Owning team, from the namespace annotation or label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// EKS managed nodegroup of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodegroup: Option<String>,
    /// Karpenter nodepool of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodepool: Option<String>,
    /// Namespace labels selected by the agent's allow-list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_labels: BTreeMap<String, String>,
}

/// The EC2 machine behind the alert, from the node's `spec.providerID` and labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AwsContext {
    /// EC2 instance id, e.g. `i-0abc123def4567890`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Availability zone, e.g. `us-west-2a`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Region, e.g. `us-west-2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Instance type from the node label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// The AWS account, when the source says (a CloudWatch alarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

/// An envelope that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not shaped like an envelope.
    #[error("invalid envelope at {path}: {message}")]
    Invalid {
        /// Path of the offending field.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// A schema this reader does not understand.
    #[error("unsupported envelope schema {0:?}, this reader understands alert-manager/v1")]
    UnsupportedSchema(String),
}

impl Envelope {
    /// Reads an envelope, checking the schema major version first so that a v2
    /// message is reported as such rather than as a confusing field error.
    pub fn from_json(body: &str) -> Result<Envelope, EnvelopeError> {
        #[derive(Deserialize)]
        struct Probe {
            schema: Option<String>,
        }
        if let Ok(Probe {
            schema: Some(schema),
        }) = serde_json::from_str::<Probe>(body)
            && schema_major(&schema) != Some(SCHEMA_MAJOR)
        {
            return Err(EnvelopeError::UnsupportedSchema(schema));
        }
        deserialize_naming_path(body.as_bytes()).map_err(|e| EnvelopeError::Invalid {
            path: json_path(e.path()),
            message: e.inner().to_string(),
        })
    }

    /// Builds the envelope for one alert of an Alertmanager notification.
    pub fn from_alertmanager(cluster: &str, msg: &WebhookMessage, alert: &Alert) -> Envelope {
        Envelope::from_alertmanager_alert(cluster, msg, alert.clone())
    }

    /// Like [`Envelope::from_alertmanager`], taking the alert by value: its
    /// labels and annotations move into the envelope instead of being copied
    /// (the agent's hot path). `msg` supplies the notification's own fields;
    /// its `alerts` are not read.
    pub fn from_alertmanager_alert(cluster: &str, msg: &WebhookMessage, alert: Alert) -> Envelope {
        let fingerprint = if alert.fingerprint.is_empty() {
            label_fingerprint(&alert.labels)
        } else {
            alert.fingerprint
        };
        let mut env = Envelope::new(
            Source::Alertmanager,
            cluster,
            alert.status,
            fingerprint,
            alert.starts_at,
            alert.labels,
        );
        // Each resolve of an alert is its own message: a resolve, a re-fire
        // with the same `starts_at` and a second resolve must not share an id.
        if alert.status == Status::Resolved
            && let Some(ends_at) = alert.ends_at
        {
            env = env.with_id_discriminator(&format!("ends_at={ends_at}"));
        }
        env.group_key = Some(msg.group_key.clone());
        env.receiver = Some(msg.receiver.clone()).filter(|r| !r.is_empty());
        env.ends_at = alert.ends_at;
        env.generator_url = Some(alert.generator_url).filter(|u| !u.is_empty());
        env.external_url = Some(msg.external_url.clone()).filter(|u| !u.is_empty());
        env.truncated_alerts = msg.truncated_alerts;
        env.annotations = alert.annotations;
        env
    }

    /// An envelope with the fields every alert has; `alertname` and
    /// `severity` come from the labels, the id from cluster, fingerprint,
    /// status and `starts_at`. Everything optional starts empty.
    pub fn new(
        source: Source,
        cluster: &str,
        status: Status,
        fingerprint: String,
        starts_at: Timestamp,
        labels: BTreeMap<String, String>,
    ) -> Envelope {
        let severity_raw = labels.get("severity").cloned();
        Envelope {
            schema: SCHEMA_V1.to_string(),
            id: derive_id(cluster, &fingerprint, status, starts_at, None),
            source,
            cluster: cluster.to_string(),
            status,
            alertname: labels.get("alertname").cloned().unwrap_or_default(),
            severity: Severity::normalise(severity_raw.as_deref()),
            severity_raw,
            fingerprint,
            group_key: None,
            receiver: None,
            starts_at,
            ends_at: None,
            generator_url: None,
            external_url: None,
            truncated_alerts: 0,
            labels,
            annotations: BTreeMap::new(),
            kubernetes: None,
            aws: None,
            enrichment: None,
            truncated: false,
        }
    }

    /// The same alert with its id derived with one more part, for an alert
    /// whose identity needs it (a Kubernetes event's uid and series count).
    pub fn with_id_discriminator(mut self, discriminator: &str) -> Envelope {
        self.id = derive_id(
            &self.cluster,
            &self.fingerprint,
            self.status,
            self.starts_at,
            Some(discriminator),
        );
        self
    }

    /// This firing, as the one that follows a resolve (at `resolved_at`) of
    /// the same alert with the same `starts_at`: Alertmanager resolves an
    /// alert Prometheus stopped sending, and Prometheus resumes it with its
    /// restored `starts_at`. The payload is the same as the first firing's,
    /// so only a sender that saw the resolve can tell them apart.
    pub fn firing_after_resolve(self, resolved_at: Timestamp) -> Envelope {
        if self.status != Status::Firing {
            return self;
        }
        self.with_id_discriminator(&format!("after_resolve={resolved_at}"))
    }

    pub fn namespace(&self) -> Option<&str> {
        self.kubernetes
            .as_ref()
            .and_then(|k| k.namespace.as_deref())
            .or_else(|| self.labels.get("namespace").map(String::as_str))
    }

    /// The owning team: the Lambda's resolution, the cluster's, then the `team` label.
    pub fn team(&self) -> Option<&str> {
        self.enrichment
            .as_ref()
            .and_then(|e| e.team.as_deref())
            .or_else(|| self.kubernetes.as_ref().and_then(|k| k.team.as_deref()))
            .or_else(|| self.labels.get("team").map(String::as_str))
    }
}

/// Major version of a schema identifier such as `alert-manager/v1` (or `alert-manager/v1.2`).
pub fn schema_major(schema: &str) -> Option<u32> {
    let version = schema.strip_prefix("alert-manager/v")?;
    version.split('.').next()?.parse().ok()
}
