//! What each sink sends, checked against the receivers' public API rules:
//! Slack Block Kit limits, PagerDuty Events API v2 fields, and the webhook
//! signature.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use alert_envelope::{Envelope, Severity, Status};
use alert_manager_enricher::sinks::{pagerduty, slack, webhook};
use hmac::{KeyInit, Mac};

fn example() -> Envelope {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/enriched-envelope.json"
    ))
    .unwrap();
    Envelope::from_json(&text).unwrap()
}

#[test]
fn slack_message_carries_status_colour_context_cpu_and_links() {
    let mut env = example();
    env.annotations
        .insert("summary".into(), "CPU above 90% <for 5m> & rising".into());
    env.generator_url = Some("http://prometheus:9090/graph?g0.expr=x".into());
    let msg = slack::message(&env, &["Name".into(), "team".into(), "absent".into()]);
    let attachment = &msg["attachments"][0];
    assert_eq!(attachment["color"], "#E01E5A", "critical firing is red");
    let blocks = attachment["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "🔴 FIRING: HighCpu0");
    assert_eq!(
        blocks[1]["text"]["text"], "CPU above 90% &lt;for 5m&gt; &amp; rising",
        "mrkdwn is escaped"
    );
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"*Severity*\ncritical"), "{fields:?}");
    assert!(fields.contains(&"*Team*\npayments"), "{fields:?}");
    assert!(
        fields.contains(&"*Instance*\ni-ebdc2c8e9c2e7c2d8 (m6i.large)"),
        "{fields:?}"
    );
    let cpu = fields.iter().find(|f| f.starts_with("*CPU*")).unwrap();
    assert!(cpu.contains("`▁▄█`"), "sparkline of 40, 60, 95: {cpu}");
    assert!(cpu.contains("avg 65% · max 95% · latest 95%"), "{cpu}");
    let tags = blocks[3]["elements"].as_array().unwrap();
    assert_eq!(tags.len(), 2, "only present key tags: {tags:?}");
    assert_eq!(tags[0]["text"], "`Name=node-0`");
    let context = blocks.last().unwrap()["elements"].to_string();
    assert!(context.contains("|Source>"), "{context}");
    assert!(context.contains("|CloudWatch>"), "{context}");
    assert!(
        context.contains(&env.id),
        "the id lets a reader spot a duplicate"
    );
    assert!(
        msg["text"]
            .as_str()
            .unwrap()
            .starts_with("[FIRING] HighCpu0 (critical) prod")
    );
}

#[test]
fn slack_resolved_is_green_and_says_resolved() {
    let mut env = example();
    env.status = Status::Resolved;
    let msg = slack::message(&env, &[]);
    assert_eq!(msg["attachments"][0]["color"], "#2EB67D");
    assert_eq!(
        msg["attachments"][0]["blocks"][0]["text"]["text"],
        "✅ RESOLVED: HighCpu0"
    );
    let mut warning = example();
    warning.severity = Severity::Warning;
    assert_eq!(
        slack::message(&warning, &[])["attachments"][0]["color"],
        "#ECB22E"
    );
}

#[test]
fn slack_limits_hold_for_huge_alerts() {
    let mut env = example();
    env.alertname = "A".repeat(500);
    env.annotations.insert("summary".into(), "é".repeat(10_000));
    let msg = slack::message(&env, &[]);
    let blocks = msg["attachments"][0]["blocks"].as_array().unwrap();
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    assert!(blocks[1]["text"]["text"].as_str().unwrap().chars().count() <= 3000);
    for f in blocks[2]["fields"].as_array().unwrap() {
        assert!(f["text"].as_str().unwrap().chars().count() <= 2000);
    }
    assert!(blocks[2]["fields"].as_array().unwrap().len() <= 10);
    assert!(msg["text"].as_str().unwrap().chars().count() <= 3000);
}

#[test]
fn sparkline_edges() {
    assert_eq!(slack::sparkline(&[]), "");
    assert_eq!(slack::sparkline(&[5.0, 5.0]), "▁▁");
    assert_eq!(slack::sparkline(&[0.0, 100.0, f64::NAN]), "▁█");
    assert_eq!(slack::sparkline(&vec![1.0; 100]).chars().count(), 30);
}

#[test]
fn pagerduty_trigger_has_the_required_fields_and_the_enrichment() {
    let mut env = example();
    env.annotations.insert("summary".into(), "CPU high".into());
    env.annotations
        .insert("runbook_url".into(), "https://runbooks/x".into());
    let key = "R0UT1NGK3Y0123456789abcdefABCDEF";
    let e = pagerduty::event(&env, key);
    assert_eq!(e["routing_key"], key);
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["dedup_key"], format!("prod/{}", env.fingerprint));
    assert_eq!(e["payload"]["summary"], "[prod] HighCpu0: CPU high");
    assert_eq!(e["payload"]["source"], "i-ebdc2c8e9c2e7c2d8");
    assert_eq!(e["payload"]["severity"], "critical");
    assert_eq!(e["payload"]["class"], "HighCpu0");
    assert_eq!(
        e["payload"]["custom_details"]["enrichment"]["ec2"]["instance_type"],
        "m6i.large"
    );
    assert_eq!(e["payload"]["custom_details"]["team"], "payments");
    let links = e["links"].as_array().unwrap();
    assert!(links.iter().any(|l| l["text"] == "CloudWatch"));
    assert!(links.iter().any(|l| l["href"] == "https://runbooks/x"));
    let ts: jiff::Timestamp = e["payload"]["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(ts, env.starts_at);
}

#[test]
fn pagerduty_resolve_carries_the_same_dedup_key_and_nothing_else() {
    let firing = example();
    let mut resolved = example();
    resolved.status = Status::Resolved;
    let t = pagerduty::event(&firing, "k");
    let r = pagerduty::event(&resolved, "k");
    assert_eq!(r["event_action"], "resolve");
    assert_eq!(r["dedup_key"], t["dedup_key"]);
    assert_eq!(r.as_object().unwrap().len(), 3, "{r}");
}

#[test]
fn pagerduty_severity_mapping_and_summary_limit() {
    assert_eq!(pagerduty::severity(Severity::Critical), "critical");
    assert_eq!(pagerduty::severity(Severity::Warning), "warning");
    assert_eq!(pagerduty::severity(Severity::Info), "info");
    assert_eq!(pagerduty::severity(Severity::None), "warning");
    let mut env = example();
    env.annotations.insert("summary".into(), "x".repeat(5000));
    let e = pagerduty::event(&env, "k");
    assert_eq!(
        e["payload"]["summary"].as_str().unwrap().chars().count(),
        1024
    );
    env.cluster = "c".repeat(300);
    assert!(pagerduty::dedup_key(&env).len() <= 255);
}

#[test]
fn webhook_signature_is_hmac_sha256_over_timestamp_dot_body() {
    let key = b"whsec_0123456789";
    let body = br#"{"id":"abc"}"#;
    let header = webhook::signature(key, 1_764_300_000, body);
    let (t, v1) = header.split_once(',').unwrap();
    assert_eq!(t, "t=1764300000");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(b"1764300000.{\"id\":\"abc\"}");
    assert_eq!(
        v1,
        format!("v1={}", hex::encode(mac.finalize().into_bytes()))
    );
    assert_ne!(
        header,
        webhook::signature(key, 1_764_300_001, body),
        "t is signed"
    );
    assert_ne!(header, webhook::signature(b"other", 1_764_300_000, body));
}

#[test]
fn emf_has_one_document_per_sink_and_one_per_sink_and_reason() {
    use alert_manager_enricher::emf::{Counts, SinkCounts};
    let mut counts = Counts::default();
    counts.sinks.insert(
        "team-slack".into(),
        SinkCounts {
            delivered: 3,
            failed: [("http_500".to_string(), 2), ("throttled".to_string(), 1)]
                .into_iter()
                .collect(),
            latency_ms: vec![12.5, 80.0],
        },
    );
    let docs = counts.sink_emf(1_764_300_000_000);
    assert_eq!(docs.len(), 3);
    let main = &docs[0];
    assert_eq!(main["Sink"], "team-slack");
    assert_eq!(main["Delivered"], 3);
    assert_eq!(main["Failed"], 3);
    assert_eq!(main["LatencyMs"], serde_json::json!([12.5, 80.0]));
    let directive = &main["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "AlertManager/Enricher");
    assert_eq!(directive["Dimensions"], serde_json::json!([["Sink"]]));
    assert_eq!(main["_aws"]["Timestamp"], 1_764_300_000_000_i64);
    let by_reason: Vec<_> = docs[1..]
        .iter()
        .map(|d| (d["Reason"].as_str().unwrap(), d["Failed"].as_u64().unwrap()))
        .collect();
    assert_eq!(by_reason, vec![("http_500", 2), ("throttled", 1)]);
    assert_eq!(
        docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
        serde_json::json!([["Sink", "Reason"]])
    );
}
