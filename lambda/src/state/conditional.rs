//! Conditional writes, the one mechanism alerts and storms share: an item is
//! written only if it is still at the version read (or still absent when
//! none was), alone in a `PutItem` or with others in one
//! `TransactWriteItems`, which DynamoDB cancels whole when one condition
//! fails, saying which.

use std::collections::HashMap;
use std::time::Duration;

use alert_aws::{Failure, classify_sdk_error};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::item::{KEY, VERSION};
use super::{StateStore, named};

/// Items per `TransactWriteItems`: DynamoDB's limit.
pub(super) const TRANSACTION_ITEMS: usize = 100;
/// Bytes per transaction, kept well below DynamoDB's 4 MB.
pub(super) const TRANSACTION_BYTES: usize = 2 * 1024 * 1024;

type Item = HashMap<String, AttributeValue>;
type Names = HashMap<String, String>;
type Values = Option<HashMap<String, AttributeValue>>;

/// What a conditional write answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Answer {
    /// Every item was written.
    Written,
    /// The one item of a `PutItem` is no longer at the version read.
    Conflict,
    /// The transaction was cancelled: per item, in order, DynamoDB's reason
    /// (`ConditionalCheckFailed`, `TransactionConflict`, …; `None` or
    /// `"None"`: cancelled for another item's sake).
    Cancelled(Vec<Option<String>>),
}

/// The condition of a write: still the version read, or still no item
/// when none was read.
fn condition(version: Option<u64>) -> (&'static str, Names, Values) {
    match version {
        Some(v) => (
            "#v = :v",
            HashMap::from([("#v".to_string(), VERSION.to_string())]),
            Some(HashMap::from([(
                ":v".to_string(),
                AttributeValue::N(v.to_string()),
            )])),
        ),
        None => (
            "attribute_not_exists(#k)",
            HashMap::from([("#k".to_string(), KEY.to_string())]),
            None,
        ),
    }
}

impl StateStore {
    /// One `PutItem` of `item`, if it is still at `version`: `Written` or
    /// `Conflict`.
    pub(super) async fn put_if(
        &self,
        item: Item,
        version: Option<u64>,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let (expression, names, values) = condition(version);
        let put = self
            .client
            .put_item()
            .table_name(&self.config.table)
            .set_item(Some(item))
            .condition_expression(expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(values)
            .send();
        match tokio::time::timeout(timeout, put).await {
            Err(_) => Err(Failure::retryable("timeout", "PutItem timed out")),
            Ok(Ok(_)) => Ok(Answer::Written),
            Ok(Err(e))
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(Answer::Conflict)
            }
            Ok(Err(e)) => Err(named("PutItem", classify_sdk_error(&e))),
        }
    }

    /// One `TransactWriteItems` of `items`, each if it is still at its
    /// version: `Written` or `Cancelled` with one reason per item.
    pub(super) async fn transact_if(
        &self,
        items: Vec<(Item, Option<u64>)>,
        timeout: Duration,
    ) -> Result<Answer, Failure> {
        let n = items.len();
        let mut puts = Vec::with_capacity(n);
        for (item, version) in items {
            let (expression, names, values) = condition(version);
            let put = Put::builder()
                .table_name(&self.config.table)
                .set_item(Some(item))
                .condition_expression(expression)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(values)
                .build()
                .map_err(|e| Failure::permanent("state_request", e.to_string()))?;
            puts.push(TransactWriteItem::builder().put(put).build());
        }
        let send = self
            .client
            .transact_write_items()
            .set_transact_items(Some(puts))
            .send();
        let error = match tokio::time::timeout(timeout, send).await {
            Err(_) => {
                return Err(Failure::retryable(
                    "timeout",
                    "TransactWriteItems timed out",
                ));
            }
            Ok(Ok(_)) => return Ok(Answer::Written),
            Ok(Err(e)) => e,
        };
        match error.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c))
                if c.cancellation_reasons().len() == n =>
            {
                Ok(Answer::Cancelled(
                    c.cancellation_reasons()
                        .iter()
                        .map(|r| r.code().map(String::from))
                        .collect(),
                ))
            }
            _ => Err(named("TransactWriteItems", classify_sdk_error(&error))),
        }
    }
}
