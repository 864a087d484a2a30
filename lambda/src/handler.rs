//! `Enricher`: one invocation, top to bottom: records → batch → enrich →
//! route → deliver → report. Each step lives in its own module; this one
//! only sequences them under the invocation's one deadline.

use std::sync::{Arc, Mutex};

use alert_aws::{Deadline, RetryStage};
use serde_json::Value;

use crate::Error;
use crate::batch::Batch;
use crate::config::EnricherConfig;
use crate::deliver::{BatchReport, Checkpoint, Sinks, deliver};
use crate::enrich::Enrichers;
use crate::enrich::fleet::{Fleet, Scope, ScopeClients};
use crate::event::{self, EventKind, Record};
use crate::routes_source::Routes;
use crate::routing::RoutingTable;
use crate::secrets::SecretStore;
use crate::sinks::{HttpClient, Sink, SinkClients};
use crate::state::{Ledger, StateStore, WRITE_RESERVE};
use crate::storm::Storms;

/// The Lambda's state, built once at init and shared by every invocation.
#[derive(Debug)]
pub struct Enricher {
    config: EnricherConfig,
    enrichers: Enrichers,
    routes: Routes,
    clients: SinkClients,
    retry: RetryStage,
    /// The alert state store (`STATE_TABLE`); `None`: at least once.
    state: Option<StateStore>,
    /// The sinks of the current routing table, built when it loads.
    sinks: Mutex<Option<(Arc<RoutingTable>, Arc<Sinks>)>>,
}

impl Enricher {
    /// The enricher over clients built once, at init: `ec2` and
    /// `cloudwatch` are those of its own account (that of the enriched
    /// topic) and `region`. Without [`Enricher::with_delivery`] every alert
    /// goes to the enriched topic; without [`Enricher::with_cross_account`]
    /// only its own account's alerts are enriched.
    pub fn new(
        config: EnricherConfig,
        ec2: aws_sdk_ec2::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        sns: aws_sdk_sns::Client,
        region: String,
    ) -> Self {
        let slack_api = config.slack_api_url.clone();
        Enricher {
            enrichers: Enrichers::new(
                &config,
                Fleet::new(
                    Scope {
                        account: config.enriched_topic.account().to_string(),
                        region,
                    },
                    config.enriched_topic.partition(),
                    config.fleet.clone(),
                    ScopeClients { ec2, cloudwatch },
                ),
            ),
            config,
            routes: Routes::fixed(RoutingTable::enriched_only()),
            clients: SinkClients {
                sns,
                eventbridge: None,
                http: HttpClient::default(),
                secrets: None,
                slack_api,
            },
            retry: RetryStage::default(),
            state: None,
            sinks: Mutex::new(None),
        }
    }

    /// Adds the routing document and the sinks' secrets.
    pub fn with_delivery(mut self, routes: Routes, secrets: SecretStore) -> Self {
        self.routes = routes;
        self.clients.secrets = Some(Arc::new(secrets));
        self
    }

    /// Enriches the alerts of `ALLOWED_ACCOUNTS` too, assuming
    /// `CROSS_ACCOUNT_ROLE_NAME` in each through `sts`.
    pub fn with_cross_account(mut self, sts: aws_sdk_sts::Client) -> Self {
        self.enrichers = self.enrichers.with_sts(sts);
        self
    }

    /// Adds the EventBridge client, for the routing document's
    /// `eventbridge` sinks.
    pub fn with_eventbridge(mut self, client: aws_sdk_eventbridge::Client) -> Self {
        self.clients.eventbridge = Some(client);
        self
    }

    /// Adds the alert state store.
    pub fn with_state(mut self, state: StateStore) -> Self {
        self.state = Some(state);
        self
    }

    /// Overrides the retry stage's backoff (tests use short delays).
    pub fn with_retry(mut self, retry: RetryStage) -> Self {
        self.retry = retry;
        self
    }

    /// Handles one invocation payload. SQS events answer an
    /// `SqsBatchResponse`; SNS events answer `{}` or an error.
    pub async fn handle(
        &self,
        payload: &Value,
        deadline: impl Into<Deadline>,
    ) -> Result<Value, Error> {
        let deadline = deadline.into();
        let now = jiff::Timestamp::now();
        let (kind, mut records) = event::parse(payload)?;
        if kind == EventKind::Tick {
            records = self.due(&deadline, now).await?;
        }
        let total = records.len();
        let mut report = self.process_at(records, deadline, now).await;
        if kind == EventKind::Tick {
            self.storm_tick(&deadline, now, &mut report).await;
        }
        let now_ms = jiff::Timestamp::now().as_millisecond();
        println!("{}", report.counts.to_emf(now_ms));
        for doc in report.counts.sink_emf(now_ms) {
            println!("{doc}");
        }
        event::response(kind, total, report)
    }

    /// The tick at `now`: hands the held envelopes whose maintenance window
    /// ended to people's sinks.
    pub async fn tick_at(
        &self,
        deadline: impl Into<Deadline>,
        now: jiff::Timestamp,
    ) -> Result<BatchReport, Error> {
        let deadline = deadline.into();
        let records = self.due(&deadline, now).await?;
        let mut report = self.process_at(records, deadline, now).await;
        self.storm_tick(&deadline, now, &mut report).await;
        Ok(report)
    }

    /// The tick's turn of the storms: the summary updates that waited for
    /// their interval, and the closes of storms quiet for their window.
    async fn storm_tick(
        &self,
        deadline: &Deadline,
        now: jiff::Timestamp,
        report: &mut BatchReport,
    ) {
        let Some(store) = &self.state else { return };
        let (table, sinks) = self.routing(deadline).await;
        if !table.routes.iter().any(|r| r.storm.is_some()) {
            return;
        }
        match Storms::due(store, &table, deadline, now, report).await {
            Ok(storms) => {
                let sends = deadline.earlier(WRITE_RESERVE);
                storms
                    .update(
                        store,
                        &table,
                        &sinks,
                        &sends,
                        deadline,
                        &self.retry,
                        now,
                        report,
                    )
                    .await
            }
            Err(f) => {
                report.counts.state_errors += 1;
                tracing::error!(reason = %f.reason, detail = %f.detail, "tick: storms not read; their updates wait for the next tick");
            }
        }
    }

    /// The tick's records: the held envelopes whose window ended by `now`.
    async fn due(&self, deadline: &Deadline, now: jiff::Timestamp) -> Result<Vec<Record>, Error> {
        let Some(state) = &self.state else {
            tracing::warn!("tick without STATE_TABLE: nothing is held without the state store");
            return Ok(Vec::new());
        };
        let due = state
            .due(now, deadline)
            .await
            .map_err(|f| Error::State(format!("tick: {f}")))?;
        if !due.is_empty() {
            tracing::info!(
                due = due.len(),
                "tick: handing over envelopes whose maintenance window ended"
            );
        }
        Ok(due
            .into_iter()
            .enumerate()
            .map(|(i, body)| Record {
                message_id: format!("tick-{i}"),
                body,
                group: None,
            })
            .collect())
    }

    /// The invocation's one deadline, from the context's (epoch
    /// milliseconds); take it before anything else.
    pub fn deadline(&self, context_deadline_ms: u64) -> Deadline {
        Deadline::from_epoch_millis(context_deadline_ms, self.config.unknown_deadline)
    }

    /// Enriches and delivers `records` before `deadline`, reporting which failed.
    pub async fn process(
        &self,
        records: Vec<Record>,
        deadline: impl Into<Deadline>,
    ) -> BatchReport {
        self.process_at(records, deadline, jiff::Timestamp::now())
            .await
    }

    /// [`Enricher::process`] as at `now`: the time maintenance windows and
    /// the state store judge by.
    pub async fn process_at(
        &self,
        records: Vec<Record>,
        deadline: impl Into<Deadline>,
        now: jiff::Timestamp,
    ) -> BatchReport {
        let deadline = deadline.into();
        let mut report = BatchReport::default();
        report.counts.records = records.len() as u64;
        let mut batch = Batch::read(records, self.config.invalid_records, self.config.alarms);
        report.counts.duplicates = batch.duplicates;
        report.counts.invalid = batch.invalid;
        report.counts.ignored = batch.ignored;

        let enriched = self.enrichers.enrich(&mut batch.envelopes, &deadline).await;
        report.counts.enriched = enriched.enriched as u64;
        report.counts.describe_instances_calls = enriched.describe_instances_calls as u64;
        report.counts.get_metric_data_calls = enriched.get_metric_data_calls as u64;
        report.counts.assume_role_calls = enriched.assume_role_calls as u64;

        let (table, sinks) = self.routing(&deadline).await;
        let mutes = table.mutes_at(now);
        let mut noisy: Vec<Vec<usize>> = Vec::with_capacity(batch.envelopes.len());
        for env in &mut batch.envelopes {
            let tag = &self.config.maintenance_tag;
            let decision = crate::maintenance::route(&table, &mutes, env, tag, now);
            if !decision.routes.is_empty() {
                tracing::debug!(id = %env.id, routes = ?decision.routes, sinks = ?decision.sinks, "routed");
            }
            if let Some(m) = &decision.muted {
                report.counts.muted += 1;
                tracing::info!(id = %env.id, alertname = %env.alertname, reason = %m.reason, until = ?m.until.map(|t| t.to_string()), held_back = ?m.sinks, "muted: not delivered to people's sinks now; SNS gets it with muted=true");
            }
            let enrichment = env.enrichment.get_or_insert_with(Default::default);
            enrichment.routed_to = decision.sinks;
            enrichment.muted = decision.muted;
            // A held envelope comes back on the tick: judged afresh.
            enrichment.flapping = false;
            noisy.push(decision.noisy);
        }

        let mut ledger = match &self.state {
            None => Ledger::off(None),
            Some(state) => match state
                .before_delivery(&mut batch, &deadline, now, &mut report)
                .await
            {
                Some(ledger) => ledger,
                None => return report,
            },
        };

        let storms = match &self.state {
            Some(store) if ledger.unavailable.is_none() => {
                Storms::absorb(
                    store,
                    &table,
                    &mut batch,
                    &noisy,
                    &deadline,
                    now,
                    &mut report,
                )
                .await
            }
            _ => Storms::default(),
        };
        crate::flap::apply(&table, &mut batch, &noisy, &mut ledger, now, &mut report);

        let mut delivery_deadline = match self.config.delivery_deadline {
            Some(cap) => deadline.capped(cap),
            None => deadline,
        };
        if self.state.is_some() {
            delivery_deadline = delivery_deadline.earlier(WRITE_RESERVE);
        }
        let checkpoint = self.state.as_ref().map(|store| Checkpoint {
            store,
            deadline: &deadline,
        });
        deliver(
            &batch,
            &sinks,
            &delivery_deadline,
            &self.retry,
            &mut ledger,
            checkpoint,
            &mut report,
        )
        .await;
        if let Some(store) = &self.state {
            storms
                .update(
                    store,
                    &table,
                    &sinks,
                    &delivery_deadline,
                    &deadline,
                    &self.retry,
                    now,
                    &mut report,
                )
                .await;
        }
        report
    }

    /// The routing table and its sinks, built once per loaded table.
    async fn routing(&self, deadline: &Deadline) -> (Arc<RoutingTable>, Arc<Sinks>) {
        let table = self.routes.table(deadline).await;
        let mut built = self.sinks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((t, sinks)) = built.as_ref()
            && Arc::ptr_eq(t, &table)
        {
            return (table, sinks.clone());
        }
        let sinks = Arc::new(Sink::for_table(
            &table,
            &self.config.enriched_topic,
            &self.clients,
        ));
        *built = Some((table.clone(), sinks.clone()));
        (table, sinks)
    }
}
