//! Routing and delivery against real-shaped receivers and moto: the routing
//! document in SSM (reloaded after its TTL), secrets in Secrets Manager and
//! SSM SecureString, Slack / PagerDuty / signed-webhook stand-ins that
//! validate like the real services, and the retry verdict per sink.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::time::{Duration, Instant};

use alert_envelope::{Envelope, Status};
use alert_manager_tests::Behavior;
use alert_manager_tests::agent::receive_until;
use sinks_support::{PD_KEY, ROUTES_PARAM, enricher, envelope, records, routes, stack};

#[tokio::test(flavor = "multi_thread")]
async fn each_sink_gets_its_payload_and_the_resolve_closes_the_incident() {
    let s = stack().await;
    let e = enricher(&s, Duration::from_secs(60)).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let report = e
        .process(records(&[&firing]), Duration::from_secs(10))
        .await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");

    // Slack: the stand-in validated the Block Kit shape (it answers 400 otherwise).
    let slack = s.slack.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(slack[0].answered, 200, "{}", slack[0]);
    let msg = slack[0].json.as_ref().unwrap();
    assert_eq!(msg["attachments"][0]["color"], "#E01E5A");
    assert!(msg["text"].as_str().unwrap().contains("PaymentsDown"));

    // PagerDuty: a valid trigger with the routing key from the JSON secret.
    let pd = s.pagerduty.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(pd[0].answered, 202, "{}", pd[0]);
    let trigger = pd[0].json.clone().unwrap();
    assert_eq!(trigger["routing_key"], PD_KEY);
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["payload"]["custom_details"]["id"],
        firing.id.as_str()
    );

    // Webhook: signed with the SSM SecureString key (the stand-in verified it).
    let hook = s.webhook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(hook[0].answered, 200, "{}", hook[0]);
    assert_eq!(hook[0].header("X-Alert-Id"), Some(firing.id.as_str()));
    let delivered: Envelope = serde_json::from_slice(&hook[0].body).unwrap();
    assert_eq!(delivered.id, firing.id);
    assert_eq!(
        delivered.enrichment.as_ref().unwrap().routed_to,
        vec!["enriched", "team-slack", "team-pd", "audit", "team-topic"]
    );

    // The enriched topic, through the catch-all `continue` route.
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = receive_until(&sqs, &s.queue, Duration::from_secs(10), |g| !g.is_empty()).await;
    assert_eq!(got[0].0.id, firing.id);
    // A per-team topic is an SNS sink like the enriched one, attributes included
    // (its subscription filters on `team`).
    let got = receive_until(&sqs, &s.team_queue, Duration::from_secs(10), |g| {
        !g.is_empty()
    })
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.id, firing.id);
    assert_eq!(
        got[0].1.get("severity").map(String::as_str),
        Some("critical")
    );

    // The resolve reaches PagerDuty with the same dedup_key.
    let resolved = envelope("PaymentsDown", "payments", Status::Resolved);
    let report = e
        .process(records(&[&resolved]), Duration::from_secs(10))
        .await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    let pd = s.pagerduty.wait_for(2, Duration::from_secs(5)).await;
    let resolve = pd[1].json.clone().unwrap();
    assert_eq!(pd[1].answered, 202, "{}", pd[1]);
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    let slack = s.slack.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(
        slack[1].json.as_ref().unwrap()["attachments"][0]["color"],
        "#2EB67D"
    );
    drop(s.moto);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_routing_change_in_ssm_is_picked_up_after_the_ttl() {
    let s = stack().await;
    let e = enricher(&s, Duration::from_secs(1)).await;
    let alert = envelope("SearchSlow", "slack-only", Status::Firing);
    e.process(records(&[&alert]), Duration::from_secs(10)).await;
    assert_eq!(s.slack.wait_for(1, Duration::from_secs(5)).await.len(), 1);

    // Now slack-only alerts go to the webhook instead.
    let changed = routes(&s).replace(
        "match: {labels.team: slack-only}\n    sinks: [team-slack]",
        "match: {labels.team: slack-only}\n    sinks: [audit]",
    );
    assert_ne!(changed, routes(&s));
    aws_sdk_ssm::Client::new(&s.config)
        .put_parameter()
        .name(ROUTES_PARAM)
        .value(changed)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    // Within the TTL the old table still applies...
    e.process(records(&[&alert]), Duration::from_secs(10)).await;
    assert_eq!(s.slack.requests().len(), 2);
    assert!(s.webhook.requests().is_empty());
    // ...after it, the new one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e.process(records(&[&alert]), Duration::from_secs(10)).await;
    assert_eq!(s.webhook.wait_for(1, Duration::from_secs(5)).await.len(), 1);
    assert_eq!(s.slack.requests().len(), 2);

    // An invalid document keeps the last good table.
    aws_sdk_ssm::Client::new(&s.config)
        .put_parameter()
        .name(ROUTES_PARAM)
        .value("version: 1\nroutes:\n  - {sinks: [nope]}\n")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let report = e.process(records(&[&alert]), Duration::from_secs(10)).await;
    assert!(report.failed_message_ids.is_empty());
    assert_eq!(s.webhook.wait_for(2, Duration::from_secs(5)).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retryable_sink_failure_fails_only_its_record_and_a_permanent_one_fails_none() {
    let s = stack().await;
    let e = enricher(&s, Duration::from_secs(60)).await;
    let to_slack = envelope("A", "slack-only", Status::Firing);
    let to_hook = envelope("B", "audit-only", Status::Firing);

    // Slack is down (500 on every attempt until the deadline): only A fails.
    s.slack.set_behavior(Behavior::Status(500));
    let started = Instant::now();
    let report = e
        .process(records(&[&to_slack, &to_hook]), Duration::from_secs(3))
        .await;
    assert_eq!(report.failed_message_ids, vec!["msg-0"], "{report:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(s.slack.requests().len() >= 2, "retried before giving up");
    assert_eq!(s.webhook.requests().len(), 1, "B was delivered once");
    let slack_counts = &report.counts.sinks["team-slack"];
    assert_eq!(slack_counts.failed.get("http_500"), Some(&1));

    // Slack refuses the payload for good (400): logged and counted, not retried, not failed.
    s.slack.set_behavior(Behavior::Status(400));
    let before = s.slack.requests().len();
    let report = e
        .process(records(&[&to_slack]), Duration::from_secs(3))
        .await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert_eq!(s.slack.requests().len(), before + 1, "no retry of a 4xx");
    assert_eq!(
        report.counts.sinks["team-slack"].failed.get("http_400"),
        Some(&1)
    );

    // 429 with Retry-After: 1 once, then fine: delivered after waiting.
    s.slack.set_behavior(Behavior::Ok);
    s.slack.fail_next(
        1,
        Behavior::RateLimited {
            retry_after_secs: 1,
        },
    );
    let before = s.slack.requests().len();
    let started = Instant::now();
    let report = e
        .process(records(&[&to_slack]), Duration::from_secs(5))
        .await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let all = s.slack.requests();
    assert_eq!(all.len(), before + 2);
    assert_eq!(all[before].answered, 429);
    assert_eq!(all[before + 1].answered, 200);

    // A receiver that hangs: the attempt times out before the deadline,
    // retryably, and the invocation returns while it still has time to.
    s.pagerduty.set_behavior(Behavior::Hang);
    let to_pd = envelope("C", "payments", Status::Firing);
    let started = Instant::now();
    let report = e.process(records(&[&to_pd]), Duration::from_secs(3)).await;
    assert_eq!(report.failed_message_ids, vec!["msg-0"]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
