//! CloudWatch alarm messages, shaped as CloudWatch publishes them to SNS
//! (single metric, metric math, composite, OK, INSUFFICIENT_DATA) and as
//! EventBridge delivers a "CloudWatch Alarm State Change", read into
//! envelopes; hostile variants give an error naming the field, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use alert_envelope::alarm::{AlarmOptions, Reading, is_alarm, read_alarm};
use alert_envelope::{Envelope, Severity, Source, Status};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/cloudwatch/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn alert(name: &str) -> Envelope {
    let body = fixture(name);
    assert!(is_alarm(&body), "{name} is an alarm message");
    match read_alarm(&body, AlarmOptions::default()).unwrap() {
        Reading::Alert(env) => *env,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn a_single_metric_alarm_becomes_a_firing_alert_about_its_instance() {
    let env = alert("alarm-single-metric");
    assert_eq!(env.source, Source::CloudwatchAlarm);
    assert_eq!(env.status, Status::Firing);
    assert_eq!(env.alertname, "[critical] node-cpu-high");
    assert_eq!(
        env.severity,
        Severity::Critical,
        "from the [critical] prefix"
    );
    assert_eq!(env.cluster, "123456789012/us-east-1");
    assert_eq!(
        env.starts_at,
        "2026-12-02T10:00:00.123Z"
            .parse::<jiff::Timestamp>()
            .unwrap(),
        "StateChangeTime, offset without a colon"
    );
    assert_eq!(env.ends_at, None);
    assert_eq!(env.labels["InstanceId"], "i-0123456789abcdef0");
    assert_eq!(env.labels["namespace"], "AWS/EC2");
    assert_eq!(env.labels["metric"], "CPUUtilization");
    assert!(env.annotations["summary"].starts_with("Threshold Crossed"));
    assert!(env.annotations["description"].contains("Runbook"));
    let aws = env.aws.as_ref().unwrap();
    assert_eq!(aws.instance_id.as_deref(), Some("i-0123456789abcdef0"));
    assert_eq!(aws.region.as_deref(), Some("us-east-1"));
    assert_eq!(aws.account_id.as_deref(), Some("123456789012"));
    assert!(
        env.generator_url
            .as_deref()
            .unwrap()
            .contains("%5Bcritical%5D%20node-cpu-high")
    );
    // It is a valid envelope: it survives its own JSON.
    let again = Envelope::from_json(&serde_json::to_string(&env).unwrap()).unwrap();
    assert_eq!(again, env);
}

#[test]
fn the_ok_of_an_alarm_resolves_it_with_the_same_fingerprint_and_its_own_id() {
    let firing = alert("alarm-single-metric");
    let ok = alert("ok-single-metric");
    assert_eq!(ok.status, Status::Resolved);
    assert_eq!(
        ok.fingerprint, firing.fingerprint,
        "the pair shares the fingerprint"
    );
    assert_eq!(ok.cluster, firing.cluster);
    assert_ne!(ok.id, firing.id);
    assert_eq!(
        ok.ends_at,
        Some("2026-12-02T10:12:00.456Z".parse().unwrap())
    );
    // EventBridge says when the alarm began: the resolve belongs to it.
    let firing = alert("eventbridge-alarm");
    let ok = alert("eventbridge-ok");
    assert_eq!(ok.fingerprint, firing.fingerprint);
    assert_eq!(ok.starts_at, firing.starts_at);
    assert_eq!(
        ok.ends_at,
        Some("2026-12-02T10:20:00.789Z".parse().unwrap())
    );
}

#[test]
fn metric_math_takes_the_instance_from_the_metrics_and_severity_from_the_description() {
    let env = alert("alarm-metric-math");
    assert_eq!(env.severity, Severity::Critical, "severity=critical");
    assert_eq!(env.cluster, "123456789012/eu-central-1");
    assert_eq!(env.labels["LoadBalancer"], "app/payments/0123456789abcdef");
    assert_eq!(env.labels["namespace"], "AWS/ApplicationELB");
    assert_eq!(env.labels["metric"], "HTTPCode_Target_5XX_Count");
    let aws = env.aws.unwrap();
    assert_eq!(aws.instance_id.as_deref(), Some("i-0fedcba9876543210"));
    assert_eq!(aws.region.as_deref(), Some("eu-central-1"));
}

#[test]
fn a_composite_alarm_carries_its_rule_and_a_warning_by_default() {
    let env = alert("composite");
    assert_eq!(env.status, Status::Firing);
    assert_eq!(env.severity, Severity::Warning);
    assert!(env.annotations["alarm_rule"].contains("ALARM(\"payments-latency\")"));
    assert_eq!(env.aws.unwrap().instance_id, None);
}

#[test]
fn eventbridge_state_changes_read_like_sns_messages() {
    let env = alert("eventbridge-alarm");
    assert_eq!(env.alertname, "node-disk-full");
    assert_eq!(env.cluster, "prod-eu-1", "the ClusterName dimension");
    assert_eq!(env.labels["path"], "/");
    assert_eq!(env.labels["namespace"], "CWAgent");
    assert_eq!(
        env.aws.unwrap().instance_id.as_deref(),
        Some("i-0123456789abcdef0")
    );
    assert_eq!(
        env.starts_at,
        "2026-12-02T10:00:00.123Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
    );
}

#[test]
fn insufficient_data_is_ignored_unless_it_is_set_to_fire() {
    let body = fixture("insufficient-data");
    assert_eq!(
        read_alarm(&body, AlarmOptions::default()).unwrap(),
        Reading::Ignored {
            alarm: "[critical] node-cpu-high".into(),
            state: "INSUFFICIENT_DATA".into()
        }
    );
    let fires = AlarmOptions {
        insufficient_data_fires: true,
    };
    match read_alarm(&body, fires).unwrap() {
        Reading::Alert(env) => assert_eq!(env.status, Status::Firing),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_hostile_alarm_names_the_field_or_is_cut() {
    let error = |edit: &dyn Fn(&mut Value)| {
        let mut body = fixture("alarm-single-metric");
        edit(&mut body);
        read_alarm(&body, AlarmOptions::default()).unwrap_err()
    };
    assert_eq!(error(&|b| b["AlarmName"] = 7.into()).field, "AlarmName");
    let e = error(&|b| {
        b.as_object_mut().unwrap().remove("Trigger");
    });
    assert_eq!(e.field, "Trigger");
    assert!(e.message.contains("AlarmRule"), "{e}");
    let e = error(&|b| b["StateChangeTime"] = "yesterday".into());
    assert_eq!(e.field, "StateChangeTime");
    let e = error(&|b| b["Trigger"]["Dimensions"][0]["value"] = Value::Null);
    assert_eq!(e.field, "Trigger.Dimensions[0].value");
    let e = error(&|b| b["NewStateValue"] = "SNOWING".into());
    assert_eq!(e.field, "NewStateValue");
    assert_eq!(
        error(&|b| b["AlarmArn"] = "arn:aws:sns:us-east-1:1:t".into()).field,
        "AlarmArn"
    );

    let mut big = fixture("alarm-single-metric");
    big["AlarmDescription"] = "x".repeat(300 * 1024).into();
    let Reading::Alert(env) = read_alarm(&big, AlarmOptions::default()).unwrap() else {
        panic!("an alert");
    };
    assert_eq!(
        env.annotations["description"].chars().count(),
        4097,
        "cut, marked with …"
    );
    assert!(serde_json::to_string(&env).unwrap().len() < 16 * 1024);
}

/// Every field of every fixture replaced by every JSON kind: an answer
/// each time, never a panic.
#[test]
fn no_field_of_any_kind_makes_it_panic() {
    fn paths(v: &Value, at: String, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                    out.push(p.clone());
                    paths(x, p, out);
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    let p = format!("{at}/{i}");
                    out.push(p.clone());
                    paths(x, p, out);
                }
            }
            _ => {}
        }
    }
    let kinds = [
        Value::Null,
        Value::from(1),
        Value::from("x"),
        Value::from(true),
        Value::Array(vec![]),
        serde_json::json!({}),
    ];
    let mut tried = 0;
    for name in [
        "alarm-single-metric",
        "alarm-metric-math",
        "composite",
        "eventbridge-alarm",
    ] {
        let body = fixture(name);
        let mut all = Vec::new();
        paths(&body, String::new(), &mut all);
        for path in &all {
            for kind in &kinds {
                let mut b = body.clone();
                *b.pointer_mut(path).unwrap() = kind.clone();
                let _ = read_alarm(&b, AlarmOptions::default());
                tried += 1;
            }
        }
    }
    assert!(tried > 300, "{tried}");
}
