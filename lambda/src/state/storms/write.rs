//! Storm writes: each conditional on the version read, several storms in
//! one `TransactWriteItems`, and what became of each.

use std::collections::HashMap;

use alert_aws::{Deadline, Failure};
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;

use super::super::StateStore;
use super::super::conditional::{Answer, TRANSACTION_BYTES, TRANSACTION_ITEMS};
use super::super::item::{EXPIRES_AT, HELD_SHARD, HELD_UNTIL, KEY, VERSION};
use super::{Item, STATE, STORM_SHARD};
use crate::storm::StormState;

/// One storm's write: `state`, if its item is still at `version`.
#[derive(Debug, Clone, Copy)]
pub struct StormWrite<'a> {
    /// The storm's key.
    pub key: &'a str,
    /// What to write.
    pub state: &'a StormState,
    /// The version read (`None`: no item).
    pub version: Option<u64>,
    /// When the tick should give it a turn (the `held` index).
    pub next_turn: Option<Timestamp>,
}

/// What became of one storm's write.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Written.
    Written,
    /// Another invocation wrote it first: read it again and re-apply.
    Conflict,
    /// Not written because another write of the transaction was refused:
    /// try it again as it is.
    Again,
    /// Not written.
    Failed(Failure),
}

impl StateStore {
    /// Writes each storm of `writes` if its item is still at the version
    /// read: several in one `TransactWriteItems` (at most 100 items and
    /// 2 MiB each), one alone in a `PutItem`. Answers per write, in order,
    /// and the calls made.
    pub async fn put_storms(
        &self,
        writes: &[StormWrite<'_>],
        deadline: &Deadline,
    ) -> (u64, Vec<Outcome>) {
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut calls = 0;
        let mut start = 0;
        while start < writes.len() {
            let mut end = start;
            let mut bytes = 0;
            let mut items = Vec::new();
            let mut failed = None;
            while end < writes.len() && end - start < TRANSACTION_ITEMS {
                match self.storm_item(&writes[end]) {
                    Ok((item, size)) if end == start || bytes + size <= TRANSACTION_BYTES => {
                        bytes += size;
                        items.push(item);
                        end += 1;
                    }
                    Ok(_) => break,
                    Err(f) => {
                        failed = Some(f);
                        break;
                    }
                }
            }
            if let Some(f) = failed {
                // One state that cannot be encoded fails alone; the rest go on.
                outcomes.extend(std::iter::repeat_n(Outcome::Again, end - start));
                outcomes.push(Outcome::Failed(f));
                start = end + 1;
                continue;
            }
            calls += 1;
            let versions = writes[start..end].iter().map(|w| w.version);
            outcomes.extend(
                self.put_items(items.into_iter().zip(versions), deadline)
                    .await,
            );
            start = end;
        }
        (calls, outcomes)
    }

    /// A storm's item and its size in bytes, roughly (its JSON).
    fn storm_item(&self, w: &StormWrite<'_>) -> Result<(Item, usize), Failure> {
        let json = serde_json::to_string(w.state)
            .map_err(|e| Failure::permanent("encode", e.to_string()))?;
        let size = json.len() + w.key.len() + 64;
        let expires_at = Timestamp::now().as_second() + self.config.ttl.as_secs() as i64;
        let mut item: Item = HashMap::from([
            (KEY.into(), AttributeValue::S(w.key.into())),
            (
                VERSION.into(),
                AttributeValue::N(w.version.map_or(1, |v| v + 1).to_string()),
            ),
            (EXPIRES_AT.into(), AttributeValue::N(expires_at.to_string())),
            (STATE.into(), AttributeValue::S(json)),
        ]);
        if let Some(t) = w.next_turn {
            item.insert(HELD_SHARD.into(), AttributeValue::S(STORM_SHARD.into()));
            item.insert(
                HELD_UNTIL.into(),
                AttributeValue::N(t.as_second().max(0).to_string()),
            );
        }
        Ok((item, size))
    }

    /// One call writing `items` (built by [`Self::storm_item`]), each
    /// conditional on the version it was read at.
    async fn put_items(
        &self,
        items: impl ExactSizeIterator<Item = (Item, Option<u64>)>,
        deadline: &Deadline,
    ) -> Vec<Outcome> {
        let n = items.len();
        let all = |o: Outcome| std::iter::repeat_n(o, n).collect::<Vec<_>>();
        let Some(timeout) = deadline.timeout(self.config.call_timeout) else {
            return all(Outcome::Failed(Deadline::expired()));
        };
        let mut items: Vec<(Item, Option<u64>)> = items.collect();
        let answer = match items.len() {
            0 => return Vec::new(),
            1 => {
                let (item, version) = items.remove(0);
                self.put_if(item, version, timeout).await
            }
            _ => self.transact_if(items, timeout).await,
        };
        match answer {
            Ok(Answer::Written) => all(Outcome::Written),
            Ok(Answer::Conflict) => all(Outcome::Conflict),
            Ok(Answer::Cancelled(codes)) => codes
                .into_iter()
                .map(|code| match code.as_deref() {
                    Some("ConditionalCheckFailed" | "TransactionConflict") => Outcome::Conflict,
                    // Cancelled for another storm's sake, or throttled: as it is, again.
                    None | Some("None" | "ThrottlingError") => Outcome::Again,
                    Some(other) => Outcome::Failed(Failure::permanent(
                        "state_write",
                        format!("TransactWriteItems: {other}"),
                    )),
                })
                .collect(),
            Err(f) => all(Outcome::Failed(f)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    use alert_aws::Deadline;
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    use aws_sdk_dynamodb::types::CancellationReason;
    use aws_sdk_dynamodb::types::error::TransactionCanceledException;
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

    use crate::state::StateFailure;
    use crate::state::config::StateConfig;

    fn store(rules: &[&Rule]) -> StateStore {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in rules {
            interceptor = interceptor.with_rule(r);
        }
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "a", "b", None, None, "t",
                ))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        );
        StateStore::new(
            client,
            StateConfig::new("alert-manager-state", 1, StateFailure::Deliver).unwrap(),
        )
    }

    fn writes(states: &[StormState]) -> Vec<StormWrite<'_>> {
        states
            .iter()
            .map(|state| StormWrite {
                key: "#storm/pods/x",
                state,
                version: Some(2),
                next_turn: None,
            })
            .collect()
    }

    #[tokio::test]
    async fn several_storms_go_in_one_transaction_and_its_cancellation_is_read_per_storm() {
        let cancelled = mock!(aws_sdk_dynamodb::Client::transact_write_items)
            .match_requests(|r| r.transact_items().len() == 3)
            .then_error(|| {
                let reason = |code: &str| CancellationReason::builder().code(code).build();
                TransactWriteItemsError::TransactionCanceledException(
                    TransactionCanceledException::builder()
                        .cancellation_reasons(reason("None"))
                        .cancellation_reasons(reason("ConditionalCheckFailed"))
                        .cancellation_reasons(reason("ValidationError"))
                        .build(),
                )
            });
        let store = store(&[&cancelled]);
        let states = vec![StormState::new("pods", Default::default()); 3];
        let deadline = Deadline::within(std::time::Duration::from_secs(5));
        let (calls, outcomes) = store.put_storms(&writes(&states), &deadline).await;
        assert_eq!(calls, 1, "one call for the three");
        assert!(
            matches!(
                outcomes.as_slice(),
                [Outcome::Again, Outcome::Conflict, Outcome::Failed(_)]
            ),
            "{outcomes:?}"
        );
    }

    #[tokio::test]
    async fn one_storm_alone_is_a_put_item_and_a_failed_condition_a_conflict() {
        let conflict = mock!(aws_sdk_dynamodb::Client::put_item).then_error(|| {
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(
                aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder().build(),
            )
        });
        let store = store(&[&conflict]);
        let states = vec![StormState::new("pods", Default::default())];
        let deadline = Deadline::within(std::time::Duration::from_secs(5));
        let (calls, outcomes) = store.put_storms(&writes(&states), &deadline).await;
        assert_eq!((calls, conflict.num_calls()), (1, 1));
        assert!(
            matches!(outcomes.as_slice(), [Outcome::Conflict]),
            "{outcomes:?}"
        );
    }
}
