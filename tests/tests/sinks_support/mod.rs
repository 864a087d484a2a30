//! Shared by the sink tests: moto with the routing document in SSM and the
//! secrets in Secrets Manager / SSM, and the three receiver stand-ins.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use alert_aws::RetryStage;
use alert_envelope::{Envelope, SCHEMA_V1, Severity, Source, Status, derive_id, label_fingerprint};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::config::EnricherArgs;
use alert_manager_enricher::event::Record;
use alert_manager_enricher::routes_source::{Routes, RoutesSource};
use alert_manager_enricher::secrets::SecretStore;
use alert_manager_enricher::state::{StateConfig, StateFailure, StateStore};
use alert_manager_tests::{
    ACCOUNT_ID, MotoServer, PagerDutyReceiver, REGION, SlackReceiver, WebhookReceiver,
};
use clap::Parser;
use serde_json::json;

pub const PD_KEY: &str = "R0UT1NGK3Y0123456789abcdefABCDEF";
pub const HMAC_KEY: &str = "whsec-9f8e7d6c5b4a39281706f5e4d3c2b1a0";
pub const ROUTES_PARAM: &str = "/alert-manager/routes";

pub struct Stack {
    pub moto: MotoServer,
    pub config: aws_config::SdkConfig,
    pub topic: String,
    pub queue: String,
    pub team_topic: String,
    pub team_queue: String,
    pub slack: SlackReceiver,
    pub pagerduty: PagerDutyReceiver,
    pub webhook: WebhookReceiver,
}

pub fn routes(s: &Stack) -> String {
    format!(
        r#"
version: 1
sinks:
  team-slack:
    type: slack
    webhook_url: {{secret: alert-manager/slack}}
    allow_http: true
  team-pd:
    type: pagerduty
    routing_key: {{secret: alert-manager/pagerduty, key: payments}}
    url: {pd}
    allow_http: true
  team-topic:
    type: sns
    topic_arn: {team_topic}
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
    sinks: [team-slack, team-pd, audit, team-topic]
  - name: slack-only
    match: {{labels.team: slack-only}}
    sinks: [team-slack]
  - name: audit-only
    match: {{labels.team: audit-only}}
    sinks: [audit]
"#,
        pd = s.pagerduty.url(),
        hook = s.webhook.url(),
        team_topic = s.team_topic,
    )
}

pub async fn stack() -> Stack {
    let moto = MotoServer::start().await;
    let config = moto.sdk_config().await;
    let topic = moto.create_topic("enriched").await;
    let queue = moto.subscribe_queue(&topic, "enriched-inbox", None).await;
    let team_topic = moto.create_topic("payments-alerts").await;
    let team_queue = moto
        .subscribe_queue(
            &team_topic,
            "payments-inbox",
            Some(r#"{"team":["payments"]}"#),
        )
        .await;
    let s = Stack {
        team_topic,
        team_queue,
        moto,
        config,
        topic,
        queue,
        slack: SlackReceiver::start().await,
        pagerduty: PagerDutyReceiver::start().await,
        webhook: WebhookReceiver::start(Some(HMAC_KEY.as_bytes().to_vec())).await,
    };
    let sm = aws_sdk_secretsmanager::Client::new(&s.config);
    sm.create_secret()
        .name("alert-manager/slack")
        .secret_string(s.slack.url())
        .send()
        .await
        .unwrap();
    sm.create_secret()
        .name("alert-manager/pagerduty")
        .secret_string(format!(r#"{{"payments": "{PD_KEY}", "search": "other"}}"#))
        .send()
        .await
        .unwrap();
    let ssm = aws_sdk_ssm::Client::new(&s.config);
    ssm.put_parameter()
        .name("/alert-manager/webhook-hmac")
        .value(HMAC_KEY)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    ssm.put_parameter()
        .name(ROUTES_PARAM)
        .value(routes(&s))
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    s
}

pub async fn enricher(s: &Stack, routes_ttl: Duration) -> Enricher {
    enricher_with_ec2(s, routes_ttl, aws_sdk_ec2::Client::new(&s.config)).await
}

/// Like [`enricher`], with this EC2 client (a stalling endpoint, say).
pub async fn enricher_with_ec2(
    s: &Stack,
    routes_ttl: Duration,
    ec2: aws_sdk_ec2::Client,
) -> Enricher {
    enricher_with_args(s, routes_ttl, ec2, &[]).await
}

/// Like [`enricher_with_ec2`], with more command-line settings.
pub async fn enricher_with_args(
    s: &Stack,
    routes_ttl: Duration,
    ec2: aws_sdk_ec2::Client,
    args: &[&str],
) -> Enricher {
    let mut argv = vec!["alert-manager-enricher", "--enriched-topic-arn", &s.topic];
    argv.extend_from_slice(args);
    let config = EnricherArgs::try_parse_from(argv)
        .unwrap()
        .validate()
        .unwrap();
    let ssm = aws_sdk_ssm::Client::new(&s.config);
    let routes = Routes::load(
        RoutesSource::Ssm {
            name: ROUTES_PARAM.into(),
            ttl: routes_ttl,
        },
        ssm.clone(),
    )
    .await
    .unwrap();
    let secrets = SecretStore::new(
        aws_sdk_secretsmanager::Client::new(&s.config),
        ssm,
        Duration::from_secs(300),
    );
    Enricher::new(
        config,
        ec2,
        aws_sdk_cloudwatch::Client::new(&s.config),
        aws_sdk_sns::Client::new(&s.config),
        REGION.into(),
    )
    .with_delivery(routes, secrets)
    .with_eventbridge(aws_sdk_eventbridge::Client::new(&s.config))
    .with_retry(RetryStage::new(
        Duration::from_millis(50),
        Duration::from_millis(300),
    ))
}

/// A state store over `table` in moto (see `MotoServer::create_state_table`),
/// or over any DynamoDB endpoint `config` points at.
pub fn state_store(
    config: &aws_config::SdkConfig,
    table: &str,
    failure: StateFailure,
) -> StateStore {
    StateStore::new(
        aws_sdk_dynamodb::Client::new(config),
        StateConfig::new(table, 168, failure).unwrap(),
    )
}

pub fn envelope(name: &str, team: &str, status: Status) -> Envelope {
    let starts_at: jiff::Timestamp = "2026-11-28T08:00:00Z".parse().unwrap();
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), name.to_string());
    labels.insert("severity".to_string(), "critical".to_string());
    labels.insert("team".to_string(), team.to_string());
    labels.insert("namespace".to_string(), team.to_string());
    let fingerprint = label_fingerprint(&labels);
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_string(), format!("{name} is on fire"));
    Envelope {
        schema: SCHEMA_V1.into(),
        id: derive_id("prod", &fingerprint, status, starts_at, None),
        source: Source::Alertmanager,
        cluster: "prod".into(),
        status,
        alertname: name.into(),
        severity: Severity::Critical,
        severity_raw: Some("critical".into()),
        fingerprint,
        group_key: None,
        receiver: None,
        starts_at,
        ends_at: (status == Status::Resolved)
            .then(|| starts_at + jiff::SignedDuration::from_secs(600)),
        generator_url: Some("http://prometheus:9090/graph?g0.expr=up".into()),
        external_url: Some("http://alertmanager:9093".into()),
        truncated_alerts: 0,
        labels,
        annotations,
        kubernetes: None,
        aws: None,
        enrichment: None,
        truncated: false,
    }
}

/// The `event_action` of every event PagerDuty accepted, in order.
pub fn pd_actions(s: &Stack) -> Vec<String> {
    s.pagerduty
        .requests()
        .iter()
        .filter(|r| r.answered == 202)
        .map(|r| {
            r.json.as_ref().unwrap()["event_action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Requests a receiver answered with `status`.
pub fn accepted(requests: &[alert_manager_tests::Recorded], status: u16) -> usize {
    requests.iter().filter(|r| r.answered == status).count()
}

pub fn records(envs: &[&Envelope]) -> Vec<Record> {
    envs.iter()
        .enumerate()
        .map(|(i, e)| Record {
            message_id: format!("msg-{i}"),
            body: serde_json::to_string(e).unwrap(),
            group: None,
        })
        .collect()
}

/// Deliveries the state table `table` holds, per sink of `sinks`.
pub async fn recorded_deliveries(s: &Stack, table: &str, sinks: &[&str]) -> Vec<usize> {
    let items = aws_sdk_dynamodb::Client::new(&s.config)
        .scan()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    sinks
        .iter()
        .map(|sink| {
            items
                .iter()
                .filter_map(|item| item.get("sinks")?.as_m().ok()?.get(*sink)?.as_m().ok())
                .filter_map(|record| Some(record.get("ids")?.as_l().ok()?.len()))
                .sum()
        })
        .collect()
}

/// An SQS event of one record per envelope, as the event source mapping sends it.
pub fn sqs_event(envs: &[Envelope]) -> serde_json::Value {
    let records: Vec<_> = envs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "messageId": format!("msg-{i}"),
                "receiptHandle": format!("handle-{i}"),
                "body": serde_json::to_string(e).unwrap(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:enricher-inbox"),
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// One EC2 instance in moto with `tags`; answers its id.
pub async fn tagged_instance(s: &Stack, tags: &[(&str, &str)]) -> String {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    let ec2 = aws_sdk_ec2::Client::new(&s.config);
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
    for (key, value) in tags {
        spec = spec.tags(Tag::builder().key(*key).value(*value).build());
    }
    let out = ec2
        .run_instances()
        .image_id(image)
        .min_count(1)
        .max_count(1)
        .tag_specifications(spec.build())
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_string()
}
