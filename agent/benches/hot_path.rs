//! The agent's hot path without the network: parse a webhook body of 10
//! realistic alerts → envelopes → fit-to-size, attributes, subject → batch
//! planning → PublishBatch entries. Reports alerts/s on one core.
//!
//!   cargo bench --workspace --bench hot_path
//!
//! A baseline (untyped JSON parse of the same body) runs in the same process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code

use std::time::Duration;

use alert_aws::{RetryPolicy, prepare};
use alert_envelope::Envelope;
use alert_envelope::sns::plan_batches;
use alert_envelope::webhook::WebhookMessage;
use alert_manager_agent::SnsPublisher;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const ALERTS: usize = 10;

/// The real group fixture, widened to 10 alerts with distinct label sets.
fn body() -> Vec<u8> {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../envelope/fixtures/group.json"
    ))
    .unwrap();
    let mut v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let template = v["alerts"][0].clone();
    v["alerts"] = (0..ALERTS)
        .map(|i| {
            let mut a = template.clone();
            a["labels"]["instance"] = format!("10.0.{i}.17:9100").into();
            a["fingerprint"] = format!("{i:016x}").into();
            a
        })
        .collect();
    serde_json::to_vec(&v).unwrap()
}

fn hot_path(c: &mut Criterion) {
    let body = body();
    let config = aws_sdk_sns::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_sns::config::Region::new("us-east-1"))
        .build();
    let publisher = SnsPublisher::new(
        aws_sdk_sns::Client::from_conf(config),
        "arn:aws:sns:us-east-1:123456789012:alerts"
            .parse()
            .expect("a topic ARN"),
        RetryPolicy::within(Duration::from_secs(10)),
    );
    let mut group = c.benchmark_group("agent");
    group.throughput(Throughput::Elements(ALERTS as u64));
    // Baseline in the same run: only parsing the body into untyped JSON. The
    // ratio hot path / baseline is what to compare across machines.
    group.bench_function("baseline_serde_json_value_parse_10_alerts", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(&body).unwrap())
    });
    group.bench_function("webhook_to_publish_batch_entries_10_alerts", |b| {
        b.iter(|| {
            let msg = WebhookMessage::from_slice(&body).unwrap();
            let prepared: Vec<_> = msg
                .alerts
                .iter()
                .map(|a| prepare(Envelope::from_alertmanager("prod-eu-1", &msg, a), false).unwrap())
                .collect();
            let sizes: Vec<usize> = prepared.iter().map(|p| p.size).collect();
            let mut entries = 0;
            for range in plan_batches(&sizes) {
                entries += publisher.batch_entries(&prepared[range]).len();
            }
            assert_eq!(entries, ALERTS);
            entries
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
