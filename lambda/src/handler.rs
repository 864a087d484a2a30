//! `Enricher`: one batch in, enriched envelopes out, failures reported per record.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;

use alert_aws::{PreparedMessage, SnsPublisher, prepare_with_attributes};
use alert_envelope::sns::MessageAttributes;
use alert_envelope::{CloudWatchEnrichment, EnrichmentError, Envelope};
use serde_json::{Value, json};

use crate::Error;
use crate::cloudwatch::{CloudWatchEnricher, SeriesKey, console_url, summarize};
use crate::config::{EnricherConfig, InvalidRecordPolicy};
use crate::delivery::{Backoff, with_retry};
use crate::ec2::{Ec2Enricher, Ec2Miss};
use crate::emf::Counts;
use crate::event::{self, EventKind, Record};
use crate::routes_source::Routes;
use crate::routing::RoutingTable;
use crate::secrets::SecretStore;
use crate::sinks::{HttpSink, PagerDutySink, SinkConfig, SinkError, SlackSink, WebhookSink};

/// Points kept per series in an envelope: enough for a sparkline, small for SNS.
pub const MAX_POINTS: usize = 30;
/// Metrics never reach further back than this, whatever `starts_at` says.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(3 * 3600);

/// The Lambda's state, built once at init and shared by every invocation.
#[derive(Debug)]
pub struct Enricher {
    config: EnricherConfig,
    ec2: Ec2Enricher,
    cloudwatch: CloudWatchEnricher,
    publisher: SnsPublisher,
    region: String,
    routes: Routes,
    secrets: Option<SecretStore>,
    /// The HTTP sinks' client, built on first use: building one reads the
    /// whole system CA store, which was half of the cold start when built at
    /// init, and invocations that route to no HTTP sink never need it.
    http: std::sync::OnceLock<reqwest::Client>,
    backoff: Backoff,
    publish_retry: alert_aws::RetryPolicy,
}

/// HTTP deliveries in flight at once per invocation.
pub const HTTP_CONCURRENCY: usize = 8;

/// One envelope at one sink.
#[derive(Debug)]
struct SinkResult {
    index: usize,
    sink: String,
    error: Option<SinkError>,
    latency: Duration,
}

/// What happened to a batch.
#[derive(Debug, Default)]
pub struct BatchReport {
    /// Message ids to report as failed (SQS `batchItemFailures`).
    pub failed_message_ids: Vec<String>,
    /// First failure, for a direct SNS invocation's error.
    pub first_failure: Option<String>,
    /// Counters, also emitted as EMF.
    pub counts: Counts,
}

impl Enricher {
    /// Builds the enricher from config and clients (clients built once, at init).
    pub fn new(
        config: EnricherConfig,
        ec2: aws_sdk_ec2::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        sns: aws_sdk_sns::Client,
        region: String,
    ) -> Self {
        Enricher {
            ec2: Ec2Enricher::new(ec2, config.ec2_cache_ttl),
            cloudwatch: CloudWatchEnricher::new(cloudwatch, config.metric_period_seconds),
            publisher: SnsPublisher::new(
                sns,
                config.enriched_topic_arn.clone(),
                alert_aws::RetryPolicy::within(Duration::from_secs(10)),
            ),
            config,
            region,
            routes: Routes::fixed(RoutingTable::enriched_only()),
            secrets: None,
            http: std::sync::OnceLock::new(),
            backoff: Backoff::default(),
            publish_retry: alert_aws::RetryPolicy::within(Duration::from_secs(10)),
        }
    }

    /// Adds routing and the sinks' secrets (without this, every alert goes
    /// to the enriched topic only).
    pub fn with_delivery(mut self, routes: Routes, secrets: SecretStore) -> Self {
        self.routes = routes;
        self.secrets = Some(secrets);
        self
    }

    fn http(&self) -> reqwest::Client {
        self.http
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(2))
                    .build()
                    // Fails only when the TLS backend cannot start, as
                    // reqwest::Client::new (the fallback) would then.
                    .unwrap_or_default()
            })
            .clone()
    }

    /// Overrides the HTTP sinks' backoff (tests use short delays).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Handles one invocation payload with `remaining` time left. SQS events
    /// answer an `SqsBatchResponse`; SNS events answer `{}` or an error.
    pub async fn handle(&self, payload: &Value, remaining: Duration) -> Result<Value, Error> {
        let (kind, records) = event::parse(payload)?;
        let total = records.len();
        let report = self.process(records, remaining).await;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        println!("{}", report.counts.to_emf(now_ms));
        for doc in report.counts.sink_emf(now_ms) {
            println!("{doc}");
        }
        match kind {
            EventKind::Sqs => Ok(json!({
                "batchItemFailures": report
                    .failed_message_ids
                    .iter()
                    .map(|id| json!({"itemIdentifier": id}))
                    .collect::<Vec<_>>()
            })),
            EventKind::Sns if report.failed_message_ids.is_empty() => Ok(json!({})),
            EventKind::Sns => Err(Error::Delivery {
                failed: report.failed_message_ids.len(),
                total,
                detail: report.first_failure.unwrap_or_default(),
            }),
        }
    }

    /// Enriches and delivers `records`, reporting which failed.
    pub async fn process(&self, records: Vec<Record>, remaining: Duration) -> BatchReport {
        let mut report = BatchReport::default();
        report.counts.records = records.len() as u64;
        let call_timeout =
            (remaining / 4).clamp(Duration::from_millis(200), Duration::from_secs(5));

        // Read and dedupe. `owners[i]` lists the message ids carrying unique envelope i.
        let mut envelopes: Vec<Envelope> = Vec::new();
        let mut owners: Vec<Vec<String>> = Vec::new();
        let mut index_of: HashMap<String, usize> = HashMap::new();
        for record in records {
            match Envelope::from_json(&record.body) {
                Ok(env) => {
                    if let Some(&i) = index_of.get(&env.id) {
                        report.counts.duplicates += 1;
                        owners[i].push(record.message_id);
                        continue;
                    }
                    index_of.insert(env.id.clone(), envelopes.len());
                    envelopes.push(env);
                    owners.push(vec![record.message_id]);
                }
                Err(e) => {
                    report.counts.invalid += 1;
                    let retry = self.config.invalid_records == InvalidRecordPolicy::Fail;
                    tracing::error!(message_id = %record.message_id, error = %e, reported_as_failure = retry, "record is not a valid envelope");
                    if retry {
                        report.counts.failed += 1;
                        report.first_failure.get_or_insert_with(|| e.to_string());
                        report.failed_message_ids.push(record.message_id);
                    }
                }
            }
        }

        self.enrich(&mut envelopes, call_timeout, &mut report.counts)
            .await;

        self.deliver(&mut envelopes, &owners, remaining, &mut report)
            .await;
        report
    }

    /// Routes every envelope and delivers it to its sinks: SNS sinks in
    /// PublishBatch calls, HTTP sinks one request each through the retry
    /// stage. A record fails only when one of its sinks still fails
    /// retryably at the deadline.
    async fn deliver(
        &self,
        envelopes: &mut [Envelope],
        owners: &[Vec<String>],
        remaining: Duration,
        report: &mut BatchReport,
    ) {
        let table = self.routes.table().await;
        let mut budget = remaining.saturating_sub(Duration::from_millis(500));
        if let Some(cap) = self.config.delivery_deadline {
            budget = budget.min(cap);
        }
        let deadline = Instant::now() + budget;
        let mut sns_targets: BTreeMap<String, (SnsPublisher, Vec<usize>)> = BTreeMap::new();
        let mut http_targets: Vec<(usize, String, HttpSink)> = Vec::new();
        for (i, env) in envelopes.iter_mut().enumerate() {
            let decision = table.route(env);
            for name in &decision.sinks {
                match table.sinks.get(name) {
                    None => sns_targets
                        .entry(name.clone())
                        .or_insert_with(|| (self.publisher.clone(), Vec::new()))
                        .1
                        .push(i),
                    Some(SinkConfig::Sns(c)) => sns_targets
                        .entry(name.clone())
                        .or_insert_with(|| {
                            (
                                SnsPublisher::new(
                                    self.publisher.client().clone(),
                                    c.topic_arn.clone(),
                                    self.publish_retry,
                                ),
                                Vec::new(),
                            )
                        })
                        .1
                        .push(i),
                    Some(SinkConfig::Slack(c)) => http_targets.push((
                        i,
                        name.clone(),
                        HttpSink::Slack(SlackSink::new(c.clone(), self.http())),
                    )),
                    Some(SinkConfig::Pagerduty(c)) => http_targets.push((
                        i,
                        name.clone(),
                        HttpSink::PagerDuty(PagerDutySink::new(c.clone(), self.http())),
                    )),
                    Some(SinkConfig::Webhook(c)) => http_targets.push((
                        i,
                        name.clone(),
                        HttpSink::Webhook(WebhookSink::new(c.clone(), self.http())),
                    )),
                }
            }
            let enrichment = env.enrichment.get_or_insert_with(Default::default);
            enrichment.routed_to = decision.sinks.clone();
            if !decision.routes.is_empty() {
                tracing::debug!(id = %env.id, routes = ?decision.routes, sinks = ?decision.sinks, "routed");
            }
        }
        let envelopes: &[Envelope] = envelopes;

        let sns_runs =
            futures::future::join_all(sns_targets.iter().map(|(name, (publisher, indices))| {
                self.deliver_sns(name, publisher, indices, envelopes, deadline)
            }));
        let http_runs = futures::stream::iter(http_targets.iter())
            .map(|(i, name, sink)| async move {
                let started = Instant::now();
                let delivery = with_retry(deadline, self.backoff, |timeout| async move {
                    match &self.secrets {
                        Some(secrets) => sink.deliver(&envelopes[*i], secrets, timeout).await,
                        None => Err(SinkError::permanent(
                            "secret_unset",
                            "no secret store configured",
                        )),
                    }
                })
                .await;
                SinkResult {
                    index: *i,
                    sink: name.clone(),
                    error: delivery.error,
                    latency: started.elapsed(),
                }
            })
            .buffer_unordered(HTTP_CONCURRENCY)
            .collect::<Vec<_>>();
        let (sns_results, http_results) = futures::future::join(sns_runs, http_runs).await;

        let mut failed = vec![false; envelopes.len()];
        let mut sink_errors: Vec<Vec<String>> = vec![Vec::new(); envelopes.len()];
        let mut sns_flat = Vec::new();
        for (results, calls) in sns_results {
            report.counts.publish_batch_calls += calls as u64;
            sns_flat.extend(results);
        }
        for result in sns_flat.into_iter().chain(http_results) {
            let counts = report.counts.sinks.entry(result.sink.clone()).or_default();
            counts
                .latency_ms
                .push(result.latency.as_secs_f64() * 1000.0);
            let env = &envelopes[result.index];
            match result.error {
                None => counts.delivered += 1,
                Some(e) => {
                    *counts.failed.entry(e.reason.clone()).or_default() += 1;
                    for message_id in &owners[result.index] {
                        if e.retryable {
                            tracing::error!(id = %env.id, message_id = %message_id, sink = %result.sink, reason = %e.reason, detail = %e.detail, "delivery failed retryably until the deadline; reporting the record as failed");
                        } else {
                            tracing::error!(id = %env.id, message_id = %message_id, sink = %result.sink, reason = %e.reason, detail = %e.detail, "delivery refused; not retrying (fix the sink's configuration)");
                        }
                    }
                    if e.retryable {
                        failed[result.index] = true;
                        report
                            .first_failure
                            .get_or_insert_with(|| format!("{}: {e}", result.sink));
                    }
                    sink_errors[result.index].push(result.sink);
                }
            }
        }
        for (i, env) in envelopes.iter().enumerate() {
            if failed[i] {
                for message_id in &owners[i] {
                    report.failed_message_ids.push(message_id.clone());
                    report.counts.failed += 1;
                }
                continue;
            }
            if sink_errors[i].is_empty() {
                report.counts.delivered += 1;
            }
            let degraded = env
                .enrichment
                .as_ref()
                .is_some_and(|e| !e.errors.is_empty());
            if degraded {
                report.counts.degraded += 1;
            }
            let sinks = env
                .enrichment
                .as_ref()
                .map(|e| e.routed_to.clone())
                .unwrap_or_default();
            for message_id in &owners[i] {
                tracing::info!(id = %env.id, message_id = %message_id, team = env.team().unwrap_or(""), degraded, sinks = ?sinks, refused_by = ?sink_errors[i], "delivered");
            }
        }
    }

    /// Publishes the envelopes `indices` to one SNS sink.
    async fn deliver_sns(
        &self,
        name: &str,
        publisher: &SnsPublisher,
        indices: &[usize],
        envelopes: &[Envelope],
        deadline: Instant,
    ) -> (Vec<SinkResult>, usize) {
        let started = Instant::now();
        let mut results = Vec::with_capacity(indices.len());
        let mut prepared: Vec<PreparedMessage> = Vec::new();
        let mut prepared_index: Vec<usize> = Vec::new();
        for &i in indices {
            let env = &envelopes[i];
            let mut attributes = MessageAttributes::for_envelope(env);
            if let Some(t) = env
                .enrichment
                .as_ref()
                .and_then(|e| e.ec2.as_ref())
                .and_then(|e| e.instance_type.as_deref())
            {
                let _ = attributes.insert("instance_type", t);
            }
            match prepare_with_attributes(env.clone(), publisher.is_fifo(), attributes) {
                Ok(p) => {
                    prepared.push(p);
                    prepared_index.push(i);
                }
                // Cannot fit even without annotations: retrying cannot help.
                Err(e) => results.push(SinkResult {
                    index: i,
                    sink: name.to_string(),
                    error: Some(SinkError::permanent("too_large", e.to_string())),
                    latency: Duration::ZERO,
                }),
            }
        }
        let within = deadline.saturating_duration_since(Instant::now());
        let outcome = publisher.publish_within(&prepared, within).await;
        let latency = started.elapsed();
        for &p in &outcome.accepted {
            results.push(SinkResult {
                index: prepared_index[p],
                sink: name.to_string(),
                error: None,
                latency,
            });
        }
        for (p, c) in &outcome.permanent {
            results.push(SinkResult {
                index: prepared_index[*p],
                sink: name.to_string(),
                error: Some(SinkError::permanent(c.reason, c.detail.clone())),
                latency,
            });
        }
        for (p, c) in &outcome.retryable {
            results.push(SinkResult {
                index: prepared_index[*p],
                sink: name.to_string(),
                error: Some(SinkError::retryable(c.reason, c.detail.clone())),
                latency,
            });
        }
        (results, outcome.calls)
    }

    /// Adds EC2, CloudWatch and team to every envelope. Never fails: errors
    /// are recorded in `enrichment.errors`.
    async fn enrich(&self, envelopes: &mut [Envelope], timeout: Duration, counts: &mut Counts) {
        let instance_of = |env: &Envelope| env.aws.as_ref().and_then(|a| a.instance_id.clone());
        let ids: Vec<String> = envelopes
            .iter()
            .filter_map(instance_of)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (ec2, calls) = self.ec2.describe(&ids, timeout).await;
        counts.describe_instances_calls = calls as u64;

        let now = jiff::Timestamp::now().as_second();
        let mut series: BTreeSet<(String, String, String, String)> = BTreeSet::new();
        let mut start = now;
        for env in envelopes.iter() {
            let Some(id) = instance_of(env) else { continue };
            let (specs, window) = self.config.metrics_for(env);
            start = start.min(env.starts_at.as_second() - window.as_secs() as i64);
            for s in specs {
                series.insert((
                    id.clone(),
                    s.namespace.clone(),
                    s.name.clone(),
                    s.stat.clone(),
                ));
            }
        }
        let start = start.max(now - MAX_LOOKBACK.as_secs() as i64);
        let keys: Vec<SeriesKey> = series
            .into_iter()
            .map(|(instance_id, namespace, name, stat)| SeriesKey {
                instance_id,
                spec: crate::config::MetricSpec {
                    namespace,
                    name,
                    stat,
                },
            })
            .collect();
        let (metrics, calls) = if keys.is_empty() {
            (HashMap::new(), 0)
        } else {
            self.cloudwatch.fetch(&keys, start, now, timeout).await
        };
        counts.get_metric_data_calls = calls as u64;

        for env in envelopes.iter_mut() {
            let mut enrichment = env.enrichment.take().unwrap_or_default();
            if let Some(id) = instance_of(env) {
                match ec2.get(&id) {
                    Some(Ok(data)) => {
                        let mut data = data.clone();
                        data.tags.retain(|k, _| !self.config.tag_denied(k));
                        enrichment.ec2 = Some(data);
                        counts.enriched += 1;
                    }
                    Some(Err(Ec2Miss::NotFound)) => enrichment.errors.push(EnrichmentError {
                        stage: "ec2".into(),
                        message: format!("instance {id} not found by DescribeInstances"),
                    }),
                    Some(Err(Ec2Miss::Failed(m))) => enrichment.errors.push(EnrichmentError {
                        stage: "ec2".into(),
                        message: m.clone(),
                    }),
                    None => {}
                }
                let (specs, window) = self.config.metrics_for(env);
                let from = env.starts_at.as_second() - window.as_secs() as i64;
                let mut summaries = Vec::new();
                let mut failure: Option<String> = None;
                for spec in specs {
                    let key = SeriesKey {
                        instance_id: id.clone(),
                        spec: spec.clone(),
                    };
                    match metrics.get(&key) {
                        Some(Ok(points)) => {
                            summaries.push(summarize(spec, points, from, MAX_POINTS))
                        }
                        Some(Err(e)) => failure = Some(e.clone()),
                        None => {}
                    }
                }
                if let Some(message) = failure {
                    enrichment.errors.push(EnrichmentError {
                        stage: "cloudwatch".into(),
                        message,
                    });
                }
                if !summaries.is_empty() {
                    enrichment.cloudwatch = Some(CloudWatchEnrichment {
                        window_start: jiff::Timestamp::from_second(from.max(start))
                            .unwrap_or(env.starts_at),
                        window_end: jiff::Timestamp::from_second(now).unwrap_or(env.starts_at),
                        period_seconds: self.cloudwatch.period_seconds(),
                        metrics: summaries,
                        console_url: Some(console_url(&self.region, &id)),
                    });
                }
            }
            enrichment.team = Some(self.resolve_team(env, enrichment.ec2.as_ref()));
            env.enrichment = Some(enrichment);
        }
    }

    /// `kubernetes.team`, then the first configured EC2 tag, then the `team` label, then the default.
    fn resolve_team(&self, env: &Envelope, ec2: Option<&alert_envelope::Ec2Enrichment>) -> String {
        env.kubernetes
            .as_ref()
            .and_then(|k| k.team.clone())
            .or_else(|| {
                ec2.and_then(|e| {
                    self.config
                        .team_tag_names
                        .iter()
                        .find_map(|t| e.tags.get(t).filter(|v| !v.is_empty()).cloned())
                })
            })
            .or_else(|| env.labels.get("team").cloned())
            .unwrap_or_else(|| self.config.default_team.clone())
    }
}
