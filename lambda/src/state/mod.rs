//! The alert state store (DynamoDB, `STATE_TABLE`): each sink receives each
//! envelope once, and an envelope older than what is known (the firing
//! that arrives after its resolve) reaches machine consumers only.
//!
//! Per batch: one consistent `BatchGetItem` per 100 distinct alerts before
//! delivery, and one conditional write per alert whose state changed once
//! all its envelopes had their delivery, covering all its sinks; the writes
//! of one part of the batch go in one `TransactWriteItems` (see `write.rs`). The write compares the version read:
//! when another invocation wrote in between, the item is read again, this
//! batch's changes are applied to it, and the write is tried again, so
//! neither invocation's deliveries are forgotten.
//!
//! A delivery is recorded after the sink accepted it. A crash between the
//! two (Lambda killed at its timeout, or a host failure) can still deliver
//! that envelope again: the window is the envelopes in flight at the crash,
//! at most one part of the batch ([`crate::deliver::ALERTS_PER_PART`]
//! alerts), because each part's alerts are written before the next part.
//!
//! When the store cannot be read or written (throttled, unreachable,
//! denied), the batch is delivered as without a store, at least once: the
//! envelopes get an `enrichment.errors` entry with stage `state`, and no
//! record fails for the store alone unless `STATE_FAILURE=retry`.

pub mod alert;
mod conditional;
pub mod config;
pub mod item;
pub mod ledger;
mod steps;
mod storms;
mod write;

use std::collections::HashMap;
use std::time::Duration;

use alert_aws::{Deadline, Failure, classify_sdk_error};
use alert_envelope::Envelope;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use jiff::Timestamp;

pub use alert::{AlertState, Judgement, SinkRecord};
pub use config::{StateConfig, StateFailure};
use item::{KEY, from_item};
use ledger::entry_of;
pub use ledger::{Ledger, key};
pub use storms::{Outcome, STORM_SHARD, StoredStorm, StormWrite};

/// `BatchGetItem` takes at most 100 keys.
const KEYS_PER_READ: usize = 100;
/// Rounds for the keys `BatchGetItem` left unprocessed.
const READ_ROUNDS: usize = 4;
/// Attempts of one alert's conditional write when other invocations keep
/// writing the same item.
const WRITE_ATTEMPTS: usize = 3;
/// Held envelopes handed over per tick (one `Query` page).
pub const TICK_BATCH: usize = 100;
/// Time kept after delivery for the state writes.
pub const WRITE_RESERVE: Duration = Duration::from_millis(1500);

/// The DynamoDB table of alert states, with its client built at init.
#[derive(Debug, Clone)]
pub struct StateStore {
    client: aws_sdk_dynamodb::Client,
    config: StateConfig,
}

/// What the writes did.
#[derive(Debug, Default)]
pub struct Saved {
    /// `PutItem` calls (conflicts included).
    pub write_calls: u64,
    /// Alerts written.
    pub written: u64,
    /// Writes that found a newer item and were applied to it.
    pub conflicts: u64,
    /// Alerts whose state could not be written, by key.
    pub failed: Vec<(String, Failure)>,
}

impl StateStore {
    /// The store over a client built at init.
    pub fn new(client: aws_sdk_dynamodb::Client, config: StateConfig) -> StateStore {
        StateStore { client, config }
    }

    /// What to do when the store cannot be used.
    pub fn failure_mode(&self) -> StateFailure {
        self.config.failure
    }

    /// Reads the states of every alert of `envelopes`: one consistent
    /// `BatchGetItem` per 100 distinct alerts.
    pub async fn load(&self, envelopes: &[Envelope], deadline: &Deadline) -> Ledger {
        let mut keys: Vec<String> = envelopes.iter().map(key).collect();
        keys.sort();
        keys.dedup();
        let mut ledger = Ledger::default();
        let now = jiff::Timestamp::now().as_second();
        for chunk in keys.chunks(KEYS_PER_READ) {
            match self.read(chunk, deadline, &mut ledger.read_calls).await {
                Ok(items) => {
                    for item in items {
                        let key = match item.get(KEY).and_then(|v| v.as_s().ok()) {
                            Some(k) => k.clone(),
                            None => continue,
                        };
                        match from_item(&item) {
                            Ok(stored) => {
                                ledger.entries.insert(key, entry_of(stored, now));
                            }
                            Err(e) => {
                                return Ledger::off(Some(Failure::permanent(
                                    "state_item",
                                    format!("item {key:?} of {}: {e}", self.config.table),
                                )));
                            }
                        }
                    }
                }
                Err(f) => return Ledger::off(Some(f)),
            }
        }
        ledger
    }

    async fn read(
        &self,
        keys: &[String],
        deadline: &Deadline,
        calls: &mut u64,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, Failure> {
        let mut pending: Vec<HashMap<String, AttributeValue>> = keys
            .iter()
            .map(|k| HashMap::from([(KEY.to_string(), AttributeValue::S(k.clone()))]))
            .collect();
        let mut items = Vec::new();
        for round in 0..READ_ROUNDS {
            if round > 0 {
                // Unprocessed keys mean the table is throttled: give it a moment.
                tokio::time::sleep(Duration::from_millis(50 << round)).await;
            }
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| Failure::permanent("state_request", e.to_string()))?;
            *calls += 1;
            let send = self
                .client
                .batch_get_item()
                .request_items(&self.config.table, request)
                .send();
            let out = call("BatchGetItem", deadline, self.config.call_timeout, send).await?;
            if let Some(found) = out.responses.and_then(|mut r| r.remove(&self.config.table)) {
                items.extend(found);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.config.table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(items);
            }
        }
        Err(Failure::retryable(
            "throttled",
            format!(
                "BatchGetItem left {} keys unprocessed after {READ_ROUNDS} rounds",
                pending.len()
            ),
        ))
    }

    /// The held envelopes (JSON) whose maintenance window ended by `at`,
    /// for the tick: one `Query` of the sparse index `held`, at most
    /// [`TICK_BATCH`], the earliest window end first.
    pub async fn due(&self, at: Timestamp, deadline: &Deadline) -> Result<Vec<String>, Failure> {
        let send = self
            .client
            .query()
            .table_name(&self.config.table)
            .index_name(item::HELD_INDEX)
            .key_condition_expression("#s = :s AND #u <= :now")
            .expression_attribute_names("#s", item::HELD_SHARD)
            .expression_attribute_names("#u", item::HELD_UNTIL)
            .expression_attribute_names("#e", item::HELD_ENVELOPE)
            .expression_attribute_values(":s", AttributeValue::S(item::HELD_INDEX.into()))
            .expression_attribute_values(":now", AttributeValue::N(at.as_second().to_string()))
            .projection_expression("#e")
            .limit(TICK_BATCH as i32)
            .send();
        let out = call("Query", deadline, self.config.call_timeout, send).await?;
        Ok(out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.get(item::HELD_ENVELOPE)?.as_s().ok().cloned())
            .collect())
    }
}

/// One DynamoDB call (its `send()`, not yet polled) within `deadline` and
/// `cap`: no time left, a timeout or an SDK error is a
/// [`Failure`] naming the call.
async fn call<T, E>(
    name: &str,
    deadline: &Deadline,
    cap: Duration,
    send: impl std::future::Future<Output = Result<T, SdkError<E, HttpResponse>>>,
) -> Result<T, Failure>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let timeout = deadline.timeout(cap).ok_or_else(Deadline::expired)?;
    tokio::time::timeout(timeout, send)
        .await
        .map_err(|_| Failure::retryable("timeout", format!("{name} timed out")))?
        .map_err(|e| named(name, classify_sdk_error(&e)))
}

fn named(call: &str, f: Failure) -> Failure {
    Failure {
        detail: format!("{call}: {}", f.detail),
        ..f
    }
}
