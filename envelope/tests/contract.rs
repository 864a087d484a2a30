//! The wire contract: real Alertmanager payloads in, valid SNS messages out.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;

use alert_envelope::sns::{
    self, MAX_ATTRIBUTES, MAX_MESSAGE_BYTES, MessageAttributes, TRUNCATION_MARKER,
};
use alert_envelope::webhook::WebhookMessage;
use alert_envelope::{Envelope, EnvelopeError, Severity, Source, Status};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn envelopes(name: &str) -> (WebhookMessage, Vec<Envelope>) {
    let msg = WebhookMessage::from_slice(&fixture(name)).expect("fixture parses");
    let envs = msg
        .alerts
        .iter()
        .map(|a| Envelope::from_alertmanager("prod-eu-1", &msg, a))
        .collect();
    (msg, envs)
}

#[test]
fn firing_fixture_parses_with_unset_ends_at() {
    let (msg, envs) = envelopes("firing.json");
    assert_eq!(msg.version, "4");
    assert_eq!(msg.status, Status::Firing);
    assert_eq!(envs.len(), 1);
    let env = &envs[0];
    assert_eq!(env.schema, "alert-manager/v1");
    assert_eq!(env.source, Source::Alertmanager);
    assert_eq!(env.status, Status::Firing);
    assert_eq!(env.ends_at, None, "0001-01-01T00:00:00Z means unset");
    assert_eq!(env.alertname, "KubePodCrashLooping");
    assert_eq!(env.severity, Severity::Critical);
    assert_eq!(env.severity_raw.as_deref(), Some("critical"));
    assert_eq!(env.group_key.as_deref(), Some(msg.group_key.as_str()));
    assert!(!env.fingerprint.is_empty());
    assert_eq!(env.id.len(), 32);
}

#[test]
fn resolve_never_shares_the_firing_id() {
    let (_, firing) = envelopes("firing.json");
    let (msg, resolved) = envelopes("resolved.json");
    assert_eq!(msg.status, Status::Resolved);
    let (f, r) = (&firing[0], &resolved[0]);
    assert_eq!(f.fingerprint, r.fingerprint, "same alert");
    assert_eq!(f.starts_at, r.starts_at, "same alert");
    assert!(r.ends_at.is_some());
    assert_ne!(f.id, r.id, "a resolve must not dedupe against its firing");
}

#[test]
fn group_fixture_fans_out_with_distinct_ids() {
    let (msg, envs) = envelopes("group.json");
    assert!(msg.alerts.len() >= 3);
    let ids: std::collections::BTreeSet<_> = envs.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), envs.len());
    assert!(envs.iter().all(|e| e.group_key == envs[0].group_key));
}

#[test]
fn truncated_fixture_records_truncated_alerts() {
    let (msg, envs) = envelopes("truncated.json");
    assert_eq!(msg.truncated_alerts, 3);
    assert_eq!(envs.len(), 2);
    assert!(envs.iter().all(|e| e.truncated_alerts == 3));
}

#[test]
fn ids_are_deterministic_across_parses() {
    let (_, a) = envelopes("group.json");
    let (_, b) = envelopes("group.json");
    assert_eq!(
        a.iter().map(|e| &e.id).collect::<Vec<_>>(),
        b.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
}

#[test]
fn unknown_webhook_fields_are_tolerated() {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture("firing.json")).unwrap();
    v["someFutureField"] = serde_json::json!({"x": 1});
    v["alerts"][0]["anotherNewField"] = serde_json::json!([1, 2]);
    let body = serde_json::to_vec(&v).unwrap();
    assert!(WebhookMessage::from_slice(&body).is_ok());
}

#[test]
fn webhook_errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"version":4}"#, "version"),
        (
            r#"{"version":"4","groupKey":"k","status":"firing","receiver":"r","alerts":null}"#,
            "alerts",
        ),
        (
            r#"{"version":"4","groupKey":"k","status":"firing","receiver":"r","alerts":[{"status":"firing","startsAt":"yesterday"}]}"#,
            "alerts[0].startsAt",
        ),
        (
            r#"{"version":"3","groupKey":"k","status":"firing","receiver":"r","alerts":[]}"#,
            "version",
        ),
        (
            r#"{"version":"4","groupKey":"k","status":"burning","receiver":"r","alerts":[]}"#,
            "status",
        ),
    ];
    for (body, path) in cases {
        let err = WebhookMessage::from_slice(body.as_bytes()).expect_err(body);
        assert_eq!(err.path, *path, "{body}: {err}");
    }
}

#[test]
fn severity_is_normalised_and_raw_kept() {
    assert_eq!(Severity::normalise(Some("CRITICAL")), Severity::Critical);
    assert_eq!(Severity::normalise(Some("page")), Severity::Critical);
    assert_eq!(Severity::normalise(Some("warn")), Severity::Warning);
    assert_eq!(Severity::normalise(Some("info")), Severity::Info);
    assert_eq!(Severity::normalise(Some("whatever")), Severity::None);
    assert_eq!(Severity::normalise(None), Severity::None);
    let (_, envs) = envelopes("group.json");
    for e in envs {
        assert_eq!(
            e.severity_raw.as_deref(),
            e.labels.get("severity").map(|s| s.as_str())
        );
    }
}

#[test]
fn envelope_round_trips_and_rejects_other_majors() {
    let (_, envs) = envelopes("firing.json");
    let json = serde_json::to_string(&envs[0]).unwrap();
    assert_eq!(Envelope::from_json(&json).unwrap(), envs[0]);

    let v2 = json.replace("alert-manager/v1", "alert-manager/v2");
    assert!(matches!(
        Envelope::from_json(&v2),
        Err(EnvelopeError::UnsupportedSchema(s)) if s == "alert-manager/v2"
    ));
    match Envelope::from_json(r#"{"schema":"alert-manager/v1","id":5}"#) {
        Err(EnvelopeError::Invalid { path, .. }) => assert_eq!(path, "id"),
        other => panic!("expected invalid id, got {other:?}"),
    }
}

#[test]
fn standard_attributes_are_set_and_empty_values_skipped() {
    let (_, envs) = envelopes("firing.json");
    let attrs = MessageAttributes::for_envelope(&envs[0]);
    assert_eq!(attrs.get("cluster"), Some("prod-eu-1"));
    assert_eq!(attrs.get("status"), Some("firing"));
    assert_eq!(attrs.get("severity"), Some("critical"));
    assert_eq!(attrs.get("alertname"), Some("KubePodCrashLooping"));
    assert_eq!(attrs.get("namespace"), Some("payments"));
    assert_eq!(attrs.get("source"), Some("alertmanager"));
    assert_eq!(attrs.get("team"), None, "no team known: not sent empty");
    assert!(attrs.iter().all(|(_, v)| !v.is_empty()));
}

#[test]
fn attributes_stop_at_ten_and_reject_bad_names() {
    let mut attrs = MessageAttributes::default();
    for i in 0..MAX_ATTRIBUTES {
        attrs.insert(&format!("a{i}"), "v").unwrap();
    }
    assert!(matches!(
        attrs.insert("eleventh", "v"),
        Err(sns::AttributeError::Full(_))
    ));
    attrs.insert("a0", "replaced").unwrap();
    assert_eq!(attrs.get("a0"), Some("replaced"));
    for bad in [
        "",
        ".x",
        "x.",
        "a..b",
        "AWS.x",
        "amazon.y",
        "has space",
        "ü",
    ] {
        assert!(
            matches!(
                MessageAttributes::default().insert(bad, "v"),
                Err(sns::AttributeError::InvalidName(_))
            ),
            "{bad:?}"
        );
    }
    let mut a = MessageAttributes::default();
    a.insert("x", "line\nbreak\u{0}").unwrap();
    assert_eq!(a.get("x"), Some("linebreak"));
    a.insert("long", &"é".repeat(1000)).unwrap();
    assert!(a.get("long").unwrap().len() <= sns::MAX_ATTRIBUTE_VALUE_BYTES);
}

#[test]
fn subject_is_ascii_bounded_and_readable() {
    let (_, envs) = envelopes("firing.json");
    let s = sns::subject(&envs[0]);
    assert_eq!(
        s,
        "[FIRING:critical] KubePodCrashLooping prod-eu-1/payments"
    );
    let mut weird = envs[0].clone();
    weird.alertname = "Ünïcödé\nalert\r\t".repeat(20);
    let s = sns::subject(&weird);
    assert!(s.is_ascii() && s.len() <= 99 && !s.contains(['\n', '\r', '\t']));
    assert_eq!(sns::sanitize_subject("\n\n"), "alert");
}

fn big_envelope(annotation_bytes: usize) -> Envelope {
    let (_, envs) = envelopes("firing.json");
    let mut env = envs[0].clone();
    env.annotations
        .insert("description".into(), "x".repeat(annotation_bytes));
    env.annotations
        .insert("runbook".into(), "ü".repeat(annotation_bytes / 4));
    env
}

#[test]
fn a_300_kib_annotation_is_cut_with_a_marker_and_stays_valid() {
    let mut env = big_envelope(300 * 1024);
    let attrs = MessageAttributes::for_envelope(&env);
    let fitted = sns::fit_to_size(&mut env, &attrs).unwrap();
    assert!(fitted.truncated && env.truncated);
    assert!(fitted.body.len() + attrs.size_bytes() <= MAX_MESSAGE_BYTES);
    let back = Envelope::from_json(&fitted.body).unwrap();
    assert!(back.truncated);
    assert!(back.annotations["description"].ends_with(TRUNCATION_MARKER));
    // Cutting stops as soon as it fits: the body is close to the limit, and
    // the smaller annotation was not touched.
    assert!(fitted.body.len() + attrs.size_bytes() > MAX_MESSAGE_BYTES - 1024);
    assert_eq!(back.annotations["runbook"], "ü".repeat(300 * 1024 / 4));
}

#[test]
fn a_small_envelope_is_not_touched() {
    let mut env = big_envelope(10);
    let before = env.clone();
    let attrs = MessageAttributes::for_envelope(&env);
    let fitted = sns::fit_to_size(&mut env, &attrs).unwrap();
    assert!(!fitted.truncated);
    assert_eq!(env, before);
    assert_eq!(fitted.body, serde_json::to_string(&before).unwrap());
}

#[test]
fn an_envelope_that_cannot_fit_is_an_error() {
    let (_, envs) = envelopes("firing.json");
    let mut env = envs[0].clone();
    env.labels = (0..20_000)
        .map(|i| (format!("label_{i}"), "v".repeat(16)))
        .collect::<BTreeMap<_, _>>();
    let attrs = MessageAttributes::for_envelope(&env);
    let err = sns::fit_to_size(&mut env, &attrs).unwrap_err();
    assert!(err.size > MAX_MESSAGE_BYTES);
    assert_eq!(err.id, env.id);
}

#[test]
fn fifo_ids_are_bounded_and_stable() {
    let (_, firing) = envelopes("firing.json");
    let (_, resolved) = envelopes("resolved.json");
    let (f, r) = (&firing[0], &resolved[0]);
    assert!(sns::is_fifo_topic(
        "arn:aws:sns:us-east-1:123456789012:alerts.fifo"
    ));
    assert!(!sns::is_fifo_topic(
        "arn:aws:sns:us-east-1:123456789012:alerts"
    ));
    assert_eq!(
        sns::fifo_group_id(f),
        sns::fifo_group_id(r),
        "ordered per alert"
    );
    assert_ne!(sns::fifo_deduplication_id(f), sns::fifo_deduplication_id(r));
    let mut long = f.clone();
    long.cluster = "c".repeat(500);
    long.fingerprint = "ß".repeat(100);
    let g = sns::fifo_group_id(&long);
    assert!(
        g.len() <= 128 && g.chars().all(|c| c.is_ascii_graphic()),
        "{g}"
    );
}

#[test]
fn batches_respect_entry_and_byte_limits() {
    assert_eq!(sns::plan_batches(&[]), Vec::<std::ops::Range<usize>>::new());
    assert_eq!(sns::plan_batches(&[100; 25]), vec![0..10, 10..20, 20..25]);
    let big = 100_000;
    assert_eq!(sns::plan_batches(&[big, big, big, 10]), vec![0..2, 2..4]);
    assert_eq!(
        sns::plan_batches(&[MAX_MESSAGE_BYTES, 1, MAX_MESSAGE_BYTES]),
        vec![0..1, 1..2, 2..3]
    );
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = alert_envelope::schema::envelope_schema_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/envelope.schema.json");
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/envelope.schema.json is stale; regenerate it with `make schema`"
    );
}

#[test]
fn the_documented_enriched_example_is_a_valid_envelope() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/enriched-envelope.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let env = Envelope::from_json(&text).unwrap();
    let enrichment = env.enrichment.expect("the example is enriched");
    assert!(enrichment.ec2.is_some() && enrichment.cloudwatch.is_some());
}
