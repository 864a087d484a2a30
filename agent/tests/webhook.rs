//! The webhook handler against an SNS client faked with aws-smithy-mocks:
//! status codes, per-entry retries, bad input, and no secrets in logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod webhook_support;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sns::operation::publish_batch::{PublishBatchError, PublishBatchOutput};
use aws_sdk_sns::types::{BatchResultErrorEntry, PublishBatchResultEntry};
use aws_smithy_mocks::{Rule, RuleMode, mock};
use axum::http::StatusCode;

use webhook_support::*;

#[tokio::test]
async fn a_notification_waits_for_a_free_slot_before_it_is_read_and_published() {
    let rule = accept_all();
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        Some(TOKEN),
        Duration::from_secs(1),
    );
    // Every slot busy (as if MAX_CONCURRENT_WEBHOOKS notifications were in flight).
    let busy = s
        .webhook_slots
        .clone()
        .acquire_many_owned(64)
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let s = s.clone();
        async move {
            post(
                &s,
                fixture("group.json"),
                Some("application/json"),
                Some(TOKEN),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "answered without a free slot");
    assert_eq!(rule.num_calls(), 0, "published without a free slot");
    // Without the token it is refused at once: an unauthenticated caller takes no slot.
    let (status, _) = post(&s, fixture("group.json"), Some("application/json"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    drop(busy);
    let (status, body) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("answered once a slot was free")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(rule.num_calls() > 0);
    assert_eq!(
        s.webhook_slots.available_permits(),
        64,
        "the slot is given back"
    );
}

#[tokio::test]
async fn accepted_notification_answers_200_after_sns_accepts_every_alert() {
    let rule = accept_all();
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        Some(TOKEN),
        Duration::from_secs(1),
    );
    let (status, body) = post(
        &s,
        fixture("group.json"),
        Some("application/json"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["published"], 3);
    assert_eq!(rule.num_calls(), 1, "3 alerts fit one PublishBatch");
    let metrics = s.metrics.encode();
    assert!(
        metrics.contains("alert_manager_agent_alerts_published_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"alert_manager_agent_webhook_responses_total{code="200"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn only_the_failed_entries_are_retried() {
    let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let calls = seen.clone();
    // First call: the first entry fails with an SNS-side (retryable) fault.
    // Every later call accepts everything.
    let rule = mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(move |input| {
        let ids: Vec<String> = input
            .publish_batch_request_entries()
            .iter()
            .map(|e| e.id().to_string())
            .collect();
        let first_call = calls.lock().unwrap().is_empty();
        calls.lock().unwrap().push(ids.clone());
        let (failed, ok) = if first_call {
            (vec![ids[0].clone()], ids[1..].to_vec())
        } else {
            (vec![], ids)
        };
        PublishBatchOutput::builder()
            .set_successful(Some(
                ok.iter()
                    .map(|id| {
                        PublishBatchResultEntry::builder()
                            .id(id)
                            .message_id("m")
                            .build()
                    })
                    .collect(),
            ))
            .set_failed(Some(
                failed
                    .iter()
                    .map(|id| {
                        BatchResultErrorEntry::builder()
                            .id(id)
                            .code("InternalError")
                            .sender_fault(false)
                            .build()
                            .unwrap()
                    })
                    .collect(),
            ))
            .build()
    });
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        None,
        Duration::from_secs(2),
    );
    let (status, body) = post(&s, fixture("group.json"), Some("application/json"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].len(), 3);
    assert_eq!(
        calls[1],
        vec![calls[0][0].clone()],
        "the retry carries only the failed entry"
    );
}

#[tokio::test]
async fn throttling_is_retried_then_succeeds() {
    // The first call is throttled (the real SNS error body), later calls succeed.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let rule = mock!(aws_sdk_sns::Client::publish_batch).then_compute_response(move |input| {
        if counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            return aws_smithy_mocks::MockResponse::Http(aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>"#,
                ),
            ));
        }
        aws_smithy_mocks::MockResponse::Output(
            PublishBatchOutput::builder()
                .set_successful(Some(
                    input
                        .publish_batch_request_entries()
                        .iter()
                        .map(|e| PublishBatchResultEntry::builder().id(e.id()).message_id("m").build())
                        .collect(),
                ))
                .build(),
        )
    });
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        None,
        Duration::from_secs(2),
    );
    let (status, body) = post(&s, fixture("firing.json"), Some("application/json"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "throttled once, then accepted"
    );
}

#[tokio::test]
async fn retryable_failure_past_the_deadline_answers_503() {
    let rule = mock!(aws_sdk_sns::Client::publish_batch).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(503).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                "<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>",
            ),
        )
    });
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        None,
        Duration::from_millis(100),
    );
    let (status, body) = post(&s, fixture("firing.json"), Some("application/json"), None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        rule.num_calls() >= 2,
        "retried before giving up: {}",
        rule.num_calls()
    );
    assert!(
        s.metrics
            .encode()
            .contains(r#"publish_failures_total{reason="server"} 1"#)
    );
}

#[tokio::test]
async fn permanent_failure_answers_500_and_is_not_retried() {
    let rule = mock!(aws_sdk_sns::Client::publish_batch).then_error(|| {
        PublishBatchError::AuthorizationErrorException(
            aws_sdk_sns::types::error::AuthorizationErrorException::builder()
                .message("not authorized to perform sns:Publish")
                .build(),
        )
    });
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        None,
        Duration::from_secs(2),
    );
    let (status, body) = post(&s, fixture("firing.json"), Some("application/json"), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(rule.num_calls(), 1, "a permanent failure is not retried");
    assert!(
        body["error"].as_str().unwrap().contains("sns:Publish"),
        "{body}"
    );
}

/// name, body, content type, bearer token, expected status, expected `field`.
type Case<'a> = (
    &'a str,
    Vec<u8>,
    Option<&'a str>,
    Option<&'a str>,
    StatusCode,
    Option<&'a str>,
);

#[tokio::test]
async fn bad_input_gets_the_documented_4xx_with_a_json_error() {
    let rule = accept_all();
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        Some(TOKEN),
        Duration::from_secs(1),
    );
    let json = Some("application/json");
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<Case> = vec![
        (
            "invalid JSON",
            b"{not json".to_vec(),
            json,
            Some(TOKEN),
            StatusCode::BAD_REQUEST,
            Some("."),
        ),
        (
            "version as a number",
            br#"{"version":4}"#.to_vec(),
            json,
            Some(TOKEN),
            StatusCode::BAD_REQUEST,
            Some("version"),
        ),
        (
            "alerts null",
            br#"{"version":"4","groupKey":"k","status":"firing","receiver":"r","alerts":null}"#
                .to_vec(),
            json,
            Some(TOKEN),
            StatusCode::BAD_REQUEST,
            Some("alerts"),
        ),
        (
            "deeply nested",
            deep.into_bytes(),
            json,
            Some(TOKEN),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "invalid UTF-8",
            vec![b'{', 0xff, 0xfe, b'}'],
            json,
            Some(TOKEN),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "10 MB body",
            vec![b' '; 10 * 1024 * 1024],
            json,
            Some(TOKEN),
            StatusCode::PAYLOAD_TOO_LARGE,
            None,
        ),
        (
            "missing token",
            fixture("firing.json"),
            json,
            None,
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            "wrong token",
            fixture("firing.json"),
            json,
            Some("guess"),
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            "wrong content type",
            fixture("firing.json"),
            Some("text/plain"),
            Some(TOKEN),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            "no content type",
            fixture("firing.json"),
            None,
            Some(TOKEN),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
    ];
    for (name, body, ct, token, want, field) in cases {
        let (status, json) = post(&s, body, ct, token).await;
        assert_eq!(status, want, "{name}: {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: {json}"
        );
        if let Some(field) = field {
            assert_eq!(json["field"], field, "{name}: {json}");
        }
    }
    assert_eq!(rule.num_calls(), 0, "nothing invalid reached SNS");
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let alert = (
            prop_oneof![Just("firing"), Just("resolved"), Just("burning")],
            prop::collection::btree_map("[a-z_]{1,10}", ".{0,20}", 0..5),
            prop_oneof![
                Just(serde_json::json!("2026-01-01T00:00:00Z")),
                Just(serde_json::json!("0001-01-01T00:00:00Z")),
                Just(serde_json::json!("not a time")),
                Just(serde_json::json!(12)),
            ],
        )
            .prop_map(|(status, labels, starts_at)| {
                serde_json::json!({"status": status, "labels": labels, "annotations": {}, "startsAt": starts_at, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": ""})
            });
        prop_oneof![
            // Structurally plausible notifications, some invalid in a field.
            (
                prop_oneof![Just(serde_json::json!("4")), Just(serde_json::json!(4)), Just(serde_json::json!(null))],
                prop::collection::vec(alert, 0..12),
                any::<bool>(),
            )
                .prop_map(|(version, alerts, truncated_as_string)| {
                    serde_json::to_vec(&serde_json::json!({
                        "version": version, "groupKey": "{}:{}", "status": "firing", "receiver": "r",
                        "truncatedAlerts": if truncated_as_string { serde_json::json!("0") } else { serde_json::json!(0) },
                        "alerts": alerts,
                    }))
                    .unwrap()
                }),
            // Arbitrary bytes.
            prop::collection::vec(any::<u8>(), 0..256),
            // Arbitrary JSON-ish text.
            "[\\[\\]{}\":,0-9a-z ]{0,200}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 5_000, ..ProptestConfig::default() })]
        #[test]
        fn generated_bodies_never_get_a_5xx(body in body()) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let rule = accept_all();
            let s = state(client(&[&rule], RuleMode::MatchAny), None, Duration::from_secs(1));
            let (status, json) = rt.block_on(post(&s, body, Some("application/json"), None));
            prop_assert!(status.is_success() || status.is_client_error(), "{} {}", status, json);
        }
    }
}

/// Accepts every entry except those whose body contains `refuse`, which
/// SNS refuses for good; records the ids it accepted, call by call.
fn accept_except(refuse: &'static str) -> (Rule, Arc<Mutex<Vec<String>>>) {
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let record = accepted.clone();
    let rule = mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(move |input| {
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for e in input.publish_batch_request_entries() {
            if e.message().contains(refuse) {
                failed.push(
                    BatchResultErrorEntry::builder()
                        .id(e.id())
                        .code("InvalidParameter")
                        .message("Invalid parameter: Message")
                        .sender_fault(true)
                        .build()
                        .unwrap(),
                );
            } else {
                record.lock().unwrap().push(e.id().to_string());
                ok.push(
                    PublishBatchResultEntry::builder()
                        .id(e.id())
                        .message_id(format!("msg-{}", e.id()))
                        .build(),
                );
            }
        }
        PublishBatchOutput::builder()
            .set_successful(Some(ok))
            .set_failed(Some(failed))
            .build()
    });
    (rule, accepted)
}

#[tokio::test]
async fn one_alert_refused_for_good_and_three_retries_publish_every_other_alert_exactly_once() {
    // group.json: three alerts; SNS refuses the one starting at 03:30 for good.
    let (rule, accepted) = accept_except("2026-11-28T03:30:02");
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        None,
        Duration::from_secs(1),
    );
    // The first delivery and three Alertmanager retries of the same notification.
    for attempt in 0..4 {
        let (status, body) = post(&s, fixture("group.json"), Some("application/json"), None).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "attempt {attempt}: {body}"
        );
    }
    let accepted = accepted.lock().unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for id in accepted.iter() {
        *counts.entry(id.clone()).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 2, "the two other alerts: {counts:?}");
    assert!(
        counts.values().all(|n| *n == 1),
        "each published exactly once over four deliveries: {counts:?}"
    );
}

#[tokio::test]
async fn a_firing_after_a_resolve_gets_a_new_id_and_a_retry_keeps_its_id() {
    let (rule, accepted) = accept_except("never-refused");
    let s = state(
        client(&[&rule], RuleMode::MatchAny),
        None,
        Duration::from_secs(1),
    );
    let mut ids = Vec::new();
    // firing(S), resolved(S), firing(S) again (Alertmanager resolved the alert
    // itself; Prometheus resumed it with its restored startsAt), then a retry
    // of that last notification.
    for f in ["firing.json", "resolved.json", "firing.json", "firing.json"] {
        let before = accepted.lock().unwrap().len();
        let (status, body) = post(&s, fixture(f), Some("application/json"), None).await;
        assert_eq!(status, StatusCode::OK, "{f}: {body}");
        ids.push(accepted.lock().unwrap()[before..].to_vec());
    }
    let (first, resolved, refire, retry) = (&ids[0], &ids[1], &ids[2], &ids[3]);
    assert_eq!(
        (first.len(), resolved.len(), refire.len()),
        (1, 1, 1),
        "{ids:?}"
    );
    assert_ne!(first[0], resolved[0]);
    assert_ne!(
        refire[0], first[0],
        "a re-firing must not dedupe against the first firing"
    );
    assert!(
        retry.iter().all(|id| *id == refire[0]),
        "a retry keeps its id: {ids:?}"
    );
}
