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

pub mod cloudwatch;
pub mod config;
pub mod delivery;
pub mod ec2;
pub mod emf;
pub mod event;
pub mod handler;
pub mod routes_source;
pub mod routing;
pub mod secrets;
pub mod sinks;

pub use config::EnricherConfig;
pub use handler::Enricher;

/// The crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or wrong; the message names it.
    #[error("configuration error: {0}")]
    Config(String),
    /// The invocation payload is neither an SQS nor an SNS event.
    #[error("unsupported event: {0}")]
    Event(String),
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

/// The `route` dry-run: loads a routing document and an envelope and says
/// which routes match and which sinks would get it.
pub fn route_dry_run(
    config: &std::path::Path,
    envelope: &std::path::Path,
) -> Result<String, String> {
    use std::fmt::Write;
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("{}: cannot read: {e}", config.display()))?;
    let table = routing::RoutingTable::parse(&text)
        .map_err(|e| format!("{}: invalid routing document at {e}", config.display()))?;
    let body = std::fs::read_to_string(envelope)
        .map_err(|e| format!("{}: cannot read: {e}", envelope.display()))?;
    let env = alert_envelope::Envelope::from_json(&body)
        .map_err(|e| format!("{}: not an envelope: {e}", envelope.display()))?;
    let decision = table.route(&env);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "envelope {} {} ({}, {}) cluster={} namespace={} team={}",
        env.id,
        env.alertname,
        env.severity.as_str(),
        env.status.as_str(),
        env.cluster,
        env.namespace().unwrap_or("-"),
        env.team().unwrap_or("-")
    );
    for route in &table.routes {
        let matched = decision.routes.contains(&route.name);
        let _ = writeln!(
            out,
            "  {} {}{}",
            if matched { "MATCH" } else { "-    " },
            route.name,
            if matched && route.continue_matching {
                " (continue)"
            } else {
                ""
            }
        );
    }
    if decision.routes.is_empty() {
        let _ = writeln!(out, "  no route matched: default route");
    }
    let _ = writeln!(out, "sinks:");
    for sink in &decision.sinks {
        let kind = table
            .sinks
            .get(sink)
            .map_or("sns (ENRICHED_TOPIC_ARN)", |s| s.kind());
        let _ = writeln!(out, "  {sink} ({kind})");
    }
    Ok(out)
}
