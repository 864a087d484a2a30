//! The storms' two steps in an invocation. Before delivery, [`Storms::absorb`]
//! reads the batch's groups and takes the alerts a storm absorbs away from
//! their route's people's sinks. After it, [`Storms::update`] writes each
//! group, claiming the updates now due, sends them, and writes what the
//! sinks answered. The tick runs the second step for the groups that wait
//! for an update or their close ([`Storms::due`]).

use std::collections::BTreeMap;

use alert_aws::{Deadline, Failure, RetryStage};
use alert_envelope::InStorm;
use jiff::Timestamp;

use super::summary::Summary;
use super::writes::{Slot, Step};
use super::{Arrival, StormState, SummaryRecord, Update, storm_key};
use crate::batch::Batch;
use crate::deliver::{BatchReport, Sinks};
use crate::routing::{RoutingTable, StormRule};
use crate::state::{StateStore, StoredStorm, key};

/// The people's sinks of route `index`: all but SNS.
pub fn people(table: &RoutingTable, index: usize) -> Vec<String> {
    table.routes[index]
        .sinks
        .iter()
        .filter(|s| !table.is_machines(s))
        .cloned()
        .collect()
}

#[derive(Debug)]
pub(super) struct Group {
    pub(super) route: usize,
    pub(super) version: Option<u64>,
    pub(super) state: StormState,
    pub(super) arrivals: Vec<Arrival>,
    /// SQS message ids of the records it absorbed: they fail when the
    /// group cannot be written, since no person has them then.
    pub(super) absorbed: Vec<String>,
}

/// The batch's storm groups, by key.
#[derive(Debug, Default)]
pub struct Storms {
    groups: BTreeMap<String, Group>,
}

fn rule(table: &RoutingTable, route: usize) -> Option<&StormRule> {
    table.routes.get(route)?.storm.as_ref()
}

impl Storms {
    /// Reads the groups of the batch's envelopes whose routes have a storm
    /// rule (`noisy[i]`: the routes of envelope `i`, by index), and lets
    /// each group take what its storm absorbs. Stale envelopes are not
    /// counted. When the store cannot be read, no storm absorbs anything.
    pub async fn absorb(
        store: &StateStore,
        table: &RoutingTable,
        batch: &mut Batch,
        noisy: &[Vec<usize>],
        deadline: &Deadline,
        now: Timestamp,
        report: &mut BatchReport,
    ) -> Storms {
        let mut wanted: Vec<(usize, usize, String)> = Vec::new();
        for (i, routes) in noisy.iter().enumerate() {
            let env = &batch.envelopes[i];
            if env.enrichment.as_ref().is_some_and(|e| e.stale) {
                continue;
            }
            for &r in routes {
                if let Some(rule) = rule(table, r) {
                    wanted.push((i, r, storm_key(&table.routes[r].name, &rule.group(env))));
                }
            }
        }
        let mut storms = Storms::default();
        if wanted.is_empty() {
            return storms;
        }
        let mut keys: Vec<String> = wanted.iter().map(|(_, _, k)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        let mut calls = 0;
        let loaded = store.load_storms(&keys, deadline, &mut calls).await;
        report.counts.batch_get_item_calls += calls;
        let mut loaded = match loaded {
            Ok(l) => l,
            Err(f) => {
                report.counts.state_errors += 1;
                tracing::error!(reason = %f.reason, detail = %f.detail, "storm groups not read; every alert goes to its sinks on its own");
                return storms;
            }
        };
        for (i, r, k) in wanted {
            let Some(rule) = rule(table, r) else { continue };
            let env = &mut batch.envelopes[i];
            let group = storms.groups.entry(k.clone()).or_insert_with(|| {
                let stored = loaded.remove(&k).unwrap_or(StoredStorm {
                    version: None,
                    state: None,
                });
                Group {
                    route: r,
                    version: stored.version,
                    state: stored
                        .state
                        .unwrap_or_else(|| StormState::new(&table.routes[r].name, rule.group(env))),
                    arrivals: Vec::new(),
                    absorbed: Vec::new(),
                }
            });
            let arrival = group.state.arrive(&key(env), env, rule, now);
            if arrival.absorbed {
                let people = people(table, r);
                let enrichment = env.enrichment.get_or_insert_with(Default::default);
                enrichment.routed_to.retain(|s| !people.contains(s));
                enrichment.in_storm = Some(InStorm {
                    route: table.routes[r].name.clone(),
                    group: group.state.group.clone(),
                    key: k.clone(),
                    since: group.state.since.unwrap_or(now),
                    sinks: people,
                });
                report.counts.in_storm += 1;
                group.absorbed.extend(batch.owners[i].iter().cloned());
                tracing::info!(id = %env.id, alertname = %env.alertname, status = env.status.as_str(), storm = %k, "in a storm: its route's people's sinks get the group's summary instead");
            }
            group.arrivals.push(arrival);
        }
        storms
    }

    /// The groups whose update or close is due by `now`, for the tick.
    pub async fn due(
        store: &StateStore,
        table: &RoutingTable,
        deadline: &Deadline,
        now: Timestamp,
        report: &mut BatchReport,
    ) -> Result<Storms, alert_aws::Failure> {
        let keys = store.storms_due(now, deadline).await?;
        let mut calls = 0;
        let loaded = store.load_storms(&keys, deadline, &mut calls).await?;
        report.counts.batch_get_item_calls += calls;
        let mut storms = Storms::default();
        for (k, stored) in loaded {
            let Some(state) = stored.state else { continue };
            let Some(route) = table.routes.iter().position(|r| r.name == state.route) else {
                tracing::warn!(storm = %k, route = %state.route, "the route of this storm is gone from the routing document; its summary is left as it is");
                continue;
            };
            storms.groups.insert(
                k,
                Group {
                    route,
                    version: stored.version,
                    state,
                    arrivals: Vec::new(),
                    absorbed: Vec::new(),
                },
            );
        }
        Ok(storms)
    }

    /// Writes every group (one call for all), sends the updates due at
    /// `now` (within `deadline`), every group's at once, and writes what
    /// the sinks answered (within `writes`, one call again).
    #[allow(clippy::too_many_arguments)]
    pub async fn update(
        self,
        store: &StateStore,
        table: &RoutingTable,
        sinks: &Sinks,
        deadline: &Deadline,
        writes: &Deadline,
        retry: &RetryStage,
        now: Timestamp,
        report: &mut BatchReport,
    ) {
        let mut slots: Vec<Slot> = self
            .groups
            .into_iter()
            .filter_map(|(key, group)| {
                let rule = rule(table, group.route)?.clone();
                let people = people(table, group.route);
                Some(Slot::new(key, group, rule, people))
            })
            .collect();
        // 1. Claim what is due, with the arrivals.
        super::writes::write(store, &mut slots, Step::Claim, writes, now, report).await;
        // 2. Send.
        let sends = slots
            .iter()
            .map(|slot| send(slot, sinks, deadline, retry, now));
        let sent = futures::future::join_all(sends).await;
        for (slot, (reason, results)) in slots.iter_mut().zip(sent) {
            slot.reason = reason;
            for (sink, update, prior, result) in results {
                let receipt = match result {
                    Ok(mut record) => {
                        report.counts.storm_updates += 1;
                        record.updates = prior.updates + 1;
                        record.updated_at = Some(now);
                        record.pending = false;
                        record.closed = update == Update::Close;
                        tracing::info!(storm = %slot.key, sink = %sink, update = record.updates, closed = record.closed, "storm summary sent");
                        Ok(record)
                    }
                    Err(f) => {
                        report.counts.storm_update_failures += 1;
                        tracing::error!(storm = %slot.key, sink = %sink, reason = %f.reason, detail = %f.detail, "storm summary not sent; it goes with the next turn");
                        Err(())
                    }
                };
                slot.receipts.push((sink, receipt));
            }
        }
        // 3. Write the receipts.
        super::writes::write(store, &mut slots, Step::Record, writes, now, report).await;
    }
}

/// What one sink answered to one update: (sink, update, its record before,
/// the result).
type Sent = (
    String,
    Update,
    SummaryRecord,
    Result<SummaryRecord, Failure>,
);

/// Sends the updates `slot` claimed, to all its sinks at once; answers why
/// the storm closes (if it does) and each sink's answer.
async fn send(
    slot: &Slot,
    sinks: &Sinks,
    deadline: &Deadline,
    retry: &RetryStage,
    now: Timestamp,
) -> (Option<String>, Vec<Sent>) {
    let Some(due) = slot.due.as_ref().filter(|d| !d.is_empty()) else {
        return (None, Vec::new());
    };
    let state = &slot.group.state;
    let reason = state.closing(&slot.rule, now);
    let sends = due.iter().map(|(sink, update)| {
        let prior = state.sinks.get(sink).cloned().unwrap_or_default();
        let mut summary = Summary::of(&slot.key, state, *update, prior.updates + 1, now);
        summary.closed_reason = reason.clone().filter(|_| *update == Update::Close);
        async move {
            let result = match sinks.get(sink) {
                Some(s) => s.summarize(&summary, &prior, deadline, retry).await,
                None => Err(Failure::permanent("unknown_sink", sink.clone())),
            };
            (sink.clone(), *update, prior, result)
        }
    });
    let sent = futures::future::join_all(sends).await;
    (reason, sent)
}
