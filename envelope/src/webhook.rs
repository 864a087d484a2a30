//! Alertmanager webhook payload, version 4, as Alertmanager 0.25+ sends it.
//!
//! Unknown fields are tolerated on purpose: newer Alertmanager releases add
//! fields, and an agent that rejects them would answer 400, which Alertmanager
//! never retries, so the alert would be lost.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize};

use crate::Status;

/// The only webhook payload version this crate understands.
pub const WEBHOOK_VERSION: &str = "4";

/// One webhook notification: a group of alerts that Alertmanager sends together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookMessage {
    /// Payload version; always the string `"4"` today.
    pub version: String,
    /// Alertmanager's key for the aggregation group, e.g. `{}:{alertname="X"}`.
    pub group_key: String,
    /// How many alerts were cut by the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    /// Status of the group: firing if any alert in it fires.
    pub status: Status,
    /// Name of the Alertmanager receiver that sent this.
    pub receiver: String,
    /// Labels the group is grouped by.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Labels every alert in the group shares.
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    /// Annotations every alert in the group shares.
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    /// Alertmanager's external URL, for links back to it.
    #[serde(rename = "externalURL", default)]
    pub external_url: String,
    /// The alerts of the group.
    pub alerts: Vec<Alert>,
}

/// One alert inside a webhook notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Status of this alert.
    pub status: Status,
    /// Identifying labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Informational annotations (summary, description, runbook_url, ...).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing.
    pub starts_at: Timestamp,
    /// When the alert resolved; `None` when Alertmanager sent the zero time.
    #[serde(default, deserialize_with = "zero_time_as_none")]
    pub ends_at: Option<Timestamp>,
    /// Link to the expression that fired (Prometheus graph URL).
    #[serde(rename = "generatorURL", default)]
    pub generator_url: String,
    /// Alertmanager's fingerprint of the label set (hex).
    #[serde(default)]
    pub fingerprint: String,
}

/// Alertmanager encodes "not set" as Go's zero time, `0001-01-01T00:00:00Z`.
fn zero_time_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
    let ts = Option::<Timestamp>::deserialize(d)?;
    Ok(ts.filter(|t| t.as_second() > GO_ZERO_TIME_SECONDS))
}

/// Seconds of `0001-01-01T00:00:00Z` since the Unix epoch.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// A webhook body that could not be read, with the JSON path of the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct WebhookParseError {
    /// Path of the offending field, e.g. `alerts[0].startsAt`, or `.` for the whole body.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl WebhookMessage {
    /// Parses a webhook body. Errors name the field, so a 400 can say what to fix.
    pub fn from_slice(body: &[u8]) -> Result<Self, WebhookParseError> {
        let msg: WebhookMessage = deserialize_naming_path(body).map_err(|e| WebhookParseError {
            path: json_path(e.path()),
            message: e.inner().to_string(),
        })?;
        if msg.version != WEBHOOK_VERSION {
            return Err(WebhookParseError {
                path: "version".into(),
                message: format!(
                    "unsupported webhook version {:?}, expected \"{WEBHOOK_VERSION}\"",
                    msg.version
                ),
            });
        }
        Ok(msg)
    }
}

/// Deserializes `body`; only when that fails, once more with path tracking,
/// so that the error names the field. Path tracking allocates a string for
/// every key it passes, and nearly every body is valid; the second pass is
/// the one that decides, so the answer is the same either way.
pub(crate) fn deserialize_naming_path<T: serde::de::DeserializeOwned>(
    body: &[u8],
) -> Result<T, serde_path_to_error::Error<serde_json::Error>> {
    serde_json::from_slice(body).or_else(|_| {
        let de = &mut serde_json::Deserializer::from_slice(body);
        serde_path_to_error::deserialize(de)
    })
}

/// The path of a JSON error; `.` for the document itself.
pub(crate) fn json_path(path: &serde_path_to_error::Path) -> String {
    match path.to_string().as_str() {
        "?" | "" => ".".to_string(),
        p => p.to_string(),
    }
}
