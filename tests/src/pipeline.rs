//! The whole pipeline on loopback, wired the way it runs in AWS:
//!
//! ```text
//! Alertmanager ─webhook─▶ agent (IRSA) ─Publish─▶ raw topic ─▶ SQS inbox (DLQ after N receives)
//!   ─▶ poller (the event source mapping) ─invoke─▶ Runtime API emulator (`cargo lambda
//!      watch --only-lambda-apis`) ─▶ the workspace-built enricher binary
//!   ─▶ enriched topic ─▶ subscriber queues (one with a filter policy)
//!                    └▶ Slack / PagerDuty / webhook stand-ins (routing document)
//! ```
//!
//! The poller is the one piece that stands in for AWS: it receives up to 10
//! messages, invokes the function with a real-shaped SQS event, deletes what
//! succeeded and leaves each `batchItemFailures` entry to come back after the
//! visibility timeout, so SQS's own redrive (moto implements it) moves a
//! message to the DLQ after `maxReceiveCount` receives.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::agent::{AGENT_TOKEN, AgentProcess};
use crate::{
    Alertmanager, CloudWatchBridge, LambdaWatch, MockKubeApi, MotoServer, PagerDutyReceiver,
    REGION, SlackApi, SlackReceiver, WebhookReceiver, workspace_root,
};

/// The function name the emulator serves: the enricher's binary name.
pub const FUNCTION: &str = "alert-manager-enricher";
/// The namespace whose annotation names the owning team.
pub const NAMESPACE: &str = "payments";
/// The pod the demo alert is about.
pub const POD: &str = "checkout-7d9f8b6c5-x2k4p";
/// HMAC key of the webhook sink (kept in SSM SecureString).
pub const HMAC_KEY: &str = "whsec-pipeline-3c1d0f9a8b7e6d5c";
/// PagerDuty routing key (kept in Secrets Manager).
pub const PD_KEY: &str = "PIPELINEKEY0123456789abcdefABCDE";
/// The Slack app's bot token (kept in Secrets Manager).
pub const SLACK_BOT_TOKEN: &str = "xoxb-pipeline-7d1e2f3a4b5c6d7e8f9a";
/// The Slack app's channel: (id, name).
pub const SLACK_CHANNEL: (&str, &str) = ("C0PAYMENTS1", "payments-alerts");
/// The alert state table, with `state`.
pub const STATE_TABLE: &str = "alert-manager-state";

/// What to start.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Debian's Alertmanager in front of the agent.
    pub alertmanager: bool,
    /// Slack, PagerDuty and webhook stand-ins, routed to for team `payments`.
    pub sinks: bool,
    /// SQS visibility timeout of the inbox, seconds.
    pub visibility_timeout: i32,
    /// Receives before SQS moves a message to the DLQ.
    pub max_receive_count: u32,
    /// Alertmanager `max_alerts` for alerts labelled `cut="true"` (0: unlimited).
    pub max_alerts: u32,
    /// Extra environment of the function (e.g. a dead EC2 endpoint).
    pub lambda_env: Vec<(String, String)>,
    /// Extra environment of the agent.
    pub agent_env: Vec<(String, String)>,
    /// Route the agent's AWS traffic through a [`TcpProxy`], so SNS can be
    /// taken away from it (and given back) without losing moto's state.
    pub agent_via_proxy: bool,
    /// The alert state store (`STATE_TABLE`, the table made from the
    /// stack's definition) and, with `sinks`, a Slack app sink against the
    /// Web API stand-in, whose messages are updated in place.
    pub state: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            alertmanager: true,
            sinks: true,
            visibility_timeout: 5,
            max_receive_count: 3,
            max_alerts: 0,
            lambda_env: Vec::new(),
            agent_env: Vec::new(),
            agent_via_proxy: false,
            state: false,
        }
    }
}

/// One message as the poller handled it.
#[derive(Debug, Clone)]
pub struct Handled {
    /// SQS message id.
    pub message_id: String,
    /// Envelope id, when the body was one.
    pub envelope_id: Option<String>,
    /// When the poller received it.
    pub received: Instant,
    /// When the invocation that carried it returned.
    pub done: Instant,
    /// Reported as a batch item failure.
    pub failed: bool,
    /// `ApproximateReceiveCount` at this receive.
    pub receive_count: u32,
    /// `SentTimestamp` (epoch ms): when SNS delivered it to the queue.
    pub sent_epoch_ms: Option<i64>,
}

/// What the poller saw.
#[derive(Debug, Default, Clone)]
pub struct PollerStats {
    /// Invocations made.
    pub invocations: u64,
    /// Every message handled, in order.
    pub handled: Vec<Handled>,
    /// Invocations that failed as a whole (function error, timeout).
    pub errors: Vec<String>,
}

/// The stand-in for Lambda's SQS event source mapping.
pub struct Poller {
    task: JoinHandle<()>,
    stats: Arc<Mutex<PollerStats>>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Poller {
    /// Polls `queue_url` and invokes `FUNCTION` on `watch_port` until dropped.
    pub fn start(
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        queue_arn: String,
        watch_port: u16,
    ) -> Poller {
        let stats = Arc::new(Mutex::new(PollerStats::default()));
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let url = format!(
                "http://127.0.0.1:{watch_port}/2015-03-31/functions/{FUNCTION}/invocations"
            );
            loop {
                let out = sqs
                    .receive_message()
                    .queue_url(&queue_url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await;
                let messages = match out {
                    Ok(o) => o.messages().to_vec(),
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                if messages.is_empty() {
                    continue;
                }
                let received = Instant::now();
                let event = sqs_event(&messages, &queue_arn);
                // A bound far above any batch's time (the function is warm).
                let response = http
                    .post(&url)
                    .json(&event)
                    .timeout(Duration::from_secs(600))
                    .send()
                    .await;
                let result: Result<Value, String> = match response {
                    Ok(r) if r.status().is_success() => {
                        r.json::<Value>().await.map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!("invoke answered {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                let failed_ids: Vec<String> = match &result {
                    Ok(v) if v.get("batchItemFailures").is_some() => v["batchItemFailures"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|f| f["itemIdentifier"].as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    // A function error fails the whole batch, as Lambda does.
                    _ => messages
                        .iter()
                        .filter_map(|m| m.message_id().map(String::from))
                        .collect(),
                };
                let done = Instant::now();
                // One DeleteMessageBatch for what succeeded, as the event source mapping does.
                let entries: Vec<_> = messages
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| {
                        !failed_ids
                            .iter()
                            .any(|f| Some(f.as_str()) == m.message_id())
                    })
                    .filter_map(|(i, m)| {
                        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(m.receipt_handle().unwrap_or_default())
                            .build()
                            .ok()
                    })
                    .collect();
                if !entries.is_empty() {
                    let _ = sqs
                        .delete_message_batch()
                        .queue_url(&queue_url)
                        .set_entries(Some(entries))
                        .send()
                        .await;
                }
                for m in &messages {
                    let id = m.message_id().unwrap_or_default().to_string();
                    let failed = failed_ids.contains(&id);
                    let envelope_id = m
                        .body()
                        .and_then(|b| serde_json::from_str::<Value>(b).ok())
                        .and_then(|v| v["id"].as_str().map(String::from));
                    let receive_count = m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(1);
                    let sent_epoch_ms = m
                        .attributes()
                        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
                        .and_then(|t| t.parse().ok());
                    if let Ok(mut s) = shared.lock() {
                        s.handled.push(Handled {
                            sent_epoch_ms,
                            message_id: id,
                            envelope_id,
                            received,
                            done,
                            failed,
                            receive_count,
                        });
                    }
                }
                if let Ok(mut s) = shared.lock() {
                    s.invocations += 1;
                    if let Err(e) = result {
                        s.errors.push(e);
                    }
                }
            }
        });
        Poller { task, stats }
    }

    /// A copy of the stats so far.
    pub fn stats(&self) -> PollerStats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A real-shaped SQS event (as Lambda's event source mapping sends it).
pub fn sqs_event(messages: &[aws_sdk_sqs::types::Message], queue_arn: &str) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attrs: BTreeMap<String, String> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id().unwrap_or_default(),
                "receiptHandle": m.receipt_handle().unwrap_or_default(),
                "body": m.body().unwrap_or_default(),
                "attributes": attrs,
                "messageAttributes": {},
                "md5OfBody": m.md5_of_body().unwrap_or_default(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Everything, running.
pub struct Pipeline {
    /// The AWS side.
    pub moto: MotoServer,
    /// CloudWatch protocol bridge in front of moto.
    pub bridge: CloudWatchBridge,
    /// SDK config for moto.
    pub config: aws_config::SdkConfig,
    /// Where the agent publishes.
    pub raw_topic: String,
    /// Where the enricher publishes.
    pub enriched_topic: String,
    /// The enricher's input queue.
    pub inbox: String,
    /// Its dead-letter queue.
    pub dlq: String,
    /// A subscriber of everything enriched.
    pub all_queue: String,
    /// A subscriber with filter policy `team=payments, severity=critical`.
    pub critical_queue: String,
    /// The seeded EC2 instance (tags team=payments, owner=alice).
    pub instance_id: String,
    /// The mock Kubernetes API (node → that instance, namespace → team).
    pub kube: MockKubeApi,
    /// The agent.
    pub agent: AgentProcess,
    /// Between the agent and moto, when asked for.
    pub proxy: Option<crate::TcpProxy>,
    /// The enricher.
    pub watch: LambdaWatch,
    /// The event source mapping.
    pub poller: Poller,
    /// Sink stand-ins, when enabled.
    pub slack: Option<SlackReceiver>,
    /// PagerDuty stand-in.
    pub pagerduty: Option<PagerDutyReceiver>,
    /// Webhook stand-in (verifies the signature).
    pub webhook: Option<WebhookReceiver>,
    /// Slack Web API stand-in, with `state` and `sinks`.
    pub slack_app: Option<SlackApi>,
    /// Alertmanager, when enabled.
    pub alertmanager: Option<Alertmanager>,
    /// The token file Alertmanager reads, and the kubeconfig.
    pub dir: tempfile::TempDir,
    /// When the pipeline was up.
    pub started: Instant,
}

fn check<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

impl Pipeline {
    /// Starts every component; `progress` is told what is happening.
    pub async fn start(options: PipelineOptions, progress: &dyn Fn(&str)) -> Pipeline {
        progress(
            "starting moto (SNS, SQS, STS, EC2, SSM, Secrets Manager) and the CloudWatch bridge",
        );
        let moto = MotoServer::start().await;
        let bridge = CloudWatchBridge::start(&moto.endpoint());
        let config = moto.sdk_config().await;
        let sns = aws_sdk_sns::Client::new(&config);
        let sqs = aws_sdk_sqs::Client::new(&config);

        progress(
            "creating the stack: raw and enriched topics, the enricher queue with its DLQ, subscriber queues",
        );
        let topic = |name: &'static str| {
            let sns = sns.clone();
            async move {
                check("create topic", sns.create_topic().name(name).send().await)
                    .topic_arn()
                    .unwrap_or_default()
                    .to_string()
            }
        };
        let raw_topic = topic("alerts-raw").await;
        let enriched_topic = topic("alerts-enriched").await;
        let dlq = check(
            "create DLQ",
            sqs.create_queue().queue_name("enricher-dlq").send().await,
        )
        .queue_url()
        .unwrap_or_default()
        .to_string();
        let dlq_arn = queue_arn(&sqs, &dlq).await;
        let inbox = moto
            .subscribe_queue(&raw_topic, "enricher-inbox", None)
            .await;
        check(
            "inbox attributes",
            sqs.set_queue_attributes()
                .queue_url(&inbox)
                .attributes(
                    QueueAttributeName::VisibilityTimeout,
                    options.visibility_timeout.to_string(),
                )
                .attributes(
                    QueueAttributeName::RedrivePolicy,
                    json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": options.max_receive_count})
                        .to_string(),
                )
                .send()
                .await,
        );
        let inbox_arn = queue_arn(&sqs, &inbox).await;
        let all_queue = moto
            .subscribe_queue(&enriched_topic, "subscriber-all", None)
            .await;
        let critical_queue = moto
            .subscribe_queue(
                &enriched_topic,
                "payments-critical",
                Some(r#"{"team":["payments"],"severity":["critical"]}"#),
            )
            .await;

        progress("seeding an EC2 instance (tags team=payments, owner=alice) and its CPU metrics");
        let instance_id = seed_instance(&config, &bridge).await;

        progress(
            "starting the mock Kubernetes API (node → that instance, namespace payments annotated with its team)",
        );
        let kube = MockKubeApi::start(cluster_objects(&instance_id)).await;
        let dir = check("tempdir", tempfile::tempdir());
        let kubeconfig = kube.write_kubeconfig(dir.path());

        progress("starting the agent with web-identity (IRSA) credentials");
        let kubeconfig_s = kubeconfig.to_string_lossy().to_string();
        let mut agent_env: Vec<(&str, &str)> = vec![
            ("KUBERNETES_CONTEXT", "auto"),
            ("KUBECONFIG", kubeconfig_s.as_str()),
            ("RUST_LOG", "info"),
        ];
        agent_env.extend(
            options
                .agent_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let proxy = if options.agent_via_proxy {
            Some(crate::TcpProxy::start(moto.port()).await)
        } else {
            None
        };
        let agent_endpoint = proxy
            .as_ref()
            .map_or_else(|| moto.endpoint(), |p| p.endpoint());
        let agent = AgentProcess::start(&agent_endpoint, &raw_topic, &agent_env).await;
        crate::wait_until_http_ok(
            "agent /readyz",
            &format!("{}/readyz", agent.metrics),
            Duration::from_secs(30),
        )
        .await;

        let (mut slack, mut pagerduty, mut webhook, mut slack_app) = (None, None, None, None);
        let mut lambda_env: Vec<(String, String)> = vec![
            ("ENRICHED_TOPIC_ARN".into(), enriched_topic.clone()),
            ("AWS_ENDPOINT_URL".into(), moto.endpoint()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH".into(), bridge.endpoint()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        if options.state {
            progress("creating the alert state table (DynamoDB) from the stack's definition");
            moto.create_state_table(STATE_TABLE).await;
            lambda_env.push(("STATE_TABLE".into(), STATE_TABLE.into()));
        }
        if options.sinks {
            progress(
                "starting the Slack, PagerDuty and signed-webhook stand-ins; secrets into Secrets Manager and SSM",
            );
            let s = SlackReceiver::start().await;
            let p = PagerDutyReceiver::start().await;
            let w = WebhookReceiver::start(Some(HMAC_KEY.as_bytes().to_vec())).await;
            let sm = aws_sdk_secretsmanager::Client::new(&config);
            check(
                "slack secret",
                sm.create_secret()
                    .name("alert-manager/slack")
                    .secret_string(s.url())
                    .send()
                    .await,
            );
            check(
                "pagerduty secret",
                sm.create_secret()
                    .name("alert-manager/pagerduty")
                    .secret_string(PD_KEY)
                    .send()
                    .await,
            );
            check(
                "hmac parameter",
                aws_sdk_ssm::Client::new(&config)
                    .put_parameter()
                    .name("/alert-manager/webhook-hmac")
                    .value(HMAC_KEY)
                    .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
                    .send()
                    .await,
            );
            let app = match options.state {
                true => Some(SlackApi::start(SLACK_BOT_TOKEN, &[SLACK_CHANNEL]).await),
                false => None,
            };
            if let Some(app) = &app {
                check(
                    "slack bot secret",
                    sm.create_secret()
                        .name("alert-manager/slack-bot")
                        .secret_string(SLACK_BOT_TOKEN)
                        .send()
                        .await,
                );
                lambda_env.push(("SLACK_API_URL".into(), app.url()));
            }
            lambda_env.push(("ROUTES".into(), routes(&p.url(), &w.url(), app.is_some())));
            (slack, pagerduty, webhook, slack_app) = (Some(s), Some(p), Some(w), app);
        }
        lambda_env.extend(options.lambda_env.iter().cloned());

        progress(
            "starting the Lambda Runtime API emulator (`cargo lambda watch --only-lambda-apis`) and the enricher binary against it",
        );
        let env_refs: Vec<(&str, &str)> = lambda_env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let watch = LambdaWatch::start(&workspace_root().join("lambda"), FUNCTION, &env_refs).await;
        // One invocation before any alert flows: the function's init (SDK
        // clients, configuration) is done before any test's clock starts.
        progress("invoking the enricher once with no records");
        let warm = watch.invoke(FUNCTION, &json!({"Records": []})).await;
        assert!(
            matches!(&warm, Ok(v) if v["batchItemFailures"] == json!([])),
            "the enricher's warm-up invocation with no records: {warm:?}"
        );
        let poller = Poller::start(sqs.clone(), inbox.clone(), inbox_arn, watch.port());

        let alertmanager = if options.alertmanager {
            progress("starting Debian's Alertmanager, pointed at the agent with a bearer token");
            let token = dir.path().join("agent-token");
            check("token file", std::fs::write(&token, AGENT_TOKEN));
            Some(
                Alertmanager::start(&alertmanager_config(
                    &agent.webhook,
                    &token,
                    options.max_alerts,
                ))
                .await,
            )
        } else {
            None
        };
        Pipeline {
            moto,
            bridge,
            config,
            raw_topic,
            enriched_topic,
            inbox,
            dlq,
            all_queue,
            critical_queue,
            instance_id,
            kube,
            agent,
            proxy,
            watch,
            poller,
            slack,
            pagerduty,
            webhook,
            slack_app,
            alertmanager,
            dir,
            started: Instant::now(),
        }
    }

    /// An SQS client for moto.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.config)
    }

    /// Sends alerts into Alertmanager (`POST /api/v2/alerts`).
    pub async fn fire(&self, alerts: &Value) {
        match &self.alertmanager {
            Some(am) => am.post_alerts(alerts).await,
            None => panic!("the pipeline was started without Alertmanager"),
        }
    }
}

/// A postable Alertmanager alert about the demo pod.
pub fn pod_alert(name: &str, severity: &str, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": name, "severity": severity, "namespace": NAMESPACE, "pod": POD,
                   "container": "checkout", "job": "kube-state-metrics"},
        "annotations": {"summary": format!("{name}: checkout is crash looping"),
                        "runbook_url": "https://runbooks.example.com/KubePodCrashLooping"},
        "generatorURL": "http://prometheus.monitoring.svc:9090/graph?g0.expr=up",
    });
    if let Some(end) = ends_at {
        a["endsAt"] = json!(end);
    }
    a
}

fn routes(pagerduty: &str, webhook: &str, slack_app: bool) -> String {
    let mut doc = json!({
        "version": 1,
        "sinks": {
            "payments-slack": {"type": "slack", "webhook_url": {"secret": "alert-manager/slack"}, "allow_http": true},
            "payments-pd": {"type": "pagerduty", "routing_key": {"secret": "alert-manager/pagerduty"}, "url": pagerduty, "allow_http": true},
            "audit": {"type": "webhook", "url": webhook, "hmac_key": {"ssm": "/alert-manager/webhook-hmac"}, "allow_http": true},
        },
        "routes": [
            {"name": "everything-to-topic", "sinks": ["enriched"], "continue": true},
            {"name": "payments", "match": {"team": "payments"}, "sinks": ["payments-slack", "payments-pd", "audit"]},
        ],
    });
    if slack_app {
        doc["sinks"]["payments-slack-app"] = json!({"type": "slack_app", "bot_token": {"secret": "alert-manager/slack-bot"}, "channel": SLACK_CHANNEL.1});
        doc["routes"][1]["sinks"] = json!([
            "payments-slack",
            "payments-slack-app",
            "payments-pd",
            "audit"
        ]);
    }
    doc.to_string()
}

/// Alerts go to the agent; alerts labelled `cut="true"` go through a second
/// receiver with `max_alerts` (when non-zero), so both behaviours run at once.
pub fn alertmanager_config(webhook: &str, token: &std::path::Path, max_alerts: u32) -> String {
    format!(
        r#"
route:
  receiver: agent
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - matchers: ['cut="true"']
      receiver: agent-cut
receivers:
  - name: agent
    webhook_configs:
      - url: {webhook}
        send_resolved: true
        http_config:
          authorization:
            credentials_file: {token}
  - name: agent-cut
    webhook_configs:
      - url: {webhook}
        send_resolved: true
        max_alerts: {max_alerts}
        http_config:
          authorization:
            credentials_file: {token}
"#,
        token = token.display()
    )
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    check(
        "queue arn",
        sqs.get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await,
    )
    .attributes()
    .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
    .unwrap_or_default()
}

/// One EC2 instance with owner tags, and 10 minutes of CPU through the bridge.
pub async fn seed_instance(config: &aws_config::SdkConfig, bridge: &CloudWatchBridge) -> String {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let images = check("describe images", ec2.describe_images().send().await);
    let image = images
        .images()
        .first()
        .and_then(|i| i.image_id())
        .unwrap_or("ami-12c6146b")
        .to_string();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
    let out = check(
        "run instance",
        ec2.run_instances()
            .image_id(image)
            .instance_type(aws_sdk_ec2::types::InstanceType::M6iLarge)
            .min_count(1)
            .max_count(1)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(tag("team", "payments"))
                    .tags(tag("owner", "alice"))
                    .tags(tag("Name", "demo-node-1"))
                    .tags(tag("eks:nodegroup-name", "general"))
                    .build(),
            )
            .send()
            .await,
    );
    let id = out
        .instances()
        .first()
        .and_then(|i| i.instance_id())
        .unwrap_or_default()
        .to_string();
    let cw = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(config)
            .endpoint_url(bridge.endpoint())
            .build(),
    );
    let now = jiff::Timestamp::now().as_second();
    let mut put = cw.put_metric_data().namespace("AWS/EC2");
    for (k, v) in [35.0, 48.0, 62.0, 88.0, 97.0].into_iter().enumerate() {
        put = put.metric_data(
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(Dimension::builder().name("InstanceId").value(&id).build())
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                    now - 600 + 120 * k as i64,
                ))
                .value(v)
                .build(),
        );
    }
    check("put metric data", put.send().await);
    id
}

fn fixture(name: &str) -> Value {
    let path: PathBuf = workspace_root().join("agent/fixtures/kube").join(name);
    let text = check("read fixture", std::fs::read_to_string(&path));
    check("parse fixture", serde_json::from_str(&text))
}

/// The node (its providerID names the seeded instance), the namespaces and the pod.
pub fn cluster_objects(instance_id: &str) -> Vec<Value> {
    let mut node = fixture("node-managed.json");
    node["spec"]["providerID"] = json!(format!("aws:///us-east-1a/{instance_id}"));
    node["metadata"]["labels"]["topology.kubernetes.io/zone"] = json!("us-east-1a");
    node["metadata"]["labels"]["topology.kubernetes.io/region"] = json!(REGION);
    node["metadata"]["labels"]["node.kubernetes.io/instance-type"] = json!("m6i.large");
    vec![
        node,
        fixture("namespace-annotated.json"),
        fixture("namespace-plain.json"),
        fixture("pod.json"),
    ]
}
