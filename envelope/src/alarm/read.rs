//! The two shapes of an alarm message, read into [`super::Alarm`]: the
//! JSON CloudWatch publishes to SNS, and EventBridge's state change. Every
//! field is checked for its type, and an error names its path.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::{Alarm, AlarmError, err};

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

pub(super) fn from_sns(b: &Value) -> Result<Alarm, AlarmError> {
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

pub(super) fn from_eventbridge(b: &Value) -> Result<Alarm, AlarmError> {
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
