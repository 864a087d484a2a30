//! The local test stack itself: each real component starts, works and stops.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::{Duration, Instant};

use alert_envelope::webhook::WebhookMessage;
use alert_manager_tests::{Alertmanager, CloudWatchBridge, MotoServer, REGION};
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat};
use aws_sdk_sqs::types::QueueAttributeName;
use axum::extract::State;

#[tokio::test(flavor = "multi_thread")]
async fn moto_starts_resets_and_stops_without_leftovers() {
    let mut moto = MotoServer::start().await;
    let sns = aws_sdk_sns::Client::new(&moto.sdk_config().await);
    sns.create_topic().name("alerts").send().await.unwrap();
    assert_eq!(sns.list_topics().send().await.unwrap().topics().len(), 1);
    moto.reset().await;
    assert_eq!(sns.list_topics().send().await.unwrap().topics().len(), 0);

    let port = moto.port();
    moto.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "moto still listens after stop"
    );
    moto.restart().await;
    assert!(
        sns.list_topics().send().await.is_ok(),
        "moto answers after restart"
    );
}

/// `infra/local/moto_server.py` replaces how moto's SQS counts and lists a
/// queue's messages; the counts, visibility and delay must read as before.
#[tokio::test(flavor = "multi_thread")]
async fn sped_up_moto_sqs_counts_visible_in_flight_and_delayed_messages() {
    let moto = MotoServer::start().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let queue = sqs
        .create_queue()
        .queue_name("counts")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    for body in ["a", "b", "c"] {
        sqs.send_message()
            .queue_url(&queue)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    sqs.send_message()
        .queue_url(&queue)
        .message_body("later")
        .delay_seconds(60)
        .send()
        .await
        .unwrap();
    let received = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(1)
        .visibility_timeout(60)
        .send()
        .await
        .unwrap();
    assert_eq!(received.messages().len(), 1);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let count = |name: QueueAttributeName| {
        attributes.attributes().unwrap()[&name]
            .parse::<u32>()
            .unwrap()
    };
    assert_eq!(count(QueueAttributeName::ApproximateNumberOfMessages), 2);
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        1
    );
    assert_eq!(
        count(QueueAttributeName::ApproximateNumberOfMessagesDelayed),
        1
    );
    // The delayed and the in-flight message stay hidden; the two others come back.
    let rest = sqs
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let mut bodies: Vec<_> = rest.messages().iter().filter_map(|m| m.body()).collect();
    bodies.sort();
    let first = received.messages()[0].body().unwrap();
    let want: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .filter(|b| *b != first)
        .collect();
    assert_eq!(bodies, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_delivers_a_webhook_to_a_listener() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(8);
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State(tx): State<tokio::sync::mpsc::Sender<axum::body::Bytes>>,
                 body: axum::body::Bytes| async move {
                    let _ = tx.send(body).await;
                    "ok"
                },
            ),
        )
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let am = Alertmanager::start(&format!(
        r#"
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook}
"#
    ))
    .await;
    am.post_alerts(&serde_json::json!([{
        "labels": {"alertname": "StackSmokeTest", "severity": "warning", "namespace": "default"},
        "annotations": {"summary": "proves Alertmanager reaches the test"},
    }]))
    .await;

    let body = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("Alertmanager sent no webhook within 30 s")
        .unwrap();
    let msg = WebhookMessage::from_slice(&body).unwrap();
    assert_eq!(msg.version, "4");
    assert_eq!(msg.receiver, "hook");
    assert_eq!(msg.alerts.len(), 1);
    assert_eq!(msg.alerts[0].labels["alertname"], "StackSmokeTest");
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudwatch_bridge_puts_and_gets_metric_data_through_the_real_sdk() {
    let moto = MotoServer::start().await;
    let bridge = CloudWatchBridge::start(&moto.endpoint());
    let config = moto.sdk_config().await;
    let cw = aws_sdk_cloudwatch::Client::from_conf(
        aws_sdk_cloudwatch::config::Builder::from(&config)
            .endpoint_url(bridge.endpoint())
            .build(),
    );
    let dim = Dimension::builder()
        .name("InstanceId")
        .value("i-0abc1234567890def")
        .build();
    let now = jiff::Timestamp::now().as_second();
    let minute = now - now % 60;
    let mut put = cw.put_metric_data().namespace("AWS/EC2");
    for (i, value) in [10.0, 20.0, 90.0].into_iter().enumerate() {
        put = put.metric_data(
            MetricDatum::builder()
                .metric_name("CPUUtilization")
                .dimensions(dim.clone())
                .timestamp(aws_smithy_types_ts(minute - 60 * (3 - i as i64)))
                .value(value)
                .unit(aws_sdk_cloudwatch::types::StandardUnit::Percent)
                .build(),
        );
    }
    put.send().await.expect("PutMetricData through the bridge");

    let query = MetricDataQuery::builder()
        .id("cpu_max")
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/EC2")
                        .metric_name("CPUUtilization")
                        .dimensions(dim)
                        .build(),
                )
                .period(60)
                .stat("Maximum")
                .build(),
        )
        .build();
    let out = cw
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(aws_smithy_types_ts(minute - 600))
        .end_time(aws_smithy_types_ts(minute + 60))
        .send()
        .await
        .expect("GetMetricData through the bridge");
    let result = &out.metric_data_results()[0];
    assert_eq!(result.id(), Some("cpu_max"));
    let mut values = result.values().to_vec();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, vec![10.0, 20.0, 90.0]);
    assert_eq!(
        result.timestamps().len(),
        3,
        "timestamps survive CBOR tag 1"
    );
    assert!(
        result
            .timestamps()
            .iter()
            .all(|t| (minute - 600..=minute).contains(&t.secs())),
        "{:?}",
        result.timestamps()
    );
}

fn aws_smithy_types_ts(secs: i64) -> aws_sdk_cloudwatch::primitives::DateTime {
    aws_sdk_cloudwatch::primitives::DateTime::from_secs(secs)
}

#[tokio::test(flavor = "multi_thread")]
async fn irsa_web_identity_credentials_publish_through_a_filter_policy() {
    let moto = MotoServer::start().await;
    let config = moto.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = sns.create_topic().name("alerts").send().await.unwrap();
    let topic_arn = topic.topic_arn().unwrap();
    let queue = sqs
        .create_queue()
        .queue_name("critical-only")
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .attributes("RawMessageDelivery", "true")
        .attributes("FilterPolicy", r#"{"severity":["critical"]}"#)
        .send()
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    // Any JWT-shaped token: moto does not verify it, the SDK only reads it.
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YWxlcnQtbWFuYWdlci1zeXN0ZW06YWxlcnQtbWFuYWdlci1jb250cm9sbGVyIn0.c2ln",
    )
    .unwrap();
    moto.start_recording().await;
    let probe = |message: &str, severity: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_aws-probe"))
            .args([topic_arn, message, &format!("severity={severity}")])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("AWS_REGION", REGION)
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env(
                "AWS_ROLE_ARN",
                "arn:aws:iam::123456789012:role/alert-manager-agent",
            )
            .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token)
            .env("AWS_ROLE_SESSION_NAME", "irsa-test")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aws-probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let who = probe("critical-alert", "critical");
    probe("warning-alert", "warning");

    let arn = who["arn"].as_str().unwrap();
    assert!(
        arn.contains(":assumed-role/alert-manager-agent/irsa-test"),
        "credentials did not come from the web identity role: {arn}"
    );
    let actions = moto.recorded_actions().await;
    assert!(
        actions.iter().any(|a| a == "AssumeRoleWithWebIdentity"),
        "moto saw no AssumeRoleWithWebIdentity call: {actions:?}"
    );

    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let got = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        bodies.extend(
            got.messages()
                .iter()
                .filter_map(|m| m.body().map(String::from)),
        );
    }
    assert_eq!(
        bodies,
        vec!["critical-alert".to_string()],
        "filter policy let through the wrong set"
    );
}

// The Runtime API emulator (`cargo lambda watch --only-lambda-apis`) is proven with the
// real enricher binary in tests/enricher.rs
// (the_real_binary_under_the_runtime_api_emulator_delivers_an_enriched_envelope).
