//! The routing document: which sinks get which alert.
//!
//! Semantics are Alertmanager's: routes are tried in order; the first that
//! matches takes the alert, unless it says `continue: true`, in which case
//! the next routes are tried too. An alert no route takes goes to the
//! `default` sinks (the enriched SNS topic unless configured otherwise).
//!
//! A route's `match` maps a field to a matcher. All must hold:
//! - `value` equality (a missing field is the empty string, as in Alertmanager);
//! - `~regex` a regex that must match the whole value;
//! - `!value` inequality, `!~regex` negated regex;
//! - `=value` literal equality, for values that start with `~`, `!` or `=`.
//!
//! Fields: `severity`, `status`, `cluster`, `namespace`, `team`, `alertname`,
//! `source`, `fingerprint`, `instance_type`, `instance_id`,
//! `labels.<name>`, `annotations.<name>`, `kubernetes.<field>`,
//! `aws.<field>`, `enrichment.ec2.tags.<key>` (the key may contain dots or
//! colons, e.g. `enrichment.ec2.tags.aws:autoscaling:groupName`).

mod decide;
mod matcher;
pub mod noise;
pub mod time_intervals;

use std::collections::BTreeMap;

use alert_envelope::Envelope;
use jiff::Timestamp;
use serde::Deserialize;

pub use decide::{Decision, Mutes};
pub use matcher::{Field, Matcher};
pub use noise::{FlapDocument, FlapRule, StormDocument, StormRule};
pub use time_intervals::{TimeInterval, TimeIntervalDocument};

use crate::sinks::SinkConfig;

/// The name of the sink that is the enriched topic of `ENRICHED_TOPIC_ARN`.
/// It exists without being declared.
pub const ENRICHED_SINK: &str = "enriched";

/// The document as written (YAML or JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingDocument {
    /// Document version; this reader understands `1`.
    pub version: u32,
    /// Named sinks. `enriched` is predefined (the enriched topic) and may be overridden.
    #[serde(default)]
    pub sinks: BTreeMap<String, SinkConfig>,
    /// Routes, tried in order.
    #[serde(default)]
    pub routes: Vec<RouteDocument>,
    /// Sinks for alerts that no route takes (default `[enriched]`).
    #[serde(default = "default_sinks")]
    pub default: Vec<String>,
    /// Named time intervals, in Alertmanager's syntax, that routes mute on
    /// (`mute_time_intervals`) or are active in only (`active_time_intervals`).
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalDocument>,
}

fn default_sinks() -> Vec<String> {
    vec![ENRICHED_SINK.to_string()]
}

/// One route as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDocument {
    /// A name for logs and the dry-run (default `routes[i]`).
    #[serde(default)]
    pub name: Option<String>,
    /// Field → matcher; all must hold. Empty matches every alert.
    #[serde(default, rename = "match")]
    pub matchers: BTreeMap<String, String>,
    /// Sinks that get the matching alerts.
    pub sinks: Vec<String>,
    /// Keep trying the next routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// While any of these intervals holds, the route's people's sinks
    /// (all but SNS) do not get its alerts; SNS gets them marked `muted`.
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    /// Outside all of these intervals the route is muted as above.
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Many alerts of one group at once become one summary per people's
    /// sink: `{threshold: 20, window: 5m, group_by: [cluster, alertname]}`.
    #[serde(default)]
    pub storm: Option<StormDocument>,
    /// An alert that keeps changing state gets one notice, then its final
    /// state once stable: `{transitions: 4, window: 30m}`.
    #[serde(default)]
    pub flap: Option<FlapDocument>,
}

/// A problem in the document, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct RoutingError {
    /// Path such as `routes[2].match.severity`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name for logs.
    pub name: String,
    /// All must match.
    pub matchers: Vec<(Field, Matcher)>,
    /// Sinks.
    pub sinks: Vec<String>,
    /// Keep going after a match.
    pub continue_matching: bool,
    /// Muted while any holds.
    pub mute_time_intervals: Vec<TimeInterval>,
    /// Muted unless one holds.
    pub active_time_intervals: Vec<TimeInterval>,
    /// Its storm rule.
    pub storm: Option<StormRule>,
    /// Its flap rule.
    pub flap: Option<FlapRule>,
}

impl Route {
    /// Whether every matcher holds for the envelope.
    pub fn matches(&self, env: &Envelope) -> bool {
        self.matchers
            .iter()
            .all(|(field, m)| m.matches(&field.value(env)))
    }

    /// Why the route is muted at `at`, and until when; `None`: it is not.
    pub fn muted_at(&self, at: Timestamp) -> Option<(String, Option<Timestamp>)> {
        let holding: Vec<&TimeInterval> = self
            .mute_time_intervals
            .iter()
            .filter(|i| i.contains(at))
            .collect();
        if !holding.is_empty() {
            let names: Vec<&str> = holding.iter().map(|i| i.name.as_str()).collect();
            // Muted until the last of them ends.
            let until = holding
                .iter()
                .map(|i| i.next_change(at))
                .collect::<Option<Vec<_>>>()
                .and_then(|ends| ends.into_iter().max());
            let reason = format!(
                "route {}: mute_time_intervals {}",
                self.name,
                names.join(", ")
            );
            return Some((reason, until));
        }
        if self.active_time_intervals.is_empty()
            || self.active_time_intervals.iter().any(|i| i.contains(at))
        {
            return None;
        }
        let names: Vec<&str> = self
            .active_time_intervals
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        // Muted until the first of them begins.
        let until = self
            .active_time_intervals
            .iter()
            .filter_map(|i| i.next_change(at))
            .min();
        let reason = format!(
            "route {}: outside active_time_intervals {}",
            self.name,
            names.join(", ")
        );
        Some((reason, until))
    }
}

/// The validated routing table.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    /// Routes in order.
    pub routes: Vec<Route>,
    /// Sinks when no route matches.
    pub default: Vec<String>,
    /// Declared sinks (without the implicit `enriched`).
    pub sinks: BTreeMap<String, SinkConfig>,
}

impl RoutingTable {
    /// The table used without a routing document: everything to the enriched topic.
    pub fn enriched_only() -> RoutingTable {
        RoutingTable {
            routes: Vec::new(),
            default: default_sinks(),
            sinks: BTreeMap::new(),
        }
    }

    /// Parses YAML (JSON is YAML) and validates it; errors carry the field path.
    pub fn parse(text: &str) -> Result<RoutingTable, RoutingError> {
        let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| RoutingError {
            path: e
                .location()
                .map(|l| format!("line {} column {}", l.line(), l.column()))
                .unwrap_or_else(|| ".".into()),
            message: e.to_string(),
        })?;
        let doc: RoutingDocument =
            serde_path_to_error::deserialize(value).map_err(|e| RoutingError {
                path: {
                    let p = e.path().to_string();
                    if p.is_empty() || p == "?" {
                        ".".into()
                    } else {
                        p
                    }
                },
                message: e.inner().to_string(),
            })?;
        Self::from_document(doc)
    }

    /// Validates a parsed document.
    pub fn from_document(doc: RoutingDocument) -> Result<RoutingTable, RoutingError> {
        let err = |path: String, message: String| RoutingError { path, message };
        if doc.version != 1 {
            return Err(err(
                "version".into(),
                format!(
                    "unsupported routing document version {}; this reader understands 1",
                    doc.version
                ),
            ));
        }
        for (name, sink) in &doc.sinks {
            sink.validate()
                .map_err(|e| err(format!("sinks.{name}.{}", e.setting), e.message))?;
        }
        let known = |s: &str| s == ENRICHED_SINK || doc.sinks.contains_key(s);
        let mut intervals: BTreeMap<&str, TimeInterval> = BTreeMap::new();
        for (i, t) in doc.time_intervals.iter().enumerate() {
            let path = format!("time_intervals[{i}]");
            let compiled = t.compile(&path)?;
            if intervals.insert(t.name.as_str(), compiled).is_some() {
                return Err(err(
                    format!("{path}.name"),
                    format!("a second interval named {:?}", t.name),
                ));
            }
        }
        let named = |field: &str, names: &[String]| {
            names
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    intervals.get(n.as_str()).cloned().ok_or_else(|| {
                        err(
                            format!("{field}[{j}]"),
                            format!(
                                "unknown time interval {n:?}; declare it under time_intervals (known: {})",
                                intervals.keys().copied().collect::<Vec<_>>().join(", ")
                            ),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let mut routes = Vec::with_capacity(doc.routes.len());
        for (i, r) in doc.routes.iter().enumerate() {
            if r.sinks.is_empty() {
                return Err(err(
                    format!("routes[{i}].sinks"),
                    "a route needs at least one sink".into(),
                ));
            }
            for (j, s) in r.sinks.iter().enumerate() {
                if !known(s) {
                    return Err(err(
                        format!("routes[{i}].sinks[{j}]"),
                        format!(
                            "unknown sink {s:?}; declare it under sinks (or use {ENRICHED_SINK:?})"
                        ),
                    ));
                }
            }
            let mut matchers = Vec::with_capacity(r.matchers.len());
            for (field, text) in &r.matchers {
                let path = format!("routes[{i}].match.{field}");
                let f = Field::parse(field).map_err(|m| err(path.clone(), m))?;
                let m = Matcher::parse(text).map_err(|m| err(path.clone(), m))?;
                matchers.push((f, m));
            }
            let path = format!("routes[{i}]");
            let people = r
                .sinks
                .iter()
                .filter(|s| !is_machines(&doc.sinks, s))
                .count();
            let storm = r.storm.as_ref().map(|d| d.compile(&path, people));
            let flap = r.flap.as_ref().map(|d| d.compile(&path));
            routes.push(Route {
                storm: storm.transpose()?,
                flap: flap.transpose()?,
                name: r.name.clone().unwrap_or_else(|| format!("routes[{i}]")),
                matchers,
                sinks: r.sinks.clone(),
                continue_matching: r.continue_matching,
                mute_time_intervals: named(
                    &format!("routes[{i}].mute_time_intervals"),
                    &r.mute_time_intervals,
                )?,
                active_time_intervals: named(
                    &format!("routes[{i}].active_time_intervals"),
                    &r.active_time_intervals,
                )?,
            });
        }
        for (j, s) in doc.default.iter().enumerate() {
            if !known(s) {
                return Err(err(format!("default[{j}]"), format!("unknown sink {s:?}")));
            }
        }
        Ok(RoutingTable {
            routes,
            default: doc.default,
            sinks: doc.sinks,
        })
    }
}

/// Whether `sink` of `declared` is a machines' sink (an SNS topic or an
/// EventBridge bus): it gets every envelope, never muted or summarised.
fn is_machines(declared: &BTreeMap<String, SinkConfig>, sink: &str) -> bool {
    match declared.get(sink) {
        Some(config) => matches!(config, SinkConfig::Sns(_) | SinkConfig::Eventbridge(_)),
        None => sink == ENRICHED_SINK,
    }
}
