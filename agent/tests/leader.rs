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

/// Expiry is judged by this replica's own clock from when it first saw the
/// record, as client-go does: a `renewTime` that looks old (the holder's
/// clock may be behind) is not enough.
#[tokio::test(start_paused = true)]
async fn expired_lease_is_taken_over_as_a_new_transition() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(15)));
    let now = Timestamp::now();
    let current = lease("agent-b", now - jiff::SignedDuration::from_secs(16), "9");
    let server = tokio::spawn(async move {
        api.expect("GET", &lease_path(), None, 200, current.clone())
            .await;
        let first = api.next_or_silence(Duration::from_millis(10)).await;
        api.expect("GET", &lease_path(), None, 200, current.clone())
            .await;
        let put = api
            .expect("PUT", &lease_path(), None, 200, current)
            .await
            .body;
        (first, put)
    });
    assert!(
        matches!(
            elector.try_acquire_or_renew(now).await.unwrap(),
            Attempt::Following { .. }
        ),
        "first sight of a record that looks 16 s old: not expired by our clock yet"
    );
    tokio::time::advance(Duration::from_secs(15)).await;
    assert_eq!(
        elector.try_acquire_or_renew(now).await.unwrap(),
        Attempt::Leading
    );
    let (first, body) = server.await.unwrap();
    assert!(first.is_none(), "took over at first sight: {first:?}");
    assert_eq!(body["spec"]["holderIdentity"], "agent-a");
    assert_eq!(body["spec"]["leaseTransitions"], 3);
    assert_eq!(body["metadata"]["resourceVersion"], "9");
}

#[tokio::test(start_paused = true)]
async fn losing_the_race_for_an_expired_lease_means_following() {
    let (client, mut api) = mock_client();
    let elector = LeaderElector::new(client, config(Duration::from_secs(15)));
    let now = Timestamp::now();
    let current = lease("agent-b", now - jiff::SignedDuration::from_secs(60), "9");
    let (go, went) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        api.expect("GET", &lease_path(), None, 200, current.clone())
            .await;
        // No request timeout runs while the test moves the clock.
        went.await.unwrap();
        api.expect("GET", &lease_path(), None, 200, current.clone())
            .await;
        api.expect(
            "PUT",
            &lease_path(),
            None,
            409,
            status(409, "Conflict", "Operation cannot be fulfilled on leases.coordination.k8s.io \"alert-manager-agent-events\": the object has been modified"),
        )
        .await;
    });
    // Bounded: an elector that took over at first sight would wait forever
    // for an answer to its PUT.
    let _ = tokio::time::timeout(Duration::from_secs(5), elector.try_acquire_or_renew(now))
        .await
        .expect("a first look at the lease is one GET")
        .unwrap();
    tokio::time::advance(Duration::from_secs(16)).await;
    go.send(()).unwrap();
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
        renewed_at.elapsed() >= duration / 2 - Duration::from_millis(100),
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
        account: alert_manager_agent::account::Account::default(),
        cluster: "prod".into(),
        filter: Arc::new(EventFilter::default()),
        rate_burst: 5,
        rate_window: Duration::from_secs(600),
        buffer: buffer.clone(),
        publisher: alert_manager_agent::SnsPublisher::new(
            sns,
            "arn:aws:sns:us-east-1:123456789012:alerts".parse().unwrap(),
            alert_aws::RetryPolicy::within(Duration::from_secs(1)),
        ),
        context: None,
        recent: Arc::new(alert_manager_agent::recent::RecentIds::new(
            std::num::NonZeroUsize::new(1000).unwrap(),
            std::time::Duration::from_secs(300),
        )),
        watermark: Default::default(),
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

// ---- Two electors against one API server, with skewed clocks ----

type RawHandle =
    tower_test::mock::Handle<http::Request<kube::client::Body>, http::Response<kube::client::Body>>;
type Pending = tower_test::mock::SendResponse<http::Response<kube::client::Body>>;

/// One Lease in memory, with resourceVersion checks as the API server does.
#[derive(Default)]
struct LeaseStore {
    lease: std::sync::Mutex<Option<Value>>,
}

/// How one replica reaches the store.
struct Link {
    /// Added to the times this replica writes: its wall clock is off by this.
    skew: jiff::SignedDuration,
    /// While true, its requests hang (a partition, or an API server that does not answer).
    cut: Arc<std::sync::atomic::AtomicBool>,
}

fn shift(v: &mut Value, skew: jiff::SignedDuration) {
    if let Some(t) = v.as_str().and_then(|t| t.parse::<Timestamp>().ok()) {
        *v = json!((t + skew).strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string());
    }
}

fn respond(code: u16, body: &Value) -> http::Response<kube::client::Body> {
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(kube::client::Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn serve_lease(store: Arc<LeaseStore>, mut handle: RawHandle, link: Link) {
    let mut hung: Vec<Pending> = Vec::new();
    while let Some((request, send)) = handle.next_request().await {
        if link.cut.load(Ordering::SeqCst) {
            hung.push(send);
            continue;
        }
        let method = request.method().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let mut lease = store.lease.lock().unwrap();
        let version = lease
            .as_ref()
            .and_then(|l| l["metadata"]["resourceVersion"].as_str())
            .map(|v| v.parse::<u64>().unwrap())
            .unwrap_or(0);
        let (code, reply) = match method.as_str() {
            "GET" => match &*lease {
                Some(l) => (200, l.clone()),
                None => (404, not_found()),
            },
            "POST" | "PUT" => {
                let mut body: Value = serde_json::from_slice(&bytes).unwrap();
                let conflict = match method.as_str() {
                    "POST" => lease.is_some(),
                    _ => {
                        body["metadata"]["resourceVersion"].as_str()
                            != Some(version.to_string().as_str())
                    }
                };
                if conflict {
                    (409, status(409, "Conflict", "the object has been modified"))
                } else {
                    shift(&mut body["spec"]["renewTime"], link.skew);
                    shift(&mut body["spec"]["acquireTime"], link.skew);
                    body["metadata"]["resourceVersion"] = json!((version + 1).to_string());
                    *lease = Some(body.clone());
                    (if method == "POST" { 201 } else { 200 }, body)
                }
            }
            other => panic!("unexpected {other}"),
        };
        drop(lease);
        send.send_response(respond(code, &reply));
    }
}

struct Replica {
    leading: tokio::sync::watch::Receiver<bool>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

fn replica(store: &Arc<LeaseStore>, identity: &str, skew_secs: i64) -> Replica {
    let (service, handle) = tower_test::mock::pair::<
        http::Request<kube::client::Body>,
        http::Response<kube::client::Body>,
    >();
    let client = kube::Client::new(service, NS);
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn(serve_lease(
        store.clone(),
        handle,
        Link {
            skew: jiff::SignedDuration::from_secs(skew_secs),
            cut: cut.clone(),
        },
    ));
    let config = LeaseConfig::new(
        NAME.into(),
        NS.into(),
        identity.into(),
        Duration::from_secs(10),
    );
    let (tx, leading) = tokio::sync::watch::channel(false);
    tokio::spawn(LeaderElector::new(client, config).run(tx, Arc::new(Metrics::new())));
    Replica { leading, cut }
}

/// Watches both replicas every 50 ms for `for_`, failing at the first
/// moment both lead; returns when `b` was first seen leading.
async fn never_two_leaders(a: &Replica, b: &Replica, for_: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut b_led = None;
    while started.elapsed() < for_ {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (la, lb) = (*a.leading.borrow(), *b.leading.borrow());
        assert!(!(la && lb), "two leaders at {:?}", started.elapsed());
        if lb && b_led.is_none() {
            b_led = Some(started.elapsed());
        }
    }
    b_led
}

/// A leads; B's clock is `skew` ahead of A's (A writes its renewals `-skew`
/// in B's terms). B must leave A's live lease alone, and once A is cut off,
/// take over only after A has stepped down, and within the lease duration
/// and two retries.
async fn failover_with_follower_clock_ahead_by(skew_secs: i64) {
    let store = Arc::new(LeaseStore::default());
    let a = replica(&store, "agent-a", -skew_secs);
    let mut leading = a.leading.clone();
    tokio::time::timeout(Duration::from_secs(5), leading.wait_for(|l| *l))
        .await
        .expect("A leads an absent lease")
        .unwrap();
    let b = replica(&store, "agent-b", 0);
    assert_eq!(
        never_two_leaders(&a, &b, Duration::from_secs(60)).await,
        None,
        "B took a live lease"
    );
    a.cut.store(true, Ordering::SeqCst);
    let took_over = never_two_leaders(&a, &b, Duration::from_secs(30))
        .await
        .expect("B never took over from a cut-off leader");
    // A's last renewal was at most a retry (2 s) before the cut, B saw it at
    // most a retry later, and checks every retry: lease duration + 2 retries.
    assert!(
        took_over <= Duration::from_secs(16),
        "B took over {took_over:?} after A was cut off"
    );
    assert!(!*a.leading.borrow());
}

#[tokio::test(start_paused = true)]
async fn with_the_follower_clock_10_s_ahead_there_are_never_two_leaders() {
    failover_with_follower_clock_ahead_by(10).await;
}

#[tokio::test(start_paused = true)]
async fn with_the_follower_clock_10_s_behind_a_cut_off_leader_is_replaced_in_time() {
    failover_with_follower_clock_ahead_by(-10).await;
}

#[tokio::test(start_paused = true)]
async fn a_leader_whose_requests_hang_steps_down_at_the_renew_deadline() {
    let store = Arc::new(LeaseStore::default());
    let a = replica(&store, "agent-a", 0);
    let mut leading = a.leading.clone();
    leading.wait_for(|l| *l).await.unwrap();
    // Just after a renewal (every 2 s), the API server stops answering.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let cut_at = tokio::time::Instant::now();
    a.cut.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(30), leading.wait_for(|l| !*l))
        .await
        .expect("still leading 30 s after the API server stopped answering")
        .unwrap();
    let after = cut_at.elapsed();
    // The last renewal began at most one retry (2 s) before the cut; the
    // renew deadline is 5 s after it, whatever the pending request does.
    assert!(
        after <= Duration::from_secs(5),
        "stepped down {after:?} after the API server stopped answering"
    );
}
