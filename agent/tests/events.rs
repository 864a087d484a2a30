//! Warning events → alerts: filters, age cut-off, fingerprint and id
//! stability, per-object rate limit, and the bounded buffer's overflow policy.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use alert_envelope::{Severity, Source, Status};
use alert_manager_agent::events::{
    EventBuffer, EventFilter, EventPipeline, OverflowPolicy, RateLimiter, Skip, event_envelope,
};
use alert_manager_agent::metrics::Metrics;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use support::object;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Shortly after the series was last observed (2026-11-28T08:04:00Z).
fn now() -> Timestamp {
    at("2026-11-28T08:05:00Z")
}

fn backoff() -> Event {
    object("event-backoff-series.json")
}

#[test]
fn default_filter_takes_warning_events_with_default_reasons() {
    let f = EventFilter::default();
    assert_eq!(f.check(&backoff(), now()), Ok(()));
    let failed: Event = object("event-failedscheduling.json");
    assert_eq!(f.check(&failed, now()), Ok(()));
    let node: Event = object("event-nodenotready.json");
    assert_eq!(f.check(&node, now()), Ok(()));
    let normal: Event = object("event-normal.json");
    assert_eq!(f.check(&normal, now()), Err(Skip::NotWarning));
    let mut other = backoff();
    other.reason = Some("Unhealthy".into());
    assert_eq!(f.check(&other, now()), Err(Skip::Reason));
}

#[test]
fn namespace_and_reason_include_and_exclude() {
    let ev = backoff(); // payments, BackOff
    let only_search = EventFilter {
        namespaces: vec!["search".into()],
        ..EventFilter::default()
    };
    assert_eq!(only_search.check(&ev, now()), Err(Skip::Namespace));
    let not_payments = EventFilter {
        exclude_namespaces: vec!["payments".into()],
        ..EventFilter::default()
    };
    assert_eq!(not_payments.check(&ev, now()), Err(Skip::Namespace));
    let all_reasons_but_backoff = EventFilter {
        reasons: vec![],
        exclude_reasons: vec!["BackOff".into()],
        ..EventFilter::default()
    };
    assert_eq!(all_reasons_but_backoff.check(&ev, now()), Err(Skip::Reason));
    let mut unhealthy = backoff();
    unhealthy.reason = Some("Unhealthy".into());
    assert_eq!(all_reasons_but_backoff.check(&unhealthy, now()), Ok(()));
}

#[test]
fn minimum_count_reads_the_series_count() {
    let ev = backoff(); // series.count = 5
    let min5 = EventFilter {
        min_count: 5,
        ..EventFilter::default()
    };
    assert_eq!(min5.check(&ev, now()), Ok(()));
    let min6 = EventFilter {
        min_count: 6,
        ..EventFilter::default()
    };
    assert_eq!(min6.check(&ev, now()), Err(Skip::Count));
}

#[test]
fn events_older_than_the_cut_off_are_ignored() {
    let f = EventFilter::default(); // 5 minutes
    // Last observed 08:04:00: fine at 08:09:00, too old at 08:09:01.
    assert_eq!(f.check(&backoff(), at("2026-11-28T08:09:00Z")), Ok(()));
    assert_eq!(
        f.check(&backoff(), at("2026-11-28T08:09:01Z")),
        Err(Skip::TooOld)
    );
    // Without a series, the legacy/eventTime fields decide.
    let failed: Event = object("event-failedscheduling.json"); // eventTime 08:00
    assert_eq!(
        f.check(&failed, at("2026-11-28T08:06:00Z")),
        Err(Skip::TooOld)
    );
}

#[test]
fn envelope_of_a_pod_event() {
    let env = event_envelope("prod", &backoff());
    assert_eq!(env.source, Source::KubernetesEvent);
    assert_eq!(env.alertname, "BackOff");
    assert_eq!(env.status, Status::Firing);
    assert_eq!(env.severity, Severity::Warning);
    assert_eq!(env.labels["kind"], "Pod");
    assert_eq!(env.labels["name"], "checkout-7d9f8b6c5-x2k4p");
    assert_eq!(
        env.labels["pod"], "checkout-7d9f8b6c5-x2k4p",
        "so the pod → node lookup applies"
    );
    assert_eq!(env.labels["namespace"], "payments");
    assert_eq!(env.annotations["count"], "5");
    assert!(env.annotations["summary"].starts_with("Back-off restarting failed container"));
    assert_eq!(env.starts_at, at("2026-11-28T08:00:00Z"));
    let node = event_envelope("prod", &object("event-nodenotready.json"));
    assert_eq!(
        node.labels["node"],
        "ip-10-0-1-23.us-west-2.compute.internal"
    );
    assert!(!node.labels.contains_key("pod"));
}

#[test]
fn fingerprint_is_stable_per_object_and_reason_and_id_moves_with_the_count() {
    let first = event_envelope("prod", &backoff());
    let redelivered = event_envelope("prod", &backoff());
    assert_eq!(
        first.id, redelivered.id,
        "a re-delivery is the same message"
    );

    let mut repeat = backoff();
    repeat.series.as_mut().unwrap().count = 6;
    repeat.series.as_mut().unwrap().last_observed_time =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(at("2026-11-28T08:09:00Z"));
    let repeated = event_envelope("prod", &repeat);
    assert_eq!(
        first.fingerprint, repeated.fingerprint,
        "one alert downstream"
    );
    assert_ne!(first.id, repeated.id, "a repeat is a new message");

    let mut other_reason = backoff();
    other_reason.reason = Some("Failed".into());
    assert_ne!(
        first.fingerprint,
        event_envelope("prod", &other_reason).fingerprint
    );
    let mut other_pod = backoff();
    other_pod.regarding.as_mut().unwrap().name = Some("checkout-7d9f8b6c5-aaaaa".into());
    assert_ne!(
        first.fingerprint,
        event_envelope("prod", &other_pod).fingerprint
    );
    // The event object's own name (which changes per event) does not matter.
    let mut renamed = backoff();
    renamed.metadata.name = Some("checkout-7d9f8b6c5-x2k4p.18000000000000".into());
    assert_eq!(
        first.fingerprint,
        event_envelope("prod", &renamed).fingerprint
    );
}

#[test]
fn rate_limit_per_object_within_a_window() {
    let mut limiter = RateLimiter::new(3, Duration::from_secs(60));
    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(limiter.allow("Pod/payments/a", t0));
    }
    assert!(!limiter.allow("Pod/payments/a", t0 + Duration::from_secs(10)));
    assert!(
        limiter.allow("Pod/payments/b", t0),
        "other objects are independent"
    );
    assert!(limiter.allow("Pod/payments/a", t0 + Duration::from_secs(61)));
}

fn envelope(i: usize) -> alert_envelope::Envelope {
    let mut ev = backoff();
    ev.series.as_mut().unwrap().count = i as i32 + 1;
    event_envelope("prod", &ev)
}

#[tokio::test]
async fn full_buffer_drops_the_oldest_by_default_and_says_which() {
    let buffer = EventBuffer::new(3, OverflowPolicy::DropOldest);
    let envs: Vec<_> = (0..5).map(envelope).collect();
    let mut dropped = Vec::new();
    for env in envs.iter().cloned() {
        dropped.extend(buffer.push(env));
    }
    assert_eq!(
        dropped.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![envs[0].id.clone(), envs[1].id.clone()]
    );
    let kept = buffer.pop_batch(10).await;
    assert_eq!(
        kept.iter().map(|e| &e.id).collect::<Vec<_>>(),
        envs[2..].iter().map(|e| &e.id).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn drop_newest_policy_keeps_what_was_buffered() {
    let buffer = EventBuffer::new(2, OverflowPolicy::DropNewest);
    let envs: Vec<_> = (0..3).map(envelope).collect();
    assert!(buffer.push(envs[0].clone()).is_none());
    assert!(buffer.push(envs[1].clone()).is_none());
    assert_eq!(buffer.push(envs[2].clone()).unwrap().id, envs[2].id);
    assert_eq!(buffer.len(), 2);
    assert_eq!(buffer.pop_batch(1).await[0].id, envs[0].id);
}

/// The pipeline's accept step: filtered and rate-limited events and buffer
/// overflows all show up in `events_dropped{reason}`; nothing silently.
#[tokio::test]
async fn every_event_not_published_is_counted_by_reason() {
    let metrics = Arc::new(Metrics::new());
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .build(),
    );
    let pipeline = EventPipeline {
        account: alert_manager_agent::account::Account::default(),
        cluster: "prod".into(),
        filter: Arc::new(EventFilter::default()),
        rate_burst: 2,
        rate_window: Duration::from_secs(600),
        buffer: Arc::new(EventBuffer::new(3, OverflowPolicy::DropOldest)),
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
        metrics: metrics.clone(),
    };
    let mut limiter = RateLimiter::new(2, Duration::from_secs(600));
    // One pod repeating 4 times: 2 pass the limit, 2 are rate limited.
    for count in 5..9 {
        let mut ev = backoff();
        ev.series.as_mut().unwrap().count = count;
        pipeline.accept(&ev, &mut limiter, now()).await;
    }
    // Two other pods: the buffer (3) overflows by one.
    for name in ["other-1", "other-2"] {
        let mut ev = backoff();
        ev.regarding.as_mut().unwrap().name = Some(name.into());
        pipeline.accept(&ev, &mut limiter, now()).await;
    }
    pipeline
        .accept(&object("event-normal.json"), &mut limiter, now())
        .await;
    pipeline
        .accept(&backoff(), &mut limiter, at("2026-11-28T10:00:00Z"))
        .await;
    let text = metrics.encode();
    for line in [
        "alert_manager_agent_events_seen_total 8",
        r#"alert_manager_agent_events_dropped_total{reason="rate_limited"} 2"#,
        r#"alert_manager_agent_events_dropped_total{reason="buffer_full"} 1"#,
        r#"alert_manager_agent_events_dropped_total{reason="not_warning"} 1"#,
        r#"alert_manager_agent_events_dropped_total{reason="too_old"} 1"#,
        "alert_manager_agent_event_buffer_alerts 3",
        r#"alert_manager_agent_alerts_received_total{source="kubernetes-event"} 4"#,
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert_eq!(pipeline.buffer.len(), 3);
}

/// Two kubelet events on one pod in the same second: the same reason, the
/// same first timestamp and count, different event objects (and volumes).
fn two_failed_mounts() -> (Event, Event) {
    let mut a = backoff();
    a.reason = Some("FailedMount".into());
    a.series = None;
    a.deprecated_count = Some(1);
    // 20 s old.
    a.deprecated_last_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(
        "2026-11-28T08:04:40Z",
    )));
    a.note = Some("MountVolume.SetUp failed for volume \"config\"".into());
    let mut b = a.clone();
    b.metadata.name = Some("checkout-7d9f8b6c5-x2k4p.17f1a2b3c4d5e700".into());
    b.metadata.uid = Some("c0ffee00-1111-4222-8333-777788889999".into());
    b.note = Some("MountVolume.SetUp failed for volume \"secrets\"".into());
    (a, b)
}

#[test]
fn two_event_objects_differing_only_in_name_get_distinct_ids_and_one_fingerprint() {
    let (a, b) = two_failed_mounts();
    let (ea, eb) = (event_envelope("prod", &a), event_envelope("prod", &b));
    assert_eq!(ea.fingerprint, eb.fingerprint, "one alert downstream");
    assert_ne!(ea.id, eb.id, "two event objects are two messages");
    // Without a uid (an older API server), the name still tells them apart.
    let (mut a, mut b) = (a, b);
    a.metadata.uid = None;
    b.metadata.uid = None;
    assert_ne!(event_envelope("prod", &a).id, event_envelope("prod", &b).id);
}

type Calls = Arc<std::sync::Mutex<Vec<Vec<String>>>>;

/// An SNS client that records the entry ids of every PublishBatch call and
/// answers it with `BatchEntryIdsNotDistinct` when `refuse(call, ids)`
/// holds, else accepts every entry.
fn recording_sns(
    refuse: impl Fn(usize, &[String]) -> bool + Send + Sync + 'static,
) -> (aws_sdk_sns::Client, Calls) {
    use aws_sdk_sns::operation::publish_batch::{PublishBatchError, PublishBatchOutput};
    use aws_sdk_sns::types::PublishBatchResultEntry;
    use aws_sdk_sns::types::error::BatchEntryIdsNotDistinctException;
    use aws_smithy_mocks::MockResponse;
    let calls: Calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let rule = aws_smithy_mocks::mock!(aws_sdk_sns::Client::publish_batch).then_compute_response(
        move |input| {
            let ids: Vec<String> = input
                .publish_batch_request_entries()
                .iter()
                .map(|e| e.id().to_string())
                .collect();
            let call = {
                let mut calls = seen.lock().unwrap();
                calls.push(ids.clone());
                calls.len() - 1
            };
            if refuse(call, &ids) {
                return MockResponse::Error(PublishBatchError::BatchEntryIdsNotDistinctException(
                    BatchEntryIdsNotDistinctException::builder()
                        .message("Two or more batch entries in the request have the same Id.")
                        .build(),
                ));
            }
            let ok = ids
                .iter()
                .map(|id| {
                    PublishBatchResultEntry::builder()
                        .id(id)
                        .message_id(format!("msg-{id}"))
                        .build()
                })
                .collect();
            MockResponse::Output(
                PublishBatchOutput::builder()
                    .set_successful(Some(ok))
                    .build(),
            )
        },
    );
    let client = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "AKIDTESTKEY",
                "test-secret-key",
                None,
                None,
                "test",
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
    (client, calls)
}

fn events_pipeline(sns: aws_sdk_sns::Client, metrics: Arc<Metrics>) -> EventPipeline {
    EventPipeline {
        account: alert_manager_agent::account::Account::default(),
        cluster: "prod".into(),
        filter: Arc::new(EventFilter::default()),
        rate_burst: 5,
        rate_window: Duration::from_secs(600),
        buffer: Arc::new(EventBuffer::new(100, OverflowPolicy::DropOldest)),
        publisher: alert_manager_agent::SnsPublisher::new(
            sns,
            "arn:aws:sns:us-east-1:123456789012:alerts".parse().unwrap(),
            alert_aws::RetryPolicy {
                deadline: Duration::from_secs(2),
                min_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            },
        ),
        context: None,
        recent: Arc::new(alert_manager_agent::recent::RecentIds::new(
            std::num::NonZeroUsize::new(1000).unwrap(),
            Duration::from_secs(300),
        )),
        watermark: Default::default(),
        metrics,
    }
}

fn distinct(ids: &[String]) -> bool {
    ids.iter().collect::<std::collections::BTreeSet<_>>().len() == ids.len()
}

/// Runs the publisher for `for_` (it never returns on its own).
async fn publish_for(pipeline: &EventPipeline, for_: Duration) {
    let _ = tokio::time::timeout(for_, pipeline.publish_forever()).await;
}

#[tokio::test]
async fn two_failed_mounts_and_a_backoff_become_three_messages() {
    // As SNS does: a batch with duplicate ids is refused as a whole.
    let (sns, calls) = recording_sns(|_, ids| !distinct(ids));
    let metrics = Arc::new(Metrics::new());
    let pipeline = events_pipeline(sns, metrics.clone());
    let (a, b) = two_failed_mounts();
    let mut limiter = RateLimiter::new(5, Duration::from_secs(600));
    for ev in [a, b, backoff()] {
        pipeline.accept(&ev, &mut limiter, now()).await;
    }
    publish_for(&pipeline, Duration::from_millis(500)).await;
    let text = metrics.encode();
    assert!(
        text.contains("alert_manager_agent_alerts_published_total 3"),
        "three live events, three messages; calls {:?}\n{text}",
        calls.lock().unwrap()
    );
}

#[tokio::test]
async fn the_same_event_twice_in_the_buffer_is_published_once() {
    let (sns, calls) = recording_sns(|_, ids| !distinct(ids));
    let metrics = Arc::new(Metrics::new());
    let pipeline = events_pipeline(sns, metrics.clone());
    // A relist while the buffer is backed up queues the same event again.
    let env = event_envelope("prod", &backoff());
    pipeline.buffer.push(env.clone());
    pipeline.buffer.push(event_envelope(
        "prod",
        &object("event-failedscheduling.json"),
    ));
    pipeline.buffer.push(env);
    publish_for(&pipeline, Duration::from_millis(500)).await;
    let calls = calls.lock().unwrap();
    assert!(calls.iter().all(|ids| distinct(ids)), "{calls:?}");
    let text = metrics.encode();
    assert!(
        text.contains("alert_manager_agent_alerts_published_total 2"),
        "{text}"
    );
    assert!(!text.contains("publish_failures_total{"), "{text}");
}

#[tokio::test]
async fn batch_entry_ids_not_distinct_is_sent_again_never_dropped() {
    // The first call is refused as a whole, though its ids are distinct.
    let (sns, calls) = recording_sns(|call, _| call == 0);
    let metrics = Arc::new(Metrics::new());
    let pipeline = events_pipeline(sns, metrics.clone());
    let (a, b) = two_failed_mounts();
    let mut other = backoff();
    other.regarding.as_mut().unwrap().name = Some("other-pod".into());
    other.metadata.uid = Some("uid-other".into());
    let envs: Vec<_> = [a, b, other]
        .iter()
        .map(|ev| event_envelope("prod", ev))
        .collect();
    for env in &envs {
        pipeline.buffer.push(env.clone());
    }
    publish_for(&pipeline, Duration::from_millis(500)).await;
    let calls = calls.lock().unwrap();
    let after_refusal: std::collections::BTreeSet<_> =
        calls.iter().skip(1).flatten().cloned().collect();
    let want: std::collections::BTreeSet<_> = envs.iter().map(|e| e.id.clone()).collect();
    assert_eq!(after_refusal, want, "every entry sent again: {calls:?}");
    let text = metrics.encode();
    assert!(
        text.contains("alert_manager_agent_alerts_published_total 3"),
        "{text}"
    );
    assert!(!text.contains("publish_failures_total{"), "{text}");
}
