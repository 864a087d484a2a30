//! The `slack_app` sink (Slack's Web API) with the alert state store in
//! moto's DynamoDB, against a Web API stand-in that refuses what Slack
//! refuses: one message per alert's life, updated in place on resolve, with
//! its thread; repeats within `repeat_interval` quiet; Slack's errors as
//! the one verdict; a flapping alert's one notice and its final state.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::time::Duration;

use alert_envelope::{Envelope, Status, derive_id};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::state::StateFailure;
use alert_manager_tests::SlackApi;
use alert_manager_tests::agent::receive_until;
use jiff::{SignedDuration, Timestamp};
use sinks_support::{
    ROUTES_PARAM, Stack, enricher_with_args, envelope, pd_actions, records, stack, state_store,
};

const TABLE: &str = "alert-manager-state";
const BOT_TOKEN: &str = "xoxb-1234-5678-abcdefghijklmnop";
const CHANNEL: &str = "C0123456789";

async fn app_stack() -> (Stack, SlackApi) {
    let s = stack().await;
    let api = SlackApi::start(
        BOT_TOKEN,
        &[(CHANNEL, "payments-alerts"), ("C0ARCHIVED1", "old")],
    )
    .await;
    aws_sdk_secretsmanager::Client::new(&s.config)
        .create_secret()
        .name("alert-manager/slack-bot")
        .secret_string(BOT_TOKEN)
        .send()
        .await
        .unwrap();
    let routes = format!(
        r#"
version: 1
sinks:
  payments-slack:
    type: slack_app
    bot_token: {{secret: alert-manager/slack-bot}}
    channel: payments-alerts
    repeat_interval: 2s
  gone-slack:
    type: slack_app
    bot_token: {{secret: alert-manager/slack-bot}}
    channel: C0MISSING00
  team-pd:
    type: pagerduty
    routing_key: {{secret: alert-manager/pagerduty, key: payments}}
    url: {pd}
    allow_http: true
routes:
  - name: topic
    sinks: [enriched]
    continue: true
  - name: payments
    match: {{labels.team: payments}}
    sinks: [payments-slack, team-pd]
  - name: flappy
    match: {{labels.team: flappy}}
    sinks: [payments-slack, team-pd]
    flap: {{transitions: 4, window: 30m}}
  - name: gone
    match: {{labels.team: gone}}
    sinks: [gone-slack]
"#,
        pd = s.pagerduty.url()
    );
    aws_sdk_ssm::Client::new(&s.config)
        .put_parameter()
        .name(ROUTES_PARAM)
        .value(routes)
        .overwrite(true)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    s.moto.create_state_table(TABLE).await;
    (s, api)
}

async fn app_enricher(s: &Stack, api: &SlackApi) -> Enricher {
    enricher_with_args(
        s,
        Duration::from_secs(60),
        aws_sdk_ec2::Client::new(&s.config),
        &["--slack-api-url", &api.url()],
    )
    .await
    .with_state(state_store(&s.config, TABLE, StateFailure::Deliver))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resolve_updates_the_message_in_place_and_a_late_firing_changes_nothing() {
    let (s, api) = app_stack().await;
    let e = app_enricher(&s, &api).await;
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let resolved = envelope("PaymentsDown", "payments", Status::Resolved);
    for env in [&firing, &resolved, &firing] {
        let report = e.process(records(&[env]), Duration::from_secs(5)).await;
        assert!(report.failed_message_ids.is_empty(), "{report:?}");
    }
    assert_eq!(pd_actions(&s), vec!["trigger", "resolve"]);

    let messages = api.messages();
    let top: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    assert_eq!(
        top.len(),
        1,
        "one message for the alert's life: {messages:#?}"
    );
    assert_eq!(top[0].channel, CHANNEL);
    assert_eq!(top[0].updates, 1, "updated once, on resolve");
    let body = &top[0].body;
    assert_eq!(
        body["attachments"][0]["color"], "#2EB67D",
        "shown resolved: {body}"
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("Resolved after 10 min"),
        "{body}"
    );
    let replies: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_some()).collect();
    assert_eq!(replies.len(), 1, "{replies:#?}");
    assert_eq!(replies[0].thread_ts.as_deref(), Some(top[0].ts.as_str()));
    assert!(
        replies[0].body["text"]
            .as_str()
            .unwrap()
            .contains("Resolved after 10 min")
    );
    assert!(
        api.calls().iter().all(|c| c.error.is_none()),
        "{:#?}",
        api.calls()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeats_reply_in_the_thread_at_most_once_per_repeat_interval() {
    let (s, api) = app_stack().await;
    let e = app_enricher(&s, &api).await;
    let first = envelope("PodCrashLooping", "payments", Status::Firing);
    // Repeats: the same alert with new content (a higher count), so new ids.
    let repeat =
        |n: u32| -> Envelope { first.clone().with_id_discriminator(&format!("count={n}")) };
    for env in [first.clone(), repeat(2), repeat(3)] {
        let report = e.process(records(&[&env]), Duration::from_secs(5)).await;
        assert!(report.failed_message_ids.is_empty(), "{report:?}");
    }
    assert_eq!(api.messages().len(), 1, "repeats within 2 s are quiet");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for env in [repeat(4), repeat(5)] {
        let report = e.process(records(&[&env]), Duration::from_secs(5)).await;
        assert!(report.failed_message_ids.is_empty(), "{report:?}");
    }
    let messages = api.messages();
    let replies: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_some()).collect();
    assert_eq!(
        replies.len(),
        1,
        "one reply after the interval, not more: {messages:#?}"
    );
    assert_eq!(
        replies[0].thread_ts.as_deref(),
        Some(messages[0].ts.as_str())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ratelimited_is_retried_within_the_deadline_and_channel_not_found_is_not() {
    let (s, api) = app_stack().await;
    let e = app_enricher(&s, &api).await;
    api.rate_limit_next(1);
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let started = std::time::Instant::now();
    let report = e.process(records(&[&firing]), Duration::from_secs(6)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let calls = api.calls();
    assert_eq!(calls[0].status, 429);
    assert_eq!(calls[1].error, None);
    assert_eq!(api.messages().len(), 1);

    let gone = envelope("Gone", "gone", Status::Firing);
    let report = e.process(records(&[&gone]), Duration::from_secs(5)).await;
    assert!(
        report.failed_message_ids.is_empty(),
        "permanent: not failed, {report:?}"
    );
    let failed = &report.counts.sinks["gone-slack"].failed;
    assert_eq!(failed.get("channel_not_found"), Some(&1), "{failed:?}");
    let tries = api
        .calls()
        .iter()
        .filter(|c| c.body["channel"] == "C0MISSING00")
        .count();
    assert_eq!(tries, 1, "not retried");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_auth_is_permanent_counted_and_the_token_is_not_in_the_report() {
    let (s, api) = app_stack().await;
    let e = app_enricher(&s, &api).await;
    api.fail_next("invalid_auth");
    let firing = envelope("PaymentsDown", "payments", Status::Firing);
    let report = e.process(records(&[&firing]), Duration::from_secs(5)).await;
    assert!(report.failed_message_ids.is_empty(), "{report:?}");
    let failed = &report.counts.sinks["payments-slack"].failed;
    assert_eq!(failed.get("invalid_auth"), Some(&1), "{failed:?}");
    assert!(!format!("{report:?}").contains(BOT_TOKEN));
    assert_eq!(
        pd_actions(&s),
        vec!["trigger"],
        "the other sink still got it"
    );
}

/// Cycle `c` of a flapping alert: it fires at `t0 + 200 c` s (a new
/// `starts_at`, as Prometheus gives a re-fired alert) and resolves 100 s later.
fn flap_cycle(t0: Timestamp, c: i64) -> (Envelope, Envelope) {
    let starts = t0 + SignedDuration::from_secs(200 * c);
    let mut firing = envelope("DiskPressure", "flappy", Status::Firing);
    firing.starts_at = starts;
    firing.id = derive_id("prod", &firing.fingerprint, Status::Firing, starts, None);
    let mut resolved = firing.clone();
    resolved.status = Status::Resolved;
    resolved.ends_at = Some(starts + SignedDuration::from_secs(100));
    resolved.id = derive_id("prod", &firing.fingerprint, Status::Resolved, starts, None);
    (firing, resolved)
}

/// The Slack calls and PagerDuty events so far: (method, flapping?) and (action, flapping?).
/// Calls in order: (Slack method or PagerDuty action, marked flapping?).
type Calls = Vec<(String, bool)>;

fn people_calls(s: &Stack, api: &SlackApi) -> (Calls, Calls) {
    let slack = api
        .calls()
        .iter()
        .map(|c| {
            (
                c.method.clone(),
                c.body.to_string().contains("FLAPPING") || c.body.to_string().contains("Flapping"),
            )
        })
        .collect();
    let pd = s
        .pagerduty
        .requests()
        .iter()
        .filter(|r| r.answered == 202)
        .map(|r| {
            let j = r.json.as_ref().unwrap();
            (
                j["event_action"].as_str().unwrap().to_string(),
                j.to_string().contains("[flapping]"),
            )
        })
        .collect();
    (slack, pd)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_flipped_6_times_in_10_minutes_gets_one_notice_then_its_final_state_once_stable() {
    let (s, api) = app_stack().await;
    let e = app_enricher(&s, &api).await;
    let t0: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
    // F R F R F R F: 6 changes, 100 s apart; the rule is 4 within 30 min.
    let mut flips = Vec::new();
    for c in 0..4 {
        let (f, r) = flap_cycle(t0, c);
        flips.push(f);
        if c < 3 {
            flips.push(r);
        }
    }
    let mut seen = Vec::new();
    for (k, env) in flips.iter().enumerate() {
        let at = t0 + SignedDuration::from_secs(100 * k as i64);
        let r = e
            .process_at(records(&[env]), Duration::from_secs(5), at)
            .await;
        assert!(r.failed_message_ids.is_empty(), "flip {k}: {r:?}");
        seen.push(people_calls(&s, &api));
    }
    // Before the 4th change: each change reached people as usual.
    let (slack, pd) = &seen[3];
    assert!(
        slack.iter().all(|(_, f)| !f) && pd.iter().all(|(_, f)| !f),
        "{slack:?} {pd:?}"
    );
    assert_eq!(pd.len(), 4, "trigger, resolve, trigger, resolve: {pd:?}");
    // The 4th change: one notice per sink; the original message updated and a reply.
    let (slack4, pd4) = &seen[4];
    let notice: Vec<_> = slack4[slack.len()..].to_vec();
    assert_eq!(
        notice,
        vec![
            ("chat.update".to_string(), true),
            ("chat.postMessage".to_string(), true)
        ],
        "{slack4:?}"
    );
    assert_eq!(pd4[pd.len()..], [("trigger".to_string(), true)], "{pd4:?}");
    // The 5th and 6th: nothing reaches people.
    assert_eq!(&seen[6], &seen[4], "held while flapping");
    println!(
        "flapping: {} flips; notices: Slack {} calls, PagerDuty {} event; held: 2 envelopes",
        flips.len() - 1,
        notice.len(),
        pd4.len() - pd.len()
    );

    // The enriched topic got all 7, the last 3 marked flapping.
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = receive_until(&sqs, &s.queue, Duration::from_secs(10), |g| g.len() >= 7).await;
    assert_eq!(got.len(), 7, "{got:?}");
    let flagged = got
        .iter()
        .filter(|(_, attrs)| attrs.get("flapping").is_some_and(|v| v == "true"))
        .count();
    assert_eq!(flagged, 3, "{got:?}");

    // Ticks while changes are within 30 min: still nothing.
    let last = t0 + SignedDuration::from_secs(600);
    let r = e
        .tick_at(Duration::from_secs(5), last + SignedDuration::from_mins(29))
        .await
        .unwrap();
    assert_eq!(r.counts.records, 0, "{r:?}");
    assert_eq!(people_calls(&s, &api), seen[6]);

    // Stable for 30 min: the final state (firing), once.
    let r = e
        .tick_at(Duration::from_secs(5), last + SignedDuration::from_mins(31))
        .await
        .unwrap();
    assert_eq!(
        (r.counts.records, r.failed_message_ids.len()),
        (1, 0),
        "{r:?}"
    );
    let (slack_end, pd_end) = people_calls(&s, &api);
    let (slack6, pd6) = &seen[6];
    let last_slack: Vec<_> = slack_end[slack6.len()..].to_vec();
    assert_eq!(
        last_slack,
        vec![
            ("chat.update".to_string(), false),
            ("chat.postMessage".to_string(), false)
        ],
        "the message shows the final state, and its thread says so"
    );
    assert_eq!(pd_end[pd6.len()..], [("trigger".to_string(), false)]);
    let messages = api.messages();
    let reply = messages.last().unwrap();
    assert!(
        reply.body["text"].as_str().unwrap().contains("Stable"),
        "{reply:?}"
    );

    // Later ticks: nothing more.
    let r = e
        .tick_at(Duration::from_secs(5), last + SignedDuration::from_mins(40))
        .await
        .unwrap();
    assert_eq!(r.counts.records, 0);
    assert_eq!(people_calls(&s, &api), (slack_end, pd_end), "once");
    println!(
        "flapping: final state after {} min stable: Slack 2 calls, PagerDuty 1 trigger",
        31
    );
}
