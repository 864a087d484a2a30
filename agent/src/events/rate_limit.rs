//! The per-object rate limit.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Allows at most `burst` alerts per involved object per `window`, so a
/// crash-looping pod cannot flood SNS.
#[derive(Debug)]
pub struct RateLimiter {
    burst: usize,
    window: Duration,
    seen: HashMap<String, VecDeque<Instant>>,
}

/// Objects tracked before idle ones are swept.
const RATE_LIMITER_SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// A limiter of `burst` per `window` per object.
    pub fn new(burst: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            burst,
            window,
            seen: HashMap::new(),
        }
    }

    /// True when the object may send one more alert at `now` (and records it).
    pub fn allow(&mut self, object: &str, now: Instant) -> bool {
        if self.seen.len() >= RATE_LIMITER_SWEEP_AT {
            let window = self.window;
            self.seen.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let times = self.seen.entry(object.to_string()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.burst {
            return false;
        }
        times.push_back(now);
        true
    }
}
