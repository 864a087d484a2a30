//! The one deadline of an invocation (or of one publish): every call's
//! timeout is the smaller of its own cap and the time left minus a margin,
//! and nothing starts with less than the margin left.

use std::time::Duration;

use tokio::time::Instant;

use crate::errors::Failure;

/// The end of the time one invocation (or one publish) has, and the margin
/// kept before it for reporting what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    margin: Duration,
}

impl Deadline {
    /// What a Lambda keeps for writing its response and metrics after the
    /// last attempt.
    pub const DEFAULT_MARGIN: Duration = Duration::from_millis(500);

    /// A deadline `total` from now, keeping [`Deadline::DEFAULT_MARGIN`].
    pub fn within(total: Duration) -> Deadline {
        Deadline::at(Instant::now() + total, Deadline::DEFAULT_MARGIN)
    }

    /// A deadline at `at`, keeping `margin` before it.
    pub fn at(at: Instant, margin: Duration) -> Deadline {
        Deadline { at, margin }
    }

    /// The deadline of a Lambda invocation, from the context's `deadline`
    /// (epoch milliseconds); `unknown` from now when that is not in the future.
    ///
    /// Real Lambda's deadline is always ahead, and is kept as it is, however
    /// short: going past it gets the function killed. The Runtime API
    /// emulator the tests use (`cargo lambda watch` 1.9) sends a fixed
    /// `lambda-runtime-deadline-ms` of 600000, ten minutes after the epoch,
    /// so there `unknown` applies.
    pub fn from_epoch_millis(deadline_ms: u64, unknown: Duration) -> Deadline {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match deadline_ms.checked_sub(now_ms) {
            Some(left) if left > 0 => Deadline::within(Duration::from_millis(left)),
            _ => Deadline::within(unknown),
        }
    }

    /// The same deadline, or an earlier one so that at most `cap` is left.
    pub fn capped(self, cap: Duration) -> Deadline {
        let capped = Instant::now() + cap + self.margin;
        Deadline {
            at: self.at.min(capped),
            margin: self.margin,
        }
    }

    /// The same deadline moved `by` earlier, keeping that time for work
    /// after it (the state writes after delivery).
    pub fn earlier(self, by: Duration) -> Deadline {
        Deadline {
            at: self.at.checked_sub(by).unwrap_or(self.at),
            margin: self.margin,
        }
    }

    /// Time left for work: until the deadline, minus the margin.
    pub fn remaining(&self) -> Duration {
        self.at
            .saturating_duration_since(Instant::now())
            .saturating_sub(self.margin)
    }

    /// The timeout for one call capped at `cap`, or `None` when less than the
    /// margin is left and no call may start.
    pub fn timeout(&self, cap: Duration) -> Option<Duration> {
        let left = self.remaining();
        (!left.is_zero()).then(|| cap.min(left))
    }

    /// The failure of work that did not finish before the deadline.
    pub fn expired() -> Failure {
        Failure::retryable("deadline", "no time left before the deadline")
    }
}

impl From<Duration> for Deadline {
    /// A deadline `total` from now.
    fn from(total: Duration) -> Deadline {
        Deadline::within(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_only_moves_the_deadline_earlier() {
        let d = Deadline::within(Duration::from_secs(10));
        assert!(d.capped(Duration::from_secs(2)).remaining() <= Duration::from_secs(2));
        assert!(d.capped(Duration::from_secs(60)).remaining() <= Duration::from_millis(9500));
    }

    #[test]
    fn earlier_keeps_time_after_the_deadline_for_later_work() {
        let d = Deadline::within(Duration::from_secs(10));
        let left = d.earlier(Duration::from_secs(3)).remaining();
        assert!(
            left <= Duration::from_millis(6500) && left > Duration::from_secs(6),
            "{left:?}"
        );
        assert!(d.remaining() > Duration::from_secs(9));
    }

    #[test]
    fn a_timeout_is_capped_by_the_time_left_minus_the_margin() {
        let d = Deadline::at(
            Instant::now() + Duration::from_secs(2),
            Duration::from_millis(500),
        );
        let t = d.timeout(Duration::from_secs(10)).unwrap();
        assert!(
            t <= Duration::from_millis(1500) && t > Duration::from_millis(1400),
            "{t:?}"
        );
        assert_eq!(
            d.timeout(Duration::from_millis(100)),
            Some(Duration::from_millis(100))
        );
        let spent = Deadline::at(
            Instant::now() + Duration::from_millis(400),
            Duration::from_millis(500),
        );
        assert_eq!(spent.timeout(Duration::from_secs(1)), None);
    }

    #[test]
    fn a_lambda_deadline_in_the_past_is_unknown_and_a_real_one_is_kept() {
        let d = Deadline::from_epoch_millis(600_000, Duration::from_secs(3));
        assert!(d.remaining() > Duration::from_secs(2));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            Deadline::from_epoch_millis(now + 60_000, Duration::from_secs(3)).remaining()
                > Duration::from_secs(50)
        );
        // A real deadline closer than `unknown` is the deadline: going past
        // it gets the function killed by Lambda.
        let close = Deadline::from_epoch_millis(now + 1_000, Duration::from_secs(3));
        assert!(close.remaining() <= Duration::from_secs(1), "{close:?}");
    }
}
