//! What this replica remembers for a few minutes, in maps bounded by
//! `RECENT_IDS_CAPACITY` (least recently used out first):
//!
//! - [`RecentIds`]: ids SNS accepted. Alertmanager retries a whole
//!   notification when one alert of it failed, and a relist of the event
//!   watch replays events; what SNS already took is skipped instead of
//!   published again.
//! - [`Resolves`]: the resolves seen per alert (`fingerprint`, `starts_at`).
//!   A firing that follows one is a new firing, not a retry of the first,
//!   though its payload is the same; it gets an id of its own.
//!
//! Both are per replica and lost on restart: a retry that reaches another
//! replica is published again (with the same id, so subscribers still
//! dedupe it), and a re-firing that reaches a replica that did not see the
//! resolve keeps the first firing's id, as before.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use lru::LruCache;

/// How long an accepted id is remembered: SNS FIFO's deduplication window,
/// and longer than Alertmanager's retries of one notification take.
pub const ACCEPTED_TTL: Duration = Duration::from_secs(300);

/// Ids SNS accepted in the last [`ACCEPTED_TTL`].
#[derive(Debug)]
pub struct RecentIds {
    accepted: Mutex<LruCache<String, Instant>>,
    ttl: Duration,
}

impl RecentIds {
    /// At most `capacity` ids, each for `ttl`.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> RecentIds {
        RecentIds {
            accepted: Mutex::new(LruCache::new(capacity)),
            ttl,
        }
    }

    /// True when SNS accepted `id` less than the ttl ago.
    pub fn contains(&self, id: &str) -> bool {
        self.contains_at(id, Instant::now())
    }

    fn contains_at(&self, id: &str, now: Instant) -> bool {
        let mut accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        match accepted.peek(id) {
            Some(at) if now.duration_since(*at) < self.ttl => true,
            Some(_) => {
                accepted.pop(id);
                false
            }
            None => false,
        }
    }

    /// Remembers that SNS accepted these ids.
    pub fn insert<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        self.insert_at(ids, Instant::now());
    }

    fn insert_at<'a>(&self, ids: impl IntoIterator<Item = &'a str>, now: Instant) {
        let mut accepted = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        for id in ids {
            accepted.put(id.to_string(), now);
        }
    }
}

/// The latest resolve seen per alert.
#[derive(Debug)]
pub struct Resolves {
    seen: Mutex<LruCache<String, Timestamp>>,
}

fn alert_key(cluster: &str, fingerprint: &str, starts_at: Timestamp) -> String {
    format!("{cluster}\u{0}{fingerprint}\u{0}{starts_at}")
}

impl Resolves {
    /// At most `capacity` alerts.
    pub fn new(capacity: NonZeroUsize) -> Resolves {
        Resolves {
            seen: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Records a resolve of the alert at `ends_at`; a later resolve wins.
    pub fn record(
        &self,
        cluster: &str,
        fingerprint: &str,
        starts_at: Timestamp,
        ends_at: Timestamp,
    ) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = alert_key(cluster, fingerprint, starts_at);
        match seen.get_mut(&key) {
            Some(at) if *at >= ends_at => {}
            Some(at) => *at = ends_at,
            None => {
                seen.put(key, ends_at);
            }
        }
    }

    /// When the alert was last resolved, if this replica saw it.
    pub fn last(
        &self,
        cluster: &str,
        fingerprint: &str,
        starts_at: Timestamp,
    ) -> Option<Timestamp> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(&alert_key(cluster, fingerprint, starts_at))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn n(v: usize) -> NonZeroUsize {
        NonZeroUsize::new(v).unwrap()
    }

    #[test]
    fn an_accepted_id_is_remembered_for_the_ttl_only() {
        let ids = RecentIds::new(n(10), Duration::from_secs(300));
        let now = Instant::now();
        ids.insert_at(["a"], now);
        assert!(ids.contains_at("a", now + Duration::from_secs(299)));
        assert!(!ids.contains_at("a", now + Duration::from_secs(300)));
        assert!(!ids.contains_at("b", now));
    }

    #[test]
    fn the_map_keeps_its_bound_dropping_the_least_recent() {
        let ids = RecentIds::new(n(2), Duration::from_secs(300));
        let now = Instant::now();
        ids.insert_at(["a", "b", "c"], now);
        assert!(!ids.contains_at("a", now));
        assert!(ids.contains_at("b", now) && ids.contains_at("c", now));
    }

    #[test]
    fn the_latest_resolve_of_an_alert_wins() {
        let r = Resolves::new(n(10));
        let s: Timestamp = "2026-11-28T03:00:00Z".parse().unwrap();
        let e1: Timestamp = "2026-11-28T04:00:00Z".parse().unwrap();
        let e2: Timestamp = "2026-11-28T05:00:00Z".parse().unwrap();
        assert_eq!(r.last("c", "fp", s), None);
        r.record("c", "fp", s, e2);
        r.record("c", "fp", s, e1);
        assert_eq!(r.last("c", "fp", s), Some(e2));
        assert_eq!(r.last("other", "fp", s), None);
    }
}
