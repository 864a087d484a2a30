//! The alert state store against moto's DynamoDB (whose conditional writes
//! are real), with the table made from the CloudFormation template's
//! definition: once per sink across redeliveries, the stale rule, the store
//! down, concurrent writers, the call budget, and a SIGKILL mid-batch.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use alert_envelope::{Envelope, Status};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::deliver::ALERTS_PER_PART;
use alert_manager_enricher::state::StateFailure;
use alert_manager_tests::agent::receive_until;
use alert_manager_tests::pipeline::FUNCTION;
use alert_manager_tests::{Behavior, LambdaWatch, REGION, free_port, workspace_root};
use serde_json::json;
use sinks_support::{
    ROUTES_PARAM, Stack, accepted, enricher, envelope, pd_actions, recorded_deliveries, records,
    sqs_event, stack, state_store,
};

const TABLE: &str = "alert-manager-state";

async fn stateful(s: &Stack) -> Enricher {
    s.moto.create_state_table(TABLE).await;
    enricher(s, Duration::from_secs(60))
        .await
        .with_state(state_store(&s.config, TABLE, StateFailure::Deliver))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_redelivered_three_times_reaches_each_sink_once() {
    let s = stack().await;
    let e = stateful(&s).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    s.webhook.set_behavior(Behavior::Status(503));
    for attempt in 1..=2 {
        let report = e.process(records(&[&firing]), Duration::from_secs(3)).await;
        assert_eq!(
            report.failed_message_ids,
            vec!["msg-0"],
            "attempt {attempt}"
        );
    }
    s.webhook.set_behavior(Behavior::Ok);
    let report = e.process(records(&[&firing]), Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    // One more redelivery (SQS delivers at least once): nothing is sent again.
    let report = e.process(records(&[&firing]), Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert_eq!(
        report.counts.skipped_already_delivered, 5,
        "{:?}",
        report.counts
    );

    assert_eq!(accepted(&s.slack.requests(), 200), 1, "Slack got it once");
    assert_eq!(accepted(&s.pagerduty.requests(), 202), 1, "PagerDuty once");
    assert_eq!(
        accepted(&s.webhook.requests(), 200),
        1,
        "the webhook once, after it recovered"
    );
    assert!(accepted(&s.webhook.requests(), 503) >= 2);
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    // Waits for a second copy that must not come.
    let got = receive_until(&sqs, &s.team_queue, Duration::from_secs(3), |g| {
        g.len() >= 2
    })
    .await;
    assert_eq!(got.len(), 1, "the team topic once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_delayed_past_its_resolve_is_stale_and_reaches_only_the_topics() {
    let s = stack().await;
    let e = stateful(&s).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let resolved = envelope("PaymentsDown", "payments", Status::Resolved);
    for env in [&firing, &resolved] {
        let report = e.process(records(&[env]), Duration::from_secs(5)).await;
        assert!(report.failed_message_ids.is_empty(), "{report:?}");
    }
    // The firing again, late (an SQS redelivery after a failed sink).
    let late = e.process(records(&[&firing]), Duration::from_secs(5)).await;
    assert!(late.failed_message_ids.is_empty(), "{late:?}");
    assert_eq!(late.counts.stale, 1);

    let pd = pd_actions(&s);
    assert_eq!(pd, vec!["trigger", "resolve"], "nothing after the resolve");
    assert_eq!(accepted(&s.slack.requests(), 200), 2);
    assert_eq!(accepted(&s.webhook.requests(), 200), 2);

    // The topic already had it: not published again.
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = receive_until(&sqs, &s.queue, Duration::from_secs(3), |g| g.len() >= 3).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(_, a)| !a.contains_key("stale")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_that_arrives_after_its_resolve_reaches_the_topic_marked_stale() {
    let s = stack().await;
    let e = stateful(&s).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let resolved = envelope("PaymentsDown", "payments", Status::Resolved);
    // Out of order, as a standard queue may hand them over.
    for env in [&resolved, &firing] {
        let report = e.process(records(&[env]), Duration::from_secs(5)).await;
        assert!(report.failed_message_ids.is_empty(), "{report:?}");
    }
    let pd = pd_actions(&s);
    assert_eq!(
        pd,
        vec!["resolve"],
        "no trigger opens an incident nothing resolves"
    );
    assert_eq!(accepted(&s.slack.requests(), 200), 1);
    assert_eq!(accepted(&s.webhook.requests(), 200), 1);

    // Machine consumers still get it, marked, on every SNS sink.
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    for queue in [&s.queue, &s.team_queue] {
        let got = receive_until(&sqs, queue, Duration::from_secs(10), |g| g.len() >= 2).await;
        assert_eq!(got.len(), 2, "{got:?}");
        let (env, attrs) = got
            .iter()
            .find(|(_, a)| a.contains_key("stale"))
            .expect("a stale message");
        assert_eq!(env.id, firing.id);
        assert_eq!(attrs["stale"], "true");
        assert!(env.enrichment.as_ref().unwrap().stale);
        let fresh = got.iter().find(|(e, _)| e.id == resolved.id).unwrap();
        assert!(!fresh.1.contains_key("stale"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_firing_refused_until_the_deadline_does_not_trigger_after_its_resolve() {
    let s = stack().await;
    let e = stateful(&s).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let resolved = envelope("PaymentsDown", "payments", Status::Resolved);
    s.pagerduty.set_behavior(Behavior::Status(500));
    let report = e.process(records(&[&firing]), Duration::from_secs(3)).await;
    assert_eq!(report.failed_message_ids, vec!["msg-0"]);
    s.pagerduty.set_behavior(Behavior::Ok);
    let report = e
        .process(records(&[&resolved]), Duration::from_secs(5))
        .await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    let report = e.process(records(&[&firing]), Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert_eq!(report.counts.stale, 1);

    let pd = pd_actions(&s);
    assert_eq!(
        pd,
        vec!["resolve"],
        "the resolve came first: no trigger opens an incident"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_store_delivers_at_least_once_and_records_the_state_error() {
    let s = stack().await;
    // A closed port: connection refused.
    let mut dead = s.config.to_builder();
    dead.set_endpoint_url(Some(format!("http://127.0.0.1:{}", free_port())));
    let dead = dead.build();
    let base = enricher(&s, Duration::from_secs(60)).await;
    let e = base.with_state(state_store(&dead, TABLE, StateFailure::Deliver));
    let firing = envelope("AuditOnly", "audit-only", Status::Firing);
    let report = e.process(records(&[&firing]), Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert!(report.counts.state_errors >= 1);
    let hook = s.webhook.wait_for(1, Duration::from_secs(5)).await;
    let delivered: Envelope = serde_json::from_slice(&hook[0].body).unwrap();
    let errors = &delivered.enrichment.unwrap().errors;
    assert!(errors.iter().any(|e| e.stage == "state"), "{errors:?}");

    // STATE_FAILURE=retry: the record comes back, undelivered.
    let e = enricher(&s, Duration::from_secs(60))
        .await
        .with_state(state_store(&dead, TABLE, StateFailure::Retry));
    let other = envelope("AuditOnly2", "audit-only", Status::Firing);
    let report = e.process(records(&[&other]), Duration::from_secs(5)).await;
    assert_eq!(report.failed_message_ids, vec!["msg-0"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.webhook.requests().len(), 1, "nothing more was delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_invocations_writing_one_alert_keep_both_deliveries() {
    let s = stack().await;
    s.moto.create_state_table(TABLE).await;
    let store = state_store(&s.config, TABLE, StateFailure::Deliver);
    let deadline = alert_aws::Deadline::within(Duration::from_secs(5));
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let now = jiff::Timestamp::now();

    let mut a = store.load(std::slice::from_ref(&firing), &deadline).await;
    a.judge(&firing, now);
    a.record_delivery(&firing, "team-pd", None);
    let mut b = store.load(std::slice::from_ref(&firing), &deadline).await;
    b.judge(&firing, now);
    b.record_delivery(&firing, "team-slack", None);
    let saved_b = store.save(b, &deadline).await;
    assert_eq!((saved_b.written, saved_b.conflicts), (1, 0));
    // A read before B wrote: its conditional write fails, and it is applied to B's item.
    let saved_a = store.save(a, &deadline).await;
    assert_eq!((saved_a.written, saved_a.conflicts), (1, 1), "{saved_a:?}");

    let after = store.load(std::slice::from_ref(&firing), &deadline).await;
    assert!(after.delivered(&firing, "team-pd"));
    assert!(after.delivered(&firing, "team-slack"));

    // The same with two alerts, written in one transaction: DynamoDB
    // cancels it for the alert B wrote, which is read again, and both land.
    let other = envelope("CheckoutDown", "payments", Status::Firing);
    let both = [firing.clone(), other.clone()];
    let mut a = store.load(&both, &deadline).await;
    let mut b = store.load(&both, &deadline).await;
    for ledger in [&mut a, &mut b] {
        for env in &both {
            ledger.judge(env, now);
        }
    }
    a.record_delivery(&firing, "audit", None);
    a.record_delivery(&other, "audit", None);
    b.record_delivery(&other, "team-topic", None);
    let saved_b = store.save(b, &deadline).await;
    assert_eq!((saved_b.written, saved_b.conflicts), (1, 0), "{saved_b:?}");
    let saved_a = store.save(a, &deadline).await;
    assert_eq!(
        (saved_a.written, saved_a.conflicts, saved_a.write_calls),
        (2, 1, 2),
        "one transaction cancelled for the alert B wrote, then one that lands: {saved_a:?}"
    );
    let after = store.load(&both, &deadline).await;
    assert!(after.delivered(&firing, "audit"));
    assert!(after.delivered(&other, "audit") && after.delivered(&other, "team-topic"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_record_batch_costs_one_read_and_one_write_per_changed_alert() {
    let s = stack().await;
    let e = stateful(&s).await;
    // 50 distinct alerts, each carried by two records (an SNS retry, say).
    let envs: Vec<Envelope> = (0..50)
        .map(|i| envelope(&format!("Alert{i}"), "nobody", Status::Firing))
        .collect();
    let doubled: Vec<&Envelope> = envs.iter().chain(envs.iter()).collect();
    s.moto.start_recording().await;
    let report = e.process(records(&doubled), Duration::from_secs(10)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    let actions = s.moto.recorded_actions().await;
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("BatchGetItem"), 1, "{actions:?}");
    // One conditional write per alert, all its sinks in it; the alerts of
    // each part of the batch in one transaction.
    assert_eq!(
        count("TransactWriteItems"),
        50usize.div_ceil(ALERTS_PER_PART),
        "{actions:?}"
    );
    assert_eq!(count("PutItem"), 0, "{actions:?}");
    assert_eq!(count("GetItem"), 0);
    let written = recorded_deliveries(&s, TABLE, &["enriched"]).await;
    assert_eq!(written, vec![50], "every alert's state, with its delivery");

    // The same batch again: one read, no write (nothing changed).
    s.moto.start_recording().await;
    let report = e.process(records(&doubled), Duration::from_secs(10)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    let actions = s.moto.recorded_actions().await;
    let count = |a: &str| actions.iter().filter(|x| *x == a).count();
    assert_eq!(count("BatchGetItem"), 1, "{actions:?}");
    assert_eq!(count("PutItem"), 0, "{actions:?}");
    assert_eq!(
        count("PublishBatch"),
        0,
        "the enriched topic already has them"
    );
}

/// Scenario 6: the enricher under `cargo lambda watch`, SIGKILLed in the
/// middle of a 100-record batch (Lambda's timeout, a lost host), then the
/// batch redelivered to a new execution environment. The store is written
/// after each part of the batch, so what repeats is what was in flight:
/// accepted by a sink and not yet written at the kill.
#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_mid_batch_repeats_only_the_deliveries_in_flight() {
    const ALERTS: usize = 100;
    let s = stack().await;
    s.moto.create_state_table(TABLE).await;
    let endpoint = s.moto.endpoint();
    let env = [
        ("ENRICHED_TOPIC_ARN", s.topic.as_str()),
        ("ROUTES_SSM_PARAMETER", ROUTES_PARAM),
        ("STATE_TABLE", TABLE),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("RUST_LOG", "warn"),
        // The emulator sends no real deadline; a Lambda timeout of one minute.
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "60"),
    ];
    let watch = LambdaWatch::start(&workspace_root().join("lambda"), FUNCTION, &env).await;
    let envs: Vec<Envelope> = (0..ALERTS)
        .map(|i| envelope(&format!("Crash{i:03}"), "payments", Status::Firing))
        .collect();
    let event = sqs_event(&envs);
    // A slow webhook receiver, so the batch takes seconds.
    s.webhook.set_behavior(Behavior::Slow { millis: 100 });

    let invocation = {
        let (watch, event) = (&watch, event.clone());
        async move { watch.invoke(FUNCTION, &event).await }
    };
    let killer = async {
        let deadline = Instant::now() + Duration::from_secs(120);
        // Halfway through a part after the first.
        while accepted(&s.webhook.requests(), 200) < ALERTS_PER_PART + ALERTS_PER_PART / 2 {
            assert!(Instant::now() < deadline, "the batch did not get halfway");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        watch.kill_function();
    };
    let (killed, ()) = tokio::join!(invocation, killer);
    assert!(
        killed.is_err(),
        "the killed invocation answered: {killed:?}"
    );

    let sinks = ["team-slack", "team-pd", "audit"];
    let at_kill = [
        accepted(&s.slack.requests(), 200),
        accepted(&s.pagerduty.requests(), 202),
        accepted(&s.webhook.requests(), 200),
    ];
    let recorded = recorded_deliveries(&s, TABLE, &sinks).await;
    let in_flight: Vec<usize> = at_kill
        .iter()
        .zip(&recorded)
        .map(|(a, r)| a.saturating_sub(*r))
        .collect();

    watch.restart_function();
    let redelivered = watch
        .invoke(FUNCTION, &event)
        .await
        .expect("the redelivery");
    assert_eq!(redelivered["batchItemFailures"], json!([]), "{redelivered}");

    let totals = [
        accepted(&s.slack.requests(), 200),
        accepted(&s.pagerduty.requests(), 202),
        accepted(&s.webhook.requests(), 200),
    ];
    let ids: BTreeSet<String> = s
        .webhook
        .requests()
        .iter()
        .filter(|r| r.answered == 200)
        .filter_map(|r| r.header("X-Alert-Id").map(String::from))
        .collect();
    assert_eq!(ids.len(), ALERTS, "every envelope reached the webhook");
    for (i, sink) in sinks.iter().enumerate() {
        assert!(totals[i] >= ALERTS, "{sink}: {} of {ALERTS}", totals[i]);
        let duplicates = totals[i] - ALERTS;
        println!(
            "{sink}: {} accepted at the kill, {} of them written to the store, {} in flight; {duplicates} duplicates after the redelivery",
            at_kill[i], recorded[i], in_flight[i]
        );
        assert!(
            duplicates <= in_flight[i],
            "{sink}: {duplicates} duplicates, {} in flight",
            in_flight[i]
        );
        assert!(
            in_flight[i] <= ALERTS_PER_PART,
            "{sink}: {} deliveries were not yet written at the kill; the store is written every {ALERTS_PER_PART} alerts",
            in_flight[i]
        );
    }
}
