//! The enricher against moto: EC2 instances with tags, CloudWatch metrics
//! through the CBOR bridge, the enriched topic with a filtered SQS
//! subscriber, the call budget counted by moto's recorder, degraded paths,
//! and the real binary under the Runtime API emulator (`cargo lambda watch
//! --only-lambda-apis`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use alert_envelope::{AwsContext, Envelope, SCHEMA_V1, Severity, Source, Status, derive_id};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::config::EnricherArgs;
use alert_manager_tests::{CloudWatchBridge, LambdaWatch, MotoServer, REGION};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use clap::Parser;
use serde_json::{Value, json};

struct Stack {
    moto: MotoServer,
    bridge: CloudWatchBridge,
    config: aws_config::SdkConfig,
    enriched_topic: String,
    team_queue: String,
    all_queue: String,
    instances: Vec<String>,
}

async fn stack(instances: usize) -> Stack {
    let moto = MotoServer::start().await;
    let bridge = CloudWatchBridge::start(&moto.endpoint());
    let config = moto.sdk_config().await;
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let image = ec2.describe_images().send().await.unwrap().images()[0]
        .image_id()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for i in 0..instances {
        let team = if i % 2 == 0 { "payments" } else { "search" };
        let out = ec2
            .run_instances()
            .image_id(&image)
            .instance_type(aws_sdk_ec2::types::InstanceType::M6iLarge)
            .min_count(1)
            .max_count(1)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key("team").value(team).build())
                    .tags(
                        Tag::builder()
                            .key("Name")
                            .value(format!("node-{i}"))
                            .build(),
                    )
                    .tags(
                        Tag::builder()
                            .key("eks:nodegroup-name")
                            .value("general")
                            .build(),
                    )
                    .tags(
                        Tag::builder()
                            .key("aws:autoscaling:groupName")
                            .value("eks-general-asg")
                            .build(),
                    )
                    .tags(
                        Tag::builder()
                            .key("aws:cloudformation:stack-id")
                            .value("arn:aws:cloudformation:us-east-1:123456789012:stack/x/y")
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        ids.push(out.instances()[0].instance_id().unwrap().to_string());
    }
    // CPU for every instance over the last minutes, through the bridge.
    let cw = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&config)
            .endpoint_url(bridge.endpoint())
            .build(),
    );
    let now = jiff::Timestamp::now().as_second();
    for id in &ids {
        let mut put = cw.put_metric_data().namespace("AWS/EC2");
        for (k, v) in [40.0, 60.0, 95.0].into_iter().enumerate() {
            put = put.metric_data(
                MetricDatum::builder()
                    .metric_name("CPUUtilization")
                    .dimensions(Dimension::builder().name("InstanceId").value(id).build())
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                        now - 600 + 120 * k as i64,
                    ))
                    .value(v)
                    .build(),
            );
        }
        put.send().await.unwrap();
    }

    let enriched_topic = moto.create_topic("alerts-enriched").await;
    let team_queue = moto
        .subscribe_queue(
            &enriched_topic,
            "payments-critical",
            Some(r#"{"team":["payments"],"severity":["critical"]}"#),
        )
        .await;
    let all_queue = moto
        .subscribe_queue(&enriched_topic, "everything", None)
        .await;
    Stack {
        moto,
        bridge,
        config,
        enriched_topic,
        all_queue,
        team_queue,
        instances: ids,
    }
}

fn enricher_config(topic: &str, extra: &[&str]) -> alert_manager_enricher::EnricherConfig {
    let mut args = vec!["alert-manager-enricher", "--enriched-topic-arn", topic];
    args.extend_from_slice(extra);
    EnricherArgs::try_parse_from(args)
        .unwrap()
        .validate()
        .unwrap()
}

fn enricher(s: &Stack, ec2_endpoint: Option<&str>) -> Enricher {
    let ec2 = aws_sdk_ec2::config::Builder::from(&s.config)
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled());
    let ec2 = match ec2_endpoint {
        Some(e) => ec2.endpoint_url(e),
        None => ec2,
    };
    Enricher::new(
        enricher_config(&s.enriched_topic, &[]),
        aws_sdk_ec2::Client::from_conf(ec2.build()),
        aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&s.config)
                .endpoint_url(s.bridge.endpoint())
                .build(),
        ),
        aws_sdk_sns::Client::new(&s.config),
        REGION.into(),
    )
}

fn envelope(i: usize, instance: Option<&str>, severity: &str) -> Envelope {
    let starts_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(300);
    let fingerprint = format!("{i:016x}");
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), format!("HighCpu{i}"));
    labels.insert("severity".to_string(), severity.to_string());
    Envelope {
        schema: SCHEMA_V1.into(),
        id: derive_id("prod", &fingerprint, Status::Firing, starts_at, None),
        source: Source::Alertmanager,
        cluster: "prod".into(),
        status: Status::Firing,
        alertname: format!("HighCpu{i}"),
        severity: Severity::normalise(Some(severity)),
        severity_raw: Some(severity.into()),
        fingerprint,
        group_key: None,
        receiver: None,
        starts_at,
        ends_at: None,
        generator_url: None,
        external_url: None,
        truncated_alerts: 0,
        labels,
        annotations: BTreeMap::new(),
        kubernetes: None,
        aws: instance.map(|id| AwsContext {
            instance_id: Some(id.into()),
            availability_zone: Some("us-east-1a".into()),
            region: Some(REGION.into()),
            instance_type: None,
            account_id: None,
        }),
        enrichment: None,
        truncated: false,
    }
}

/// A real-shaped SQS event carrying `bodies` (raw delivery).
fn sqs_event(bodies: &[String]) -> Value {
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../lambda/fixtures/sqs-event.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut r = template["Records"][0].clone();
            r["messageId"] = json!(format!("msg-{i}"));
            r["body"] = json!(b);
            r
        })
        .collect();
    json!({ "Records": records })
}

async fn drain(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    want: usize,
    timeout: Duration,
) -> Vec<Envelope> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            got.push(Envelope::from_json(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    got
}

fn count(actions: &[String], name: &str) -> usize {
    actions.iter().filter(|a| *a == name).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_record_batch_over_10_instances_costs_one_describe_and_one_get_metric_data() {
    let s = stack(10).await;
    let e = enricher(&s, None);
    let bodies: Vec<String> = (0..100)
        .map(|i| {
            let severity = if i % 4 == 0 { "critical" } else { "warning" };
            serde_json::to_string(&envelope(i, Some(&s.instances[i % 10]), severity)).unwrap()
        })
        .collect();

    s.moto.start_recording().await;
    let out = e
        .handle(&sqs_event(&bodies), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    let actions = s.moto.recorded_actions().await;
    assert_eq!(count(&actions, "DescribeInstances"), 1, "{actions:?}");
    assert_eq!(count(&actions, "GetMetricData"), 1, "{actions:?}");
    assert_eq!(count(&actions, "PublishBatch"), 10, "{actions:?}");

    // The same batch again, within the TTL: no DescribeInstances at all.
    s.moto.start_recording().await;
    e.handle(&sqs_event(&bodies), Duration::from_secs(60))
        .await
        .unwrap();
    let actions = s.moto.recorded_actions().await;
    assert_eq!(count(&actions, "DescribeInstances"), 0, "{actions:?}");

    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let all = drain(&sqs, &s.all_queue, 200, Duration::from_secs(30)).await;
    assert_eq!(all.len(), 200);
    let sample = all
        .iter()
        .find(|e| e.aws.as_ref().unwrap().instance_id.as_deref() == Some(&s.instances[0]))
        .unwrap();
    let enrichment = sample.enrichment.as_ref().unwrap();
    assert!(enrichment.errors.is_empty(), "{:?}", enrichment.errors);
    let ec2 = enrichment.ec2.as_ref().unwrap();
    assert_eq!(ec2.instance_type.as_deref(), Some("m6i.large"));
    assert_eq!(ec2.state.as_deref(), Some("running"));
    assert_eq!(ec2.tags["team"], "payments");
    assert_eq!(ec2.nodegroup.as_deref(), Some("general"));
    assert_eq!(ec2.autoscaling_group.as_deref(), Some("eks-general-asg"));
    assert!(
        !ec2.tags.contains_key("aws:cloudformation:stack-id"),
        "deny-listed tag copied"
    );
    assert_eq!(
        enrichment.team.as_deref(),
        Some("payments"),
        "team from the EC2 tag"
    );
    let cw = enrichment.cloudwatch.as_ref().unwrap();
    let cpu_max = cw
        .metrics
        .iter()
        .find(|m| m.metric == "CPUUtilization" && m.stat == "Maximum")
        .unwrap();
    assert_eq!(cpu_max.max, Some(95.0));
    assert_eq!(cpu_max.points.len(), 3);
    assert!(cw.console_url.as_deref().unwrap().contains(&s.instances[0]));

    // The filter policy on team + severity gets exactly payments' critical alerts.
    let filtered = drain(&sqs, &s.team_queue, 200, Duration::from_secs(5)).await;
    let expected = all
        .iter()
        .filter(|e| e.team() == Some("payments") && e.severity == Severity::Critical)
        .count();
    assert!(expected > 0);
    assert_eq!(filtered.len(), expected);
    assert!(
        filtered
            .iter()
            .all(|e| e.team() == Some("payments") && e.severity == Severity::Critical)
    );

    // The subscriber guide's example is a real enriched envelope from this test.
    if std::env::var_os("UPDATE_DOCS").is_some() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/examples/enriched-envelope.json"
        );
        let _ = std::fs::create_dir_all(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples"));
        std::fs::write(path, serde_json::to_string_pretty(sample).unwrap() + "\n").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn alerts_without_an_instance_skip_ec2_and_duplicates_are_processed_once() {
    let s = stack(1).await;
    let e = enricher(&s, None);
    let no_instance = serde_json::to_string(&envelope(1, None, "critical")).unwrap();
    let mut with_team = envelope(2, None, "info");
    with_team.labels.insert("team".into(), "storage".into());
    let with_team = serde_json::to_string(&with_team).unwrap();
    s.moto.start_recording().await;
    let out = e
        .handle(
            &sqs_event(&[
                no_instance.clone(),
                no_instance,
                with_team,
                "not json".into(),
            ]),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": []}),
        "invalid records are dropped by default"
    );
    let actions = s.moto.recorded_actions().await;
    assert_eq!(count(&actions, "DescribeInstances"), 0, "{actions:?}");
    assert_eq!(count(&actions, "GetMetricData"), 0, "{actions:?}");
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = drain(&sqs, &s.all_queue, 3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2, "the duplicate was delivered once");
    let teams: Vec<_> = got.iter().map(|e| e.team().unwrap().to_string()).collect();
    assert!(
        teams.contains(&"unassigned".to_string()) && teams.contains(&"storage".to_string()),
        "{teams:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_ec2_endpoint_degrades_but_delivers() {
    let s = stack(1).await;
    let dead = format!("http://127.0.0.1:{}", alert_manager_tests::free_port());
    let e = enricher(&s, Some(&dead));
    let body = serde_json::to_string(&envelope(1, Some(&s.instances[0]), "critical")).unwrap();
    let out = e
        .handle(&sqs_event(&[body]), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = drain(&sqs, &s.all_queue, 1, Duration::from_secs(10)).await;
    let enrichment = got[0].enrichment.as_ref().unwrap();
    assert!(enrichment.ec2.is_none());
    let err = enrichment
        .errors
        .iter()
        .find(|e| e.stage == "ec2")
        .expect("ec2 error recorded");
    assert!(
        err.message.contains("DescribeInstances failed"),
        "{}",
        err.message
    );
    assert!(enrichment.cloudwatch.is_some(), "CloudWatch still worked");
}

#[tokio::test(flavor = "multi_thread")]
async fn ec2_throttling_is_recorded_and_the_alert_delivered() {
    use aws_smithy_mocks::{RuleMode, mock};
    let s = stack(1).await;
    let throttled = mock!(aws_sdk_ec2::Client::describe_instances).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>x</RequestID></Response>",
            ),
        )
    });
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_ec2::config::Region::new(REGION))
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "a", "b", None, None, "t",
            ))
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                aws_smithy_mocks::MockResponseInterceptor::new()
                    .rule_mode(RuleMode::MatchAny)
                    .with_rule(&throttled),
            )
            .build(),
    );
    let e = Enricher::new(
        enricher_config(&s.enriched_topic, &[]),
        ec2,
        aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&s.config)
                .endpoint_url(s.bridge.endpoint())
                .build(),
        ),
        aws_sdk_sns::Client::new(&s.config),
        REGION.into(),
    );
    let body = serde_json::to_string(&envelope(1, Some(&s.instances[0]), "critical")).unwrap();
    let out = e
        .handle(&sqs_event(&[body]), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(throttled.num_calls(), 1, "enrichment is not retried");
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = drain(&sqs, &s.all_queue, 1, Duration::from_secs(10)).await;
    let errors = &got[0].enrichment.as_ref().unwrap().errors;
    assert!(
        errors
            .iter()
            .any(|e| e.stage == "ec2" && e.message.contains("throttled")),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publish_failure_makes_exactly_that_record_a_batch_item_failure() {
    use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
    use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock};
    let s = stack(1).await;
    let bad = envelope(7, None, "critical");
    let bad_id = bad.id.clone();
    let rule = mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(move |input| {
        let (failed, ok): (Vec<_>, Vec<_>) = input
            .publish_batch_request_entries()
            .iter()
            .partition(|e| e.id() == bad_id);
        PublishBatchOutput::builder()
            .set_successful(Some(
                ok.iter()
                    .map(|e| {
                        PublishBatchResultEntry::builder()
                            .id(e.id())
                            .message_id("m")
                            .build()
                    })
                    .collect(),
            ))
            .set_failed(Some(
                failed
                    .iter()
                    .map(|e| {
                        BatchResultErrorEntry::builder()
                            .id(e.id())
                            .code("InternalError")
                            .sender_fault(false)
                            .build()
                            .unwrap()
                    })
                    .collect(),
            ))
            .build()
    });
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sns::config::Region::new(REGION))
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "a", "b", None, None, "t",
            ))
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                aws_smithy_mocks::MockResponseInterceptor::new()
                    .rule_mode(RuleMode::MatchAny)
                    .with_rule(&rule),
            )
            .build(),
    );
    let e = Enricher::new(
        enricher_config(&s.enriched_topic, &[]),
        aws_sdk_ec2::Client::new(&s.config),
        aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&s.config)
                .endpoint_url(s.bridge.endpoint())
                .build(),
        ),
        sns,
        REGION.into(),
    );
    let bodies = vec![
        serde_json::to_string(&envelope(1, None, "critical")).unwrap(),
        serde_json::to_string(&bad).unwrap(),
        serde_json::to_string(&envelope(3, None, "warning")).unwrap(),
    ];
    let out = e
        .handle(&sqs_event(&bodies), Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "msg-1"}]})
    );
    assert!(
        rule.num_calls() >= 2,
        "the failed entry was retried before giving up"
    );

    // A direct SNS subscription: the same failure is an invocation error (async retry applies),
    // and a batch without it succeeds.
    let sns_event = |bodies: &[String]| {
        let template: Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../lambda/fixtures/sns-event.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let records: Vec<Value> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let mut r = template["Records"][0].clone();
                r["Sns"]["MessageId"] = json!(format!("sns-{i}"));
                r["Sns"]["Message"] = json!(b);
                r
            })
            .collect();
        json!({ "Records": records })
    };
    let err = e
        .handle(&sns_event(&bodies), Duration::from_secs(3))
        .await
        .unwrap_err();
    assert!(
        err.to_string().starts_with("1 of 3 records not delivered"),
        "{err}"
    );
    let ok = e
        .handle(
            &sns_event(&[bodies[0].clone(), bodies[2].clone()]),
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    assert_eq!(ok, json!({}));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_fails_at_init_naming_the_setting() {
    for (args, needle) in [
        (vec!["x"], "ENRICHED_TOPIC_ARN is required"),
        (
            vec!["x", "--enriched-topic-arn", "nope"],
            "ENRICHED_TOPIC_ARN",
        ),
        (
            vec![
                "x",
                "--enriched-topic-arn",
                "arn:aws:sns:us-east-1:123456789012:t",
                "--metric-period-seconds",
                "90",
            ],
            "METRIC_PERIOD_SECONDS",
        ),
        (
            vec![
                "x",
                "--enriched-topic-arn",
                "arn:aws:sns:us-east-1:123456789012:t",
                "--metric-sets",
                "[{\"metrics\": [], \"bogus\": 1}]",
            ],
            "METRIC_SETS",
        ),
    ] {
        let err = EnricherArgs::try_parse_from(args)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_binary_under_the_runtime_api_emulator_delivers_an_enriched_envelope() {
    let s = stack(1).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lambda");
    let moto = s.moto.endpoint();
    let bridge = s.bridge.endpoint();
    let watch = LambdaWatch::start(
        &dir,
        "alert-manager-enricher",
        &[
            ("ENRICHED_TOPIC_ARN", s.enriched_topic.as_str()),
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", bridge.as_str()),
            ("AWS_REGION", REGION),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    )
    .await;
    let body = serde_json::to_string(&envelope(1, Some(&s.instances[0]), "critical")).unwrap();
    let out = watch
        .invoke("alert-manager-enricher", &sqs_event(&[body]))
        .await
        .unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let got = drain(&sqs, &s.all_queue, 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let enrichment = got[0].enrichment.as_ref().unwrap();
    assert_eq!(enrichment.ec2.as_ref().unwrap().instance_id, s.instances[0]);
    assert!(enrichment.cloudwatch.is_some());
    assert_eq!(enrichment.team.as_deref(), Some("payments"));
}

/// The filter policies of docs/subscribers.md (docs/examples/filter-policies.json),
/// subscribed in moto, each receive exactly the enriched alerts they promise.
#[tokio::test(flavor = "multi_thread")]
async fn the_subscriber_guide_filter_policies_select_what_they_promise() {
    let s = stack(2).await;
    let policies: BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/examples/filter-policies.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let mut queues = BTreeMap::new();
    for (name, policy) in &policies {
        let url = s
            .moto
            .subscribe_queue(&s.enriched_topic, name, Some(&policy.to_string()))
            .await;
        queues.insert(name.clone(), url);
    }

    // instances[0] is tagged team=payments, instances[1] team=search.
    let cases = [
        (
            "prod-eu-1",
            "KubePodCrashLooping",
            "critical",
            Status::Firing,
            0,
        ),
        (
            "prod-eu-1",
            "KubePodCrashLooping",
            "critical",
            Status::Resolved,
            0,
        ),
        ("prod-us-1", "NodeDiskFull", "warning", Status::Firing, 0),
        ("prod-us-1", "Watchdog", "none", Status::Firing, 1),
        ("prod-eu-1", "HighLatency", "critical", Status::Firing, 1),
    ];
    let bodies: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, (cluster, name, severity, status, instance))| {
            let mut e = envelope(i, Some(&s.instances[*instance]), severity);
            e.cluster = cluster.to_string();
            e.alertname = name.to_string();
            e.labels.insert("alertname".into(), name.to_string());
            e.status = *status;
            e.id = derive_id(cluster, &e.fingerprint, *status, e.starts_at, None);
            serde_json::to_string(&e).unwrap()
        })
        .collect();
    let out = enricher(&s, None)
        .handle(&sqs_event(&bodies), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));

    let expect: BTreeMap<&str, Vec<usize>> = [
        ("my-team-critical", vec![0, 1]),
        ("one-cluster", vec![0, 1, 4]),
        ("resolved-only", vec![1]),
        ("all-but-watchdog", vec![0, 1, 2, 4]),
    ]
    .into_iter()
    .collect();
    for (name, want) in expect {
        let got = drain(&sqs, &queues[name], want.len() + 1, Duration::from_secs(4)).await;
        let mut got_fps: Vec<String> = got.iter().map(|e| e.fingerprint.clone()).collect();
        got_fps.sort();
        let want_fps: Vec<String> = want.iter().map(|i| format!("{i:016x}")).collect();
        assert_eq!(got_fps, want_fps, "policy {name}");
    }
}
