//! CloudWatch Embedded Metric Format: metrics as one JSON log line per
//! invocation, which CloudWatch Logs turns into metrics at no API cost.

use serde_json::{Map, Value, json};

/// Namespace of the enricher's metrics.
pub const NAMESPACE: &str = "AlertManager/Enricher";

/// Counters of one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Records in the event.
    pub records: u64,
    /// Records that were not valid envelopes.
    pub invalid: u64,
    /// Records whose envelope id repeated in the batch.
    pub duplicates: u64,
    /// Envelopes with EC2 data.
    pub enriched: u64,
    /// Envelopes delivered with at least one enrichment error.
    pub degraded: u64,
    /// Envelopes the enriched topic accepted.
    pub delivered: u64,
    /// Records reported as failed.
    pub failed: u64,
    /// DescribeInstances calls.
    pub describe_instances_calls: u64,
    /// GetMetricData calls.
    pub get_metric_data_calls: u64,
    /// PublishBatch calls.
    pub publish_batch_calls: u64,
}

impl Counts {
    /// The EMF document for these counts.
    pub fn to_emf(&self, timestamp_ms: i64) -> Value {
        let fields = [
            ("Records", self.records),
            ("Invalid", self.invalid),
            ("Duplicates", self.duplicates),
            ("Enriched", self.enriched),
            ("Degraded", self.degraded),
            ("Delivered", self.delivered),
            ("Failed", self.failed),
            ("AwsCalls.DescribeInstances", self.describe_instances_calls),
            ("AwsCalls.GetMetricData", self.get_metric_data_calls),
            ("AwsCalls.PublishBatch", self.publish_batch_calls),
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
}
