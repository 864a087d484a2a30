//! Flapping: an alert whose status changed at least `transitions` times
//! within a route's `window` (its state's transition history) is marked
//! `flapping`. Each of the route's people's sinks gets one notice (the
//! envelope that tipped it, marked flapping), then nothing: later envelopes
//! are held, like a muted one, until the last change is `window` old. The
//! tick then hands the alert's final state over once.
//!
//! Pure: it reads and changes the batch's ledger, and does no I/O.

use alert_envelope::Envelope;
use jiff::Timestamp;

use crate::batch::Batch;
use crate::deliver::BatchReport;
use crate::routing::{FlapRule, RoutingTable};
use crate::state::Ledger;

/// The status changes of `transitions` within `rule.window` before `now`.
fn changes_within(transitions: &[Timestamp], rule: &FlapRule, now: Timestamp) -> usize {
    transitions
        .iter()
        .filter(|t| now.duration_since(**t).as_secs_f64() < rule.window.as_secs_f64())
        .count()
}

/// When an alert flapping under `rule` is stable again: its last change
/// plus the window.
fn stable_at(transitions: &[Timestamp], rule: &FlapRule) -> Option<Timestamp> {
    let last = transitions.last()?;
    let window = jiff::SignedDuration::try_from(rule.window).ok()?;
    last.checked_add(window).ok()
}

/// Marks the flapping envelopes of `batch` and takes people's sinks that
/// already had their notice out of their `routed_to`, holding the envelope
/// for the tick. `noisy[i]`: envelope `i`'s routes with a storm or flap rule.
pub fn apply(
    table: &RoutingTable,
    batch: &mut Batch,
    noisy: &[Vec<usize>],
    ledger: &mut Ledger,
    now: Timestamp,
    report: &mut BatchReport,
) {
    for (i, env) in batch.envelopes.iter_mut().enumerate() {
        let Some(routes) = noisy.get(i) else { continue };
        if skipped(env) {
            continue;
        }
        let Some(transitions) = ledger.state(env).map(|s| s.transitions.clone()) else {
            continue;
        };
        let mut until: Option<Timestamp> = None;
        let mut held: Vec<String> = Vec::new();
        let mut noticed: Vec<String> = Vec::new();
        for &r in routes {
            let Some(rule) = &table.routes[r].flap else {
                continue;
            };
            if changes_within(&transitions, rule, now) < rule.transitions {
                continue;
            }
            until = until.max(stable_at(&transitions, rule));
            for sink in crate::storm::people(table, r) {
                if !routed(env).contains(&sink) || held.contains(&sink) || noticed.contains(&sink) {
                    continue;
                }
                if ledger.record(env, &sink).is_some_and(|rec| rec.flapping) {
                    held.push(sink);
                } else {
                    noticed.push(sink);
                }
            }
        }
        let Some(until) = until else { continue };
        let enrichment = env.enrichment.get_or_insert_with(Default::default);
        enrichment.flapping = true;
        enrichment.routed_to.retain(|s| !held.contains(s));
        report.counts.flapping += 1;
        if !noticed.is_empty() {
            report.counts.flap_notices += noticed.len() as u64;
            tracing::info!(id = %env.id, alertname = %env.alertname, changes = transitions.len(), stable_at = %until, notice_to = ?noticed, "flapping: people's sinks get one notice, then its final state once it is stable");
        }
        if !held.is_empty() {
            tracing::info!(id = %env.id, alertname = %env.alertname, until = %until, held_back = ?held, "flapping: held back from people's sinks until stable; SNS gets it with flapping=true");
            ledger.hold(env, Some(until));
        }
    }
}

/// Stale and muted envelopes reach no people's sink anyway.
fn skipped(env: &Envelope) -> bool {
    env.enrichment
        .as_ref()
        .is_some_and(|e| e.stale || e.muted.is_some())
}

fn routed(env: &Envelope) -> &[String] {
    env.enrichment
        .as_ref()
        .map(|e| e.routed_to.as_slice())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const RULE: FlapRule = FlapRule {
        transitions: 4,
        window: Duration::from_secs(30 * 60),
    };

    #[test]
    fn only_changes_within_the_window_count() {
        let changes: Vec<Timestamp> = ["09:00", "10:01", "10:02", "10:03", "10:04"]
            .iter()
            .map(|t| ts(&format!("2026-12-02T{t}:00Z")))
            .collect();
        assert_eq!(
            changes_within(&changes, &RULE, ts("2026-12-02T10:05:00Z")),
            4
        );
        // 10:34: the change of 10:04 is exactly 30 min old, so out.
        assert_eq!(
            changes_within(&changes, &RULE, ts("2026-12-02T10:33:59Z")),
            1
        );
        assert_eq!(
            changes_within(&changes, &RULE, ts("2026-12-02T10:34:00Z")),
            0
        );
        assert_eq!(changes_within(&[], &RULE, ts("2026-12-02T10:34:00Z")), 0);
    }

    #[test]
    fn a_flapping_alert_is_stable_a_window_after_its_last_change() {
        let changes = [ts("2026-12-02T10:01:00Z"), ts("2026-12-02T10:04:00Z")];
        assert_eq!(stable_at(&changes, &RULE), Some(ts("2026-12-02T10:34:00Z")));
        assert_eq!(stable_at(&[], &RULE), None);
    }
}
