//! The `eventbridge` sink against moto's EventBridge: a bus with one rule
//! per event pattern of docs/examples/event-patterns.json (the equivalents
//! of the subscriber guide's SNS filter policies), each targeting an SQS
//! queue; every queue receives exactly the envelopes its pattern should
//! match, as the `detail` of an event whose `source` and `detail-type` the
//! sink set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::collections::BTreeMap;
use std::time::Duration;

use alert_envelope::{Envelope, Status, derive_id};
use serde_json::Value;
use sinks_support::{ROUTES_PARAM, envelope, records, stack};

const BUS: &str = "alerts";

#[tokio::test(flavor = "multi_thread")]
async fn each_documented_event_pattern_selects_what_its_filter_policy_does() {
    let s = stack().await;
    let events = aws_sdk_eventbridge::Client::new(&s.config);
    let bus = events
        .create_event_bus()
        .name(BUS)
        .send()
        .await
        .unwrap()
        .event_bus_arn()
        .unwrap()
        .to_string();
    let patterns: BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/examples/event-patterns.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let mut queues = BTreeMap::new();
    for (name, pattern) in &patterns {
        let url = sqs
            .create_queue()
            .queue_name(format!("bus-{name}"))
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap()
            .attributes()
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
            .clone();
        events
            .put_rule()
            .name(name)
            .event_bus_name(BUS)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        events
            .put_targets()
            .rule(name)
            .event_bus_name(BUS)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(arn)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        queues.insert(name.clone(), url);
    }
    let routes = format!(
        "version: 1\nsinks:\n  ops-bus:\n    type: eventbridge\n    event_bus_arn: {bus}\nroutes:\n  - sinks: [enriched, ops-bus]\n"
    );
    aws_sdk_ssm::Client::new(&s.config)
        .put_parameter()
        .name(ROUTES_PARAM)
        .value(routes)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();

    // The filter policies' cases: (cluster, alertname, team, severity, status).
    let cases = [
        (
            "prod-eu-1",
            "KubePodCrashLooping",
            "payments",
            "critical",
            Status::Firing,
        ),
        (
            "prod-eu-1",
            "KubePodCrashLooping",
            "payments",
            "critical",
            Status::Resolved,
        ),
        (
            "prod-us-1",
            "NodeDiskFull",
            "payments",
            "warning",
            Status::Firing,
        ),
        ("prod-us-1", "Watchdog", "search", "none", Status::Firing),
        (
            "prod-eu-1",
            "HighLatency",
            "search",
            "critical",
            Status::Firing,
        ),
    ];
    let envs: Vec<Envelope> = cases
        .iter()
        .map(|(cluster, name, team, severity, status)| {
            let mut e = envelope(name, team, *status);
            e.cluster = cluster.to_string();
            e.labels.insert("severity".into(), severity.to_string());
            e.severity = alert_envelope::Severity::normalise(Some(severity));
            e.id = derive_id(cluster, &e.fingerprint, *status, e.starts_at, None);
            e
        })
        .collect();
    let e = sinks_support::enricher(&s, Duration::from_secs(60)).await;
    let refs: Vec<&Envelope> = envs.iter().collect();
    let report = e.process(records(&refs), Duration::from_secs(10)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert_eq!(
        report.counts.sinks["ops-bus"].delivered, 5,
        "{:?}",
        report.counts
    );

    let expect: BTreeMap<&str, Vec<usize>> = [
        ("my-team-critical", vec![0, 1]),
        ("one-cluster", vec![0, 1, 4]),
        ("resolved-only", vec![1]),
        ("all-but-watchdog", vec![0, 1, 2, 4]),
    ]
    .into_iter()
    .collect();
    for (name, want) in expect {
        let mut got = Vec::new();
        for _ in 0..30 {
            let out = sqs
                .receive_message()
                .queue_url(&queues[name])
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            for m in out.messages() {
                let event: Value = serde_json::from_str(m.body().unwrap()).unwrap();
                assert_eq!(event["source"], "alert-manager");
                let detail = Envelope::from_json(&event["detail"].to_string()).unwrap();
                let kind = if detail.status == Status::Firing {
                    "Alert Firing"
                } else {
                    "Alert Resolved"
                };
                assert_eq!(event["detail-type"], kind);
                got.push(envs.iter().position(|e| e.id == detail.id).unwrap());
            }
            if got.len() > want.len() || (got.len() == want.len() && out.messages().is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        got.sort();
        assert_eq!(got, want, "pattern {name}");
        println!("event pattern {name}: envelopes {got:?}");
    }
}
