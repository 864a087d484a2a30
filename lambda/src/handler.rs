//! `Enricher`: one batch in, enriched envelopes out, failures reported per record.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use alert_aws::{PreparedMessage, SnsPublisher, prepare_with_attributes};
use alert_envelope::sns::MessageAttributes;
use alert_envelope::{CloudWatchEnrichment, EnrichmentError, Envelope};
use serde_json::{Value, json};

use crate::Error;
use crate::cloudwatch::{CloudWatchEnricher, SeriesKey, console_url, summarize};
use crate::config::{EnricherConfig, InvalidRecordPolicy};
use crate::ec2::{Ec2Enricher, Ec2Miss};
use crate::emf::Counts;
use crate::event::{self, EventKind, Record};

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
        }
    }

    /// Handles one invocation payload with `remaining` time left. SQS events
    /// answer an `SqsBatchResponse`; SNS events answer `{}` or an error.
    pub async fn handle(&self, payload: &Value, remaining: Duration) -> Result<Value, Error> {
        let (kind, records) = event::parse(payload)?;
        let total = records.len();
        let report = self.process(records, remaining).await;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        println!("{}", report.counts.to_emf(now_ms));
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

        // Deliver.
        let mut prepared: Vec<PreparedMessage> = Vec::new();
        let mut prepared_index: Vec<usize> = Vec::new();
        for (i, env) in envelopes.iter().enumerate() {
            let mut attributes = MessageAttributes::for_envelope(env);
            if let Some(t) = env
                .enrichment
                .as_ref()
                .and_then(|e| e.ec2.as_ref())
                .and_then(|e| e.instance_type.as_deref())
            {
                let _ = attributes.insert("instance_type", t);
            }
            match prepare_with_attributes(env.clone(), self.publisher.is_fifo(), attributes) {
                Ok(p) => {
                    prepared.push(p);
                    prepared_index.push(i);
                }
                Err(e) => {
                    // Cannot fit even without annotations: retrying cannot help.
                    tracing::error!(id = %env.id, message_ids = ?owners[i], error = %e, "enriched envelope too large; dropped");
                    report.counts.failed += 1;
                }
            }
        }
        let deadline = remaining.saturating_sub(Duration::from_millis(500));
        let outcome = self.publisher.publish_within(&prepared, deadline).await;
        report.counts.publish_batch_calls = outcome.calls as u64;
        for &p in &outcome.accepted {
            let i = prepared_index[p];
            report.counts.delivered += 1;
            let env = &envelopes[i];
            let degraded = env
                .enrichment
                .as_ref()
                .is_some_and(|e| !e.errors.is_empty());
            if degraded {
                report.counts.degraded += 1;
            }
            for message_id in &owners[i] {
                tracing::info!(id = %env.id, message_id = %message_id, team = env.team().unwrap_or(""), degraded, "delivered");
            }
        }
        for (p, c) in outcome.permanent.iter().chain(outcome.retryable.iter()) {
            let i = prepared_index[*p];
            for message_id in &owners[i] {
                tracing::error!(id = %envelopes[i].id, message_id = %message_id, reason = c.reason, detail = %c.detail, "delivery failed; reporting the record as failed");
                report.failed_message_ids.push(message_id.clone());
                report.counts.failed += 1;
            }
            report.first_failure.get_or_insert_with(|| c.detail.clone());
        }
        report
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
