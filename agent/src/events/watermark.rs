//! How far the leader has published, so that a new leader does not publish
//! again what the old one did: a relist after a leadership change replays
//! the last `EVENT_MAX_AGE_SECONDS` of events.
//!
//! The mark is a time `through` (events' last-observed times) and the ids
//! finished at exactly that time: every event the leader accepted whose
//! last-observed time is before `through` is finished (published, refused or
//! dropped, each counted), and so are the listed ones at `through`. It is
//! the oldest event still pending, or the newest finished when none is. The
//! leader writes it into the Lease at every renewal; the next leader skips
//! what it covers. Only an event the old leader never saw, with a
//! last-observed time older than the mark (a reporting node's clock far
//! behind), can be skipped wrongly; an event at the boundary the mark does
//! not list is published again, with its id, rather than dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The Lease annotation that carries the mark.
pub const ANNOTATION: &str = "alert-manager.io/events-published-through";

/// Ids listed at the boundary, at most: more are published again, not lost.
const MAX_BOUNDARY_IDS: usize = 64;

/// What a leader has finished with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Every accepted event last observed before this is finished.
    pub through: Timestamp,
    /// Events last observed at exactly `through` that are finished.
    pub ids: Vec<String>,
}

impl Mark {
    /// True when the event was finished by the leader that wrote the mark.
    pub fn covers(&self, last_seen: Timestamp, id: &str) -> bool {
        last_seen < self.through || (last_seen == self.through && self.ids.iter().any(|i| i == id))
    }

    /// The annotation value.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A mark from an annotation value; `None` when absent or unreadable.
    pub fn decode(value: &str) -> Option<Mark> {
        serde_json::from_str(value).ok()
    }
}

#[derive(Debug, Default)]
struct State {
    /// Accepted, not finished: id → (last seen, copies queued).
    pending: HashMap<String, (Timestamp, usize)>,
    /// How many pending at each last-seen time.
    pending_at: BTreeMap<Timestamp, usize>,
    /// Finished ids by last-seen time, from the mark on.
    finished: BTreeMap<Timestamp, Vec<String>>,
    /// The mark of the leader before this one, as read from the Lease.
    inherited: Option<Mark>,
}

/// The leader's progress, shared by the event pipeline and the elector.
#[derive(Debug, Default)]
pub struct Watermark {
    state: Mutex<State>,
}

impl Watermark {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An event was accepted into the buffer.
    pub fn queued(&self, id: &str, last_seen: Timestamp) {
        let mut s = self.lock();
        let entry = s.pending.entry(id.to_string()).or_insert((last_seen, 0));
        entry.1 += 1;
        let at = entry.0;
        *s.pending_at.entry(at).or_insert(0) += 1;
    }

    /// A queued event is finished with: published, refused or dropped.
    pub fn finished(&self, id: &str) {
        let mut s = self.lock();
        let Some((at, copies)) = s.pending.remove(id) else {
            return;
        };
        if let Some(n) = s.pending_at.get_mut(&at) {
            *n = n.saturating_sub(copies);
            if *n == 0 {
                s.pending_at.remove(&at);
            }
        }
        s.finished.entry(at).or_default().push(id.to_string());
    }

    /// The mark to write into the Lease: this leader's, else the inherited one.
    pub fn mark(&self) -> Option<Mark> {
        let mut s = self.lock();
        let through = match s.pending_at.keys().next() {
            Some(oldest_pending) => Some(*oldest_pending),
            None => s.finished.keys().next_back().copied(),
        };
        let own = through.map(|through| {
            // Older finished times are covered by `through` itself now.
            s.finished = s.finished.split_off(&through);
            let mut ids = s.finished.get(&through).cloned().unwrap_or_default();
            ids.truncate(MAX_BOUNDARY_IDS);
            Mark { through, ids }
        });
        match (own, s.inherited.clone()) {
            (Some(own), Some(old)) if old.through > own.through => Some(old),
            (Some(own), _) => Some(own),
            (None, old) => old,
        }
    }

    /// Takes over the mark of the previous leader and forgets this one's
    /// own progress (a new term starts with an empty buffer).
    pub fn inherit(&self, mark: Option<Mark>) {
        let mut s = self.lock();
        *s = State {
            inherited: mark,
            ..State::default()
        };
    }

    /// True when the previous leader finished with this event.
    pub fn inherited_covers(&self, last_seen: Timestamp, id: &str) -> bool {
        self.lock()
            .inherited
            .as_ref()
            .is_some_and(|m| m.covers(last_seen, id))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn t(s: &str) -> Timestamp {
        format!("2026-11-28T08:00:{s}Z").parse().unwrap()
    }

    #[test]
    fn the_mark_stops_at_the_oldest_pending_event() {
        let w = Watermark::default();
        w.queued("a", t("01"));
        w.queued("b", t("02"));
        w.queued("c", t("03"));
        w.finished("a");
        w.finished("c");
        let m = w.mark().unwrap();
        assert_eq!(m.through, t("02"));
        assert!(m.covers(t("01"), "a"));
        assert!(!m.covers(t("02"), "b"), "b is still pending");
        assert!(
            !m.covers(t("03"), "c"),
            "after the mark: published again, not lost"
        );
        w.finished("b");
        let m = w.mark().unwrap();
        assert_eq!(
            m,
            Mark {
                through: t("03"),
                ids: vec!["c".into()]
            }
        );
    }

    #[test]
    fn an_event_at_the_boundary_not_listed_is_not_covered() {
        let w = Watermark::default();
        w.queued("a", t("05"));
        w.finished("a");
        let m = w.mark().unwrap();
        assert!(m.covers(t("05"), "a"));
        assert!(!m.covers(t("05"), "b"), "a new event in the same second");
        assert!(m.covers(t("04"), "z"));
    }

    #[test]
    fn a_new_term_starts_from_the_inherited_mark() {
        let w = Watermark::default();
        assert_eq!(w.mark(), None);
        let old = Mark {
            through: t("09"),
            ids: vec![],
        };
        w.inherit(Some(old.clone()));
        assert_eq!(w.mark(), Some(old.clone()));
        assert!(w.inherited_covers(t("08"), "x"));
        w.queued("n", t("10"));
        w.finished("n");
        assert_eq!(w.mark().unwrap().through, t("10"));
        assert_eq!(Mark::decode(&old.encode()), Some(old));
        assert_eq!(Mark::decode("not json"), None);
    }
}
