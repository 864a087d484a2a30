//! The batch's view of its alerts' states, between the read before
//! delivery and the write after it, and how this batch's changes are
//! applied again to an item another invocation wrote meanwhile.

use std::collections::HashMap;

use alert_aws::Failure;
use alert_envelope::Envelope;
use jiff::Timestamp;

use super::alert::{AlertState, Held, Judgement, SinkRecord};
use super::item::Stored;

/// The store's key of an alert.
pub fn key(env: &Envelope) -> String {
    format!("{}/{}", env.cluster, env.fingerprint)
}

/// One change this batch made to an alert, replayed on a newer item when a
/// conditional write finds one.
#[derive(Debug, Clone)]
pub(super) enum Change {
    Advance(Box<Envelope>),
    Delivered {
        sink: String,
        id: String,
        receipt: Option<SinkRecord>,
        flapping: bool,
    },
    Hold(Held),
    Release,
}

#[derive(Debug, Default)]
pub(super) struct Entry {
    /// The version read (`None`: no item).
    pub(super) version: Option<u64>,
    /// The state as this batch sees it.
    pub(super) state: Option<AlertState>,
    pub(super) changes: Vec<Change>,
}

/// The batch's view of its alerts' states, between the read and the write.
#[derive(Debug, Default)]
pub struct Ledger {
    pub(super) entries: HashMap<String, Entry>,
    /// Why the store could not be read; the batch then goes without it.
    pub unavailable: Option<Failure>,
    /// `BatchGetItem` calls.
    pub read_calls: u64,
}

impl Ledger {
    /// A ledger that remembers nothing: no store, or a store that failed.
    pub fn off(unavailable: Option<Failure>) -> Ledger {
        Ledger {
            unavailable,
            ..Ledger::default()
        }
    }

    pub(super) fn on(&self) -> bool {
        self.unavailable.is_none()
    }

    /// Places `env` against what is known, and moves the state to it when
    /// it is current. Call in batch order.
    pub fn judge(&mut self, env: &Envelope, now: Timestamp) -> Judgement {
        if !self.on() {
            return Judgement::Current;
        }
        let entry = self.entries.entry(key(env)).or_default();
        match &mut entry.state {
            None => {
                entry.state = Some(AlertState::first(env));
                entry.changes.push(Change::Advance(Box::new(skeleton(env))));
                Judgement::Current
            }
            Some(state) => {
                let judgement = state.judge(env);
                if judgement == Judgement::Current && state.advance(env, now) {
                    entry.changes.push(Change::Advance(Box::new(skeleton(env))));
                }
                judgement
            }
        }
    }

    /// Did `sink` already take `env`?
    pub fn delivered(&self, env: &Envelope, sink: &str) -> bool {
        self.entries
            .get(&key(env))
            .and_then(|e| e.state.as_ref())
            .is_some_and(|s| s.delivered(sink, &env.id))
    }

    /// What is known of `env`'s alert, as this batch sees it.
    pub fn state(&self, env: &Envelope) -> Option<&AlertState> {
        self.entries.get(&key(env)).and_then(|e| e.state.as_ref())
    }

    /// What `sink` was sent of `env`'s alert before (its message, say).
    pub fn record(&self, env: &Envelope, sink: &str) -> Option<SinkRecord> {
        self.state(env).and_then(|s| s.sinks.get(sink).cloned())
    }

    /// Keeps `env` for people's sinks until its maintenance window ends
    /// (`until`), replacing what was held.
    pub fn hold(&mut self, env: &Envelope, until: Option<Timestamp>) {
        let Some(entry) = self.entry_with_state(env) else {
            return;
        };
        let held = Held {
            id: env.id.clone(),
            until,
            envelope: serde_json::to_string(env).unwrap_or_default(),
        };
        if let Some(state) = &mut entry.state
            && state.held.as_ref() != Some(&held)
        {
            state.held = Some(held.clone());
            entry.changes.push(Change::Hold(held));
        }
    }

    /// `env` reached people's sinks: nothing of its alert stays held.
    pub fn release(&mut self, env: &Envelope) {
        self.release_if(env, |_| true);
    }

    /// A newer envelope of the alert goes to people's sinks: the one held
    /// before it is not handed over any more. The held envelope itself, on
    /// the tick, stays held until its delivery succeeded ([`Ledger::release`]).
    pub fn release_superseded(&mut self, env: &Envelope) {
        self.release_if(env, |held| held.id != env.id);
    }

    fn release_if(&mut self, env: &Envelope, superseded: impl Fn(&Held) -> bool) {
        let Some(entry) = self.entry_with_state(env) else {
            return;
        };
        if let Some(state) = &mut entry.state
            && state.held.as_ref().is_some_and(&superseded)
        {
            state.held = None;
            entry.changes.push(Change::Release);
        }
    }

    fn entry_with_state(&mut self, env: &Envelope) -> Option<&mut Entry> {
        if !self.on() {
            return None;
        }
        self.entries
            .get_mut(&key(env))
            .filter(|e| e.state.is_some())
    }

    /// Records that `sink` took `env`, leaving `receipt` when it gives one.
    pub fn record_delivery(&mut self, env: &Envelope, sink: &str, receipt: Option<SinkRecord>) {
        if !self.on() {
            return;
        }
        let flapping = env.enrichment.as_ref().is_some_and(|e| e.flapping);
        let entry = self.entries.entry(key(env)).or_default();
        if let Some(state) = &mut entry.state {
            state.record_delivery(sink, &env.id, receipt.as_ref(), flapping);
            entry.changes.push(Change::Delivered {
                sink: sink.to_string(),
                id: env.id.clone(),
                receipt,
                flapping,
            });
        }
    }
}

impl Ledger {
    /// The entries of `keys` with changes to write, taken out of the ledger;
    /// none when the store could not be read.
    pub(super) fn take(&mut self, keys: &[String]) -> Vec<(String, Entry)> {
        if !self.on() {
            return Vec::new();
        }
        keys.iter()
            .filter_map(|k| self.entries.remove_entry(k))
            .filter(|(_, e)| !e.changes.is_empty())
            .collect()
    }
}

/// What the order rules read of an envelope (id, cluster, fingerprint,
/// status, `starts_at`, `ends_at`), without its labels, annotations and
/// enrichment: a replay needs no more, and a batch keeps one per change.
fn skeleton(env: &Envelope) -> Envelope {
    let mut e = Envelope::new(
        env.source,
        &env.cluster,
        env.status,
        env.fingerprint.clone(),
        env.starts_at,
        Default::default(),
    );
    e.id.clone_from(&env.id);
    e.ends_at = env.ends_at;
    e
}

/// A stored item as an entry; an expired one (TTL deletes late) counts as
/// no state, but keeps its version for the conditional write.
pub(super) fn entry_of(stored: Stored, now_s: i64) -> Entry {
    Entry {
        version: Some(stored.version),
        state: (stored.expires_at > now_s).then_some(stored.state),
        changes: Vec::new(),
    }
}

/// `changes` applied to `base` in order.
pub(super) fn replay(
    base: Option<AlertState>,
    changes: &[Change],
    now: Timestamp,
) -> Option<AlertState> {
    let mut state = base;
    for change in changes {
        match (change, &mut state) {
            (Change::Advance(env), None) => state = Some(AlertState::first(env)),
            (Change::Advance(env), Some(s)) => {
                if s.judge(env) == Judgement::Current {
                    s.advance(env, now);
                }
            }
            (
                Change::Delivered {
                    sink,
                    id,
                    receipt,
                    flapping,
                },
                Some(s),
            ) => s.record_delivery(sink, id, receipt.as_ref(), *flapping),
            (Change::Delivered { .. }, None) => {}
            (Change::Hold(h), Some(s)) => s.held = Some(h.clone()),
            (Change::Release, Some(s)) => s.held = None,
            (Change::Hold(_) | Change::Release, None) => {}
        }
    }
    state
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use alert_envelope::{Source, Status};

    fn env(status: Status) -> Envelope {
        let mut e = Envelope::new(
            Source::Alertmanager,
            "prod",
            status,
            "fp".into(),
            "2026-12-02T10:00:00Z".parse().unwrap(),
            Default::default(),
        );
        if status == Status::Resolved {
            e.ends_at = Some("2026-12-02T10:30:00Z".parse().unwrap());
        }
        e
    }

    #[test]
    fn a_newer_item_gets_this_batchs_deliveries_and_keeps_its_own() {
        let now = Timestamp::now();
        let firing = env(Status::Firing);
        let resolved = env(Status::Resolved);
        // This batch saw the firing and delivered it to pd.
        let changes = vec![
            Change::Advance(Box::new(firing.clone())),
            Change::Delivered {
                sink: "pd".into(),
                id: firing.id.clone(),
                receipt: None,
                flapping: false,
            },
        ];
        // Meanwhile another invocation delivered the resolve to slack.
        let mut theirs = AlertState::first(&firing);
        theirs.advance(&resolved, now);
        theirs.record_delivery("slack", &resolved.id, None, false);
        let merged = replay(Some(theirs), &changes, now).unwrap();
        assert_eq!(
            merged.status,
            Status::Resolved,
            "the older firing does not win"
        );
        assert!(merged.delivered("pd", &firing.id));
        assert!(merged.delivered("slack", &resolved.id));
    }

    #[test]
    fn an_expired_item_is_no_state_but_keeps_its_version() {
        let stored = Stored {
            state: AlertState::first(&env(Status::Firing)),
            version: 7,
            expires_at: 100,
        };
        let entry = entry_of(stored, 200);
        assert_eq!(entry.version, Some(7));
        assert!(entry.state.is_none());
    }

    #[test]
    fn a_ledger_without_a_store_judges_everything_current_and_remembers_nothing() {
        let mut ledger = Ledger::off(Some(Failure::retryable("network", "down")));
        let e = env(Status::Firing);
        assert_eq!(ledger.judge(&e, Timestamp::now()), Judgement::Current);
        ledger.record_delivery(&e, "pd", None);
        assert!(!ledger.delivered(&e, "pd"));
    }
}
