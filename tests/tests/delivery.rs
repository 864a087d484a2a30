//! The delivery pipeline's guarantees against moto and the receiver
//! stand-ins: one deadline per invocation, FIFO order under partial
//! failures, and HTTP sinks that never follow a redirect.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod sinks_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alert_aws::{Deadline, RetryStage};
use alert_envelope::{AwsContext, Envelope, Status};
use alert_manager_enricher::secrets::SecretStore;
use alert_manager_enricher::sinks::{HttpClient, Sink, WebhookConfig, WebhookSink};
use alert_manager_tests::Behavior;
use serde_json::{Value, json};
use sinks_support::{enricher, enricher_with_ec2, envelope, records, stack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP endpoint that reads a request, waits `stall`, then answers 503.
async fn stalling_endpoint(stall: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = conn.read(&mut buf).await;
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(stall).await;
                let _ = conn
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
                    .await;
            });
        }
    });
    (url, requests)
}

fn on_instance(mut env: Envelope) -> Envelope {
    env.aws = Some(AwsContext {
        instance_id: Some("i-0123456789abcdef0".into()),
        region: Some(alert_manager_tests::REGION.into()),
        ..Default::default()
    });
    env
}

/// The deadline is taken once, when the invocation starts: a slow EC2 call
/// spends from the same budget as delivery, so a hanging receiver cannot
/// push the invocation past its timeout (which would bring the whole batch
/// back, delivered records included).
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_enrichment_and_a_hanging_receiver_still_return_within_the_time_left() {
    let s = stack().await;
    let (ec2_url, ec2_requests) = stalling_endpoint(Duration::from_secs(1)).await;
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&s.config)
            .endpoint_url(ec2_url)
            // As in the Lambda: the SDK never retries; enrichment degrades.
            .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
            .build(),
    );
    let e = enricher_with_ec2(&s, Duration::from_secs(60), ec2).await;
    s.webhook.set_behavior(Behavior::Hang);
    let to_slack = on_instance(envelope("Fine", "slack-only", Status::Firing));
    let to_hook = on_instance(envelope("Stuck", "audit-only", Status::Firing));

    let started = Instant::now();
    let report = e
        .process(records(&[&to_slack, &to_hook]), Duration::from_secs(3))
        .await;
    let took = started.elapsed();

    assert!(took < Duration::from_secs(3), "returned after {took:?}");
    assert_eq!(
        ec2_requests.load(Ordering::SeqCst),
        1,
        "EC2 was asked, and stalled"
    );
    assert_eq!(report.failed_message_ids, vec!["msg-1"], "{report:?}");
    let slack = s.slack.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(slack[0].answered, 200, "{}", slack[0]);
    assert_eq!(report.counts.sinks["audit"].failed.values().sum::<u64>(), 1);
    assert_eq!(report.counts.sinks["team-slack"].delivered, 1);
}

/// AWS's rule for SQS FIFO with partial batch failures: after the first
/// failed record of a message group, every later record of that group is
/// reported failed too, without being delivered; other groups go on.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_fifo_record_holds_back_the_rest_of_its_group_only() {
    let s = stack().await;
    let sns = aws_sdk_sns::Client::new(&s.config);
    let sqs = aws_sdk_sqs::Client::new(&s.config);
    let topic = sns
        .create_topic()
        .name("alerts.fifo")
        .attributes("FifoTopic", "true")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let queue = sqs
        .create_queue()
        .queue_name("enricher.fifo")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication,
            "true",
        )
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let queue_arn = format!(
        "arn:aws:sqs:{}:123456789012:enricher.fifo",
        alert_manager_tests::REGION
    );
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    // Group A: an alert whose firing goes to the webhook (down), then its
    // resolve. Group B: another alert, to Slack.
    let a_firing = envelope("Audit", "audit-only", Status::Firing);
    let a_resolved = envelope("Audit", "audit-only", Status::Resolved);
    let b_firing = envelope("Other", "slack-only", Status::Firing);
    let publisher = alert_aws::SnsPublisher::new(
        sns.clone(),
        topic.parse().unwrap(),
        alert_aws::RetryPolicy::within(Duration::from_secs(5)),
    );
    let prepared: Vec<_> = [&a_firing, &a_resolved, &b_firing]
        .iter()
        .map(|e| alert_aws::prepare((*e).clone(), true).unwrap())
        .collect();
    assert!(publisher.publish(&prepared).await.all_accepted());

    let mut messages = Vec::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
            .send()
            .await
            .unwrap();
        messages.extend(out.messages().iter().cloned());
        if messages.len() == 3 {
            break;
        }
    }
    assert_eq!(messages.len(), 3);
    let sqs_records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let group = m
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .expect("a FIFO message has its group");
            json!({
                "messageId": m.message_id().unwrap(),
                "receiptHandle": m.receipt_handle().unwrap(),
                "body": m.body().unwrap(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "x",
                               "ApproximateFirstReceiveTimestamp": "1", "MessageGroupId": group},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:enricher.fifo",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let id_of = |env: &Envelope| {
        messages
            .iter()
            .find(|m| m.body().unwrap().contains(&env.id))
            .and_then(|m| m.message_id())
            .unwrap()
            .to_string()
    };

    s.webhook.set_behavior(Behavior::Status(500));
    let e = enricher(&s, Duration::from_secs(60)).await;
    let out = e
        .handle(&json!({ "Records": sqs_records }), Duration::from_secs(3))
        .await
        .unwrap();
    let mut failed: Vec<String> = out["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
        .collect();
    failed.sort();
    let mut want = vec![id_of(&a_firing), id_of(&a_resolved)];
    want.sort();
    assert_eq!(failed, want, "the firing failed, its resolve was held back");

    // The resolve reached no sink: the webhook saw only the firing's
    // attempts, and the enriched topic only the firing and group B.
    let hook = s.webhook.requests();
    assert!(!hook.is_empty());
    assert!(
        hook.iter()
            .all(|r| r.header("X-Alert-Id") == Some(a_firing.id.as_str())),
        "only the firing was tried"
    );
    let got =
        alert_manager_tests::agent::receive_until(&sqs, &s.queue, Duration::from_secs(5), |g| {
            g.len() >= 2
        })
        .await;
    let ids: Vec<&str> = got.iter().map(|(env, _)| env.id.as_str()).collect();
    assert!(
        ids.contains(&a_firing.id.as_str()) && ids.contains(&b_firing.id.as_str()),
        "{ids:?}"
    );
    assert!(!ids.contains(&a_resolved.id.as_str()), "{ids:?}");
    let slack = s.slack.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(slack.len(), 1, "group B went on");
}

/// A 307/308 would re-send the signed body and its signature to wherever
/// `Location` points: it is refused for good and never followed.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirecting_receiver_is_refused_and_its_target_gets_nothing() {
    let s = stack().await;
    let (target_url, target_requests) = stalling_endpoint(Duration::ZERO).await;
    let app = axum::Router::new().fallback(move || {
        let location = format!("{target_url}/stolen");
        async move {
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", location)],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirecting = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config: WebhookConfig = serde_yaml::from_str(&format!(
        "{{url: \"{redirecting}\", hmac_key: {{ssm: /alert-manager/webhook-hmac}}, allow_http: true}}"
    ))
    .unwrap();
    config.validate().unwrap();
    let secrets = SecretStore::new(
        aws_sdk_secretsmanager::Client::new(&s.config),
        aws_sdk_ssm::Client::new(&s.config),
        Duration::from_secs(60),
    );
    let sink = Sink::Webhook(WebhookSink::new(
        config,
        HttpClient::default(),
        Some(Arc::new(secrets)),
    ));
    let env = envelope("Redirected", "audit-only", Status::Firing);
    let outcomes = sink
        .deliver(
            &[&env],
            &[None],
            &Deadline::within(Duration::from_secs(5)),
            &RetryStage::new(Duration::from_millis(50), Duration::from_millis(100)),
        )
        .await
        .outcomes;
    let failure = outcomes[0].result.clone().unwrap_err();
    assert!(!failure.is_retryable(), "{failure}");
    assert_eq!(failure.reason, "http_307");
    assert!(failure.detail.contains("redirect"), "{failure}");
    assert_eq!(
        target_requests.load(Ordering::SeqCst),
        0,
        "the redirect was followed"
    );

    // And without allow_http, an http:// URL is refused at load, naming the field.
    let insecure: WebhookConfig = serde_yaml::from_str(&format!(
        "{{url: \"{redirecting}\", hmac_key: {{ssm: /k}}}}"
    ))
    .unwrap();
    let e = insecure.validate().unwrap_err();
    assert_eq!(e.setting, "url");
}
