//! What the enricher Lambda adds to an envelope (`enrichment`): EC2 and
//! CloudWatch data, the owner, where it was routed, and the steps that failed.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the enricher Lambda adds. A failed step is recorded in `errors` and never blocks delivery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Enrichment {
    /// EC2 instance data and tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2: Option<Ec2Enrichment>,
    /// CloudWatch metrics around the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudwatch: Option<CloudWatchEnrichment>,
    /// Owning team as the Lambda resolved it: `kubernetes.team`, then an EC2
    /// tag, then the `team` label, then the configured default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Sinks the alert was routed to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routed_to: Vec<String>,
    /// One entry per enrichment step that failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<EnrichmentError>,
    /// The alert state store holds a newer envelope of this alert (for
    /// example this is a firing that arrived after its resolve). People's
    /// sinks did not get it; it reaches SNS with the attribute `stale=true`,
    /// and consumers that keep state should ignore it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Why people's sinks were not given this alert now: a maintenance
    /// window of its route or of its instance. It reaches SNS with the
    /// attribute `muted=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<Muted>,
    /// A storm rule of its route absorbed it: that route's people's sinks
    /// got the group's summary instead of this alert. It reaches SNS with
    /// the attribute `in_storm=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_storm: Option<InStorm>,
    /// It changed state at least a flap rule's `transitions` times within
    /// its `window`: people's sinks got one notice, and get its final state
    /// once it is stable. It reaches SNS with the attribute `flapping=true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
}

/// The storm that absorbed an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InStorm {
    /// The route whose storm rule absorbed it.
    pub route: String,
    /// The group: the values of the rule's `group_by` fields, by field.
    pub group: BTreeMap<String, String>,
    /// The storm's key in the alert state store (and its summaries' id).
    pub key: String,
    /// When the storm began.
    pub since: Timestamp,
    /// The sinks that got the summary instead.
    pub sinks: Vec<String>,
}

/// A mute: what held the alert back from people's sinks, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Muted {
    /// What muted it: `route payments: mute_time_intervals weekend`,
    /// `instance i-0abc: alert-manager.io/maintenance-until`.
    pub reason: String,
    /// When the mute ends, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// The sinks held back.
    pub sinks: Vec<String>,
}

/// EC2 DescribeInstances data for the instance behind the alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ec2Enrichment {
    /// Instance id.
    pub instance_id: String,
    /// Instance type, e.g. `m6i.large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Instance state, e.g. `running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Launch time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_time: Option<Timestamp>,
    /// Primary private IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    /// Availability zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    /// Instance tags, minus the configured deny-list.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// EKS nodegroup from the `eks:nodegroup-name` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodegroup: Option<String>,
    /// Auto Scaling group from the `aws:autoscaling:groupName` tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling_group: Option<String>,
}

/// CloudWatch metrics for the instance around the alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloudWatchEnrichment {
    /// Start of the queried window.
    pub window_start: Timestamp,
    /// End of the queried window.
    pub window_end: Timestamp,
    /// Period of each point in seconds (a multiple of 60).
    pub period_seconds: u32,
    /// One entry per metric and statistic.
    #[serde(default)]
    pub metrics: Vec<MetricSummary>,
    /// Link to the metrics in the CloudWatch console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_url: Option<String>,
}

/// A metric series with its summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricSummary {
    /// Metric name, e.g. `CPUUtilization`.
    pub metric: String,
    /// Statistic, e.g. `Average` or `Maximum`.
    pub stat: String,
    /// Most recent value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<f64>,
    /// Largest value in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Mean of the values in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    /// The points, oldest first.
    #[serde(default)]
    pub points: Vec<MetricPoint>,
}

/// One point of a metric series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MetricPoint {
    /// Start of the period.
    pub timestamp: Timestamp,
    /// Value for the period.
    pub value: f64,
}

/// An enrichment step that failed; the alert was delivered without it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EnrichmentError {
    /// The step: `ec2`, `cloudwatch`, `route`, ...
    pub stage: String,
    /// What went wrong.
    pub message: String,
}
