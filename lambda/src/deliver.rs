//! Delivery: plan → run → report.
//!
//! - plan: each envelope goes to the sinks routing chose for it
//!   (`enrichment.routed_to`); each sink gets all of its envelopes at once,
//!   so an SNS sink needs one PublishBatch per 10.
//! - run: every sink at once, each through the one retry stage, bounded by
//!   the invocation's deadline.
//! - report: a record fails (and comes back from SQS) only when one of its
//!   sinks still failed retryably at the deadline; a permanent refusal is
//!   logged and counted, not retried.
//!
//! With the state store, a sink that already took an envelope is skipped,
//! and a stale envelope goes to the SNS sinks only; each acceptance is
//! recorded in the [`Ledger`]. The batch is then delivered in parts of
//! [`ALERTS_PER_PART`] alerts, and after each part the alerts it finished
//! are written, so a crash mid-batch (Lambda's timeout, a lost host) repeats
//! at most one part's deliveries on the redelivery, not the whole batch's.
//!
//! FIFO groups are delivered wave by wave (see [`crate::batch`]): after a
//! record of a group failed, the group's later records are reported failed
//! without being delivered, so a redelivery keeps their order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alert_aws::{Deadline, Failure, RetryStage};
use alert_envelope::Envelope;

use crate::batch::{Batch, FailedGroups};
use crate::emf::Counts;
use crate::sinks::{Outcome, Sink};
use crate::state::{Ledger, StateStore, key};

/// Alerts per part of a batch when the state store is on: what a crash
/// mid-batch can repeat, against one `TransactWriteItems` per part (the
/// SDK's work per call is the store's main CPU cost: 20 alerts per part took
/// a warm 100-record batch to 1.6x the stateless CPU, 2026-12-02). A
/// multiple of 10, SNS's `PublishBatch` size; an SQS batch of 10 records,
/// the stack's, is one part.
pub const ALERTS_PER_PART: usize = 50;

/// Where delivery writes down what the sinks took.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint<'a> {
    /// The alert state store.
    pub store: &'a StateStore,
    /// The invocation's own deadline (delivery's ends a write reserve before it).
    pub deadline: &'a Deadline,
}

/// What happened to a batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Message ids to report as failed (SQS `batchItemFailures`).
    pub failed_message_ids: Vec<String>,
    /// First failure, for a direct SNS invocation's error.
    pub first_failure: Option<String>,
    /// Counters, also emitted as EMF.
    pub counts: Counts,
}

impl BatchReport {
    pub(crate) fn fail(&mut self, message_id: &str, why: impl FnOnce() -> String) {
        self.failed_message_ids.push(message_id.to_string());
        self.counts.failed += 1;
        self.first_failure.get_or_insert_with(why);
    }
}

/// The sinks of one routing table, by name.
pub type Sinks = BTreeMap<String, Sink>;

/// One envelope's outcome at one sink.
struct SinkResult<'a> {
    index: usize,
    sink: &'a str,
    outcome: Outcome,
}

/// Delivers every envelope of `batch` to the sinks it was routed to, and
/// with a `checkpoint` writes each alert's state once all its envelopes of
/// the batch had their delivery.
pub async fn deliver(
    batch: &Batch,
    sinks: &Sinks,
    deadline: &Deadline,
    retry: &RetryStage,
    ledger: &mut Ledger,
    checkpoint: Option<Checkpoint<'_>>,
    report: &mut BatchReport,
) {
    let mut failed_groups = FailedGroups::default();
    for refused in &batch.refused {
        failed_groups.fail(refused.group.as_deref(), refused.wave);
        report.fail(&refused.message_id, || refused.error.clone());
    }
    let mut unfinished = Unfinished::of(&batch.envelopes);
    for wave in 0..batch.wave_count() {
        let mut now: Vec<usize> = Vec::new();
        let mut finished: Vec<String> = Vec::new();
        for i in (0..batch.envelopes.len()).filter(|&i| batch.waves[i] == wave) {
            if failed_groups.blocks(batch.groups[i].as_deref(), wave) {
                held_back(batch, i, report);
                finished.extend(unfinished.done(&batch.envelopes[i]));
            } else {
                now.push(i);
            }
        }
        let parts = match checkpoint {
            Some(_) => parts(&batch.envelopes, &now, ALERTS_PER_PART),
            None => vec![now],
        };
        for part in parts {
            let results = run(
                &batch.envelopes,
                &part,
                sinks,
                deadline,
                retry,
                ledger,
                report,
            )
            .await;
            for i in record(batch, &part, results, ledger, report) {
                failed_groups.fail(batch.groups[i].as_deref(), wave);
            }
            for &i in &part {
                finished.extend(unfinished.done(&batch.envelopes[i]));
            }
            if let Some(c) = checkpoint {
                let keys = std::mem::take(&mut finished);
                c.store
                    .after_delivery(ledger, &keys, batch, c.deadline, report)
                    .await;
            }
        }
    }
}

/// How many envelopes of each alert still wait for their delivery.
struct Unfinished(HashMap<String, usize>);

impl Unfinished {
    fn of(envelopes: &[Envelope]) -> Unfinished {
        let mut left = HashMap::new();
        for env in envelopes {
            *left.entry(key(env)).or_default() += 1;
        }
        Unfinished(left)
    }

    /// `env` had its delivery; answers its alert's key when that was the last.
    fn done(&mut self, env: &Envelope) -> Option<String> {
        let k = key(env);
        let left = self.0.get_mut(&k)?;
        *left = left.saturating_sub(1);
        (*left == 0).then_some(k)
    }
}

/// `indices` in parts of at most `alerts` alerts, every envelope of one
/// alert in the part of its first, and the alerts in batch order.
fn parts(envelopes: &[Envelope], indices: &[usize], alerts: usize) -> Vec<Vec<usize>> {
    let mut by_alert: Vec<(String, Vec<usize>)> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for &i in indices {
        let k = key(&envelopes[i]);
        match position.get(&k) {
            Some(&p) => by_alert[p].1.push(i),
            None => {
                position.insert(k.clone(), by_alert.len());
                by_alert.push((k, vec![i]));
            }
        }
    }
    by_alert
        .chunks(alerts.max(1))
        .map(|chunk| chunk.iter().flat_map(|(_, i)| i.iter().copied()).collect())
        .collect()
}

/// A FIFO record behind a failed one of its group: not delivered, failed.
fn held_back(batch: &Batch, i: usize, report: &mut BatchReport) {
    report.counts.held_back += 1;
    for message_id in &batch.owners[i] {
        tracing::warn!(id = %batch.envelopes[i].id, message_id = %message_id, group = batch.groups[i].as_deref().unwrap_or(""), "an earlier record of its FIFO group failed; held back for the redelivery, in order");
        report.fail(message_id, || {
            "held back behind a failed record of its FIFO group".into()
        });
    }
}

/// Runs every sink at once over the envelopes `indices` routed to it.
async fn run<'a>(
    envelopes: &[Envelope],
    indices: &[usize],
    sinks: &'a Sinks,
    deadline: &Deadline,
    retry: &RetryStage,
    ledger: &Ledger,
    report: &mut BatchReport,
) -> Vec<SinkResult<'a>> {
    let mut plan: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut results = Vec::new();
    for &i in indices {
        let env = &envelopes[i];
        for name in routed_to(env) {
            match sinks.get_key_value(name.as_str()) {
                Some((_, sink)) if is_stale(env) && !sink.is_machines() => {
                    report.counts.skipped_stale += 1;
                }
                Some((name, _)) if ledger.delivered(env, name) => {
                    report.counts.skipped_already_delivered += 1;
                    tracing::info!(id = %env.id, sink = %name, "skipped: this sink already took this envelope (state store)");
                }
                Some((name, _)) => plan.entry(name.as_str()).or_default().push(i),
                // Routing validates sink names; a name without a sink is a bug.
                None => results.push(SinkResult {
                    index: i,
                    sink: "unknown",
                    outcome: Outcome {
                        result: Err(Failure::permanent(
                            "unknown_sink",
                            format!("no sink named {name:?}"),
                        )),
                        latency: Default::default(),
                        receipt: None,
                    },
                }),
            }
        }
    }
    let runs = plan.iter().filter_map(|(name, targets)| {
        let sink = sinks.get(*name)?;
        let envs: Vec<&Envelope> = targets.iter().map(|&i| &envelopes[i]).collect();
        let priors: Vec<_> = envs.iter().map(|e| ledger.record(e, name)).collect();
        Some(async move {
            let delivery = sink.deliver(&envs, &priors, deadline, retry).await;
            (*name, targets, delivery)
        })
    });
    for (name, targets, delivery) in futures::future::join_all(runs).await {
        match sinks.get(name) {
            Some(Sink::EventBridge(_)) => report.counts.put_events_calls += delivery.aws_calls,
            _ => report.counts.publish_batch_calls += delivery.aws_calls,
        }
        for (&index, outcome) in targets.iter().zip(delivery.outcomes) {
            results.push(SinkResult {
                index,
                sink: name,
                outcome,
            });
        }
    }
    results
}

fn is_stale(env: &Envelope) -> bool {
    env.enrichment.as_ref().is_some_and(|e| e.stale)
}

fn routed_to(env: &Envelope) -> &[String] {
    env.enrichment
        .as_ref()
        .map(|e| e.routed_to.as_slice())
        .unwrap_or_default()
}

/// Counts and logs the results; answers the envelopes that failed retryably.
fn record(
    batch: &Batch,
    indices: &[usize],
    results: Vec<SinkResult<'_>>,
    ledger: &mut Ledger,
    report: &mut BatchReport,
) -> Vec<usize> {
    let mut retry_later: BTreeSet<usize> = BTreeSet::new();
    let mut refused_by: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for r in results {
        let counts = report.counts.sinks.entry(r.sink.to_string()).or_default();
        counts
            .latency_ms
            .push(r.outcome.latency.as_secs_f64() * 1000.0);
        let Err(e) = r.outcome.result else {
            counts.delivered += 1;
            ledger.record_delivery(&batch.envelopes[r.index], r.sink, r.outcome.receipt);
            continue;
        };
        *counts.failed.entry(e.reason.to_string()).or_default() += 1;
        let env = &batch.envelopes[r.index];
        for message_id in &batch.owners[r.index] {
            if e.is_retryable() {
                tracing::error!(id = %env.id, message_id = %message_id, sink = %r.sink, reason = %e.reason, detail = %e.detail, "delivery failed retryably until the deadline; reporting the record as failed");
            } else {
                tracing::error!(id = %env.id, message_id = %message_id, sink = %r.sink, reason = %e.reason, detail = %e.detail, "delivery refused; not retrying (fix the sink's configuration)");
            }
        }
        if e.is_retryable() {
            retry_later.insert(r.index);
            report
                .first_failure
                .get_or_insert_with(|| format!("{}: {e}", r.sink));
        }
        refused_by.entry(r.index).or_default().push(r.sink);
    }
    for &i in indices {
        let env = &batch.envelopes[i];
        if retry_later.contains(&i) {
            for message_id in &batch.owners[i] {
                report.failed_message_ids.push(message_id.clone());
                report.counts.failed += 1;
            }
            continue;
        }
        let refused = refused_by.remove(&i).unwrap_or_default();
        if refused.is_empty() {
            report.counts.delivered += 1;
        }
        // A muted or flapping envelope may be held for the tick: only one
        // that went to people's sinks in full ends the hold.
        if env
            .enrichment
            .as_ref()
            .is_none_or(|e| e.muted.is_none() && !e.flapping)
        {
            ledger.release(env);
        }
        let degraded = env
            .enrichment
            .as_ref()
            .is_some_and(|e| !e.errors.is_empty());
        if degraded {
            report.counts.degraded += 1;
        }
        for message_id in &batch.owners[i] {
            tracing::info!(id = %env.id, message_id = %message_id, team = env.team().unwrap_or(""), degraded, sinks = ?routed_to(env), refused_by = ?refused, "delivered");
        }
    }
    retry_later.into_iter().collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use alert_envelope::{Source, Status};

    fn env(fingerprint: &str) -> Envelope {
        Envelope::new(
            Source::Alertmanager,
            "prod",
            Status::Firing,
            fingerprint.into(),
            "2026-12-02T10:00:00Z".parse().unwrap(),
            Default::default(),
        )
    }

    #[test]
    fn parts_keep_each_alert_whole_and_the_alerts_in_batch_order() {
        let envs: Vec<Envelope> = ["a", "b", "a", "c", "d", "b"].map(env).into();
        let all: Vec<usize> = (0..envs.len()).collect();
        assert_eq!(
            parts(&envs, &all, 2),
            vec![vec![0, 2, 1, 5], vec![3, 4]],
            "a and b in the first part, with their later envelopes"
        );
        assert_eq!(parts(&envs, &[3, 1], 1), vec![vec![3], vec![1]]);
        assert!(parts(&envs, &[], 20).is_empty());
    }

    #[test]
    fn an_alert_is_finished_with_the_delivery_of_its_last_envelope() {
        let envs: Vec<Envelope> = ["a", "b", "a"].map(env).into();
        let mut unfinished = Unfinished::of(&envs);
        assert_eq!(unfinished.done(&envs[0]), None, "a has one more");
        assert_eq!(unfinished.done(&envs[1]), Some("prod/b".to_string()));
        assert_eq!(unfinished.done(&envs[2]), Some("prod/a".to_string()));
        assert_eq!(unfinished.done(&env("z")), None, "not of this batch");
    }
}
