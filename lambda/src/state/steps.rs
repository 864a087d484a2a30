//! The store's two steps in an invocation: before delivery (read, judge
//! each envelope in batch order, mark the stale ones), and after each part
//! of it (write what changed for the alerts it finished).

use alert_envelope::{EnrichmentError, Envelope};

use super::{Judgement, Ledger, StateFailure, StateStore, key};
use crate::batch::Batch;
use crate::deliver::BatchReport;
use alert_aws::{Deadline, Failure};

impl StateStore {
    /// Reads the batch's states and judges every envelope. `None` when the
    /// store failed and `STATE_FAILURE=retry`: every record is then
    /// reported failed, undelivered.
    pub async fn before_delivery(
        &self,
        batch: &mut Batch,
        deadline: &Deadline,
        now: jiff::Timestamp,
        report: &mut BatchReport,
    ) -> Option<Ledger> {
        let mut ledger = self.load(&batch.envelopes, deadline).await;
        report.counts.batch_get_item_calls += ledger.read_calls;
        if let Some(f) = ledger.unavailable.clone() {
            report.counts.state_errors += 1;
            return self.unavailable(batch, &f, report).then_some(ledger);
        }
        for env in &mut batch.envelopes {
            match ledger.judge(env, now) {
                Judgement::Stale { newer_id } => {
                    report.counts.stale += 1;
                    tracing::warn!(id = %env.id, newer_id = %newer_id, status = env.status.as_str(), alertname = %env.alertname, "stale: the state store holds a newer envelope of this alert; delivered to SNS sinks only, with stale=true");
                    env.enrichment.get_or_insert_with(Default::default).stale = true;
                }
                // Muted: kept for the tick after its window; else nothing
                // older of the alert waits for people any more.
                Judgement::Current => {
                    match env.enrichment.as_ref().and_then(|e| e.muted.as_ref()) {
                        Some(m) => ledger.hold(env, m.until),
                        None => ledger.release_superseded(env),
                    }
                }
            }
        }
        Some(ledger)
    }

    /// The store failed before delivery. Answers whether to deliver anyway.
    fn unavailable(&self, batch: &mut Batch, f: &Failure, report: &mut BatchReport) -> bool {
        match self.failure_mode() {
            StateFailure::Deliver => {
                tracing::error!(reason = %f.reason, detail = %f.detail, "state store unavailable; delivering at least once without it (STATE_FAILURE=deliver)");
                for env in &mut batch.envelopes {
                    note(env, f);
                }
                true
            }
            StateFailure::Retry => {
                tracing::error!(reason = %f.reason, detail = %f.detail, "state store unavailable; failing the batch so it comes back (STATE_FAILURE=retry)");
                for owners in &batch.owners {
                    for message_id in owners {
                        report.fail(message_id, || format!("state store: {f}"));
                    }
                }
                false
            }
        }
    }

    /// Writes what delivery changed for the alerts `keys`, whose envelopes
    /// in this batch have all had their delivery. A failed write is logged
    /// and counted; with `STATE_FAILURE=retry` the alert's records also fail.
    pub async fn after_delivery(
        &self,
        ledger: &mut Ledger,
        keys: &[String],
        batch: &Batch,
        deadline: &Deadline,
        report: &mut BatchReport,
    ) {
        let saved = self.save_alerts(ledger, keys, deadline).await;
        report.counts.put_item_calls += saved.write_calls;
        report.counts.state_errors += saved.failed.len() as u64;
        if saved.conflicts > 0 {
            tracing::info!(
                conflicts = saved.conflicts,
                "another invocation wrote some alerts meanwhile; this batch's deliveries were added to theirs"
            );
        }
        for (k, f) in saved.failed {
            tracing::error!(alert = %k, reason = %f.reason, detail = %f.detail, "state not written; a redelivery of these envelopes may reach their sinks again");
            if self.failure_mode() == StateFailure::Retry {
                for (i, env) in batch.envelopes.iter().enumerate() {
                    if key(env) != k {
                        continue;
                    }
                    for message_id in &batch.owners[i] {
                        if !report.failed_message_ids.contains(message_id) {
                            report.fail(message_id, || format!("state store: {f}"));
                        }
                    }
                }
            }
        }
    }
}

fn note(env: &mut Envelope, f: &Failure) {
    env.enrichment
        .get_or_insert_with(Default::default)
        .errors
        .push(EnrichmentError {
            stage: "state".into(),
            message: format!("state store unavailable, delivered at least once: {f}"),
        });
}
