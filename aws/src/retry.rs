//! The one retry stage of this system, and the one deadline it is bounded by.
//!
//! As in Alertmanager's `notify/` and Vector's sinks: a publisher or a sink
//! makes one attempt and returns a [`Failure`] with its verdict; this stage
//! decides whether to wait (exponential backoff with jitter, at least the
//! receiver's `Retry-After`) and try again. Nothing else in the system
//! retries: the SDK clients have their retries disabled.
//!
//! Every attempt's timeout is the smaller of its own cap and the time left
//! before the [`Deadline`] minus its margin, and no attempt starts with less
//! than the margin left: an answer that arrives after a Lambda's deadline is
//! never seen, because Lambda kills the function first.

use std::future::Future;
use std::time::Duration;

use backon::BackoffBuilder;

pub use crate::deadline::Deadline;
use crate::errors::Failure;

/// The backoff between attempts: exponential from `min_delay`, doubling up
/// to `max_delay`, each delay with up to 100% jitter added (so a delay lies
/// in `[d, 2d]`: tokio's timers round up to the millisecond), and never
/// shorter than a `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryStage {
    /// First delay.
    pub min_delay: Duration,
    /// Largest delay before jitter.
    pub max_delay: Duration,
}

impl Default for RetryStage {
    /// 200 ms doubling to 5 s: three or four attempts fit in a 10 s budget.
    fn default() -> Self {
        RetryStage {
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryStage {
    /// A stage with these bounds.
    pub const fn new(min_delay: Duration, max_delay: Duration) -> RetryStage {
        RetryStage {
            min_delay,
            max_delay,
        }
    }

    fn delays(&self) -> impl Iterator<Item = Duration> {
        backon::ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .without_max_times()
            .build()
    }

    /// Runs one attempt until it succeeds, fails permanently, or the next
    /// one would not start before `deadline`. Each attempt gets its timeout
    /// (at most `cap`) as argument and is cut off there.
    pub async fn run<T, F, Fut>(
        &self,
        deadline: &Deadline,
        cap: Duration,
        mut attempt: F,
    ) -> Result<T, Failure>
    where
        F: FnMut(Duration) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut results = self
            .run_each(deadline, cap, 1, |_, timeout| {
                let one = attempt(timeout);
                async move { vec![one.await] }
            })
            .await;
        results.pop().unwrap_or_else(|| Err(Deadline::expired()))
    }

    /// Runs `n` items at once: `attempt(pending, timeout)` tries the items
    /// whose indices are in `pending` and answers one result per index, in
    /// order (a PublishBatch, say). Items that failed retryably are tried
    /// again together after the backoff; the others keep their result. Every
    /// item ends with a result: success, its permanent failure, or its last
    /// retryable failure when the deadline left no room for another attempt.
    pub async fn run_each<T, F, Fut>(
        &self,
        deadline: &Deadline,
        cap: Duration,
        n: usize,
        mut attempt: F,
    ) -> Vec<Result<T, Failure>>
    where
        F: FnMut(Vec<usize>, Duration) -> Fut,
        Fut: Future<Output = Vec<Result<T, Failure>>>,
    {
        let mut results: Vec<Option<Result<T, Failure>>> = (0..n).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..n).collect();
        let mut delays = self.delays();
        while !pending.is_empty() {
            let Some(timeout) = deadline.timeout(cap) else {
                break;
            };
            let answered = tokio::time::timeout(timeout, attempt(pending.clone(), timeout))
                .await
                .unwrap_or_default();
            let mut answers = answered.into_iter();
            let mut again = Vec::new();
            let mut wait = Duration::ZERO;
            for index in pending {
                let result = answers.next().unwrap_or_else(|| {
                    Err(Failure::retryable(
                        "timeout",
                        format!("no answer within {} ms", timeout.as_millis()),
                    ))
                });
                match result {
                    Err(f) if f.is_retryable() => {
                        wait = wait.max(f.retry_after.unwrap_or_default());
                        again.push(index);
                        results[index] = Some(Err(f));
                    }
                    other => results[index] = Some(other),
                }
            }
            pending = again;
            if pending.is_empty() {
                break;
            }
            let delay = delays.next().unwrap_or(self.max_delay).max(wait);
            // A wait that ends past the deadline leaves no attempt: refuse it
            // now and report the last failure.
            if delay >= deadline.remaining() {
                tracing::debug!(
                    pending = pending.len(),
                    delay_ms = delay.as_millis() as u64,
                    "no room for another attempt before the deadline"
                );
                break;
            }
            tokio::time::sleep(delay).await;
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Deadline::expired())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::time::Instant;

    use super::*;

    fn stage() -> RetryStage {
        RetryStage::new(Duration::from_millis(100), Duration::from_secs(1))
    }

    #[tokio::test(start_paused = true)]
    async fn delays_grow_within_their_jitter_bounds_up_to_the_cap() {
        let started = Instant::now();
        let times = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = times.clone();
        let result: Result<(), Failure> = stage()
            .run(
                &Deadline::within(Duration::from_secs(60)),
                Duration::from_secs(5),
                |_| {
                    seen.lock().unwrap().push(Instant::now() - started);
                    async { Err(Failure::retryable("server", "503")) }
                },
            )
            .await;
        assert_eq!(result.unwrap_err().reason, "server");
        let times = times.lock().unwrap();
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 10, "{gaps:?}");
        for (i, gap) in gaps.iter().enumerate() {
            let base = (Duration::from_millis(100) * 2u32.pow(i.min(10) as u32))
                .min(Duration::from_secs(1));
            // The timer rounds a sleep up to the millisecond, so 2d itself
            // happens (about one run in twenty).
            assert!(
                *gap >= base && *gap <= base * 2,
                "gap {i}: {gap:?} not in [{base:?}, {:?}]",
                base * 2
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_starts_after_the_deadline() {
        let deadline = Deadline::at(
            Instant::now() + Duration::from_secs(3),
            Duration::from_millis(500),
        );
        let last_start = Arc::new(std::sync::Mutex::new(Duration::ZERO));
        let started = Instant::now();
        let seen = last_start.clone();
        let result: Result<(), Failure> = stage()
            .run(&deadline, Duration::from_secs(5), |timeout| {
                let at = Instant::now() - started;
                *seen.lock().unwrap() = at;
                // Every attempt's timeout ends before the deadline's margin.
                assert!(
                    at + timeout <= Duration::from_millis(2500),
                    "{at:?} + {timeout:?}"
                );
                async { Err(Failure::retryable("server", "503")) }
            })
            .await;
        assert!(result.is_err());
        assert!(*last_start.lock().unwrap() < Duration::from_millis(2500));
        assert!(
            Instant::now() - started <= Duration::from_millis(2500),
            "returned within the margin"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_at_the_time_left() {
        let deadline = Deadline::at(
            Instant::now() + Duration::from_secs(3),
            Duration::from_millis(500),
        );
        let started = Instant::now();
        let result: Result<(), Failure> = stage()
            .run(&deadline, Duration::from_secs(30), |_| {
                std::future::pending()
            })
            .await;
        assert_eq!(result.unwrap_err().reason, "timeout");
        assert_eq!(Instant::now() - started, Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_when_it_fits() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let started = Instant::now();
        let result = stage()
            .run(
                &Deadline::within(Duration::from_secs(10)),
                Duration::from_secs(5),
                |_| {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            Err(Failure::retryable("throttled", "429")
                                .with_retry_after(Some(Duration::from_secs(3))))
                        } else {
                            Ok(n)
                        }
                    }
                },
            )
            .await;
        assert_eq!(result, Ok(1));
        assert!(Instant::now() - started >= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_past_the_deadline_is_refused_at_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let started = Instant::now();
        let result: Result<(), Failure> = stage()
            .run(
                &Deadline::within(Duration::from_secs(5)),
                Duration::from_secs(5),
                |_| {
                    c.fetch_add(1, Ordering::SeqCst);
                    async {
                        Err(Failure::retryable("throttled", "429")
                            .with_retry_after(Some(Duration::from_secs(30))))
                    }
                },
            )
            .await;
        assert_eq!(result.unwrap_err().reason, "throttled");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            Instant::now(),
            started,
            "no waiting for a retry that cannot happen"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_failure_is_not_retried() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let result: Result<(), Failure> = stage()
            .run(
                &Deadline::within(Duration::from_secs(10)),
                Duration::from_secs(5),
                |_| {
                    c.fetch_add(1, Ordering::SeqCst);
                    async { Err(Failure::permanent("http_400", "bad payload")) }
                },
            )
            .await;
        assert_eq!(result.unwrap_err().reason, "http_400");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn run_each_retries_only_the_items_that_failed_retryably() {
        let tried = Arc::new(std::sync::Mutex::new(Vec::new()));
        let t = tried.clone();
        let results = stage()
            .run_each(
                &Deadline::within(Duration::from_secs(10)),
                Duration::from_secs(5),
                3,
                |pending, _| {
                    t.lock().unwrap().push(pending.clone());
                    let first = t.lock().unwrap().len() == 1;
                    async move {
                        pending
                            .iter()
                            .map(|&i| match (i, first) {
                                (0, _) => Ok(i),
                                (1, _) => Err(Failure::permanent("validation", "no")),
                                (_, true) => Err(Failure::retryable("throttled", "later")),
                                (_, false) => Ok(i),
                            })
                            .collect()
                    }
                },
            )
            .await;
        assert_eq!(*tried.lock().unwrap(), vec![vec![0, 1, 2], vec![2]]);
        assert_eq!(results[0], Ok(0));
        assert_eq!(results[1].as_ref().unwrap_err().reason, "validation");
        assert_eq!(results[2], Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_deadline_starts_nothing() {
        let deadline = Deadline::at(
            Instant::now() + Duration::from_millis(400),
            Duration::from_millis(500),
        );
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let result: Result<(), Failure> = stage()
            .run(&deadline, Duration::from_secs(5), |_| {
                c.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .await;
        assert_eq!(result.unwrap_err().reason, "deadline");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
