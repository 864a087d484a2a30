//! What a storm remembers of its alerts and its sinks.

use alert_envelope::{Envelope, Status};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// One alert of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Firing (else resolved).
    #[serde(rename = "f")]
    pub firing: bool,
    /// Came before the storm began and was delivered on its own, so its
    /// later envelopes are too.
    #[serde(rename = "one", default, skip_serializing_if = "std::ops::Not::not")]
    pub individual: bool,
    /// The envelope's place in the alert's life (epoch seconds: a resolve's
    /// `ends_at`, a firing's `starts_at`); a merge keeps the later.
    pub at: i64,
    /// When it arrived (epoch seconds), for the threshold's window.
    #[serde(rename = "ar")]
    pub arrived: i64,
    /// Namespace.
    #[serde(rename = "ns", default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// EC2 instance, else node.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// EKS nodegroup.
    #[serde(rename = "ng", default, skip_serializing_if = "Option::is_none")]
    pub nodegroup: Option<String>,
}

impl Member {
    pub(super) fn of(env: &Envelope, now: Timestamp) -> Member {
        let ec2 = env.enrichment.as_ref().and_then(|e| e.ec2.as_ref());
        let at = match env.status {
            Status::Resolved => env.ends_at.unwrap_or(env.starts_at),
            Status::Firing => env.starts_at,
        };
        Member {
            firing: env.status == Status::Firing,
            individual: false,
            at: at.as_second(),
            arrived: now.as_second(),
            namespace: env.namespace().map(String::from),
            instance: ec2
                .map(|e| e.instance_id.clone())
                .or_else(|| env.aws.as_ref().and_then(|a| a.instance_id.clone()))
                .or_else(|| env.kubernetes.as_ref().and_then(|k| k.node.clone())),
            nodegroup: ec2.and_then(|e| e.nodegroup.clone()),
        }
    }
}

/// One of the first alerts of a storm, as the summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirstAlert {
    /// Alert name.
    pub alertname: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// EC2 instance, else node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Its `summary` annotation, cut to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// What one sink has of a group's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryRecord {
    /// Slack: the message's channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Slack: the message's `ts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    /// When it was last sent an update (or one was claimed for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
    /// Updates sent.
    #[serde(default)]
    pub updates: u64,
    /// Alerts arrived since the last update.
    #[serde(default)]
    pub pending: bool,
    /// Its final update was sent.
    #[serde(default)]
    pub closed: bool,
}

/// What one sink is sent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// The summary as it stands.
    Open,
    /// The final update.
    Close,
}

/// An arrival, kept to be applied again to an item another invocation
/// wrote meanwhile.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// The alert's key.
    pub key: String,
    /// It, as a member.
    pub member: Member,
    /// The summary's line for it.
    pub first: FirstAlert,
    /// Severity, PagerDuty's word.
    pub severity: &'static str,
    /// Whether the storm took it.
    pub absorbed: bool,
    /// When.
    pub at: Timestamp,
}
