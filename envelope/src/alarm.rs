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
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::{AwsContext, Envelope, Source, Status};

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

fn text<'a>(v: &'a Value, path: &str) -> Result<&'a str, AlarmError> {
    match v {
        Value::String(s) => Ok(s),
        Value::Null => Err(err(path, "missing")),
        other => Err(err(path, format!("must be a string, not {}", kind(other)))),
    }
}

fn optional_text(v: &Value, path: &str) -> Result<String, AlarmError> {
    match v {
        Value::Null => Ok(String::new()),
        _ => text(v, path).map(str::to_string),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// CloudWatch's times: `2015-06-03T17:43:27.123+0000` (no colon in the
/// offset), or RFC 3339.
fn time(v: &Value, path: &str) -> Result<Timestamp, AlarmError> {
    let s = text(v, path)?;
    let fixed = match s.len().checked_sub(5).map(|i| s.split_at(i)) {
        Some((head, offset))
            if (offset.starts_with('+') || offset.starts_with('-'))
                && offset[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{head}{}:{}", &offset[..3], &offset[3..])
        }
        _ => s.to_string(),
    };
    fixed.parse().map_err(|e| {
        err(
            path,
            format!("{s:?} is not a time like 2015-06-03T17:43:27.123+0000: {e}"),
        )
    })
}

/// `arn:aws:cloudwatch:<region>:<account>:alarm:<name>`: region and account.
fn arn_parts(arn: &str) -> Option<(String, String)> {
    let mut parts = arn.splitn(7, ':');
    let (_, _, service, region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    (service == "cloudwatch" && !region.is_empty())
        .then(|| (region.to_string(), account.to_string()))
}

/// `[{"name": "InstanceId", "value": "i-0abc"}]` (SNS form) into `dims`.
fn sns_dimensions(
    v: &Value,
    path: &str,
    dims: &mut BTreeMap<String, String>,
) -> Result<(), AlarmError> {
    let list = match v {
        Value::Null => return Ok(()),
        Value::Array(list) => list,
        other => return Err(err(path, format!("must be an array, not {}", kind(other)))),
    };
    for (i, d) in list.iter().enumerate() {
        // CloudWatch writes `name`/`value`; the API's `Name`/`Value` too.
        let name = d
            .get("name")
            .or_else(|| d.get("Name"))
            .unwrap_or(&Value::Null);
        let value = d
            .get("value")
            .or_else(|| d.get("Value"))
            .unwrap_or(&Value::Null);
        dims.insert(
            text(name, &format!("{path}[{i}].name"))?.to_string(),
            text(value, &format!("{path}[{i}].value"))?.to_string(),
        );
    }
    Ok(())
}

fn from_sns(b: &Value) -> Result<Alarm, AlarmError> {
    let arn = text(&b["AlarmArn"], "AlarmArn")?.to_string();
    let (region, account) = arn_parts(&arn)
        .ok_or_else(|| err("AlarmArn", format!("{arn:?} is not a CloudWatch alarm ARN")))?;
    let mut alarm = Alarm {
        name: text(&b["AlarmName"], "AlarmName")?.to_string(),
        account: match &b["AWSAccountId"] {
            Value::Null => account,
            v => text(v, "AWSAccountId")?.to_string(),
        },
        region,
        arn,
        state: text(&b["NewStateValue"], "NewStateValue")?.to_string(),
        changed_at: time(&b["StateChangeTime"], "StateChangeTime")?,
        description: optional_text(&b["AlarmDescription"], "AlarmDescription")?,
        reason: optional_text(&b["NewStateReason"], "NewStateReason")?,
        ..Alarm::default()
    };
    if let Some(rule) = b.get("AlarmRule") {
        alarm.rule = Some(text(rule, "AlarmRule")?.to_string());
        return Ok(alarm);
    }
    let trigger = match &b["Trigger"] {
        Value::Object(t) => t,
        Value::Null => {
            return Err(err(
                "Trigger",
                "missing: a metric alarm's message has a Trigger, a composite alarm's an AlarmRule",
            ));
        }
        other => {
            return Err(err(
                "Trigger",
                format!("must be an object, not {}", kind(other)),
            ));
        }
    };
    if let Some(metrics) = trigger.get("Metrics") {
        let list = metrics.as_array().ok_or_else(|| {
            err(
                "Trigger.Metrics",
                format!("must be an array, not {}", kind(metrics)),
            )
        })?;
        for (i, m) in list.iter().enumerate() {
            let path = format!("Trigger.Metrics[{i}].MetricStat.Metric");
            let Some(metric) = m.get("MetricStat").and_then(|s| s.get("Metric")) else {
                continue; // an Expression
            };
            sns_dimensions(
                &metric["Dimensions"],
                &format!("{path}.Dimensions"),
                &mut alarm.dimensions,
            )?;
            if alarm.metric.is_none() {
                alarm.metric = Some(optional_text(
                    &metric["MetricName"],
                    &format!("{path}.MetricName"),
                )?);
                alarm.namespace = Some(optional_text(
                    &metric["Namespace"],
                    &format!("{path}.Namespace"),
                )?);
            }
        }
    } else {
        alarm.metric = Some(optional_text(
            field(trigger, "MetricName"),
            "Trigger.MetricName",
        )?);
        alarm.namespace = Some(optional_text(
            field(trigger, "Namespace"),
            "Trigger.Namespace",
        )?);
        sns_dimensions(
            field(trigger, "Dimensions"),
            "Trigger.Dimensions",
            &mut alarm.dimensions,
        )?;
    }
    Ok(alarm)
}

fn field<'a>(m: &'a Map<String, Value>, name: &str) -> &'a Value {
    m.get(name).unwrap_or(&Value::Null)
}

fn from_eventbridge(b: &Value) -> Result<Alarm, AlarmError> {
    let d = &b["detail"];
    if !d.is_object() {
        return Err(err("detail", format!("must be an object, not {}", kind(d))));
    }
    let arn = match b["resources"].get(0) {
        Some(v) => text(v, "resources[0]")?.to_string(),
        None => return Err(err("resources", "missing: the alarm's ARN")),
    };
    let mut alarm = Alarm {
        name: text(&d["alarmName"], "detail.alarmName")?.to_string(),
        account: text(&b["account"], "account")?.to_string(),
        region: text(&b["region"], "region")?.to_string(),
        arn,
        state: text(&d["state"]["value"], "detail.state.value")?.to_string(),
        changed_at: time(&d["state"]["timestamp"], "detail.state.timestamp")?,
        description: optional_text(
            &d["configuration"]["description"],
            "detail.configuration.description",
        )?,
        reason: optional_text(&d["state"]["reason"], "detail.state.reason")?,
        ..Alarm::default()
    };
    if let Some(prev) = d.get("previousState").filter(|p| p.is_object()) {
        let state = text(&prev["value"], "detail.previousState.value")?.to_string();
        alarm.previous_since = Some((
            state,
            time(&prev["timestamp"], "detail.previousState.timestamp")?,
        ));
    }
    if let Some(rule) = d["configuration"].get("alarmRule") {
        alarm.rule = Some(text(rule, "detail.configuration.alarmRule")?.to_string());
        return Ok(alarm);
    }
    let metrics = match &d["configuration"]["metrics"] {
        Value::Null => &Vec::new(),
        Value::Array(list) => list,
        other => {
            return Err(err(
                "detail.configuration.metrics",
                format!("must be an array, not {}", kind(other)),
            ));
        }
    };
    for (i, m) in metrics.iter().enumerate() {
        let path = format!("detail.configuration.metrics[{i}].metricStat.metric");
        let Some(metric) = m.get("metricStat").and_then(|s| s.get("metric")) else {
            continue;
        };
        match &metric["dimensions"] {
            Value::Null => {}
            Value::Object(dims) => {
                for (k, v) in dims {
                    alarm.dimensions.insert(
                        k.clone(),
                        text(v, &format!("{path}.dimensions.{k}"))?.to_string(),
                    );
                }
            }
            other => {
                return Err(err(
                    &format!("{path}.dimensions"),
                    format!("must be an object, not {}", kind(other)),
                ));
            }
        }
        if alarm.metric.is_none() {
            alarm.metric = Some(optional_text(&metric["name"], &format!("{path}.name"))?);
            alarm.namespace = Some(optional_text(
                &metric["namespace"],
                &format!("{path}.namespace"),
            )?);
        }
    }
    Ok(alarm)
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
