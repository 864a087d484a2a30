//! Invocation payloads shaped like the real ones AWS sends.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use alert_manager_enricher::event::{EventKind, parse};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const ENVELOPE: &str = r#"{"schema":"alert-manager/v1","id":"abc"}"#;

#[test]
fn sqs_raw_body_is_the_envelope() {
    let mut event = fixture("sqs-event.json");
    event["Records"][0]["body"] = json!(ENVELOPE);
    let (kind, records) = parse(&event).unwrap();
    assert_eq!(kind, EventKind::Sqs);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].message_id,
        "059f36b4-87a3-44ab-83d2-661975830a7d"
    );
    assert_eq!(records[0].body, ENVELOPE);
}

#[test]
fn sqs_wrapped_body_is_unwrapped_from_the_sns_notification() {
    let mut event = fixture("sqs-event.json");
    let notification = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
        "Subject": "[FIRING:critical] X",
        "Message": ENVELOPE,
        "Timestamp": "2026-11-28T12:00:00.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    });
    event["Records"][0]["body"] = json!(notification.to_string());
    let (_, records) = parse(&event).unwrap();
    assert_eq!(records[0].body, ENVELOPE);
}

#[test]
fn sns_event_yields_every_record() {
    let mut event = fixture("sns-event.json");
    event["Records"][0]["Sns"]["Message"] = json!(ENVELOPE);
    let mut second = event["Records"][0].clone();
    second["Sns"]["MessageId"] = json!("second");
    event["Records"].as_array_mut().unwrap().push(second);
    let (kind, records) = parse(&event).unwrap();
    assert_eq!(kind, EventKind::Sns);
    let ids: Vec<&str> = records.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(ids, vec!["95df01b4-ee98-5cb9-9903-4c221d41eb5e", "second"]);
    assert!(records.iter().all(|r| r.body == ENVELOPE));
}

#[test]
fn other_payloads_are_rejected_with_a_reason() {
    for (payload, needle) in [
        (json!({"foo": 1}), "no Records"),
        (
            json!({"Records": [{"eventSource": "aws:kinesis"}]}),
            "aws:kinesis",
        ),
    ] {
        let err = parse(&payload).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn a_cloudwatch_alarm_arrives_through_sqs_wrapped_or_raw_and_through_sns() {
    use alert_envelope::Source;
    use alert_envelope::alarm::AlarmOptions;
    use alert_manager_enricher::batch::Batch;
    use alert_manager_enricher::config::InvalidRecordPolicy;

    let alarm = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../envelope/fixtures/cloudwatch/alarm-single-metric.json"
    ))
    .unwrap();
    let notification = json!({
        "Type": "Notification",
        "MessageId": "5a2f5c1e-0000-4000-8000-000000000001",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:alert-manager-alarms",
        "Subject": "ALARM: \"[critical] node-cpu-high\" in US East (N. Virginia)",
        "Message": alarm,
        "Timestamp": "2026-12-02T10:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"
    });
    let mut wrapped = fixture("sqs-event.json");
    wrapped["Records"][0]["body"] = json!(notification.to_string());
    let mut raw = fixture("sqs-event.json");
    raw["Records"][0]["body"] = json!(alarm);
    let mut direct = fixture("sns-event.json");
    direct["Records"][0]["Sns"]["Message"] = json!(alarm);
    for (how, event) in [
        ("SQS, wrapped", wrapped),
        ("SQS, raw", raw),
        ("SNS", direct),
    ] {
        let (_, records) = parse(&event).unwrap();
        let batch = Batch::read(records, InvalidRecordPolicy::Fail, AlarmOptions::default());
        assert_eq!(batch.envelopes.len(), 1, "{how}: {:?}", batch.refused);
        assert_eq!(batch.envelopes[0].source, Source::CloudwatchAlarm, "{how}");
        assert_eq!(
            batch.envelopes[0].alertname, "[critical] node-cpu-high",
            "{how}"
        );
    }
}
