//! The storms' two steps in an invocation. Before delivery, [`Storms::absorb`]
//! reads the batch's groups and takes the alerts a storm absorbs away from
//! their route's people's sinks. After it, [`Storms::update`] writes each
//! group, claiming the updates now due, sends them, and writes what the
//! sinks answered. The tick runs the second step for the groups that wait
//! for an update or their close ([`Storms::due`]).

use std::collections::BTreeMap;

use alert_aws::{Deadline, RetryStage};
use alert_envelope::InStorm;
use jiff::Timestamp;

use super::summary::Summary;
use super::{Arrival, StormState, SummaryRecord, Update, storm_key};
use crate::batch::Batch;
use crate::deliver::{BatchReport, Sinks};
use crate::routing::{RoutingTable, StormRule};
use crate::state::{StateStore, StoredStorm, key};

/// Writes of one group per step when other invocations keep writing it.
const WRITE_ATTEMPTS: usize = 3;

/// The people's sinks of route `index`: all but SNS.
pub fn people(table: &RoutingTable, index: usize) -> Vec<String> {
    table.routes[index]
        .sinks
        .iter()
        .filter(|s| !table.is_sns(s))
        .cloned()
        .collect()
}

#[derive(Debug)]
struct Group {
    route: usize,
    version: Option<u64>,
    state: StormState,
    arrivals: Vec<Arrival>,
    /// SQS message ids of the records it absorbed: they fail when the
    /// group cannot be written, since no person has them then.
    absorbed: Vec<String>,
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

    /// Writes every group, sends the updates due at `now` (within
    /// `deadline`) and writes what the sinks answered (within `writes`).
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
        for (k, mut group) in self.groups {
            let Some(rule) = rule(table, group.route).cloned() else {
                continue;
            };
            let people = people(table, group.route);
            // 1. Claim what is due, with the arrivals, in one write.
            let claimed = claim(store, &k, &mut group, &rule, &people, writes, now, report).await;
            let Some(due) = claimed else {
                for message_id in &group.absorbed {
                    if !report.failed_message_ids.contains(message_id) {
                        report.fail(message_id, || {
                            format!("storm {k}: its state was not written")
                        });
                    }
                }
                continue;
            };
            if due.is_empty() {
                continue;
            }
            // 2. Send.
            let reason = group.state.closing(&rule, now);
            let sends = due.iter().map(|(sink, update)| {
                let prior = group.state.sinks.get(sink).cloned().unwrap_or_default();
                let mut summary = Summary::of(&k, &group.state, *update, prior.updates + 1, now);
                summary.closed_reason = reason.clone().filter(|_| *update == Update::Close);
                async move {
                    let result = match sinks.get(sink) {
                        Some(s) => s.summarize(&summary, &prior, deadline, retry).await,
                        None => Err(alert_aws::Failure::permanent("unknown_sink", sink.clone())),
                    };
                    (sink.clone(), *update, prior, result)
                }
            });
            let mut receipts = Vec::new();
            for (sink, update, prior, result) in futures::future::join_all(sends).await {
                let receipt = match result {
                    Ok(mut record) => {
                        report.counts.storm_updates += 1;
                        record.updates = prior.updates + 1;
                        record.updated_at = Some(now);
                        record.pending = false;
                        record.closed = update == Update::Close;
                        tracing::info!(storm = %k, sink = %sink, update = record.updates, closed = record.closed, "storm summary sent");
                        Ok(record)
                    }
                    Err(f) => {
                        report.counts.storm_update_failures += 1;
                        tracing::error!(storm = %k, sink = %sink, reason = %f.reason, detail = %f.detail, "storm summary not sent; it goes with the next turn");
                        Err(())
                    }
                };
                receipts.push((sink, receipt));
            }
            // 3. Write the receipts.
            record(
                store, &k, &mut group, &rule, &people, &receipts, reason, writes, now, report,
            )
            .await;
        }
    }
}

/// Claims the updates due, and writes them with the arrivals; on a
/// conflict, reads the group again, applies the arrivals to it and decides
/// anew. `None`: the group could not be written.
#[allow(clippy::too_many_arguments)]
async fn claim(
    store: &StateStore,
    k: &str,
    group: &mut Group,
    rule: &StormRule,
    people: &[String],
    writes: &Deadline,
    now: Timestamp,
    report: &mut BatchReport,
) -> Option<Vec<(String, Update)>> {
    for _ in 0..WRITE_ATTEMPTS {
        let due = group.state.due(rule, people, now);
        let mut claimed = group.state.clone();
        for (sink, _) in &due {
            claimed.claim(sink, now);
        }
        report.counts.put_item_calls += 1;
        let written = store
            .put_storm(k, &claimed, group.version, claimed.next_turn(rule), writes)
            .await;
        match written {
            Ok(true) => {
                group.version = Some(group.version.map_or(1, |v| v + 1));
                group.state = claimed;
                return Some(due);
            }
            Ok(false) => {
                if reread(store, k, group, writes, report).await.is_err() {
                    return None;
                }
                for a in &group.arrivals {
                    group.state.apply(a);
                }
            }
            Err(f) => {
                report.counts.state_errors += 1;
                tracing::error!(storm = %k, reason = %f.reason, detail = %f.detail, "storm state not written; its absorbed records fail and come back");
                return None;
            }
        }
    }
    None
}

/// Writes the sinks' receipts (and the close, once every sink had its
/// final update); on a conflict, applies them to the group read again.
#[allow(clippy::too_many_arguments)]
async fn record(
    store: &StateStore,
    k: &str,
    group: &mut Group,
    rule: &StormRule,
    people: &[String],
    receipts: &[(String, Result<SummaryRecord, ()>)],
    reason: Option<String>,
    writes: &Deadline,
    now: Timestamp,
    report: &mut BatchReport,
) {
    for _ in 0..WRITE_ATTEMPTS {
        for (sink, receipt) in receipts {
            group.state.receipt(sink, receipt.clone());
        }
        let was_open = group.state.closed_at.is_none();
        group.state.settle(people, reason.clone(), now);
        report.counts.put_item_calls += 1;
        let written = store
            .put_storm(
                k,
                &group.state,
                group.version,
                group.state.next_turn(rule),
                writes,
            )
            .await;
        match written {
            Ok(true) => {
                if was_open && group.state.closed_at.is_some() {
                    report.counts.storms_closed += 1;
                    let (firing, resolved) = group.state.counts();
                    tracing::info!(storm = %k, firing, resolved, reason = reason.as_deref().unwrap_or(""), "storm closed");
                }
                return;
            }
            Ok(false) if reread(store, k, group, writes, report).await.is_ok() => continue,
            Ok(false) => return,
            Err(f) => {
                report.counts.state_errors += 1;
                tracing::error!(storm = %k, reason = %f.reason, detail = %f.detail, "storm receipts not written; the next turn may send an update again");
                return;
            }
        }
    }
}

async fn reread(
    store: &StateStore,
    k: &str,
    group: &mut Group,
    writes: &Deadline,
    report: &mut BatchReport,
) -> Result<(), ()> {
    let mut calls = 0;
    let fresh = store
        .load_storms(&[k.to_string()], writes, &mut calls)
        .await;
    report.counts.batch_get_item_calls += calls;
    match fresh {
        Ok(mut found) => {
            let stored = found.remove(k);
            group.version = stored.as_ref().and_then(|s| s.version);
            group.state = stored
                .and_then(|s| s.state)
                .unwrap_or_else(|| StormState::new(&group.state.route, group.state.group.clone()));
            Ok(())
        }
        Err(f) => {
            report.counts.state_errors += 1;
            tracing::error!(storm = %k, reason = %f.reason, detail = %f.detail, "storm state not read again after a conflict");
            Err(())
        }
    }
}
