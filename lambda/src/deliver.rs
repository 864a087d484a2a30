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
//! recorded in the [`Ledger`] for the write after delivery.
//!
//! FIFO groups are delivered wave by wave (see [`crate::batch`]): after a
//! record of a group failed, the group's later records are reported failed
//! without being delivered, so a redelivery keeps their order.

use std::collections::{BTreeMap, BTreeSet};

use alert_aws::{Deadline, Failure, RetryStage};
use alert_envelope::Envelope;

use crate::batch::{Batch, FailedGroups};
use crate::emf::Counts;
use crate::sinks::{Outcome, Sink};
use crate::state::Ledger;

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

/// Delivers every envelope of `batch` to the sinks it was routed to.
pub async fn deliver(
    batch: &Batch,
    sinks: &Sinks,
    deadline: &Deadline,
    retry: &RetryStage,
    ledger: &mut Ledger,
    report: &mut BatchReport,
) {
    let mut failed_groups = FailedGroups::default();
    for refused in &batch.refused {
        failed_groups.fail(refused.group.as_deref(), refused.wave);
        report.fail(&refused.message_id, || refused.error.clone());
    }
    for wave in 0..batch.wave_count() {
        let mut now: Vec<usize> = Vec::new();
        for i in (0..batch.envelopes.len()).filter(|&i| batch.waves[i] == wave) {
            if failed_groups.blocks(batch.groups[i].as_deref(), wave) {
                held_back(batch, i, report);
            } else {
                now.push(i);
            }
        }
        let results = run(
            &batch.envelopes,
            &now,
            sinks,
            deadline,
            retry,
            ledger,
            report,
        )
        .await;
        for i in record(batch, &now, results, ledger, report) {
            failed_groups.fail(batch.groups[i].as_deref(), wave);
        }
    }
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
                Some((_, sink)) if is_stale(env) && !matches!(sink, Sink::Sns(_)) => {
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
        report.counts.publish_batch_calls += delivery.aws_calls;
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
