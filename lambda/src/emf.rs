//! CloudWatch Embedded Metric Format: metrics as one JSON log line per
//! invocation, which CloudWatch Logs turns into metrics at no API cost.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Counters of one sink in one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkCounts {
    /// Envelopes the sink accepted.
    pub delivered: u64,
    /// Envelopes it did not accept, by reason.
    pub failed: BTreeMap<String, u64>,
    /// Time per delivery, retries included, in milliseconds.
    pub latency_ms: Vec<f64>,
}

/// Namespace of the enricher's metrics.
pub const NAMESPACE: &str = "AlertManager/Enricher";

/// Counters of one invocation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Records in the event.
    pub records: u64,
    /// Records that were not valid envelopes.
    pub invalid: u64,
    /// Records whose envelope id repeated in the batch.
    pub duplicates: u64,
    /// CloudWatch alarm state changes that are no alert (`INSUFFICIENT_DATA`).
    pub ignored: u64,
    /// Envelopes with EC2 data.
    pub enriched: u64,
    /// Envelopes delivered with at least one enrichment error.
    pub degraded: u64,
    /// Envelopes every sink they were routed to accepted.
    pub delivered: u64,
    /// Records reported as failed.
    pub failed: u64,
    /// FIFO records not delivered because an earlier record of their group
    /// failed (also counted in `failed`).
    pub held_back: u64,
    /// Envelopes older than what the state store holds.
    pub stale: u64,
    /// Deliveries skipped because the envelope was stale (non-SNS sinks).
    pub skipped_stale: u64,
    /// Deliveries skipped because the sink already took the envelope.
    pub skipped_already_delivered: u64,
    /// State store reads or writes that failed.
    pub state_errors: u64,
    /// Envelopes held back from people's sinks by a maintenance window.
    pub muted: u64,
    /// Envelopes a storm absorbed (people's sinks got its summary instead).
    pub in_storm: u64,
    /// Envelopes of flapping alerts (marked `flapping`).
    pub flapping: u64,
    /// Flapping notices: the one message each people's sink gets when an
    /// alert starts flapping.
    pub flap_notices: u64,
    /// Storm summary updates people's sinks accepted.
    pub storm_updates: u64,
    /// Storm summary updates that failed (sent again on the next turn).
    pub storm_update_failures: u64,
    /// Storms closed (every alert resolved, or quiet for the window).
    pub storms_closed: u64,
    /// DescribeInstances calls.
    pub describe_instances_calls: u64,
    /// GetMetricData calls.
    pub get_metric_data_calls: u64,
    /// AssumeRole calls (roles of other accounts).
    pub assume_role_calls: u64,
    /// PublishBatch calls.
    pub publish_batch_calls: u64,
    /// PutEvents calls (EventBridge sinks).
    pub put_events_calls: u64,
    /// BatchGetItem calls (state store).
    pub batch_get_item_calls: u64,
    /// PutItem calls (state store).
    pub put_item_calls: u64,
    /// Per sink.
    pub sinks: BTreeMap<String, SinkCounts>,
}

impl Counts {
    /// The EMF document for these counts.
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let fields = [
            ("Records", self.records),
            ("Invalid", self.invalid),
            ("Duplicates", self.duplicates),
            ("Ignored", self.ignored),
            ("Enriched", self.enriched),
            ("Degraded", self.degraded),
            ("Delivered", self.delivered),
            ("Failed", self.failed),
            ("HeldBack", self.held_back),
            ("Stale", self.stale),
            ("SkippedStale", self.skipped_stale),
            ("SkippedAlreadyDelivered", self.skipped_already_delivered),
            ("InStorm", self.in_storm),
            ("StormUpdates", self.storm_updates),
            ("StormUpdateFailures", self.storm_update_failures),
            ("StormsClosed", self.storms_closed),
            ("Flapping", self.flapping),
            ("FlapNotices", self.flap_notices),
            ("StateErrors", self.state_errors),
            ("Muted", self.muted),
            ("AwsCalls.DescribeInstances", self.describe_instances_calls),
            ("AwsCalls.GetMetricData", self.get_metric_data_calls),
            ("AwsCalls.AssumeRole", self.assume_role_calls),
            ("AwsCalls.PublishBatch", self.publish_batch_calls),
            ("AwsCalls.PutEvents", self.put_events_calls),
            ("AwsCalls.BatchGetItem", self.batch_get_item_calls),
            ("AwsCalls.PutItem", self.put_item_calls),
        ];
        let mut doc = Map::new();
        doc.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [[]],
                    "Metrics": fields.iter().map(|(n, _)| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
                }],
            }),
        );
        for (name, value) in fields {
            doc.insert(name.into(), json!(value));
        }
        Value::Object(doc)
    }

    /// One EMF document per sink (dimension `Sink`: Delivered, Failed,
    /// LatencyMs), and one per sink and failure reason (dimensions `Sink`,
    /// `Reason`: Failed).
    pub fn sink_emf(&self, timestamp_ms: i64) -> Vec<Value> {
        let mut docs = Vec::new();
        for (sink, c) in &self.sinks {
            let failed: u64 = c.failed.values().sum();
            docs.push(json!({
                "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [["Sink"]],
                    "Metrics": [
                        {"Name": "Delivered", "Unit": "Count"},
                        {"Name": "Failed", "Unit": "Count"},
                        {"Name": "LatencyMs", "Unit": "Milliseconds"},
                    ],
                }]},
                "Sink": sink,
                "Delivered": c.delivered,
                "Failed": failed,
                "LatencyMs": c.latency_ms,
            }));
            for (reason, n) in &c.failed {
                docs.push(json!({
                    "_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Sink", "Reason"]],
                        "Metrics": [{"Name": "Failed", "Unit": "Count"}],
                    }]},
                    "Sink": sink,
                    "Reason": reason,
                    "Failed": n,
                }));
            }
        }
        docs
    }
}
