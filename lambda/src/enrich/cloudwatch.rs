//! `CloudWatchEnricher`: every metric query of a batch in GetMetricData calls
//! of at most 500 queries per (account, region), following NextToken.
//!
//! One window covers the whole batch (from the earliest alert's window start
//! to now), so the batch needs one call per 500 queries; each alert's summary
//! is then computed over its own window.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use alert_aws::{Deadline, classify_sdk_error};
use alert_envelope::{CloudWatchEnrichment, Envelope, MetricPoint, MetricSummary};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};

use crate::config::{MetricSpec, MetricsConfig};

/// Points kept per series in an envelope: enough for a sparkline, small for SNS.
pub const MAX_POINTS: usize = 30;
/// Metrics never reach further back than this, whatever `starts_at` says.
pub const MAX_LOOKBACK: Duration = Duration::from_secs(3 * 3600);

/// Most queries GetMetricData takes in one call.
pub const MAX_QUERIES_PER_CALL: usize = 500;

/// One series to fetch: an instance and a metric spec.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    /// Instance id (the `InstanceId` dimension).
    pub instance_id: String,
    /// The metric.
    pub spec: MetricSpec,
}

/// Fetches metric series for many instances at once, through the client
/// of their account and region.
#[derive(Debug, Clone)]
pub struct CloudWatchEnricher {
    metrics: MetricsConfig,
}

/// The metrics of one batch: every series, and the calls made.
#[derive(Debug, Default)]
pub struct BatchMetrics {
    series: HashMap<SeriesKey, Result<Vec<MetricPoint>, String>>,
    start: i64,
    now: i64,
    /// GetMetricData calls made.
    pub calls: usize,
}

impl CloudWatchEnricher {
    /// An enricher fetching what `metrics` says.
    pub fn new(metrics: MetricsConfig) -> Self {
        CloudWatchEnricher { metrics }
    }

    /// Every series `envelopes` (of one account and region) need, over one
    /// window, in as few calls through `client` as fit.
    pub async fn fetch_batch(
        &self,
        client: &aws_sdk_cloudwatch::Client,
        envelopes: &[&Envelope],
        instance_of: impl Fn(&Envelope) -> Option<String>,
        deadline: &Deadline,
    ) -> BatchMetrics {
        let now = jiff::Timestamp::now().as_second();
        let mut series: BTreeSet<SeriesKey> = BTreeSet::new();
        let mut start = now;
        for env in envelopes {
            let Some(id) = instance_of(env) else { continue };
            let (specs, window) = self.metrics.metrics_for(env);
            start = start.min(env.starts_at.as_second() - window.as_secs() as i64);
            for spec in specs {
                series.insert(SeriesKey {
                    instance_id: id.clone(),
                    spec: spec.clone(),
                });
            }
        }
        let start = start.max(now - MAX_LOOKBACK.as_secs() as i64);
        let keys: Vec<SeriesKey> = series.into_iter().collect();
        let (series, calls) = if keys.is_empty() {
            (HashMap::new(), 0)
        } else {
            self.fetch(client, &keys, start, now, deadline).await
        };
        BatchMetrics {
            series,
            start,
            now,
            calls,
        }
    }

    /// One envelope's summaries over its own window, or the failure
    /// message; the console link points at `region`.
    pub fn summaries(
        &self,
        env: &Envelope,
        instance_id: &str,
        region: &str,
        batch: &BatchMetrics,
    ) -> (Option<CloudWatchEnrichment>, Option<String>) {
        let (specs, window) = self.metrics.metrics_for(env);
        let from = env.starts_at.as_second() - window.as_secs() as i64;
        let mut summaries = Vec::new();
        let mut failure = None;
        for spec in specs {
            let key = SeriesKey {
                instance_id: instance_id.to_string(),
                spec: spec.clone(),
            };
            match batch.series.get(&key) {
                Some(Ok(points)) => summaries.push(summarize(spec, points, from, MAX_POINTS)),
                Some(Err(e)) => failure = Some(e.clone()),
                None => {}
            }
        }
        let enrichment = (!summaries.is_empty()).then(|| CloudWatchEnrichment {
            window_start: jiff::Timestamp::from_second(from.max(batch.start))
                .unwrap_or(env.starts_at),
            window_end: jiff::Timestamp::from_second(batch.now).unwrap_or(env.starts_at),
            period_seconds: self.metrics.period_seconds,
            metrics: summaries,
            console_url: Some(console_url(region, instance_id)),
        });
        (enrichment, failure)
    }

    /// Points of every series between `start` and `end` (epoch seconds),
    /// oldest first; and the number of calls made. A failed call fails the
    /// series it carried, with the message.
    async fn fetch(
        &self,
        client: &aws_sdk_cloudwatch::Client,
        series: &[SeriesKey],
        start: i64,
        end: i64,
        deadline: &Deadline,
    ) -> (HashMap<SeriesKey, Result<Vec<MetricPoint>, String>>, usize) {
        let mut out = HashMap::new();
        let mut calls = 0;
        let period = self.metrics.period_seconds as i64;
        let start = start - start.rem_euclid(period);
        for (chunk_index, chunk) in series.chunks(MAX_QUERIES_PER_CALL).enumerate() {
            let queries: Vec<MetricDataQuery> = chunk
                .iter()
                .enumerate()
                .map(|(i, key)| {
                    query(
                        &format!("q{chunk_index}_{i}"),
                        key,
                        self.metrics.period_seconds,
                    )
                })
                .collect();
            let mut points: HashMap<String, Vec<MetricPoint>> = HashMap::new();
            let mut next_token: Option<String> = None;
            let result: Result<(), String> = loop {
                let Some(timeout) = deadline.timeout(alert_aws::sdk::ATTEMPT_TIMEOUT) else {
                    break Err("GetMetricData not sent: no time left before the deadline".into());
                };
                calls += 1;
                let call = client
                    .get_metric_data()
                    .set_metric_data_queries(Some(queries.clone()))
                    .start_time(DateTime::from_secs(start))
                    .end_time(DateTime::from_secs(end))
                    .scan_by(ScanBy::TimestampAscending)
                    .set_next_token(next_token.take())
                    .send();
                match tokio::time::timeout(timeout, call).await {
                    Err(_) => {
                        break Err(format!(
                            "GetMetricData timed out after {} ms",
                            timeout.as_millis()
                        ));
                    }
                    Ok(Err(e)) => {
                        let c = classify_sdk_error(&e);
                        break Err(format!("GetMetricData failed ({}): {}", c.reason, c.detail));
                    }
                    Ok(Ok(resp)) => {
                        for r in resp.metric_data_results() {
                            let entry = points.entry(r.id().unwrap_or("").to_string()).or_default();
                            for (t, v) in r.timestamps().iter().zip(r.values()) {
                                if let (Ok(ts), true) =
                                    (jiff::Timestamp::from_second(t.secs()), v.is_finite())
                                {
                                    entry.push(MetricPoint {
                                        timestamp: ts,
                                        value: *v,
                                    });
                                }
                            }
                        }
                        match resp.next_token() {
                            Some(t) if !t.is_empty() => next_token = Some(t.to_string()),
                            _ => break Ok(()),
                        }
                    }
                }
            };
            for (i, key) in chunk.iter().enumerate() {
                let value = match &result {
                    Ok(()) => {
                        let mut p = points
                            .remove(&format!("q{chunk_index}_{i}"))
                            .unwrap_or_default();
                        p.sort_by_key(|p| p.timestamp);
                        Ok(p)
                    }
                    Err(e) => Err(e.clone()),
                };
                out.insert(key.clone(), value);
            }
        }
        (out, calls)
    }
}

fn query(id: &str, key: &SeriesKey, period: u32) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(&key.spec.namespace)
                        .metric_name(&key.spec.name)
                        .dimensions(
                            Dimension::builder()
                                .name("InstanceId")
                                .value(&key.instance_id)
                                .build(),
                        )
                        .build(),
                )
                .period(period as i32)
                .stat(&key.spec.stat)
                .build(),
        )
        .return_data(true)
        .build()
}

/// Summary of the points inside `[from, to]`, keeping at most `max_points` of the newest.
pub fn summarize(
    spec: &MetricSpec,
    points: &[MetricPoint],
    from: i64,
    max_points: usize,
) -> MetricSummary {
    let window: Vec<MetricPoint> = points
        .iter()
        .filter(|p| p.timestamp.as_second() >= from)
        .cloned()
        .collect();
    let values: Vec<f64> = window.iter().map(|p| p.value).collect();
    let max = values
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let avg = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
    let skip = window.len().saturating_sub(max_points);
    MetricSummary {
        metric: spec.name.clone(),
        stat: spec.stat.clone(),
        latest: values.last().copied(),
        max,
        avg,
        points: window.into_iter().skip(skip).collect(),
    }
}

/// A CloudWatch console link to the instance's EC2 metrics.
pub fn console_url(region: &str, instance_id: &str) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#metricsV2?search=InstanceId%3D{instance_id}&namespace=AWS%2FEC2"
    )
}
