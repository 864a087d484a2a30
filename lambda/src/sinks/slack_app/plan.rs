//! What one notification does to an alert's Slack message, given what the
//! sink's record says was sent before: pure, so every path is tested here.

use std::time::Duration;

use alert_envelope::{Envelope, Status};
use jiff::Timestamp;

use crate::state::SinkRecord;

/// What one notification does to the alert's Slack message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Action {
    /// A new message.
    Post,
    /// A reply in the thread of `ts` (a repeat of the firing).
    Reply { channel: String, ts: String },
    /// Rewrite `ts` as resolved, and reply in its thread.
    Resolve { channel: String, ts: String },
    /// The alert started flapping: rewrite `ts` as flapping, and say in
    /// its thread that nothing more comes until it is stable.
    Flap { channel: String, ts: String },
    /// The alert is stable after flapping: rewrite `ts` with its final
    /// state, and say so in its thread.
    Settle { channel: String, ts: String },
    /// A repeat within `repeat_interval`: nothing is sent.
    Quiet,
}

/// What to do with `env`, given what this sink's record says was sent.
pub(super) fn plan(
    env: &Envelope,
    prior: Option<&SinkRecord>,
    now: Timestamp,
    repeat: Duration,
) -> Action {
    let message = prior.and_then(|r| Some((r.channel.clone()?, r.ts.clone()?)));
    let flapped = prior.is_some_and(|r| r.flapping);
    match (env.enrichment.as_ref().is_some_and(|e| e.flapping), message) {
        (true, Some((channel, ts))) => return Action::Flap { channel, ts },
        (true, None) => return Action::Post,
        (false, Some((channel, ts))) if flapped => return Action::Settle { channel, ts },
        _ => {}
    }
    let open = prior
        .filter(|r| !r.closed)
        .and_then(|r| Some((r.channel.clone()?, r.ts.clone()?)));
    match (env.status, open) {
        (_, None) => Action::Post,
        (Status::Resolved, Some((channel, ts))) => Action::Resolve { channel, ts },
        (Status::Firing, Some((channel, ts))) => {
            let last = prior.and_then(|r| r.repeated_at).unwrap_or(Timestamp::MIN);
            let due = now.duration_since(last).as_secs() >= repeat.as_secs() as i64;
            if due {
                Action::Reply { channel, ts }
            } else {
                Action::Quiet
            }
        }
    }
}

/// "Resolved after 12 min".
pub(super) fn resolved_after(env: &Envelope) -> String {
    let Some(ends) = env.ends_at else {
        return "Resolved".into();
    };
    let minutes = ends.duration_since(env.starts_at).as_secs().max(0) / 60;
    match minutes {
        0 => "Resolved after less than a minute".into(),
        m if m < 120 => format!("Resolved after {m} min"),
        m => format!("Resolved after {} h {} min", m / 60, m % 60),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use alert_envelope::Source;

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
            e.ends_at = Some("2026-12-02T10:12:30Z".parse().unwrap());
        }
        e
    }

    fn posted(at: &str) -> SinkRecord {
        SinkRecord {
            channel: Some("C1".into()),
            ts: Some("1.2".into()),
            repeated_at: Some(at.parse().unwrap()),
            ..Default::default()
        }
    }

    const H4: Duration = Duration::from_secs(4 * 3600);

    #[test]
    fn a_firing_is_posted_then_repeats_reply_at_most_once_per_interval() {
        let now: Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        assert_eq!(plan(&env(Status::Firing), None, now, H4), Action::Post);
        let recent = posted("2026-12-02T10:00:00Z");
        assert_eq!(
            plan(&env(Status::Firing), Some(&recent), now, H4),
            Action::Quiet
        );
        let old = posted("2026-12-02T07:59:00Z");
        assert_eq!(
            plan(&env(Status::Firing), Some(&old), now, H4),
            Action::Reply {
                channel: "C1".into(),
                ts: "1.2".into()
            }
        );
    }

    #[test]
    fn a_resolve_updates_the_open_message_or_posts_when_there_is_none() {
        let now = Timestamp::now();
        let open = posted("2026-12-02T10:00:00Z");
        assert_eq!(
            plan(&env(Status::Resolved), Some(&open), now, H4),
            Action::Resolve {
                channel: "C1".into(),
                ts: "1.2".into()
            }
        );
        assert_eq!(plan(&env(Status::Resolved), None, now, H4), Action::Post);
        let closed = SinkRecord {
            closed: true,
            ..open
        };
        // A firing after the resolve is a new message, not a reply to the closed one.
        assert_eq!(
            plan(&env(Status::Firing), Some(&closed), now, H4),
            Action::Post
        );
        assert_eq!(
            resolved_after(&env(Status::Resolved)),
            "Resolved after 12 min"
        );
    }

    #[test]
    fn a_flapping_alert_rewrites_its_message_once_and_settles_it_when_stable() {
        let now = Timestamp::now();
        let mut flapping = env(Status::Firing);
        flapping
            .enrichment
            .get_or_insert_with(Default::default)
            .flapping = true;
        let at_1_2 = Action::Flap {
            channel: "C1".into(),
            ts: "1.2".into(),
        };
        // Even a closed message is rewritten: it is the alert's one message.
        let closed = SinkRecord {
            closed: true,
            ..posted("2026-12-02T10:00:00Z")
        };
        assert_eq!(plan(&flapping, Some(&closed), now, H4), at_1_2);
        assert_eq!(plan(&flapping, None, now, H4), Action::Post);
        let noticed = SinkRecord {
            flapping: true,
            ..closed
        };
        assert_eq!(
            plan(&env(Status::Resolved), Some(&noticed), now, H4),
            Action::Settle {
                channel: "C1".into(),
                ts: "1.2".into()
            }
        );
    }
}
