//! Which CloudWatch metrics each alert gets: `METRIC_SETS`, the first set
//! whose match holds, else the default set, over a window before `starts_at`.

use std::time::Duration;

use serde::Deserialize;

/// One metric of a set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// CloudWatch namespace (default `AWS/EC2`).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Metric name, e.g. `CPUUtilization`.
    pub name: String,
    /// Statistic, e.g. `Average`, `Maximum`, `Sum`.
    pub stat: String,
}

fn default_namespace() -> String {
    "AWS/EC2".into()
}

/// Which alerts a metric set applies to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricMatch {
    /// Exact alertname.
    #[serde(default)]
    pub alertname: Option<String>,
    /// Labels that must all be equal.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A metric set for matching alerts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSet {
    /// Which alerts.
    #[serde(rename = "match", default)]
    pub matcher: MetricMatch,
    /// The metrics to fetch.
    pub metrics: Vec<MetricSpec>,
    /// Window before `starts_at`, minutes.
    #[serde(default)]
    pub window_minutes: Option<u32>,
}

/// The metrics settings, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Default window before `starts_at`.
    pub window: Duration,
    /// Period of each point in seconds (a multiple of 60).
    pub period_seconds: u32,
    /// Per-alert sets, first match wins.
    pub sets: Vec<MetricSet>,
    /// The set when none matches.
    pub default: Vec<MetricSpec>,
}

/// CPUUtilization avg and max, StatusCheckFailed max, NetworkIn and NetworkOut.
pub fn default_metrics() -> Vec<MetricSpec> {
    [
        ("CPUUtilization", "Average"),
        ("CPUUtilization", "Maximum"),
        ("StatusCheckFailed", "Maximum"),
        ("NetworkIn", "Sum"),
        ("NetworkOut", "Sum"),
    ]
    .into_iter()
    .map(|(name, stat)| MetricSpec {
        namespace: default_namespace(),
        name: name.into(),
        stat: stat.into(),
    })
    .collect()
}

impl MetricsConfig {
    /// The metrics and window for one alert.
    pub fn metrics_for(&self, env: &alert_envelope::Envelope) -> (&[MetricSpec], Duration) {
        for set in &self.sets {
            let name_ok = set
                .matcher
                .alertname
                .as_ref()
                .is_none_or(|n| *n == env.alertname);
            let labels_ok = set
                .matcher
                .labels
                .iter()
                .all(|(k, v)| env.labels.get(k) == Some(v));
            if name_ok && labels_ok {
                let window = set
                    .window_minutes
                    .map(|m| Duration::from_secs(u64::from(m) * 60))
                    .unwrap_or(self.window);
                return (&set.metrics, window);
            }
        }
        (&self.default, self.window)
    }
}
