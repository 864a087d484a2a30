//! The writes after each part of a batch: every alert whose state changed,
//! conditionally on the version read, so that two invocations cannot both
//! believe they own a delivery.
//!
//! Several alerts go in one `TransactWriteItems`, each Put with its own
//! condition: one call for a part of the batch instead of one per alert
//! (the SDK's work per call, not the bytes, is what a write costs the
//! function). One alert alone is a `PutItem`: a transaction costs twice the
//! write units. When another invocation wrote an alert in between, its
//! item is read again, this batch's changes are applied to it (the ledger's
//! replay), and the write is tried again.

use std::collections::HashMap;

use alert_aws::{Deadline, Failure};
use alert_envelope::Status;
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;

use super::conditional::{Answer, TRANSACTION_BYTES, TRANSACTION_ITEMS};
use super::item::{KEY, from_item, to_item};
use super::ledger::{Entry, entry_of, replay};
use super::{AlertState, Ledger, Saved, StateStore, WRITE_ATTEMPTS, call};

type Item = HashMap<String, AttributeValue>;

impl StateStore {
    /// Writes every alert whose state changed (see [`StateStore::save_alerts`]).
    pub async fn save(&self, mut ledger: Ledger, deadline: &Deadline) -> Saved {
        let keys: Vec<String> = ledger.entries.keys().cloned().collect();
        self.save_alerts(&mut ledger, &keys, deadline).await
    }

    /// Writes the alerts `keys` whose state changed, each conditionally on
    /// the version read, and forgets them: delivery is done with them.
    /// Several go in one `TransactWriteItems`, one goes alone in a `PutItem`.
    pub async fn save_alerts(
        &self,
        ledger: &mut Ledger,
        keys: &[String],
        deadline: &Deadline,
    ) -> Saved {
        let mut saved = Saved::default();
        let mut pending: Vec<(String, Entry)> = ledger
            .take(keys)
            .into_iter()
            .filter(|(_, e)| e.state.is_some())
            .collect();
        for _ in 0..WRITE_ATTEMPTS {
            let mut again = Vec::new();
            for mut group in transactions(std::mem::take(&mut pending)) {
                if group.len() == 1
                    && let Some((key, entry)) = group.pop()
                {
                    let (calls, outcome) = self.write(&key, entry, deadline).await;
                    saved.write_calls += calls;
                    saved.conflicts += calls.saturating_sub(1);
                    match outcome {
                        Ok(()) => saved.written += 1,
                        Err(f) => saved.failed.push((key, f)),
                    }
                } else {
                    self.transact(group, deadline, &mut saved, &mut again).await;
                }
            }
            if again.is_empty() {
                return saved;
            }
            pending = again;
        }
        for (key, _) in pending {
            let detail = format!("{key}: other invocations kept writing it");
            saved
                .failed
                .push((key, Failure::retryable("state_conflict", detail)));
        }
        saved
    }

    /// One `TransactWriteItems` of `group`'s alerts, each Put with its own
    /// condition. DynamoDB cancels the whole transaction when one condition
    /// fails, and says which: those alerts are read again with this batch's
    /// changes applied, and all go into `again`.
    async fn transact(
        &self,
        group: Vec<(String, Entry)>,
        deadline: &Deadline,
        saved: &mut Saved,
        again: &mut Vec<(String, Entry)>,
    ) {
        let fail_all = |saved: &mut Saved, group: Vec<(String, Entry)>, f: Failure| {
            for (key, _) in group {
                saved.failed.push((key, f.clone()));
            }
        };
        let Some(timeout) = deadline.timeout(self.config.call_timeout) else {
            return fail_all(saved, group, Deadline::expired());
        };
        // `save_alerts` writes only entries with a state.
        let items = group
            .iter()
            .filter_map(|(key, entry)| {
                Some((
                    self.item(key, entry.state.as_ref()?, entry.version),
                    entry.version,
                ))
            })
            .collect();
        saved.write_calls += 1;
        let codes = match self.transact_if(items, timeout).await {
            Ok(Answer::Cancelled(codes)) => codes,
            Ok(Answer::Conflict) => vec![Some("ConditionalCheckFailed".into()); group.len()],
            Ok(Answer::Written) => {
                saved.written += group.len() as u64;
                return;
            }
            Err(f) => return fail_all(saved, group, f),
        };
        for ((key, mut entry), code) in group.into_iter().zip(codes) {
            match code.as_deref() {
                Some("ConditionalCheckFailed") => {
                    saved.conflicts += 1;
                    match self.reread(&key, &mut entry, deadline).await {
                        Ok(()) => again.push((key, entry)),
                        Err(f) => saved.failed.push((key, f)),
                    }
                }
                // Cancelled for another alert's sake, or contended: as it is, again.
                None | Some("None" | "TransactionConflict" | "ThrottlingError") => {
                    again.push((key, entry))
                }
                Some(other) => saved.failed.push((
                    key,
                    Failure::permanent("state_write", format!("TransactWriteItems: {other}")),
                )),
            }
        }
    }

    /// An alert's item, its version one past the version read.
    fn item(&self, key: &str, state: &AlertState, version: Option<u64>) -> Item {
        to_item(
            key,
            state,
            version.map_or(1, |v| v + 1),
            self.expires_at(state),
        )
    }

    /// One alert's write, and the calls it took.
    async fn write(
        &self,
        key: &str,
        mut entry: Entry,
        deadline: &Deadline,
    ) -> (u64, Result<(), Failure>) {
        let mut calls = 0;
        for _ in 0..WRITE_ATTEMPTS {
            let Some(state) = &entry.state else {
                return (calls, Ok(()));
            };
            let Some(timeout) = deadline.timeout(self.config.call_timeout) else {
                return (calls, Err(Deadline::expired()));
            };
            let item = self.item(key, state, entry.version);
            calls += 1;
            let result = match self.put_if(item, entry.version, timeout).await {
                Ok(Answer::Conflict) => match self.reread(key, &mut entry, deadline).await {
                    Ok(()) => continue,
                    Err(f) => Err(f),
                },
                Ok(Answer::Written | Answer::Cancelled(_)) => Ok(()),
                Err(f) => Err(f),
            };
            return (calls, result);
        }
        (
            calls,
            Err(Failure::retryable(
                "state_conflict",
                format!("{key}: other invocations kept writing it"),
            )),
        )
    }

    /// Another invocation wrote `key`: reads it and applies this batch's
    /// changes to it.
    async fn reread(
        &self,
        key: &str,
        entry: &mut Entry,
        deadline: &Deadline,
    ) -> Result<(), Failure> {
        let send = self
            .client
            .get_item()
            .table_name(&self.config.table)
            .key(KEY, AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send();
        let out = call("GetItem", deadline, self.config.call_timeout, send).await?;
        let now = jiff::Timestamp::now();
        let fresh = match out.item {
            Some(item) => entry_of(
                from_item(&item).map_err(|e| Failure::permanent("state_item", e))?,
                now.as_second(),
            ),
            None => Entry::default(),
        };
        entry.version = fresh.version;
        entry.state = replay(fresh.state, &entry.changes, now);
        Ok(())
    }

    /// The TTL of a state: `STATE_TTL_HOURS` after the resolve, or after
    /// the last change of an alert still firing (one that never resolves
    /// must not stay forever).
    fn expires_at(&self, state: &AlertState) -> i64 {
        let from = match state.status {
            Status::Resolved => state.ends_at.unwrap_or_else(Timestamp::now),
            Status::Firing => Timestamp::now(),
        };
        from.as_second()
            .max(Timestamp::now().as_second())
            .saturating_add(self.config.ttl.as_secs() as i64)
    }
}

/// `pending` in transactions of at most [`TRANSACTION_ITEMS`] alerts and
/// about [`TRANSACTION_BYTES`].
fn transactions(pending: Vec<(String, Entry)>) -> Vec<Vec<(String, Entry)>> {
    let mut out: Vec<Vec<(String, Entry)>> = Vec::new();
    let mut bytes = 0;
    for (key, entry) in pending {
        // Sink records and timestamps are small; a held envelope can be 256 KiB.
        let size = 4096
            + entry
                .state
                .as_ref()
                .and_then(|s| s.held.as_ref())
                .map_or(0, |h| h.envelope.len());
        match out.last_mut() {
            Some(last) if last.len() < TRANSACTION_ITEMS && bytes + size <= TRANSACTION_BYTES => {
                bytes += size;
                last.push((key, entry));
            }
            _ => {
                bytes = size;
                out.push(vec![(key, entry)]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize, held_bytes: usize) -> Vec<(String, Entry)> {
        (0..n)
            .map(|i| {
                let mut state = AlertState::first(&alert_envelope::Envelope::new(
                    alert_envelope::Source::Alertmanager,
                    "prod",
                    Status::Firing,
                    format!("fp{i}"),
                    Timestamp::UNIX_EPOCH,
                    Default::default(),
                ));
                if held_bytes > 0 {
                    state.held = Some(super::super::alert::Held {
                        id: "x".into(),
                        until: None,
                        envelope: "x".repeat(held_bytes),
                    });
                }
                (
                    format!("prod/fp{i}"),
                    Entry {
                        state: Some(state),
                        ..Entry::default()
                    },
                )
            })
            .collect()
    }

    #[test]
    fn transactions_hold_at_most_100_alerts_and_2_mib() {
        let sizes =
            |groups: Vec<Vec<(String, Entry)>>| groups.iter().map(Vec::len).collect::<Vec<_>>();
        assert_eq!(sizes(transactions(entries(20, 0))), vec![20]);
        assert_eq!(sizes(transactions(entries(250, 0))), vec![100, 100, 50]);
        // 256 KiB envelopes held: 7 of them (plus the rest) fit in 2 MiB.
        assert_eq!(sizes(transactions(entries(10, 256 * 1024))), vec![7, 3]);
        assert!(transactions(Vec::new()).is_empty());
    }
}
