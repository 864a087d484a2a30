//! Leader election on a Lease against a mock API server: acquire, renew,
//! respect a live holder, take over an expired lease, lose a race, step down
//! in time, and a follower publishes no events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alert_manager_agent::events::{EventBuffer, EventFilter, EventPipeline, OverflowPolicy};
use alert_manager_agent::leader::{Attempt, LeaderElector, LeaseConfig};
use alert_manager_agent::metrics::Metrics;
use jiff::Timestamp;
use serde_json::{Value, json};
use support::{mock_client, status};

const NS: &str = "alert-manager-system";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/alert-manager-system/leases";
const NAME: &str = "alert-manager-agent-events";

fn lease_path() -> String {
    format!("{LEASES}/{NAME}")
}

fn config(duration: Duration) -> LeaseConfig {
    LeaseConfig::new(NAME.into(), NS.into(), "agent-a".into(), duration)
}

fn lease(holder: &str, renewed: Timestamp, version: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": NAME, "namespace": NS, "resourceVersion": version,
                     "uid": "3c1a9b6e-0d7f-4e2a-9c35-7b1d2e4f6a80", "creationTimestamp": "2026-11-28T07:00:00Z"},
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                 "acquireTime": "2026-11-28T07:00:00.000000Z",
                 "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                 "leaseTransitions": 2}
    })
}

fn not_found() -> Value {
    status(
        404,
        "NotFound",
        "leases.coordination.k8s.io \"alert-manager-agent-events\" not found",
    )
}

#[tokio::test]
async fn acquires_an_absent_lease_by_creating_it() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(15)));
    let now = Timestamp::now();
    let server = tokio::spawn(async move {
        api.expect("GET", &lease_path(), None, 404, not_found())
            .await;
        let created = api.expect("POST", LEASES, None, 201, json!({})).await;
        created.body
    });
    let result = elector.try_acquire_or_renew(now).await.unwrap();
    let body = server.await.unwrap();
    assert_eq!(result, Attempt::Leading);
    assert_eq!(body["metadata"]["name"], NAME);
    assert_eq!(body["spec"]["holderIdentity"], "agent-a");
    assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
    assert_eq!(body["spec"]["leaseTransitions"], 0);
}

#[tokio::test]
async fn holder_renews_with_the_resource_version_it_read() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(15)));
    let now = Timestamp::now();
    let earlier = now - jiff::SignedDuration::from_secs(3);
    let current = lease("agent-a", earlier, "41");
    let server = tokio::spawn(async move {
        api.expect("GET", &lease_path(), None, 200, current.clone())
            .await;
        api.expect("PUT", &lease_path(), None, 200, current)
            .await
            .body
    });
    assert_eq!(
        elector.try_acquire_or_renew(now).await.unwrap(),
        Attempt::Leading
    );
    let body = server.await.unwrap();
    assert_eq!(body["metadata"]["resourceVersion"], "41");
    assert_eq!(body["spec"]["holderIdentity"], "agent-a");
    assert_eq!(
        body["spec"]["leaseTransitions"], 2,
        "a renewal is not a transition"
    );
    let renewed: Timestamp = body["spec"]["renewTime"].as_str().unwrap().parse().unwrap();
    assert_eq!(renewed.as_microsecond(), now.as_microsecond());
}

#[tokio::test]
async fn live_lease_of_another_replica_is_left_alone() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(15)));
    let now = Timestamp::now();
    let current = lease("agent-b", now - jiff::SignedDuration::from_secs(5), "9");
    let server = tokio::spawn(async move {
        api.expect("GET", &lease_path(), None, 200, current).await;
        api.expect_silence(Duration::from_millis(300)).await;
    });
    assert_eq!(
        elector.try_acquire_or_renew(now).await.unwrap(),
        Attempt::Following {
            holder: Some("agent-b".into())
        }
    );
    server.await.unwrap();
}

#[tokio::test]
async fn expired_lease_is_taken_over_as_a_new_transition() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(15)));
    let now = Timestamp::now();
    let current = lease("agent-b", now - jiff::SignedDuration::from_secs(16), "9");
    let server = tokio::spawn(async move {
        api.expect("GET", &lease_path(), None, 200, current.clone())
            .await;
        api.expect("PUT", &lease_path(), None, 200, current)
            .await
            .body
    });
    assert_eq!(
        elector.try_acquire_or_renew(now).await.unwrap(),
        Attempt::Leading
    );
    let body = server.await.unwrap();
    assert_eq!(body["spec"]["holderIdentity"], "agent-a");
    assert_eq!(body["spec"]["leaseTransitions"], 3);
    assert_eq!(body["metadata"]["resourceVersion"], "9");
}

#[tokio::test]
async fn losing_the_race_for_an_expired_lease_means_following() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(15)));
    let now = Timestamp::now();
    let current = lease("agent-b", now - jiff::SignedDuration::from_secs(60), "9");
    let server = tokio::spawn(async move {
        api.expect("GET", &lease_path(), None, 200, current).await;
        api.expect(
            "PUT",
            &lease_path(),
            None,
            409,
            status(409, "Conflict", "Operation cannot be fulfilled on leases.coordination.k8s.io \"alert-manager-agent-events\": the object has been modified"),
        )
        .await;
    });
    assert!(matches!(
        elector.try_acquire_or_renew(now).await.unwrap(),
        Attempt::Following { .. }
    ));
    server.await.unwrap();
}

#[tokio::test]
async fn leader_that_sees_another_holder_steps_down() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(2)));
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    tokio::spawn(elector.run(tx, metrics.clone()));
    api.expect("GET", &lease_path(), None, 404, not_found())
        .await;
    api.expect("POST", LEASES, None, 201, json!({})).await;
    tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|l| *l))
        .await
        .unwrap()
        .unwrap();
    assert!(metrics.encode().contains("alert_manager_agent_leader 1"));
    // Someone else holds it now (e.g. after a partition).
    let taken = lease("agent-b", Timestamp::now(), "77");
    api.expect("GET", &lease_path(), None, 200, taken).await;
    tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|l| !*l))
        .await
        .unwrap()
        .unwrap();
    assert!(metrics.encode().contains("alert_manager_agent_leader 0"));
}

#[tokio::test]
async fn leader_that_cannot_renew_steps_down_within_the_lease_duration() {
    let (client, mut api) = mock_client();
    let duration = Duration::from_secs(2);
    let elector = LeaderElector::new(client, config(duration));
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    tokio::spawn(elector.run(tx, Arc::new(Metrics::new())));
    api.expect("GET", &lease_path(), None, 404, not_found())
        .await;
    api.expect("POST", LEASES, None, 201, json!({})).await;
    rx.wait_for(|l| *l).await.unwrap();
    let renewed_at = Instant::now();
    // The API server is unreachable from now on.
    let failing = tokio::spawn(async move {
        loop {
            api.expect(
                "GET",
                &lease_path(),
                None,
                500,
                status(500, "InternalError", "etcdserver: leader changed"),
            )
            .await;
        }
    });
    tokio::time::timeout(duration, rx.wait_for(|l| !*l))
        .await
        .expect("still leading after the lease duration: another replica may be leading too")
        .unwrap();
    assert!(
        renewed_at.elapsed() >= duration * 2 / 3 - Duration::from_millis(100),
        "stepped down after {:?}, before the renew deadline",
        renewed_at.elapsed()
    );
    failing.abort();
}

/// A follower keeps its hands off: no watch, no publish. Once it leads, it
/// watches Warning events and publishes what is buffered.
#[tokio::test]
async fn follower_publishes_no_events_and_leader_does() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let rule = aws_smithy_mocks::mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(
        move |input| {
            counted.fetch_add(1, Ordering::SeqCst);
            let ok = input
                .publish_batch_request_entries()
                .iter()
                .map(|e| {
                    aws_sdk_sns::types::PublishBatchResultEntry::builder()
                        .id(e.id())
                        .message_id("m")
                        .build()
                })
                .collect();
            aws_sdk_sns::operation::publish_batch::PublishBatchOutput::builder()
                .set_successful(Some(ok))
                .build()
        },
    );
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(
                aws_smithy_mocks::MockResponseInterceptor::new()
                    .rule_mode(aws_smithy_mocks::RuleMode::MatchAny)
                    .with_rule(&rule),
            )
            .build(),
    );
    let buffer = Arc::new(EventBuffer::new(10, OverflowPolicy::DropOldest));
    let ev: k8s_openapi::api::events::v1::Event = support::object("event-backoff-series.json");
    buffer.push(alert_manager_agent::events::event_envelope("prod", &ev));
    let pipeline = EventPipeline {
        cluster: "prod".into(),
        filter: Arc::new(EventFilter::default()),
        rate_burst: 5,
        rate_window: Duration::from_secs(600),
        buffer: buffer.clone(),
        publisher: alert_manager_agent::SnsPublisher::new(
            sns,
            "arn:aws:sns:us-east-1:123456789012:alerts".into(),
            alert_aws::RetryPolicy::within(Duration::from_secs(1)),
        ),
        context: None,
        recent: Arc::new(alert_manager_agent::recent::RecentIds::new(
            std::num::NonZeroUsize::new(1000).unwrap(),
            std::time::Duration::from_secs(300),
        )),
        metrics: Arc::new(Metrics::new()),
    };
    let (client, mut api) = mock_client();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(pipeline.run_while_leader(client, rx));

    api.expect_silence(Duration::from_millis(400)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a follower published");
    assert_eq!(buffer.len(), 1);

    tx.send_replace(true);
    let list = api
        .expect(
            "GET",
            "/apis/events.k8s.io/v1/events",
            Some("fieldSelector=type%3DWarning"),
            200,
            json!({"apiVersion": "events.k8s.io/v1", "kind": "EventList",
                   "metadata": {"resourceVersion": "100"}, "items": []}),
        )
        .await;
    assert!(
        !list.query.contains("watch=true"),
        "lists first: {}",
        list.query
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while calls.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the leader publishes the buffer"
    );
    assert!(buffer.is_empty());
}
