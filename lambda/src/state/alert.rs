//! One alert's remembered life, and the two rules read from it: which
//! envelope is older than what is known (stale), and which sink already
//! took an envelope.
//!
//! Order within one alert (cluster + fingerprint) is by `starts_at`, then
//! by generation: Alertmanager resolves an alert Prometheus stopped sending,
//! and Prometheus resumes it with its restored `starts_at`, so one
//! `starts_at` can see firing → resolved → firing → resolved. The agent
//! tells a firing after a resolve apart by its id (derived with
//! `after_resolve=<ends_at>`, [`Envelope::firing_after_resolve`]), and that
//! is how it is recognised here.

use std::collections::BTreeMap;

use alert_envelope::{Envelope, Status, derive_id};
use jiff::Timestamp;

/// Envelope ids remembered per sink: enough for every redelivery of the
/// last few notifications, small enough for an item far below 400 KB.
const IDS_PER_SINK: usize = 8;
/// Status changes remembered, for flap detection.
const TRANSITIONS: usize = 32;

/// What one sink has received of an alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkRecord {
    /// Envelope ids delivered, oldest first (at most [`IDS_PER_SINK`]).
    pub ids: Vec<String>,
    /// Where its message lives (Slack: the channel id).
    pub channel: Option<String>,
    /// Its message id (Slack: `ts`).
    pub ts: Option<String>,
    /// PagerDuty's dedup key.
    pub dedup_key: Option<String>,
    /// When it last got a message for this alert (Slack: the post or a
    /// thread reply), for `repeat_interval`.
    pub repeated_at: Option<Timestamp>,
    /// Its message shows the resolve: a later firing is a new message.
    pub closed: bool,
    /// It last got the alert marked flapping (its one notice): it gets
    /// nothing more until the alert is stable, then the final state.
    pub flapping: bool,
}

/// An envelope a maintenance window kept from people's sinks: the tick
/// after the window hands it to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// Its id.
    pub id: String,
    /// When the window ends; `None`: no end known (a later envelope of the
    /// alert, not muted, replaces it).
    pub until: Option<Timestamp>,
    /// The envelope, as JSON.
    pub envelope: String,
}

/// The state of one alert, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertState {
    /// The last status known.
    pub status: Status,
    /// Its `starts_at`.
    pub starts_at: Timestamp,
    /// Its `ends_at` (a resolve).
    pub ends_at: Option<Timestamp>,
    /// The envelope that brought this status.
    pub envelope_id: String,
    /// For a firing after a resolve of the same `starts_at`: that resolve's
    /// `ends_at`. `None` for the first firing.
    pub generation: Option<Timestamp>,
    /// When the status changed, oldest first (the flap history); the first
    /// firing is not a change.
    pub transitions: Vec<Timestamp>,
    /// Per sink name.
    pub sinks: BTreeMap<String, SinkRecord>,
    /// The envelope a maintenance window holds back, if any.
    pub held: Option<Held>,
}

/// Where an envelope sits in its alert's life. Ordered: a smaller position
/// is older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    starts_at: Timestamp,
    /// The resolve time a firing follows (`MIN` for the first firing), or a
    /// resolve's own `ends_at`.
    at: Timestamp,
    /// 0 for a resolve, 1 for a firing: a firing after the resolve at `at`
    /// is newer than that resolve.
    firing: u8,
}

/// How an envelope relates to the known state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Newer than the state, or the same envelope again: deliver it.
    Current,
    /// Older than what the state holds (for example the firing that
    /// arrives after its resolve): machine consumers only.
    Stale {
        /// The envelope the state holds.
        newer_id: String,
    },
}

impl AlertState {
    /// The state an envelope starts when nothing is known.
    pub fn first(env: &Envelope) -> AlertState {
        AlertState {
            status: env.status,
            starts_at: env.starts_at,
            ends_at: env.ends_at,
            envelope_id: env.id.clone(),
            generation: None,
            transitions: Vec::new(),
            sinks: BTreeMap::new(),
            held: None,
        }
    }

    fn position(&self) -> Position {
        match self.status {
            Status::Resolved => Position {
                starts_at: self.starts_at,
                at: self.ends_at.unwrap_or(Timestamp::MAX),
                firing: 0,
            },
            Status::Firing => Position {
                starts_at: self.starts_at,
                at: self.generation.unwrap_or(Timestamp::MIN),
                firing: 1,
            },
        }
    }

    /// The generation of a firing envelope, when its id tells: the first
    /// firing, or the firing after the resolve this state holds. `None`
    /// when it cannot be told (a Kubernetes event, whose id has its own
    /// parts, or a firing after a resolve this store never saw).
    fn generation_of(&self, env: &Envelope) -> Option<Option<Timestamp>> {
        if env.id == self.envelope_id && self.status == Status::Firing {
            return Some(self.generation);
        }
        if env.id
            == derive_id(
                &env.cluster,
                &env.fingerprint,
                env.status,
                env.starts_at,
                None,
            )
        {
            return Some(None);
        }
        let after = self.ends_at.filter(|_| self.status == Status::Resolved)?;
        let next = derive_id(
            &env.cluster,
            &env.fingerprint,
            env.status,
            env.starts_at,
            Some(&format!("after_resolve={after}")),
        );
        (env.id == next).then_some(Some(after))
    }

    /// The envelope's position, or `None` when it cannot be placed (then it
    /// is never called stale: an unknown order is not proof of age).
    fn position_of(&self, env: &Envelope) -> Option<Position> {
        match env.status {
            Status::Resolved => Some(Position {
                starts_at: env.starts_at,
                at: env.ends_at?,
                firing: 0,
            }),
            Status::Firing => Some(Position {
                starts_at: env.starts_at,
                at: self.generation_of(env)?.unwrap_or(Timestamp::MIN),
                firing: 1,
            }),
        }
    }

    /// Is `env` older than this state?
    pub fn judge(&self, env: &Envelope) -> Judgement {
        if env.id == self.envelope_id {
            return Judgement::Current;
        }
        if env.starts_at < self.starts_at {
            return self.stale();
        }
        match self.position_of(env) {
            Some(p) if p < self.position() => self.stale(),
            _ => Judgement::Current,
        }
    }

    fn stale(&self) -> Judgement {
        Judgement::Stale {
            newer_id: self.envelope_id.clone(),
        }
    }

    /// Moves the state to a current envelope. Answers whether anything changed.
    pub fn advance(&mut self, env: &Envelope, now: Timestamp) -> bool {
        if env.id == self.envelope_id {
            return false;
        }
        let generation = match env.status {
            Status::Firing => self.generation_of(env).flatten(),
            Status::Resolved => None,
        };
        if env.status != self.status {
            self.transitions.push(now);
            let excess = self.transitions.len().saturating_sub(TRANSITIONS);
            self.transitions.drain(..excess);
        }
        self.status = env.status;
        self.starts_at = env.starts_at;
        self.ends_at = env.ends_at;
        self.envelope_id = env.id.clone();
        self.generation = generation;
        true
    }

    /// Did `sink` already take envelope `id`?
    pub fn delivered(&self, sink: &str, id: &str) -> bool {
        self.sinks
            .get(sink)
            .is_some_and(|s| s.ids.iter().any(|i| i == id))
    }

    /// Records that `sink` took envelope `id`, leaving `receipt` (its
    /// message, say) when it gives one; `flapping`: `id` was marked so.
    pub fn record_delivery(
        &mut self,
        sink: &str,
        id: &str,
        receipt: Option<&SinkRecord>,
        flapping: bool,
    ) {
        let record = self.sinks.entry(sink.to_string()).or_default();
        if let Some(r) = receipt {
            record.channel = r.channel.clone();
            record.ts = r.ts.clone();
            record.dedup_key = r.dedup_key.clone();
            record.repeated_at = r.repeated_at;
            record.closed = r.closed;
        }
        record.flapping = flapping;
        if record.ids.iter().any(|i| i == id) {
            return;
        }
        record.ids.push(id.to_string());
        let excess = record.ids.len().saturating_sub(IDS_PER_SINK);
        record.ids.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use alert_envelope::Source;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn firing(starts: &str) -> Envelope {
        Envelope::new(
            Source::Alertmanager,
            "prod",
            Status::Firing,
            "fp1".into(),
            ts(starts),
            Default::default(),
        )
    }

    fn resolved(starts: &str, ends: &str) -> Envelope {
        let mut env = Envelope::new(
            Source::Alertmanager,
            "prod",
            Status::Resolved,
            "fp1".into(),
            ts(starts),
            Default::default(),
        );
        env.ends_at = Some(ts(ends));
        env
    }

    const S: &str = "2026-12-02T10:00:00Z";
    const NOW: &str = "2026-12-02T11:00:00Z";

    #[test]
    fn the_firing_that_arrives_after_its_resolve_is_stale() {
        let f = firing(S);
        let r = resolved(S, "2026-12-02T10:30:00Z");
        let mut state = AlertState::first(&f);
        assert_eq!(state.judge(&r), Judgement::Current);
        assert!(state.advance(&r, ts(NOW)));
        assert_eq!(
            state.judge(&f),
            Judgement::Stale {
                newer_id: r.id.clone()
            }
        );
    }

    #[test]
    fn a_firing_after_the_resolve_is_a_new_generation_and_the_old_one_is_stale() {
        let f0 = firing(S);
        let r0 = resolved(S, "2026-12-02T10:30:00Z");
        let f1 = firing(S).firing_after_resolve(ts("2026-12-02T10:30:00Z"));
        let mut state = AlertState::first(&f0);
        state.advance(&r0, ts(NOW));
        assert_eq!(state.judge(&f1), Judgement::Current);
        state.advance(&f1, ts(NOW));
        assert_eq!(state.generation, Some(ts("2026-12-02T10:30:00Z")));
        assert!(matches!(state.judge(&f0), Judgement::Stale { .. }));
        assert!(matches!(state.judge(&r0), Judgement::Stale { .. }));
        let r1 = resolved(S, "2026-12-02T10:50:00Z");
        assert_eq!(state.judge(&r1), Judgement::Current);
    }

    #[test]
    fn an_older_incident_is_stale_and_a_newer_one_is_current() {
        let mut state = AlertState::first(&firing("2026-12-02T10:00:00Z"));
        let older = resolved("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z");
        assert!(matches!(state.judge(&older), Judgement::Stale { .. }));
        let newer = firing("2026-12-03T10:00:00Z");
        assert_eq!(state.judge(&newer), Judgement::Current);
        state.advance(&newer, ts(NOW));
        assert_eq!(state.starts_at, ts("2026-12-03T10:00:00Z"));
    }

    #[test]
    fn the_same_envelope_again_is_current_and_changes_nothing() {
        let f = firing(S);
        let mut state = AlertState::first(&f);
        assert_eq!(state.judge(&f), Judgement::Current);
        assert!(!state.advance(&f, ts(NOW)));
        assert!(
            state.transitions.is_empty(),
            "the first firing is no change"
        );
    }

    #[test]
    fn a_firing_whose_order_cannot_be_told_is_never_called_stale() {
        // A Kubernetes event: its id has the event's uid and count.
        let mut state = AlertState::first(&resolved(S, "2026-12-02T10:30:00Z"));
        let event = firing(S).with_id_discriminator("event=u1;count=2");
        assert_eq!(state.judge(&event), Judgement::Current);
        state.advance(&event, ts(NOW));
        assert_eq!(state.status, Status::Firing);
    }

    #[test]
    fn deliveries_are_remembered_per_sink_and_bounded() {
        let mut state = AlertState::first(&firing(S));
        state.record_delivery("pd", "a", None, false);
        state.record_delivery("pd", "a", None, false);
        assert!(state.delivered("pd", "a"));
        assert!(!state.delivered("slack", "a"));
        for i in 0..20 {
            state.record_delivery("pd", &format!("id{i}"), None, false);
        }
        assert_eq!(state.sinks["pd"].ids.len(), IDS_PER_SINK);
        assert!(state.delivered("pd", "id19"));
        assert!(!state.delivered("pd", "a"));
    }

    #[test]
    fn the_flap_history_keeps_the_last_status_changes() {
        let mut state = AlertState::first(&firing(S));
        for i in 0..40 {
            let env = if i % 2 == 0 {
                resolved(S, &format!("2026-12-02T10:{:02}:00Z", i + 1))
            } else {
                firing(S).firing_after_resolve(ts(&format!("2026-12-02T10:{i:02}:00Z")))
            };
            assert_eq!(state.judge(&env), Judgement::Current, "step {i}");
            state.advance(&env, ts(NOW));
        }
        assert_eq!(state.transitions.len(), TRANSITIONS);
    }
}
