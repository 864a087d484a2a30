//! No secret reaches the agent's logs. Alone in its test binary on purpose:
//! it captures logs with a thread-scoped subscriber, and tests running beside
//! it on other threads race tracing's global callsite cache, which made it
//! miss lines now and then.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod webhook_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_sns::operation::publish_batch::PublishBatchError;
use aws_smithy_mocks::{RuleMode, mock};

use webhook_support::*;

#[tokio::test]
async fn logs_never_contain_the_token_or_aws_credentials() {
    use tracing_subscriber::fmt::MakeWriter;
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Capture {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;
        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let ok = accept_all();
    let s = state(
        client(&[&ok], RuleMode::MatchAny),
        Some(TOKEN),
        Duration::from_secs(1),
    );
    tracing::info!(config = ?s.auth, "state built");
    post(
        &s,
        fixture("firing.json"),
        Some("application/json"),
        Some(TOKEN),
    )
    .await;
    post(
        &s,
        fixture("firing.json"),
        Some("application/json"),
        Some("wrong-token"),
    )
    .await;
    post(&s, b"{bad".to_vec(), Some("application/json"), Some(TOKEN)).await;
    let denied = mock!(aws_sdk_sns::Client::publish_batch).then_error(|| {
        PublishBatchError::AuthorizationErrorException(
            aws_sdk_sns::types::error::AuthorizationErrorException::builder()
                .message("denied")
                .build(),
        )
    });
    let s = state(
        client(&[&denied], RuleMode::MatchAny),
        Some(TOKEN),
        Duration::from_secs(1),
    );
    post(
        &s,
        fixture("firing.json"),
        Some("application/json"),
        Some(TOKEN),
    )
    .await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("published"), "the capture works: {logs}");
    assert!(logs.contains("<redacted>"), "{logs}");
    for secret in [TOKEN, "test-secret-key", "wrong-token"] {
        assert!(!logs.contains(secret), "secret {secret:?} leaked into logs");
    }
}
