//! Storm items in the state table: read with the batch, written with a
//! version check, and found by the tick through the sparse index `held`
//! (shard `storm`, sorted by when the storm next needs a turn).
//!
//! | attribute | type | |
//! |---|---|---|
//! | `alert` | S | the key: `#storm/<route>/<group values…>` |
//! | `version`, `expires_at` | N | as for alerts |
//! | `storm` | S | the [`StormState`] as JSON |
//! | `held_shard` | S | `storm` while the storm needs a turn |
//! | `held_until` | N | when, epoch seconds |

use std::collections::HashMap;

use alert_aws::{Deadline, Failure};
use aws_sdk_dynamodb::types::AttributeValue;
use jiff::Timestamp;

use super::item::{EXPIRES_AT, HELD_INDEX, HELD_SHARD, HELD_UNTIL, KEY, VERSION};
use super::{StateStore, call};
use crate::storm::StormState;

mod write;
pub use write::{Outcome, StormWrite};

/// The index shard of storms that need a turn.
pub const STORM_SHARD: &str = "storm";
const STATE: &str = "storm";

/// A storm as read: its version (`None`: no item) and state.
#[derive(Debug, Clone)]
pub struct StoredStorm {
    /// The version read.
    pub version: Option<u64>,
    /// The state; `None`: no item, or one expired.
    pub state: Option<StormState>,
}

type Item = HashMap<String, AttributeValue>;

fn of_item(item: &Item, now: i64) -> Result<StoredStorm, String> {
    let number = |name: &str| -> Result<i64, String> {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("attribute {name} is not a number"))
    };
    let json = item
        .get(STATE)
        .and_then(|v| v.as_s().ok())
        .ok_or("attribute storm is missing")?;
    let state: StormState =
        serde_json::from_str(json).map_err(|e| format!("attribute storm: {e}"))?;
    Ok(StoredStorm {
        version: Some(number(VERSION)? as u64),
        state: (number(EXPIRES_AT)? > now).then_some(state),
    })
}

impl StateStore {
    /// Reads the storms of `keys` (one consistent `BatchGetItem` per 100).
    pub async fn load_storms(
        &self,
        keys: &[String],
        deadline: &Deadline,
        calls: &mut u64,
    ) -> Result<HashMap<String, StoredStorm>, Failure> {
        let now = Timestamp::now().as_second();
        let mut found = HashMap::new();
        for chunk in keys.chunks(super::KEYS_PER_READ) {
            for item in self.read(chunk, deadline, calls).await? {
                let Some(key) = item.get(KEY).and_then(|v| v.as_s().ok()).cloned() else {
                    continue;
                };
                let stored = of_item(&item, now)
                    .map_err(|e| Failure::permanent("state_item", format!("item {key:?}: {e}")))?;
                found.insert(key, stored);
            }
        }
        Ok(found)
    }

    /// The keys of the storms that need a turn by `at` (an update that
    /// waited for its interval, or the close after a quiet window).
    pub async fn storms_due(
        &self,
        at: Timestamp,
        deadline: &Deadline,
    ) -> Result<Vec<String>, Failure> {
        let send = self
            .client
            .query()
            .table_name(&self.config.table)
            .index_name(HELD_INDEX)
            .key_condition_expression("#s = :s AND #u <= :now")
            .expression_attribute_names("#s", HELD_SHARD)
            .expression_attribute_names("#u", HELD_UNTIL)
            .expression_attribute_names("#k", KEY)
            .expression_attribute_values(":s", AttributeValue::S(STORM_SHARD.into()))
            .expression_attribute_values(":now", AttributeValue::N(at.as_second().to_string()))
            .projection_expression("#k")
            .limit(super::TICK_BATCH as i32)
            .send();
        let out = call("Query", deadline, self.config.call_timeout, send).await?;
        Ok(out
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.get(KEY)?.as_s().ok().cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn an_item_gives_its_state_until_it_expires() {
        let state = StormState::new("pods", Default::default());
        let item: Item = HashMap::from([
            (KEY.into(), AttributeValue::S("#storm/pods".into())),
            (VERSION.into(), AttributeValue::N("3".into())),
            (EXPIRES_AT.into(), AttributeValue::N("100".into())),
            (
                STATE.into(),
                AttributeValue::S(serde_json::to_string(&state).unwrap()),
            ),
        ]);
        let read = of_item(&item, 50).unwrap();
        assert_eq!((read.version, read.state), (Some(3), Some(state)));
        assert!(of_item(&item, 200).unwrap().state.is_none(), "expired");
        let mut bad = item.clone();
        bad.insert(STATE.into(), AttributeValue::S("{".into()));
        assert!(
            of_item(&bad, 50)
                .unwrap_err()
                .starts_with("attribute storm")
        );
    }
}
