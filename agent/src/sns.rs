//! One publish through [`SnsPublisher`]'s own retry stage, with ids made
//! distinct first.
//!
//! SNS refuses a whole PublishBatch with `BatchEntryIdsNotDistinct` when two
//! entries share an id, and that verdict is permanent for every entry of the
//! call, though none of them is at fault. Callers drop duplicates before
//! publishing; should SNS still answer so, each refused entry is sent again
//! on its own (a batch of one has distinct ids), never dropped.

use std::collections::HashSet;

use alert_aws::{PreparedMessage, PublishOutcome, SnsPublisher};

const IDS_NOT_DISTINCT: &str = "BatchEntryIdsNotDistinct";

/// Keeps the first of each id, in order; returns how many were dropped.
pub fn dedupe_by_id<T>(items: &mut Vec<T>, id: impl Fn(&T) -> &str) -> usize {
    let before = items.len();
    let mut seen = HashSet::with_capacity(before);
    items.retain(|item| seen.insert(id(item).to_string()));
    before - items.len()
}

/// Publishes `messages` (ids already distinct) and reports as
/// [`SnsPublisher::publish`] does, indices into `messages`.
pub async fn publish(publisher: &SnsPublisher, messages: &[PreparedMessage]) -> PublishOutcome {
    let mut outcome = publisher.publish(messages).await;
    let (refused_as_batch, permanent): (Vec<_>, Vec<_>) = std::mem::take(&mut outcome.permanent)
        .into_iter()
        .partition(|(_, c)| c.detail.contains(IDS_NOT_DISTINCT));
    outcome.permanent = permanent;
    for (index, c) in refused_as_batch {
        tracing::warn!(id = %messages[index].id, detail = %c.detail, "SNS refused a batch for duplicate ids; sending this entry on its own");
        let alone = publisher
            .publish(std::slice::from_ref(&messages[index]))
            .await;
        outcome.calls += alone.calls;
        if !alone.accepted.is_empty() {
            outcome.accepted.push(index);
        }
        outcome
            .permanent
            .extend(alone.permanent.into_iter().map(|(_, c)| (index, c)));
        outcome
            .retryable
            .extend(alone.retryable.into_iter().map(|(_, c)| (index, c)));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_keeping_the_first_in_order() {
        let mut items = vec![("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)];
        assert_eq!(dedupe_by_id(&mut items, |i| i.0), 2);
        assert_eq!(items, vec![("a", 1), ("b", 2), ("c", 4)]);
    }
}
