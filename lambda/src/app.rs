//! Init: settings, clients (once), the routing document and the secret
//! store, and the `route` dry-run tool.

use std::fmt::Write;

use alert_aws::sdk::{LogFormat, init_logging, sdk_config};

use crate::config::{EnricherArgs, EnricherCommand};
use crate::routes_source::Routes;
use crate::routing::RoutingTable;
use crate::secrets::SecretStore;
use crate::state::StateStore;
use crate::{Enricher, Error};
use alert_envelope::Envelope;

/// What the binary was asked to do.
#[derive(Debug)]
pub enum Mode {
    /// Serve the Lambda Runtime API.
    Lambda(Box<EnricherArgs>),
    /// The `route` tool's report, or its error.
    Tool(Result<String, String>),
}

/// Reads the command line and environment.
pub fn mode(args: EnricherArgs) -> Mode {
    match &args.command {
        Some(EnricherCommand::Route {
            config,
            envelope,
            at,
        }) => Mode::Tool(route_dry_run(
            config,
            envelope,
            at.as_deref(),
            args.maintenance_tag.trim(),
        )),
        None => Mode::Lambda(Box::new(args)),
    }
}

/// Prints a tool's report, or says why it failed (exit 2).
pub fn print_report(result: Result<String, String>) -> std::process::ExitCode {
    match result {
        Ok(report) => {
            print!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("route: {e}"), 2),
    }
}

/// Says why on stderr and exits with `code`.
pub fn fail(message: &str, code: u8) -> std::process::ExitCode {
    eprintln!("alert-manager-enricher: {message}");
    std::process::ExitCode::from(code)
}

/// Builds the enricher: logging, settings, SDK clients and the routing
/// document. Any problem is an error naming the setting.
pub async fn init(args: EnricherArgs) -> Result<Enricher, Error> {
    init_logging(LogFormat::Json);
    let config = args.validate()?;
    let sdk = sdk_config().await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let routes = Routes::load(config.routes.clone(), ssm.clone()).await?;
    let secrets = SecretStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        ssm,
        config.secrets_ttl,
    );
    let state = config
        .state
        .clone()
        .map(|c| StateStore::new(aws_sdk_dynamodb::Client::new(&sdk), c));
    let enricher = Enricher::new(
        config,
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_cloudwatch::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
        region,
    )
    .with_delivery(routes, secrets)
    .with_cross_account(aws_sdk_sts::Client::new(&sdk))
    .with_eventbridge(aws_sdk_eventbridge::Client::new(&sdk));
    Ok(match state {
        Some(state) => enricher.with_state(state),
        None => enricher,
    })
}

/// The `route` dry-run: loads a routing document and an envelope and says
/// which routes match, which sinks would get it at `at` (default now), and
/// what mutes it.
pub fn route_dry_run(
    config: &std::path::Path,
    envelope: &std::path::Path,
    at: Option<&str>,
    maintenance_tag: &str,
) -> Result<String, String> {
    let at: jiff::Timestamp = match at {
        None => jiff::Timestamp::now(),
        Some(t) => t.parse().map_err(|e| {
            format!("--at {t:?}: not an RFC 3339 time such as 2026-12-24T22:00:00Z: {e}")
        })?,
    };
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("{}: cannot read: {e}", config.display()))?;
    let table = RoutingTable::parse(&text)
        .map_err(|e| format!("{}: invalid routing document at {e}", config.display()))?;
    let body = std::fs::read_to_string(envelope)
        .map_err(|e| format!("{}: cannot read: {e}", envelope.display()))?;
    let mut env = alert_envelope::Envelope::from_json(&body)
        .map_err(|e| format!("{}: not an envelope: {e}", envelope.display()))?;
    let mutes = table.mutes_at(at);
    let decision = crate::maintenance::route(&table, &mutes, &mut env, maintenance_tag, at);
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
    let _ = writeln!(out, "at {at}:");
    match &decision.muted {
        None => {
            let _ = writeln!(out, "  not muted");
        }
        Some(m) => {
            let until = m
                .until
                .map_or_else(|| "no end within 400 days".to_string(), |t| t.to_string());
            let _ = writeln!(
                out,
                "  MUTED by {}, until {until}; held back: {}",
                m.reason,
                m.sinks.join(", ")
            );
        }
    }
    noise_lines(&mut out, &table, &decision.noisy, &env);
    if let Some(errors) = env.enrichment.as_ref().map(|e| &e.errors) {
        for e in errors.iter().filter(|e| e.stage == "maintenance") {
            let _ = writeln!(out, "  warning: {}", e.message);
        }
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

/// The storm and flap rules of the routes that would take `env` to people.
fn noise_lines(out: &mut String, table: &RoutingTable, noisy: &[usize], env: &Envelope) {
    use crate::storm::{humantime, people};
    if noisy.is_empty() {
        let _ = writeln!(out, "  no storm or flap rule applies");
    }
    for &i in noisy {
        let route = &table.routes[i];
        if let Some(rule) = &route.storm {
            let group: Vec<String> = rule
                .group(env)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(
                out,
                "  STORM rule of route {}: past {} firing alerts of group ({}) within {}, {} get one summary of the group instead of each alert, updated at most every {}",
                route.name,
                rule.threshold,
                group.join(", "),
                humantime(rule.window),
                people(table, i).join(", "),
                humantime(rule.update_interval)
            );
        }
        if let Some(rule) = &route.flap {
            let _ = writeln!(
                out,
                "  FLAP rule of route {}: after {} status changes within {}, {} get one flapping notice, then nothing until it is stable for {}, then its final state",
                route.name,
                rule.transitions,
                humantime(rule.window),
                people(table, i).join(", "),
                humantime(rule.window)
            );
        }
    }
}
