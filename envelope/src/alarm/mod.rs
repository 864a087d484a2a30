//! CloudWatch alarms as alerts: the JSON CloudWatch publishes to SNS when
//! an alarm changes state (single metric, metric math, composite), and
//! EventBridge's "CloudWatch Alarm State Change" event, each read into an
//! envelope of source `cloudwatch-alarm`.
//!
//! - `ALARM` is firing, `OK` resolved; `INSUFFICIENT_DATA` is
//!   [`Reading::Ignored`] unless [`AlarmOptions::insufficient_data_fires`].
//! - The fingerprint comes from the alarm ARN, so an alarm's firing and
//!   resolve pair up; each state change has its own `starts_at` (the SNS
//!   form does not say when the alarm began), so its own id.
//! - Labels: `alertname` (the alarm name), `severity`, `namespace` (the
//!   metric's, e.g. `AWS/EC2`), `metric`, and one per dimension.
//! - `aws.instance_id` from an `InstanceId` dimension, also inside the
//!   metrics of metric math, so EC2 enrichment and routing work unchanged.
//! - Severity: a `[critical]` (`[warning]`, `[info]`) prefix of the alarm
//!   name, else `severity=critical` in its description, else `warning`.
//! - Cluster: a `ClusterName` dimension (Container Insights), else
//!   `<account>/<region>`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{AwsContext, Envelope, Source, Status};

mod read;

use read::{from_eventbridge, from_sns};

/// Characters kept of a description or a state reason: CloudWatch allows
/// 1,024 for a description, but a message is not bound to be CloudWatch's.
const TEXT_MAX: usize = 4096;

/// How to read alarms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlarmOptions {
    /// `INSUFFICIENT_DATA` counts as firing (default: ignored).
    pub insufficient_data_fires: bool,
}

/// What an alarm message became.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The alert.
    Alert(Box<Envelope>),
    /// A state change that is no alert (`INSUFFICIENT_DATA` by default):
    /// the alarm name and the state, for the log.
    Ignored {
        /// The alarm.
        alarm: String,
        /// Its new state.
        state: String,
    },
}

/// An alarm message that cannot be read: the field, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("CloudWatch alarm: {field}: {message}")]
pub struct AlarmError {
    /// The field, as a path (`Trigger.Dimensions[0].value`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> AlarmError {
    AlarmError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Whether `body` is shaped like an alarm message: the SNS form has
/// `AlarmName` and `NewStateValue`, EventBridge's a `detail-type` of
/// `CloudWatch Alarm State Change`.
pub fn is_alarm(body: &Value) -> bool {
    (body.get("AlarmName").is_some() && body.get("NewStateValue").is_some())
        || body.get("detail-type").and_then(Value::as_str) == Some("CloudWatch Alarm State Change")
}

/// Reads an alarm message (see [`is_alarm`]).
pub fn read_alarm(body: &Value, options: AlarmOptions) -> Result<Reading, AlarmError> {
    let alarm = if body.get("detail-type").is_some() {
        from_eventbridge(body)?
    } else {
        from_sns(body)?
    };
    alarm.into_reading(options)
}

/// What both forms give.
#[derive(Debug, Default)]
struct Alarm {
    name: String,
    arn: String,
    account: String,
    region: String,
    state: String,
    changed_at: Timestamp,
    /// When the state before began, if the message says (EventBridge).
    previous_since: Option<(String, Timestamp)>,
    description: String,
    reason: String,
    namespace: Option<String>,
    metric: Option<String>,
    dimensions: BTreeMap<String, String>,
    rule: Option<String>,
}

/// `[critical] Disk full`, else `severity=critical` in the description.
fn severity(name: &str, description: &str) -> Option<String> {
    let lower = name.trim_start().to_ascii_lowercase();
    for s in ["critical", "warning", "info"] {
        if lower.starts_with(&format!("[{s}]")) {
            return Some(s.to_string());
        }
    }
    let d = description.to_ascii_lowercase();
    let at = d.find("severity=")?;
    let value: String = d[at + "severity=".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    (!value.is_empty()).then_some(value)
}

fn cut(s: &str) -> String {
    if s.chars().count() <= TEXT_MAX {
        return s.to_string();
    }
    let mut out: String = s.chars().take(TEXT_MAX).collect();
    out.push('…');
    out
}

impl Alarm {
    fn into_reading(self, options: AlarmOptions) -> Result<Reading, AlarmError> {
        let status = match self.state.as_str() {
            "ALARM" => Status::Firing,
            "OK" => Status::Resolved,
            "INSUFFICIENT_DATA" if options.insufficient_data_fires => Status::Firing,
            "INSUFFICIENT_DATA" => {
                return Ok(Reading::Ignored {
                    alarm: self.name,
                    state: self.state,
                });
            }
            other => {
                return Err(err(
                    "NewStateValue",
                    format!("{other:?} is none of ALARM, OK, INSUFFICIENT_DATA"),
                ));
            }
        };
        let fingerprint = hex::encode(&Sha256::digest(self.arn.as_bytes())[..8]);
        let mut labels = BTreeMap::new();
        for (k, v) in &self.dimensions {
            labels.insert(k.clone(), v.clone());
        }
        labels.insert("alertname".into(), self.name.clone());
        labels.insert(
            "severity".into(),
            severity(&self.name, &self.description).unwrap_or_else(|| "warning".into()),
        );
        if let Some(ns) = self.namespace.as_ref().filter(|n| !n.is_empty()) {
            labels.insert("namespace".into(), ns.clone());
        }
        if let Some(m) = self.metric.as_ref().filter(|m| !m.is_empty()) {
            labels.insert("metric".into(), m.clone());
        }
        let cluster = match self.dimensions.get("ClusterName") {
            Some(c) => c.clone(),
            None => format!("{}/{}", self.account, self.region),
        };
        // A resolve after an alarm the message dates (EventBridge) belongs
        // to that alarm's incident; otherwise the change is its own.
        let starts_at = match (&status, &self.previous_since) {
            (Status::Resolved, Some((prev, since))) if prev == "ALARM" => *since,
            _ => self.changed_at,
        };
        let mut env = Envelope::new(
            Source::CloudwatchAlarm,
            &cluster,
            status,
            fingerprint,
            starts_at,
            labels,
        );
        if status == Status::Resolved {
            env.ends_at = Some(self.changed_at);
        }
        if !self.description.is_empty() {
            env.annotations
                .insert("description".into(), cut(&self.description));
        }
        if !self.reason.is_empty() {
            env.annotations.insert("summary".into(), cut(&self.reason));
        }
        if let Some(rule) = &self.rule {
            env.annotations.insert("alarm_rule".into(), cut(rule));
        }
        env.annotations.insert("alarm_arn".into(), self.arn.clone());
        env.generator_url = Some(format!(
            "https://{r}.console.aws.amazon.com/cloudwatch/home?region={r}#alarmsV2:alarm/{}",
            urlencode(&self.name),
            r = self.region
        ));
        env.aws = Some(AwsContext {
            instance_id: self.dimensions.get("InstanceId").cloned(),
            region: Some(self.region.clone()),
            account_id: Some(self.account.clone()),
            ..AwsContext::default()
        });
        Ok(Reading::Alert(Box::new(env)))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
