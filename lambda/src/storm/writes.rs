//! The storms' writes in [`super::Storms::update`], every group of the
//! batch in one call: first the claim of the updates due (with the
//! arrivals), then the sinks' receipts. Each group's write is conditional
//! on the version read; a group another invocation wrote meanwhile is read
//! again (one `BatchGetItem` for all of them), this batch's part is applied
//! to it, and it is written again.

use alert_aws::{Deadline, Failure};
use jiff::Timestamp;

use super::steps::Group;
use super::{StormState, SummaryRecord, Update};
use crate::deliver::BatchReport;
use crate::routing::StormRule;
use crate::state::{Outcome, StateStore, StormWrite};

/// Writes of one group per step when other invocations keep writing it.
const WRITE_ATTEMPTS: usize = 3;

/// The updates due, per sink.
type Due = Vec<(String, Update)>;

/// One group of the batch through the update step.
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) key: String,
    pub(super) group: Group,
    pub(super) rule: StormRule,
    pub(super) people: Vec<String>,
    /// The updates claimed; `None` until the claim is written.
    pub(super) due: Option<Due>,
    /// What each sink answered to its update.
    pub(super) receipts: Vec<(String, Result<SummaryRecord, ()>)>,
    /// Why the storm closes with these updates, if it does.
    pub(super) reason: Option<String>,
}

/// Which of the two writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// The updates due, claimed so no other invocation sends them too.
    Claim,
    /// What the sinks answered.
    Record,
}

impl Slot {
    pub(super) fn new(key: String, group: Group, rule: StormRule, people: Vec<String>) -> Slot {
        Slot {
            key,
            group,
            rule,
            people,
            due: None,
            receipts: Vec::new(),
            reason: None,
        }
    }

    /// The state this step writes, and (claim) the updates it claims.
    fn prepare(&self, step: Step, now: Timestamp) -> (StormState, Due) {
        let mut state = self.group.state.clone();
        match step {
            Step::Claim => {
                let due = state.due(&self.rule, &self.people, now);
                for (sink, _) in &due {
                    state.claim(sink, now);
                }
                (state, due)
            }
            Step::Record => {
                for (sink, receipt) in &self.receipts {
                    state.receipt(sink, receipt.clone());
                }
                state.settle(&self.people, self.reason.clone(), now);
                (state, Vec::new())
            }
        }
    }

    fn written(&mut self, step: Step, state: StormState, due: Due, report: &mut BatchReport) {
        let was_open = self.group.state.closed_at.is_none();
        self.group.version = Some(self.group.version.map_or(1, |v| v + 1));
        self.group.state = state;
        match step {
            Step::Claim => self.due = Some(due),
            Step::Record if was_open && self.group.state.closed_at.is_some() => {
                report.counts.storms_closed += 1;
                let (firing, resolved) = self.group.state.counts();
                tracing::info!(storm = %self.key, firing, resolved, reason = self.reason.as_deref().unwrap_or(""), "storm closed");
            }
            Step::Record => {}
        }
    }

    fn failed(&mut self, step: Step, f: &Failure, report: &mut BatchReport) {
        report.counts.state_errors += 1;
        match step {
            Step::Claim => {
                tracing::error!(storm = %self.key, reason = %f.reason, detail = %f.detail, "storm state not written; its absorbed records fail and come back");
                // No person has these alerts: SQS must bring them back.
                for message_id in &self.group.absorbed {
                    if !report.failed_message_ids.contains(message_id) {
                        let key = &self.key;
                        report.fail(message_id, || {
                            format!("storm {key}: its state was not written")
                        });
                    }
                }
            }
            Step::Record => {
                tracing::error!(storm = %self.key, reason = %f.reason, detail = %f.detail, "storm receipts not written; the next turn may send an update again");
            }
        }
    }
}

/// Writes `step` of every slot that takes part in it: all of them for the
/// claim, those that sent updates for the receipts.
pub(super) async fn write(
    store: &StateStore,
    slots: &mut [Slot],
    step: Step,
    writes: &Deadline,
    now: Timestamp,
    report: &mut BatchReport,
) {
    let mut pending: Vec<usize> = (0..slots.len())
        .filter(|&i| step == Step::Claim || !slots[i].receipts.is_empty())
        .collect();
    for _ in 0..WRITE_ATTEMPTS {
        if pending.is_empty() {
            return;
        }
        let prepared: Vec<(usize, StormState, Due)> = pending
            .iter()
            .map(|&i| {
                let (state, due) = slots[i].prepare(step, now);
                (i, state, due)
            })
            .collect();
        let batch: Vec<StormWrite<'_>> = prepared
            .iter()
            .map(|(i, state, _)| StormWrite {
                key: &slots[*i].key,
                state,
                version: slots[*i].group.version,
                next_turn: state.next_turn(&slots[*i].rule),
            })
            .collect();
        let (calls, outcomes) = store.put_storms(&batch, writes).await;
        report.counts.put_item_calls += calls;
        let (mut conflicts, mut again) = (Vec::new(), Vec::new());
        let mut outcomes = outcomes.into_iter();
        for (i, state, due) in prepared {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Outcome::Failed(Failure::permanent(
                    "state_write",
                    "no answer for this write",
                ))
            });
            match outcome {
                Outcome::Written => slots[i].written(step, state, due, report),
                Outcome::Conflict => conflicts.push(i),
                Outcome::Again => again.push(i),
                Outcome::Failed(f) => slots[i].failed(step, &f, report),
            }
        }
        again.extend(reread(store, slots, step, &conflicts, writes, report).await);
        pending = again;
    }
    let f = Failure::retryable("state_conflict", "other invocations kept writing it");
    for i in pending {
        slots[i].failed(step, &f, report);
    }
}

/// Reads the groups `conflicts` again and applies this batch's arrivals
/// to them (the receipts are applied by the next attempt). Answers those
/// read.
async fn reread(
    store: &StateStore,
    slots: &mut [Slot],
    step: Step,
    conflicts: &[usize],
    writes: &Deadline,
    report: &mut BatchReport,
) -> Vec<usize> {
    if conflicts.is_empty() {
        return Vec::new();
    }
    let keys: Vec<String> = conflicts.iter().map(|&i| slots[i].key.clone()).collect();
    let mut calls = 0;
    let fresh = store.load_storms(&keys, writes, &mut calls).await;
    report.counts.batch_get_item_calls += calls;
    let mut found = match fresh {
        Ok(found) => found,
        Err(f) => {
            tracing::error!(reason = %f.reason, detail = %f.detail, "storm state not read again after a conflict");
            for &i in conflicts {
                slots[i].failed(step, &f, report);
            }
            return Vec::new();
        }
    };
    for &i in conflicts {
        let slot = &mut slots[i];
        let stored = found.remove(&slot.key);
        slot.group.version = stored.as_ref().and_then(|s| s.version);
        let (route, group) = (&slot.group.state.route, &slot.group.state.group);
        let mut state = stored
            .and_then(|s| s.state)
            .unwrap_or_else(|| StormState::new(route, group.clone()));
        if step == Step::Claim {
            for a in &slot.group.arrivals {
                state.apply(a);
            }
        }
        slot.group.state = state;
    }
    conflicts.to_vec()
}
