//! The one retry stage for HTTP sinks, as in Alertmanager's `notify/`: a sink
//! makes one attempt and says whether a failure is retryable; this stage
//! decides to wait (exponential backoff with jitter, at least the receiver's
//! `Retry-After`) and try again, until the deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::BackoffBuilder;

use crate::sinks::SinkError;

/// Backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay.
    pub max_delay: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What one delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts made.
    pub attempts: u32,
    /// The final error, if it did not succeed.
    pub error: Option<SinkError>,
}

/// Runs `attempt` until it succeeds, fails permanently, or the next try
/// would not finish before `deadline`. Each attempt gets the time left as
/// its timeout.
pub async fn with_retry<F, Fut>(deadline: Instant, backoff: Backoff, mut attempt: F) -> Delivery
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<(), SinkError>>,
{
    let mut delays = backon::ExponentialBuilder::default()
        .with_min_delay(backoff.min_delay)
        .with_max_delay(backoff.max_delay)
        .with_jitter()
        .without_max_times()
        .build();
    let mut attempts = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Delivery {
                attempts,
                error: Some(SinkError::retryable(
                    "deadline",
                    "no time left before the Lambda deadline",
                )),
            };
        }
        attempts += 1;
        let result = match tokio::time::timeout(left, attempt(left)).await {
            Ok(r) => r,
            Err(_) => Err(SinkError::retryable(
                "timeout",
                "no answer before the deadline",
            )),
        };
        let error = match result {
            Ok(()) => {
                return Delivery {
                    attempts,
                    error: None,
                };
            }
            Err(e) if !e.retryable => {
                return Delivery {
                    attempts,
                    error: Some(e),
                };
            }
            Err(e) => e,
        };
        let delay = delays
            .next()
            .unwrap_or(backoff.max_delay)
            .max(error.retry_after.unwrap_or_default());
        if Instant::now() + delay >= deadline {
            return Delivery {
                attempts,
                error: Some(error),
            };
        }
        tokio::time::sleep(delay).await;
    }
}
