//! A storm end to end, through the enricher against moto (SNS, SQS, EC2
//! with 100 instances in 4 nodegroups, SSM, Secrets Manager, DynamoDB with
//! the stack's table and index) and the Slack Web API, PagerDuty and
//! webhook stand-ins: 500 alerts from 2 clusters in 60 s, then their
//! resolves. The enricher runs as at simulated times (`process_at`,
//! `tick_at`), 1.2 s apart, so the 10 s update limit is exercised without
//! the test waiting for it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::collections::BTreeMap;
use std::time::Duration;

use alert_envelope::{AwsContext, Envelope, Status, derive_id, label_fingerprint};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::state::{StateConfig, StateFailure, StateStore};
use alert_manager_tests::agent::receive_until;
use alert_manager_tests::{Recorded, SlackApi};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sinks_support::{ROUTES_PARAM, Stack, enricher_with_args, envelope, records, stack};

const TABLE: &str = "alert-manager-state";
const BOT_TOKEN: &str = "xoxb-1234-5678-abcdefghijklmnop";
const CHANNEL: &str = "C0123456789";
const THRESHOLD: usize = 20;
const WINDOW_S: u64 = 120;
const ALERTS: usize = 500;
const CLUSTERS: [&str; 2] = ["prod-eu", "prod-us"];
const NAMES: [&str; 2] = ["PodCrashLooping", "KubeNodeNotReady"];
const GROUPS: usize = 4;

async fn storm_stack() -> (Stack, SlackApi, Vec<String>) {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let s = stack().await;
    let api = SlackApi::start(BOT_TOKEN, &[(CHANNEL, "oncall")]).await;
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
  oncall-slack:
    type: slack_app
    bot_token: {{secret: alert-manager/slack-bot}}
    channel: oncall
  oncall-pd:
    type: pagerduty
    routing_key: {{secret: alert-manager/pagerduty, key: payments}}
    url: {pd}
    allow_http: true
  audit:
    type: webhook
    url: {hook}
    hmac_key: {{ssm: /alert-manager/webhook-hmac}}
    allow_http: true
routes:
  - name: topic
    sinks: [enriched]
    continue: true
  - name: payments
    match: {{labels.team: payments}}
    sinks: [oncall-slack, oncall-pd, audit]
    storm: {{threshold: {THRESHOLD}, window: {WINDOW_S}s, group_by: [cluster, alertname]}}
"#,
        pd = s.pagerduty.url(),
        hook = s.webhook.url(),
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
    let ec2 = aws_sdk_ec2::Client::new(&s.config);
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let mut instances = Vec::new();
    for nodegroup in ["ng-a", "ng-b", "ng-c", "ng-d"] {
        let out = ec2
            .run_instances()
            .image_id(&image)
            .min_count(25)
            .max_count(25)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(
                        Tag::builder()
                            .key("eks:nodegroup-name")
                            .value(nodegroup)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        instances.extend(
            out.instances()
                .iter()
                .map(|i| i.instance_id().unwrap().to_string()),
        );
    }
    assert_eq!(instances.len(), 100);
    (s, api, instances)
}

async fn storm_enricher(s: &Stack, api: &SlackApi) -> Enricher {
    enricher_with_args(
        s,
        Duration::from_secs(600),
        aws_sdk_ec2::Client::new(&s.config),
        &["--slack-api-url", &api.url()],
    )
    .await
    .with_state(StateStore::new(aws_sdk_dynamodb::Client::new(&s.config), {
        let mut config = StateConfig::new(TABLE, 168, StateFailure::Retry).unwrap();
        // moto copies the whole table for every item of a TransactWriteItems,
        // so with 500 alerts in it a write takes seconds, not milliseconds.
        config.call_timeout = Duration::from_secs(15);
        config
    }))
}

/// Alert `i` of the storm: its cluster, name, pod and instance.
fn alert(i: usize, instance: &str, status: Status) -> Envelope {
    let mut env = envelope(NAMES[(i / 2) % 2], "payments", status);
    env.cluster = CLUSTERS[i % 2].into();
    env.labels.insert("pod".into(), format!("api-{i}"));
    env.labels
        .insert("namespace".into(), format!("ns-{}", i % 7));
    env.fingerprint = label_fingerprint(&env.labels);
    env.id = derive_id(&env.cluster, &env.fingerprint, status, env.starts_at, None);
    env.aws = Some(AwsContext {
        instance_id: Some(instance.into()),
        ..Default::default()
    });
    env
}

fn group_of(key: &str) -> String {
    key.trim_start_matches("#storm/payments/").to_string()
}

/// The storm payloads the webhook accepted, by storm key, in order.
fn webhook_summaries(requests: &[Recorded]) -> BTreeMap<String, Vec<Value>> {
    let mut by_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.answered == 200) {
        let json = r.json.clone().unwrap();
        if json["type"] == "storm" {
            by_key
                .entry(json["key"].as_str().unwrap().to_string())
                .or_default()
                .push(json);
        }
    }
    by_key
}

/// The PagerDuty events accepted per dedup key of a storm, in order.
fn pd_storm_actions(requests: &[Recorded]) -> BTreeMap<String, Vec<String>> {
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in requests.iter().filter(|r| r.answered == 202) {
        let json = r.json.clone().unwrap();
        let key = json["dedup_key"].as_str().unwrap();
        if key.starts_with("#storm/") {
            by_key
                .entry(key.to_string())
                .or_default()
                .push(json["event_action"].as_str().unwrap().to_string());
        }
    }
    by_key
}

#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_500_alerts_becomes_one_summary_per_group_that_keeps_itself_current_and_closes()
{
    let (s, api, instances) = storm_stack().await;
    let e = storm_enricher(&s, &api).await;
    let t0: Timestamp = "2026-12-02T10:00:00Z".parse().unwrap();
    let firing: Vec<Envelope> = (0..ALERTS)
        .map(|i| alert(i, &instances[i % instances.len()], Status::Firing))
        .collect();
    let resolved: Vec<Envelope> = (0..ALERTS)
        .map(|i| alert(i, &instances[i % instances.len()], Status::Resolved))
        .collect();

    // 500 alerts in 60 s: a batch of 10 every 1.2 s.
    let mut absorbed = 0;
    let mut first_summary_at = None;
    for (b, chunk) in firing.chunks(10).enumerate() {
        let at = t0 + SignedDuration::from_millis(1200 * b as i64);
        let batch: Vec<&Envelope> = chunk.iter().collect();
        let r = e
            .process_at(records(&batch), Duration::from_secs(60), at)
            .await;
        assert!(r.failed_message_ids.is_empty(), "batch {b}: {r:?}");
        absorbed += r.counts.in_storm;
        if r.counts.storm_updates > 0 && first_summary_at.is_none() {
            first_summary_at = Some(at);
        }
    }
    // Their resolves, 10 s later, a batch every 0.2 s.
    let resolves_at = t0 + SignedDuration::from_secs(70);
    for (b, chunk) in resolved.chunks(10).enumerate() {
        let at = resolves_at + SignedDuration::from_millis(200 * b as i64);
        let batch: Vec<&Envelope> = chunk.iter().collect();
        let r = e
            .process_at(records(&batch), Duration::from_secs(60), at)
            .await;
        assert!(r.failed_message_ids.is_empty(), "resolve batch {b}: {r:?}");
        absorbed += r.counts.in_storm;
    }
    // The ticks after it find nothing left to do.
    let tick = e
        .tick_at(Duration::from_secs(20), t0 + SignedDuration::from_secs(400))
        .await
        .unwrap();
    assert_eq!(tick.counts.storm_updates, 0, "{:?}", tick.counts);

    // One summary per group in Slack, updated in place.
    let messages = api.messages();
    let summaries: Vec<_> = messages
        .iter()
        .filter(|m| {
            m.thread_ts.is_none() && m.body["text"].as_str().unwrap_or("").contains("Storm")
        })
        .collect();
    let alone = messages.iter().filter(|m| m.thread_ts.is_none()).count() - summaries.len();
    println!(
        "slack: {} summaries for {GROUPS} groups, updates per summary {:?}, {alone} alerts posted on their own before their storm (threshold {THRESHOLD}), {} Web API calls for {} envelopes",
        summaries.len(),
        summaries.iter().map(|m| 1 + m.updates).collect::<Vec<_>>(),
        api.calls().len(),
        2 * ALERTS
    );
    assert_eq!(summaries.len(), GROUPS, "one summary per group");
    assert_eq!(
        alone,
        GROUPS * THRESHOLD,
        "the alerts up to the threshold go on their own"
    );
    let limit = 1 + WINDOW_S as usize / 10;
    for m in &summaries {
        assert!(m.updates < limit, "at most 1 + window/10 s updates: {m:?}");
        let text = m.body["text"].as_str().unwrap();
        assert!(
            text.contains("Storm over (every alert resolved)"),
            "closed: {text}"
        );
    }

    // PagerDuty: one incident per group, resolved at the end.
    let pd = pd_storm_actions(&s.pagerduty.requests());
    println!(
        "pagerduty: {} storm incidents, events per incident {:?}",
        pd.len(),
        pd.values().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(pd.len(), GROUPS);
    for (key, actions) in &pd {
        assert!(actions.len() <= limit, "{key}: {actions:?}");
        assert_eq!(actions.last().map(String::as_str), Some("resolve"), "{key}");
        assert!(
            actions[..actions.len() - 1].iter().all(|a| a == "trigger"),
            "{actions:?}"
        );
    }

    // The webhook: one payload per update, the last one closed.
    let hooks = webhook_summaries(&s.webhook.requests());
    println!(
        "webhook: {} storms, payloads per storm {:?}",
        hooks.len(),
        hooks.values().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(hooks.len(), GROUPS);
    for (key, payloads) in &hooks {
        assert!(payloads.len() <= limit, "{key}: {}", payloads.len());
        let last = payloads.last().unwrap();
        assert_eq!(last["status"], "closed", "{key}: {last}");
        assert_eq!(last["closed_reason"], "every alert resolved");
        assert_eq!(last["firing"], 0);
        assert_eq!(last["resolved"], ALERTS / GROUPS, "{}", group_of(key));
        assert_eq!(last["first_alerts"].as_array().unwrap().len(), 10);
        assert_eq!(
            last["top"]["nodegroups"].as_array().unwrap().len(),
            4,
            "{last}"
        );
        assert_eq!(
            last["top"]["namespaces"].as_array().unwrap().len(),
            5,
            "top 5 of 7"
        );
        let updates: Vec<u64> = payloads
            .iter()
            .map(|p| p["update"].as_u64().unwrap())
            .collect();
        assert_eq!(updates, (1..=payloads.len() as u64).collect::<Vec<_>>());
    }

    // Every envelope on the enriched topic, the absorbed ones marked.
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = receive_until(&sqs, &s.queue, Duration::from_secs(120), |g| {
        g.len() >= 2 * ALERTS
    })
    .await;
    let marked = got
        .iter()
        .filter(|(_, a)| a.get("in_storm").map(String::as_str) == Some("true"))
        .count();
    println!(
        "enriched topic: {} of {} envelopes, {marked} marked in_storm ({absorbed} absorbed); first summary {} s after the first alert",
        got.len(),
        2 * ALERTS,
        first_summary_at.map_or(-1.0, |t| t.duration_since(t0).as_secs_f64())
    );
    assert_eq!(got.len(), 2 * ALERTS, "every envelope");
    assert_eq!(marked as u64, absorbed);
    // Each group's resolves of the alerts sent on their own go on their own.
    assert_eq!(absorbed as usize, 2 * ALERTS - 2 * GROUPS * THRESHOLD);
    let storm = got
        .iter()
        .find_map(|(e, _)| e.enrichment.as_ref()?.in_storm.clone())
        .unwrap();
    assert_eq!(storm.route, "payments");
    assert_eq!(storm.sinks, vec!["oncall-slack", "oncall-pd", "audit"]);
    assert_eq!(
        storm.group.keys().collect::<Vec<_>>(),
        ["alertname", "cluster"]
    );
}
