//! The `slack_app` sink (Slack's Web API) with the alert state store in
//! moto's DynamoDB, against a Web API stand-in that refuses what Slack
//! refuses: one message per alert's life, updated in place on resolve, with
//! its thread; repeats within `repeat_interval` quiet; Slack's errors as
//! the one verdict.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::time::Duration;

use alert_envelope::{Envelope, Status};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::state::StateFailure;
use alert_manager_tests::SlackApi;
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
  - name: payments
    match: {{labels.team: payments}}
    sinks: [payments-slack, team-pd]
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
