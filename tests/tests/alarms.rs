//! CloudWatch alarms through the enricher against moto: an alarm's SNS
//! notification (CloudWatch's own JSON, as `envelope/fixtures/cloudwatch`
//! has it; moto's `SetAlarmState` publishes nothing) goes SNS → SQS (raw) →
//! the enricher, which reads it as an alert about the instance of its
//! `InstanceId` dimension: EC2-enriched, its team from the instance's tag,
//! routed by that team to PagerDuty, and resolved by the alarm's `OK` in
//! the same incident.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::time::Duration;

use alert_envelope::{Source, Status};
use alert_manager_enricher::event::Record;
use alert_manager_tests::agent::receive_until;
use sinks_support::{ROUTES_PARAM, Stack, enricher, pd_actions, stack, tagged_instance};

fn fixture(name: &str, instance: &str) -> String {
    let path = format!(
        "{}/../envelope/fixtures/cloudwatch/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .replace("i-0123456789abcdef0", instance)
}

/// Publishes `message` to the alarms topic as CloudWatch does, and answers
/// the records the queue subscribed to it (raw delivery) holds.
async fn through_sns(s: &Stack, topic: &str, queue: &str, message: &str) -> Vec<Record> {
    aws_sdk_sns::Client::new(&s.config)
        .publish()
        .topic_arn(topic)
        .subject("ALARM: \"node-cpu-high\" in US East (N. Virginia)")
        .message(message)
        .send()
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    for _ in 0..50 {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let records: Vec<Record> = out
            .messages()
            .iter()
            .map(|m| Record {
                message_id: m.message_id().unwrap().to_string(),
                body: m.body().unwrap().to_string(),
                group: None,
            })
            .collect();
        if !records.is_empty() {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the alarm notification never reached its queue");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alarm_on_an_instance_is_enriched_routed_by_its_team_and_resolved_by_its_ok() {
    let s = stack().await;
    // Route by the team the enricher resolves (from the instance's tag).
    let routes = sinks_support::routes(&s).replace(
        "    match: {labels.team: payments}\n",
        "    match: {team: payments}\n",
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
    let id = tagged_instance(&s, &[("team", "payments"), ("Name", "node-7")]).await;
    let alarms = s.moto.create_topic("alert-manager-alarms").await;
    let inbox = s.moto.subscribe_queue(&alarms, "alarms-inbox", None).await;
    let e = enricher(&s, Duration::from_secs(60)).await;

    let records = through_sns(&s, &alarms, &inbox, &fixture("alarm-single-metric", &id)).await;
    let report = e.process(records, Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert_eq!(
        (report.counts.invalid, report.counts.enriched),
        (0, 1),
        "{:?}",
        report.counts
    );

    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = receive_until(&sqs, &s.queue, Duration::from_secs(10), |g| !g.is_empty()).await;
    let (firing, attributes) = &got[0];
    assert_eq!(firing.source, Source::CloudwatchAlarm);
    assert_eq!(attributes["source"], "cloudwatch-alarm");
    assert_eq!(firing.status, Status::Firing);
    let enrichment = firing.enrichment.as_ref().unwrap();
    let ec2 = enrichment
        .ec2
        .as_ref()
        .expect("EC2 data through the InstanceId dimension");
    assert_eq!(ec2.instance_id, id);
    assert_eq!(ec2.tags["Name"], "node-7");
    assert_eq!(
        enrichment.team.as_deref(),
        Some("payments"),
        "from the instance's tag"
    );
    assert_eq!(
        pd_actions(&s),
        vec!["trigger"],
        "routed by the team to PagerDuty"
    );

    let records = through_sns(&s, &alarms, &inbox, &fixture("ok-single-metric", &id)).await;
    let report = e.process(records, Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    let got = receive_until(&sqs, &s.queue, Duration::from_secs(10), |g| !g.is_empty()).await;
    let resolved = &got[0].0;
    assert_eq!(resolved.status, Status::Resolved);
    assert_eq!(resolved.fingerprint, firing.fingerprint);
    assert_eq!(pd_actions(&s), vec!["trigger", "resolve"]);
    let keys: Vec<String> = s
        .pagerduty
        .requests()
        .iter()
        .map(|r| {
            r.json.as_ref().unwrap()["dedup_key"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(keys[0], keys[1], "one incident: {keys:?}");

    // INSUFFICIENT_DATA: no alert, counted as ignored.
    let records = through_sns(&s, &alarms, &inbox, &fixture("insufficient-data", &id)).await;
    let report = e.process(records, Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert_eq!((report.counts.ignored, report.counts.invalid), (1, 0));
    assert_eq!(pd_actions(&s).len(), 2);
}
