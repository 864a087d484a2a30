//! Settings, read once at init from the environment. Errors name the variable.

use std::time::Duration;

use clap::Parser;
use serde::Deserialize;

use crate::Error;

/// Environment of the enricher Lambda.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "alert-manager-enricher",
    version,
    about = "Enricher Lambda: EC2 and CloudWatch context for alert envelopes, republished to the enriched SNS topic"
)]
pub struct EnricherArgs {
    /// A tool instead of the Lambda handler.
    #[command(subcommand)]
    pub command: Option<EnricherCommand>,
    /// ARN of the enriched SNS topic (required).
    #[arg(long, env = "ENRICHED_TOPIC_ARN")]
    pub enriched_topic_arn: Option<String>,
    /// How long EC2 instance data is cached across warm invocations.
    #[arg(long, env = "EC2_CACHE_TTL_SECONDS", default_value_t = 300)]
    pub ec2_cache_ttl_seconds: u64,
    /// EC2 tag keys never copied into envelopes (comma-separated; `prefix*` matches a prefix).
    #[arg(
        long,
        env = "EC2_TAG_DENY_LIST",
        default_value = "aws:cloudformation:*"
    )]
    pub ec2_tag_deny_list: String,
    /// EC2 tag keys that name the owning team, in order (comma-separated).
    #[arg(long, env = "TEAM_TAG_NAMES", default_value = "team,owner")]
    pub team_tag_names: String,
    /// Team for alerts whose owner is found nowhere.
    #[arg(long, env = "DEFAULT_TEAM", default_value = "unassigned")]
    pub default_team: String,
    /// Metrics window: this many minutes before `starts_at`, up to now.
    #[arg(long, env = "METRIC_WINDOW_MINUTES", default_value_t = 30)]
    pub metric_window_minutes: u32,
    /// Period of each metric point, a multiple of 60.
    #[arg(long, env = "METRIC_PERIOD_SECONDS", default_value_t = 60)]
    pub metric_period_seconds: u32,
    /// Per-alert metric sets as JSON: `[{"match": {"alertname": "X", "labels": {"k": "v"}}, "metrics": [{"name": "CPUUtilization", "stat": "Average"}], "window_minutes": 60}]`. The first match wins; otherwise the default set.
    #[arg(long, env = "METRIC_SETS")]
    pub metric_sets: Option<String>,
    /// What to do with a record that is not a valid envelope: `drop` (log and count) or `fail` (report it, so maxReceiveCount moves it to the DLQ).
    #[arg(long, env = "INVALID_RECORDS", default_value = "drop")]
    pub invalid_records: InvalidRecordPolicy,
    /// Routing document, inline (YAML or JSON). See docs/sinks.md.
    #[arg(long, env = "ROUTES")]
    pub routes: Option<String>,
    /// Routing document, a file in the package (e.g. `routes.yaml`).
    #[arg(long, env = "ROUTES_FILE")]
    pub routes_file: Option<std::path::PathBuf>,
    /// Routing document, an SSM parameter name; re-read every ROUTES_TTL_SECONDS.
    #[arg(long, env = "ROUTES_SSM_PARAMETER")]
    pub routes_ssm_parameter: Option<String>,
    /// How often ROUTES_SSM_PARAMETER is re-read.
    #[arg(long, env = "ROUTES_TTL_SECONDS", default_value_t = 60)]
    pub routes_ttl_seconds: u64,
    /// Longest time one invocation spends delivering (retries included), in
    /// seconds; 0 means until the Lambda deadline. A record still failing then
    /// goes back to SQS and returns after the visibility timeout, so a short
    /// budget keeps one down sink from holding the whole batch.
    #[arg(long, env = "DELIVERY_DEADLINE_SECONDS", default_value_t = 0)]
    pub delivery_deadline_seconds: u64,
    /// How long a sink secret (Secrets Manager or SSM SecureString) is reused.
    #[arg(long, env = "SECRETS_TTL_SECONDS", default_value_t = 300)]
    pub secrets_ttl_seconds: u64,
}

/// Tools of the enricher binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum EnricherCommand {
    /// Dry-run of the routing: which routes match an envelope and which sinks
    /// would get it. Exits 2 with the path of the bad field when the routing
    /// document is invalid. Use it in CI to test routing changes.
    Route {
        /// The routing document (YAML or JSON).
        #[arg(long)]
        config: std::path::PathBuf,
        /// An envelope (JSON), e.g. one from docs/examples.
        #[arg(long)]
        envelope: std::path::PathBuf,
    },
}

/// Handling of records that are not valid envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InvalidRecordPolicy {
    /// Log with the message id, count, and drop.
    Drop,
    /// Report as a batch item failure, so the queue's redrive moves it to the DLQ.
    Fail,
}

/// One metric of a set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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

/// Validated settings.
#[derive(Debug, Clone)]
pub struct EnricherConfig {
    /// Enriched topic.
    pub enriched_topic_arn: String,
    /// EC2 cache TTL.
    pub ec2_cache_ttl: Duration,
    /// Tag deny-list.
    pub tag_deny_list: Vec<String>,
    /// Team tag keys.
    pub team_tag_names: Vec<String>,
    /// Default team.
    pub default_team: String,
    /// Default window before `starts_at`.
    pub metric_window: Duration,
    /// Period in seconds.
    pub metric_period_seconds: u32,
    /// Per-alert sets.
    pub metric_sets: Vec<MetricSet>,
    /// The default metric set.
    pub default_metrics: Vec<MetricSpec>,
    /// Invalid record handling.
    pub invalid_records: InvalidRecordPolicy,
    /// Where the routing document comes from.
    pub routes: crate::routes_source::RoutesSource,
    /// Sink secret TTL.
    pub secrets_ttl: Duration,
    /// Cap on delivery time per invocation; `None`: the Lambda deadline.
    pub delivery_deadline: Option<Duration>,
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

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

impl EnricherArgs {
    /// Reads the environment (no command line: this is a Lambda).
    pub fn from_env() -> Result<EnricherArgs, Error> {
        EnricherArgs::try_parse_from(["alert-manager-enricher"])
            .map_err(|e| Error::Config(e.to_string()))
    }

    /// Checks every setting.
    pub fn validate(self) -> Result<EnricherConfig, Error> {
        let topic = self
            .enriched_topic_arn
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Config("ENRICHED_TOPIC_ARN is required".into()))?;
        if !(topic.starts_with("arn:")
            && topic.split(':').nth(2) == Some("sns")
            && topic.split(':').count() == 6)
        {
            return Err(Error::Config(format!(
                "ENRICHED_TOPIC_ARN {topic:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
            )));
        }
        if self.metric_period_seconds == 0 || !self.metric_period_seconds.is_multiple_of(60) {
            return Err(Error::Config(format!(
                "METRIC_PERIOD_SECONDS is {}; CloudWatch needs a multiple of 60",
                self.metric_period_seconds
            )));
        }
        let metric_sets: Vec<MetricSet> = match &self.metric_sets {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| Error::Config(format!("METRIC_SETS is not valid: {e}")))?,
        };
        for (i, set) in metric_sets.iter().enumerate() {
            if set.metrics.is_empty() {
                return Err(Error::Config(format!("METRIC_SETS[{i}].metrics is empty")));
            }
        }
        use crate::routes_source::RoutesSource;
        let routes = match (self.routes, self.routes_file, self.routes_ssm_parameter) {
            (None, None, None) => RoutesSource::None,
            (Some(text), None, None) => RoutesSource::Inline(text),
            (None, Some(path), None) => RoutesSource::File(path),
            (None, None, Some(name)) if !name.trim().is_empty() => {
                if self.routes_ttl_seconds == 0 {
                    return Err(Error::Config(
                        "ROUTES_TTL_SECONDS must be at least 1".into(),
                    ));
                }
                RoutesSource::Ssm {
                    name: name.trim().to_string(),
                    ttl: Duration::from_secs(self.routes_ttl_seconds),
                }
            }
            (None, None, Some(_)) => {
                return Err(Error::Config("ROUTES_SSM_PARAMETER is empty".into()));
            }
            _ => {
                return Err(Error::Config(
                    "set only one of ROUTES, ROUTES_FILE and ROUTES_SSM_PARAMETER".into(),
                ));
            }
        };
        Ok(EnricherConfig {
            routes,
            secrets_ttl: Duration::from_secs(self.secrets_ttl_seconds),
            delivery_deadline: (self.delivery_deadline_seconds > 0)
                .then(|| Duration::from_secs(self.delivery_deadline_seconds)),
            enriched_topic_arn: topic,
            ec2_cache_ttl: Duration::from_secs(self.ec2_cache_ttl_seconds),
            tag_deny_list: list(&self.ec2_tag_deny_list),
            team_tag_names: list(&self.team_tag_names),
            default_team: self.default_team,
            metric_window: Duration::from_secs(u64::from(self.metric_window_minutes) * 60),
            metric_period_seconds: self.metric_period_seconds,
            metric_sets,
            default_metrics: default_metrics(),
            invalid_records: self.invalid_records,
        })
    }
}

impl EnricherConfig {
    /// The metrics and window for one alert.
    pub fn metrics_for(&self, env: &alert_envelope::Envelope) -> (&[MetricSpec], Duration) {
        for set in &self.metric_sets {
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
                    .unwrap_or(self.metric_window);
                return (&set.metrics, window);
            }
        }
        (&self.default_metrics, self.metric_window)
    }

    /// Whether a tag key is on the deny-list.
    pub fn tag_denied(&self, key: &str) -> bool {
        self.tag_deny_list
            .iter()
            .any(|d| match d.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => key == d,
            })
    }
}
