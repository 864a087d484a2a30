//! `alert-manager-enricher`: the Lambda behind the raw alerts topic.
//!
//! For each batch it reads envelopes (SQS raw or SNS-wrapped bodies, or a
//! direct SNS subscription), enriches them with EC2 instance data and
//! CloudWatch metrics in as few calls as the batch allows, resolves the
//! owning team, routes each alert (see [`routing`]) and delivers it to its
//! sinks: the enriched topic and other SNS topics, Slack, PagerDuty and
//! signed webhooks.
//!
//! Invariants:
//! - Enrichment never blocks delivery: a failed step becomes an
//!   `enrichment.errors` entry and the alert is still published.
//! - Only delivery failures come back (SQS batch item failures, or an error
//!   for a direct SNS invocation), so only those records are retried.
//! - The EC2 Describe* budget is shared with the whole account: one
//!   DescribeInstances per 200 distinct instances per batch, none within the
//!   cache TTL.

pub mod app;
pub mod batch;
pub mod config;
pub mod deliver;
pub mod emf;
pub mod enrich;
pub mod event;
pub mod flap;
pub mod handler;
pub mod maintenance;
pub mod routes_source;
pub mod routing;
pub mod secrets;
pub mod sinks;
pub mod state;
pub mod storm;

pub use app::route_dry_run;
pub use config::EnricherConfig;
pub use handler::Enricher;

/// The crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or wrong; the message names it.
    #[error("configuration error: {0}")]
    Config(#[from] alert_aws::ConfigError),
    /// The invocation payload is neither an SQS nor an SNS event, nor the tick.
    #[error("unsupported event: {0}")]
    Event(String),
    /// The tick could not read the state store; the schedule's next tick tries again.
    #[error("state store: {0}")]
    State(String),
    /// Some records of a direct SNS invocation failed retryably; Lambda's async retry applies.
    #[error("{failed} of {total} records not delivered: {detail}")]
    Delivery {
        /// Records not delivered.
        failed: usize,
        /// Records in the event.
        total: usize,
        /// First failure.
        detail: String,
    },
}
