//! Maintenance windows against moto (SNS, SQS, EC2, DynamoDB with the
//! stack's table and its sparse `held` index): a route's mute interval holds
//! an alert back from people's sinks, the tick after the window hands it to
//! them once, and an instance tagged for maintenance is muted until its time.
//! The enricher is run as at fixed times (`process_at`, `tick_at`), so the
//! windows do not depend on the day the tests run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::time::Duration;

use alert_envelope::{AwsContext, Envelope, Status};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::state::StateFailure;
use alert_manager_tests::REGION;
use alert_manager_tests::agent::receive_until;
use jiff::Timestamp;
use sinks_support::{
    ROUTES_PARAM, Stack, accepted, enricher, envelope, pd_actions, records, routes, stack,
    state_store, tagged_instance,
};

const TABLE: &str = "alert-manager-state";
const TAG: &str = "alert-manager.io/maintenance-until";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// The tick, as at `t`.
async fn tick(e: &Enricher, t: &str) -> alert_manager_enricher::deliver::BatchReport {
    e.tick_at(Duration::from_secs(5), at(t)).await.unwrap()
}

/// What people's sinks accepted: Slack, PagerDuty, the signed webhook.
fn people(s: &Stack) -> [usize; 3] {
    [
        accepted(&s.slack.requests(), 200),
        accepted(&s.pagerduty.requests(), 202),
        accepted(&s.webhook.requests(), 200),
    ]
}

/// The stack's routes, with the payments route muted on Sundays (UTC), and
/// an enricher with the state store.
async fn windowed(s: &Stack) -> Enricher {
    let payments = "    sinks: [team-slack, team-pd, audit, team-topic]\n";
    let doc = routes(s).replace(
        payments,
        &format!("{payments}    mute_time_intervals: [sunday-patching]\n"),
    ) + "time_intervals:\n  - name: sunday-patching\n    time_intervals:\n      - weekdays: [sunday]\n";
    assert!(doc.contains("mute_time_intervals"), "{doc}");
    aws_sdk_ssm::Client::new(&s.config)
        .put_parameter()
        .name(ROUTES_PARAM)
        .value(doc)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    s.moto.create_state_table(TABLE).await;
    enricher(s, Duration::from_secs(60))
        .await
        .with_state(state_store(&s.config, TABLE, StateFailure::Deliver))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mute_interval_holds_the_alert_and_the_tick_after_it_delivers_it_once() {
    let s = stack().await;
    let e = windowed(&s).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let sunday = at("2026-12-06T10:00:00Z");

    let r = e
        .process_at(records(&[&firing]), Duration::from_secs(5), sunday)
        .await;
    assert!(r.failed_message_ids.is_empty(), "{r:?}");
    assert_eq!(r.counts.muted, 1, "{:?}", r.counts);
    // Machines got it, marked muted, with the reason and the window's end.
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    for queue in [&s.queue, &s.team_queue] {
        let got = receive_until(&sqs, queue, Duration::from_secs(10), |g| !g.is_empty()).await;
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1["muted"], "true");
        let muted = got[0].0.enrichment.as_ref().unwrap().muted.clone().unwrap();
        assert_eq!(muted.until, Some(at("2026-12-07T00:00:00Z")));
        assert!(muted.reason.contains("sunday-patching"), "{muted:?}");
        assert_eq!(muted.sinks, vec!["team-slack", "team-pd", "audit"]);
    }
    assert_eq!(people(&s), [0, 0, 0], "people got nothing in the window");

    // A tick inside the window hands nothing over.
    let r = tick(&e, "2026-12-06T23:59:00Z").await;
    assert_eq!(r.counts.records, 0);
    assert_eq!(people(&s), [0, 0, 0]);

    // The first tick after it: each of people's sinks gets it, once.
    let r = tick(&e, "2026-12-07T00:01:00Z").await;
    assert_eq!(
        (r.counts.records, r.counts.muted, r.failed_message_ids.len()),
        (1, 0, 0),
        "{r:?}"
    );
    assert_eq!(people(&s), [1, 1, 1]);
    assert_eq!(pd_actions(&s), vec!["trigger"]);

    // The next tick, and SQS redelivering the record: nothing more.
    let r = tick(&e, "2026-12-07T00:02:00Z").await;
    assert_eq!(r.counts.records, 0, "released after its delivery");
    let r = e
        .process_at(
            records(&[&firing]),
            Duration::from_secs(5),
            at("2026-12-07T00:03:00Z"),
        )
        .await;
    assert!(r.failed_message_ids.is_empty(), "{r:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(people(&s), [1, 1, 1], "once");
    // Waits for a second copy on the topic that must not come.
    let got = receive_until(&sqs, &s.team_queue, Duration::from_secs(3), |g| {
        !g.is_empty()
    })
    .await;
    assert!(got.is_empty(), "the topic had it already: {got:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_that_resolves_in_the_window_hands_over_only_its_resolve() {
    let s = stack().await;
    let e = windowed(&s).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let resolved = envelope("PaymentsDown", "payments", Status::Resolved);
    for (env, t) in [
        (&firing, "2026-12-06T10:00:00Z"),
        (&resolved, "2026-12-06T11:00:00Z"),
    ] {
        let r = e
            .process_at(records(&[env]), Duration::from_secs(5), at(t))
            .await;
        assert_eq!(r.counts.muted, 1, "{:?}", r.counts);
    }
    let r = tick(&e, "2026-12-07T00:01:00Z").await;
    assert_eq!(
        r.counts.records, 1,
        "one held envelope per alert: the latest"
    );
    assert_eq!(
        pd_actions(&s),
        vec!["resolve"],
        "the firing is not replayed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_tagged_for_maintenance_is_muted_until_its_time() {
    let s = stack().await;
    let e = windowed(&s).await;
    let instance =
        tagged_instance(&s, &[(TAG, "2026-12-02T14:00:00Z"), ("team", "payments")]).await;
    let mut firing = envelope("NodeDiskFull", "payments", Status::Firing);
    firing.aws = Some(AwsContext {
        instance_id: Some(instance.clone()),
        region: Some(REGION.into()),
        ..AwsContext::default()
    });

    // A Wednesday: no route window, but the instance is in maintenance.
    let r = e
        .process_at(
            records(&[&firing]),
            Duration::from_secs(5),
            at("2026-12-02T12:00:00Z"),
        )
        .await;
    assert_eq!(r.counts.muted, 1, "{:?}", r.counts);
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = receive_until(&sqs, &s.queue, Duration::from_secs(10), |g| !g.is_empty()).await;
    let delivered: &Envelope = &got[0].0;
    let muted = delivered
        .enrichment
        .as_ref()
        .unwrap()
        .muted
        .clone()
        .unwrap();
    assert!(
        muted.reason.contains(&instance) && muted.reason.contains(TAG),
        "{muted:?}"
    );
    assert_eq!(muted.until, Some(at("2026-12-02T14:00:00Z")));
    assert_eq!(people(&s), [0, 0, 0]);

    let r = tick(&e, "2026-12-02T13:59:00Z").await;
    assert_eq!(r.counts.records, 0, "still in maintenance");
    let r = tick(&e, "2026-12-02T14:00:30Z").await;
    assert_eq!((r.counts.records, r.counts.muted), (1, 0), "{r:?}");
    assert_eq!(people(&s), [1, 1, 1]);
}
