//! Storms: when more than a route's `storm.threshold` distinct firing
//! alerts of one group (its `group_by` values) arrive within `window`, the
//! route's people's sinks stop getting one message per alert and get one
//! summary per group instead, kept current in place (Slack app: one message
//! updated; PagerDuty: one incident; webhook: one payload per update). SNS
//! still gets every envelope, marked `in_storm`.
//!
//! A group's [`StormState`] is one item of the alert state store (key
//! `#storm/<route>/<values…>`: `#` is not allowed in an EKS cluster name, so
//! it cannot meet an alert's `<cluster>/<fingerprint>`). Updates per sink
//! are at most one per `update_interval`; alerts in between mark the sink
//! pending, and the next invocation or the minute's tick sends one update
//! for all of them. The summary is closed when every alert of the group is
//! resolved, or when none arrived for `window` (the tick sees that).

mod records;
mod steps;
pub mod summary;
mod writes;

pub use records::{Arrival, FirstAlert, Member, SummaryRecord, Update};
pub use steps::{Storms, people};

use std::collections::BTreeMap;
use std::time::Duration;

use alert_envelope::Envelope;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::routing::StormRule;

/// Alerts remembered per group; beyond this a storm only counts them
/// (`untracked`), so the item stays far below DynamoDB's 400 KB.
pub const MAX_MEMBERS: usize = 2_000;
/// Alerts listed in the summary.
pub const FIRST_ALERTS: usize = 10;

/// A group's storm, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StormState {
    /// The route whose rule this is.
    pub route: String,
    /// The group's values.
    pub group: BTreeMap<String, String>,
    /// When the storm began; `None`: counting, no storm yet.
    #[serde(default)]
    pub since: Option<Timestamp>,
    /// When the last alert arrived.
    #[serde(default)]
    pub last_arrival: Option<Timestamp>,
    /// The group's alerts by alert key; before a storm, those of the window.
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
    /// Firing alerts absorbed beyond [`MAX_MEMBERS`].
    #[serde(default)]
    pub untracked: u64,
    /// The first alerts absorbed.
    #[serde(default)]
    pub first: Vec<FirstAlert>,
    /// Per people's sink.
    #[serde(default)]
    pub sinks: BTreeMap<String, SummaryRecord>,
    /// The highest severity seen (PagerDuty's word for it).
    #[serde(default)]
    pub severity: String,
    /// When every sink had its final update.
    #[serde(default)]
    pub closed_at: Option<Timestamp>,
    /// Why it closed.
    #[serde(default)]
    pub closed_reason: Option<String>,
}

fn secs(d: Duration) -> i64 {
    d.as_secs() as i64
}

impl StormState {
    /// No storm, no alert yet.
    pub fn new(route: &str, group: BTreeMap<String, String>) -> StormState {
        StormState {
            route: route.to_string(),
            group,
            since: None,
            last_arrival: None,
            members: BTreeMap::new(),
            untracked: 0,
            first: Vec::new(),
            sinks: BTreeMap::new(),
            severity: String::new(),
            closed_at: None,
            closed_reason: None,
        }
    }

    /// `env` (a current envelope of alert `key`) arrives at `now`. Answers
    /// the arrival, whose `absorbed` says whether the storm took it from
    /// the route's people's sinks.
    pub fn arrive(
        &mut self,
        key: &str,
        env: &Envelope,
        rule: &StormRule,
        now: Timestamp,
    ) -> Arrival {
        let member = Member::of(env, now);
        let mut arrival = Arrival {
            key: key.to_string(),
            first: FirstAlert {
                alertname: env.alertname.clone(),
                namespace: member.namespace.clone(),
                instance: member.instance.clone(),
                summary: env
                    .annotations
                    .get("summary")
                    .map(|s| s.chars().take(200).collect()),
            },
            member,
            severity: crate::sinks::pagerduty::severity(env.severity),
            absorbed: false,
            at: now,
        };
        if self.closed_at.is_some() {
            *self = StormState::new(&self.route, std::mem::take(&mut self.group));
        }
        arrival.absorbed = match self.since {
            None => {
                // The window's firing alerts count; a resolved one before
                // it is done with, a firing one stays (its resolve goes on
                // its own too).
                let from = now.as_second() - secs(rule.window);
                self.members.retain(|_, m| m.firing || m.arrived > from);
                let recent = |k: &String, m: &Member| k != key && m.firing && m.arrived > from;
                let firing = self.members.iter().filter(|(k, m)| recent(k, m)).count();
                arrival.member.firing && firing + 1 > rule.threshold
            }
            Some(_) => !self.members.get(key).is_some_and(|m| m.individual),
        };
        self.apply(&arrival);
        arrival
    }

    /// Applies an arrival whose judgement was made (by [`StormState::arrive`]
    /// here, or by this batch against an older read).
    pub fn apply(&mut self, a: &Arrival) {
        if a.absorbed && self.since.is_none() {
            self.since = Some(a.at);
            for m in self.members.values_mut() {
                m.individual = true;
            }
        }
        self.last_arrival = Some(self.last_arrival.map_or(a.at, |t| t.max(a.at)));
        let mut member = a.member.clone();
        member.individual = !a.absorbed;
        let full = self.members.len() >= MAX_MEMBERS;
        let new = !self.members.contains_key(&a.key);
        match self.members.get_mut(&a.key) {
            Some(m) if m.at <= member.at => {
                member.individual = m.individual;
                *m = member;
            }
            Some(_) => {}
            None if full => {
                if a.absorbed && member.firing {
                    self.untracked += 1;
                }
            }
            None => {
                self.members.insert(a.key.clone(), member);
            }
        }
        if a.absorbed && new && self.first.len() < FIRST_ALERTS {
            self.first.push(a.first.clone());
        }
        if severity_rank(a.severity) > severity_rank(&self.severity) {
            self.severity = a.severity.to_string();
        }
        if self.since.is_some() {
            for r in self.sinks.values_mut() {
                r.pending = true;
            }
        }
    }

    /// Why the storm closes at `now`, if it does.
    pub fn closing(&self, rule: &StormRule, now: Timestamp) -> Option<String> {
        self.since?;
        if self.closed_at.is_some() {
            return None;
        }
        if self.untracked == 0 && self.members.values().all(|m| !m.firing) {
            return Some("every alert resolved".into());
        }
        let last = self.last_arrival?;
        (now.as_second() - last.as_second() >= secs(rule.window))
            .then(|| format!("no alert for {}", humantime(rule.window)))
    }

    /// The sinks of `people` that get an update at `now`.
    pub fn due(
        &self,
        rule: &StormRule,
        people: &[String],
        now: Timestamp,
    ) -> Vec<(String, Update)> {
        if self.since.is_none() || self.closed_at.is_some() {
            return Vec::new();
        }
        let closing = self.closing(rule, now).is_some();
        let interval = secs(rule.update_interval);
        people
            .iter()
            .filter_map(|sink| {
                let r = self.sinks.get(sink).cloned().unwrap_or(SummaryRecord {
                    pending: true,
                    ..Default::default()
                });
                if r.closed {
                    return None;
                }
                if closing {
                    return Some((sink.clone(), Update::Close));
                }
                let rested = r
                    .updated_at
                    .is_none_or(|t| now.as_second() - t.as_second() >= interval);
                (r.pending && rested).then(|| (sink.clone(), Update::Open))
            })
            .collect()
    }

    /// Claims the update of `sink` at `now`: another invocation that reads
    /// the item after this one's write does not send it too.
    pub fn claim(&mut self, sink: &str, now: Timestamp) {
        let r = self.sinks.entry(sink.to_string()).or_default();
        r.updated_at = Some(now);
        r.pending = false;
    }

    /// Records what sending `sink` its update did: `Ok` the record it
    /// leaves; `Err`: it is pending again, for the next turn.
    pub fn receipt(&mut self, sink: &str, result: Result<SummaryRecord, ()>) {
        let r = self.sinks.entry(sink.to_string()).or_default();
        match result {
            Ok(record) => *r = record,
            Err(()) => r.pending = true,
        }
    }

    /// Marks the storm closed once every people's sink had its final update.
    pub fn settle(&mut self, people: &[String], reason: Option<String>, now: Timestamp) {
        let Some(reason) = reason else { return };
        if people
            .iter()
            .all(|s| self.sinks.get(s).is_some_and(|r| r.closed))
        {
            self.closed_at = Some(now);
            self.closed_reason = Some(reason);
        }
    }

    /// When the tick should look at this storm next: its next update's
    /// earliest time, or when it closes for quiet; `None`: nothing to do.
    pub fn next_turn(&self, rule: &StormRule) -> Option<Timestamp> {
        if self.since.is_none() || self.closed_at.is_some() {
            return None;
        }
        let quiet = self.last_arrival.map(|t| t + rule.window);
        let pending = self
            .sinks
            .values()
            .filter(|r| r.pending && !r.closed)
            .map(|r| {
                r.updated_at
                    .map_or(Timestamp::MIN, |t| t + rule.update_interval)
            })
            .min();
        match (quiet, pending) {
            (Some(q), Some(p)) => Some(q.min(p)),
            (q, p) => q.or(p),
        }
    }

    /// Firing and resolved alerts (counted, untracked included).
    pub fn counts(&self) -> (u64, u64) {
        let firing = self.members.values().filter(|m| m.firing).count() as u64;
        let resolved = self.members.len() as u64 - firing;
        (firing + self.untracked, resolved)
    }
}

fn severity_rank(s: &str) -> u8 {
    match s {
        "critical" => 4,
        "error" => 3,
        "warning" => 2,
        "info" => 1,
        _ => 0,
    }
}

/// `5m`, `1h 30m`.
pub fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h {m}m"),
    }
}

/// The store key of `route`'s group `group`: readable, or hashed when long.
pub fn storm_key(route: &str, group: &BTreeMap<String, String>) -> String {
    let mut key = format!("#storm/{route}");
    for v in group.values() {
        key.push('/');
        key.push_str(v);
    }
    if key.len() <= 512 {
        return key;
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(key.as_bytes());
    format!(
        "#storm/{}/{}",
        route.chars().take(200).collect::<String>(),
        hex::encode(digest)
    )
}

#[cfg(test)]
mod tests;
