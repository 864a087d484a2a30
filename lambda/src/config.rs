//! Settings, read once at init from the environment. Errors name the variable.

use std::num::NonZeroUsize;
use std::time::Duration;

use alert_aws::{ConfigError, TopicArn};
use clap::Parser;

use crate::Error;
use crate::enrich::ec2::Ec2CacheConfig;
use crate::enrich::fleet::FleetConfig;
pub use crate::enrich::metric_sets::{
    MetricMatch, MetricSet, MetricSpec, MetricsConfig, default_metrics,
};
use crate::enrich::team::TeamConfig;
use crate::routes_source::RoutesSource;
use crate::state::{StateConfig, StateFailure};

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
    /// How long an instance DescribeInstances did not list (terminated, or in
    /// another account) is believed missing before it is asked for again.
    #[arg(long, env = "EC2_NEGATIVE_TTL_SECONDS", default_value_t = 60)]
    pub ec2_negative_ttl_seconds: u64,
    /// Most instances kept in the EC2 cache; the least recently used go first.
    /// 10,000 entries take a few MiB.
    #[arg(long, env = "EC2_CACHE_MAX_INSTANCES", default_value_t = 10_000)]
    pub ec2_cache_max_instances: usize,
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
    /// A CloudWatch alarm's `INSUFFICIENT_DATA` state: `ignore` (logged and counted, no alert) or `firing` (an alert like `ALARM`). See docs/aws-integration.md.
    #[arg(long, env = "ALARM_INSUFFICIENT_DATA", default_value = "ignore")]
    pub alarm_insufficient_data: InsufficientData,
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
    /// The alert state store: a DynamoDB table name or ARN (the stack's
    /// `StateTable`). With it each sink gets each envelope once and a
    /// firing that arrives after its resolve reaches only the SNS sinks;
    /// without it delivery is at least once (see docs/sinks.md).
    #[arg(long, env = "STATE_TABLE")]
    pub state_table: Option<String>,
    /// How long an alert's state is kept after its resolve (or after its
    /// last change, while it fires), in hours.
    #[arg(long, env = "STATE_TTL_HOURS", default_value_t = 168)]
    pub state_ttl_hours: u64,
    /// When STATE_TABLE cannot be read or written: `deliver` (at least
    /// once, with an `enrichment.errors` entry of stage `state`) or `retry`
    /// (fail the records, so they come back from SQS).
    #[arg(long, env = "STATE_FAILURE", default_value = "deliver")]
    pub state_failure: StateFailure,
    /// The Slack Web API base URL, for `slack_app` sinks (tests point it at
    /// a stand-in; `http://` is accepted).
    #[arg(long, env = "SLACK_API_URL", default_value = crate::sinks::slack_app::DEFAULT_API_URL)]
    pub slack_api_url: String,
    /// EC2 tag whose value, an RFC 3339 time, mutes alerts about that
    /// instance for people's sinks until then (SNS still gets them, marked
    /// `muted`). Empty turns it off.
    #[arg(long, env = "MAINTENANCE_TAG", default_value = crate::maintenance::DEFAULT_TAG)]
    pub maintenance_tag: String,
    /// Role assumed in each other account of ALLOWED_ACCOUNTS to read its
    /// EC2 instances and CloudWatch metrics (`member-account.yaml` creates
    /// it): `arn:aws:iam::ACCOUNT:role/NAME`.
    #[arg(long, env = "CROSS_ACCOUNT_ROLE_NAME", default_value = crate::enrich::fleet::DEFAULT_ROLE_NAME)]
    pub cross_account_role_name: String,
    /// External id sent with every AssumeRole, when the member roles'
    /// trust policies require one.
    #[arg(long, env = "CROSS_ACCOUNT_EXTERNAL_ID", hide_env_values = true)]
    pub cross_account_external_id: Option<String>,
    /// Accounts other than the enricher's own (that of ENRICHED_TOPIC_ARN)
    /// whose alerts are enriched, comma-separated 12-digit ids. An alert
    /// from another account is still delivered, with an `enrichment.errors`
    /// entry of stage `account`. Empty: the enricher's own account only.
    #[arg(long, env = "ALLOWED_ACCOUNTS", default_value = "")]
    pub allowed_accounts: String,
    /// The invocation time, in seconds, under a Runtime API emulator that
    /// sends no real deadline (`cargo lambda watch` sends one in 1970; SAM
    /// CLI sets this variable). Lambda's own deadline always wins.
    #[arg(long, env = "AWS_LAMBDA_FUNCTION_TIMEOUT", default_value_t = 3)]
    pub function_timeout_seconds: u64,
}

/// Tools of the enricher binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum EnricherCommand {
    /// Dry-run of the routing: which routes match an envelope, which sinks
    /// would get it, and whether a maintenance window (a route's time
    /// interval, or the instance's MAINTENANCE_TAG) mutes it, why and until
    /// when. Exits 2 with the path of the bad field when the routing
    /// document is invalid. Use it in CI to test routing changes.
    Route {
        /// The routing document (YAML or JSON).
        #[arg(long)]
        config: std::path::PathBuf,
        /// An envelope (JSON), e.g. one from docs/examples.
        #[arg(long)]
        envelope: std::path::PathBuf,
        /// The time to route at, RFC 3339 (`2026-12-24T22:00:00+01:00`);
        /// default now.
        #[arg(long)]
        at: Option<String>,
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

/// What a CloudWatch alarm's `INSUFFICIENT_DATA` state is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InsufficientData {
    /// No alert: logged and counted (`Ignored`).
    Ignore,
    /// An alert, like `ALARM`.
    Firing,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct EnricherConfig {
    /// The enriched topic: the implicit `enriched` sink.
    pub enriched_topic: TopicArn,
    /// EC2 cache bounds.
    pub ec2_cache: Ec2CacheConfig,
    /// Owner resolution and the tag deny-list.
    pub team: TeamConfig,
    /// Which metrics each alert gets.
    pub metrics: MetricsConfig,
    /// Invalid record handling.
    pub invalid_records: InvalidRecordPolicy,
    /// How CloudWatch alarm messages are read.
    pub alarms: alert_envelope::alarm::AlarmOptions,
    /// Where the routing document comes from.
    pub routes: crate::routes_source::RoutesSource,
    /// Sink secret TTL.
    pub secrets_ttl: Duration,
    /// Cap on delivery time per invocation; `None`: the Lambda deadline.
    pub delivery_deadline: Option<Duration>,
    /// The alert state store; `None`: at-least-once delivery.
    pub state: Option<StateConfig>,
    /// Slack Web API base URL.
    pub slack_api_url: String,
    /// The EC2 tag of per-instance maintenance; empty: off.
    pub maintenance_tag: String,
    /// The invocation time when the Runtime API gives no real deadline.
    pub unknown_deadline: Duration,
    /// Other accounts, and the role assumed in each.
    pub fleet: FleetConfig,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

impl EnricherArgs {
    /// Checks every setting; the error names the variable.
    pub fn validate(self) -> Result<EnricherConfig, Error> {
        Ok(self.checked()?)
    }

    fn checked(self) -> Result<EnricherConfig, ConfigError> {
        let topic = self
            .enriched_topic_arn
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConfigError::new(
                    "ENRICHED_TOPIC_ARN",
                    "is required: the ARN of the enriched SNS topic",
                )
            })?;
        let enriched_topic =
            TopicArn::parse(&topic).map_err(|e| ConfigError::new("ENRICHED_TOPIC_ARN", e))?;
        if self.metric_period_seconds == 0 || !self.metric_period_seconds.is_multiple_of(60) {
            return Err(ConfigError::new(
                "METRIC_PERIOD_SECONDS",
                format!(
                    "is {}; CloudWatch needs a multiple of 60",
                    self.metric_period_seconds
                ),
            ));
        }
        let sets: Vec<MetricSet> = match &self.metric_sets {
            None => Vec::new(),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| ConfigError::new("METRIC_SETS", format!("is not valid: {e}")))?,
        };
        for (i, set) in sets.iter().enumerate() {
            if set.metrics.is_empty() {
                return Err(ConfigError::new(
                    format!("METRIC_SETS[{i}].metrics"),
                    "is empty",
                ));
            }
        }
        let max_instances = NonZeroUsize::new(self.ec2_cache_max_instances)
            .ok_or_else(|| ConfigError::new("EC2_CACHE_MAX_INSTANCES", "must be at least 1"))?;
        let state = match self.state_table.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(table) => Some(StateConfig::new(
                table,
                self.state_ttl_hours,
                self.state_failure,
            )?),
        };
        let slack_api_url = match reqwest::Url::parse(&self.slack_api_url) {
            Ok(u) if matches!(u.scheme(), "https" | "http") => {
                self.slack_api_url.trim_end_matches('/').to_string()
            }
            _ => {
                return Err(ConfigError::new(
                    "SLACK_API_URL",
                    format!("{:?} is not an http(s) URL", self.slack_api_url),
                ));
            }
        };
        let maintenance_tag = self.maintenance_tag.trim().to_string();
        if maintenance_tag.len() > 128 || maintenance_tag.starts_with("aws:") {
            return Err(ConfigError::new(
                "MAINTENANCE_TAG",
                format!(
                    "{maintenance_tag:?} cannot be an EC2 tag key you set (at most 128 characters, not aws:)"
                ),
            ));
        }
        Ok(EnricherConfig {
            fleet: FleetConfig::new(
                &self.cross_account_role_name,
                self.cross_account_external_id.as_deref(),
                &self.allowed_accounts,
            )?,
            unknown_deadline: Duration::from_secs(self.function_timeout_seconds.clamp(1, 900)),
            maintenance_tag,
            slack_api_url,
            state,
            routes: routes_source(
                self.routes,
                self.routes_file,
                self.routes_ssm_parameter,
                self.routes_ttl_seconds,
            )?,
            secrets_ttl: Duration::from_secs(self.secrets_ttl_seconds),
            delivery_deadline: (self.delivery_deadline_seconds > 0)
                .then(|| Duration::from_secs(self.delivery_deadline_seconds)),
            enriched_topic,
            ec2_cache: Ec2CacheConfig {
                ttl: Duration::from_secs(self.ec2_cache_ttl_seconds),
                negative_ttl: Duration::from_secs(self.ec2_negative_ttl_seconds),
                max_instances,
            },
            team: TeamConfig {
                tag_deny_list: list(&self.ec2_tag_deny_list),
                tag_names: list(&self.team_tag_names),
                default_team: self.default_team,
            },
            metrics: MetricsConfig {
                window: Duration::from_secs(u64::from(self.metric_window_minutes) * 60),
                period_seconds: self.metric_period_seconds,
                sets,
                default: default_metrics(),
            },
            invalid_records: self.invalid_records,
            alarms: alert_envelope::alarm::AlarmOptions {
                insufficient_data_fires: self.alarm_insufficient_data == InsufficientData::Firing,
            },
        })
    }
}

/// The one routing source the settings name.
fn routes_source(
    inline: Option<String>,
    file: Option<std::path::PathBuf>,
    ssm: Option<String>,
    ttl_seconds: u64,
) -> Result<RoutesSource, ConfigError> {
    match (inline, file, ssm) {
        (None, None, None) => Ok(RoutesSource::None),
        (Some(text), None, None) => Ok(RoutesSource::Inline(text)),
        (None, Some(path), None) => Ok(RoutesSource::File(path)),
        (None, None, Some(name)) if !name.trim().is_empty() => {
            if ttl_seconds == 0 {
                return Err(ConfigError::new("ROUTES_TTL_SECONDS", "must be at least 1"));
            }
            Ok(RoutesSource::Ssm {
                name: name.trim().to_string(),
                ttl: Duration::from_secs(ttl_seconds),
            })
        }
        (None, None, Some(_)) => Err(ConfigError::new("ROUTES_SSM_PARAMETER", "is empty")),
        _ => Err(ConfigError::new(
            "ROUTES",
            "and ROUTES_FILE and ROUTES_SSM_PARAMETER: set only one of them",
        )),
    }
}
