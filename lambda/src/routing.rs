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

use std::collections::BTreeMap;

use alert_envelope::Envelope;
use regex::Regex;
use serde::Deserialize;

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

/// One compiled matcher.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal to.
    Equal(String),
    /// Not equal to.
    NotEqual(String),
    /// Whole-value regex match.
    Regex(Regex),
    /// Whole-value regex non-match.
    NotRegex(Regex),
}

impl Matcher {
    /// Compiles the matcher syntax described in the module docs.
    pub fn parse(text: &str) -> Result<Matcher, String> {
        let anchored = |re: &str| {
            Regex::new(&format!("^(?:{re})$")).map_err(|e| format!("invalid regex {re:?}: {e}"))
        };
        if let Some(re) = text.strip_prefix("!~") {
            Ok(Matcher::NotRegex(anchored(re)?))
        } else if let Some(re) = text.strip_prefix('~') {
            Ok(Matcher::Regex(anchored(re)?))
        } else if let Some(v) = text.strip_prefix('!') {
            Ok(Matcher::NotEqual(v.to_string()))
        } else if let Some(v) = text.strip_prefix('=') {
            Ok(Matcher::Equal(v.to_string()))
        } else {
            Ok(Matcher::Equal(text.to_string()))
        }
    }

    /// Whether `value` (empty when the field is missing) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Equal(v) => value == v,
            Matcher::NotEqual(v) => value != v,
            Matcher::Regex(re) => re.is_match(value),
            Matcher::NotRegex(re) => !re.is_match(value),
        }
    }
}

/// A field an alert can be matched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// A top-level or resolved field (`severity`, `team`, ...).
    Named(&'static str),
    /// `labels.<name>`.
    Label(String),
    /// `annotations.<name>`.
    Annotation(String),
    /// `kubernetes.<field>`.
    Kubernetes(String),
    /// `aws.<field>`.
    Aws(String),
    /// `enrichment.ec2.tags.<key>`.
    Ec2Tag(String),
}

const NAMED: &[&str] = &[
    "severity",
    "status",
    "cluster",
    "namespace",
    "team",
    "alertname",
    "source",
    "fingerprint",
    "instance_type",
    "instance_id",
];

impl Field {
    /// Parses a field path.
    pub fn parse(path: &str) -> Result<Field, String> {
        if let Some(n) = NAMED.iter().find(|n| **n == path) {
            return Ok(Field::Named(n));
        }
        let prefixed = [
            ("labels.", Field::Label as fn(String) -> Field),
            ("annotations.", Field::Annotation),
            ("kubernetes.", Field::Kubernetes),
            ("aws.", Field::Aws),
            ("enrichment.ec2.tags.", Field::Ec2Tag),
        ];
        for (prefix, make) in prefixed {
            if let Some(rest) = path.strip_prefix(prefix)
                && !rest.is_empty()
            {
                return Ok(make(rest.to_string()));
            }
        }
        Err(format!(
            "unknown field {path:?}; use one of {}, or labels.<name>, annotations.<name>, kubernetes.<field>, aws.<field>, enrichment.ec2.tags.<key>",
            NAMED.join(", ")
        ))
    }

    /// The field's value in an envelope; missing is empty.
    pub fn value(&self, env: &Envelope) -> String {
        let json_field = |v: Option<serde_json::Value>, key: &str| -> String {
            match v.as_ref().and_then(|v| v.get(key)) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            }
        };
        match self {
            Field::Named(name) => match *name {
                "severity" => env.severity.as_str().to_string(),
                "status" => env.status.as_str().to_string(),
                "cluster" => env.cluster.clone(),
                "namespace" => env.namespace().unwrap_or_default().to_string(),
                "team" => env.team().unwrap_or_default().to_string(),
                "alertname" => env.alertname.clone(),
                "source" => env.source.as_str().to_string(),
                "fingerprint" => env.fingerprint.clone(),
                "instance_type" => env
                    .enrichment
                    .as_ref()
                    .and_then(|e| e.ec2.as_ref())
                    .and_then(|e| e.instance_type.clone())
                    .or_else(|| env.aws.as_ref().and_then(|a| a.instance_type.clone()))
                    .unwrap_or_default(),
                "instance_id" => env
                    .aws
                    .as_ref()
                    .and_then(|a| a.instance_id.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            },
            Field::Label(k) => env.labels.get(k).cloned().unwrap_or_default(),
            Field::Annotation(k) => env.annotations.get(k).cloned().unwrap_or_default(),
            Field::Kubernetes(k) => json_field(
                env.kubernetes
                    .as_ref()
                    .and_then(|v| serde_json::to_value(v).ok()),
                k,
            ),
            Field::Aws(k) => json_field(
                env.aws.as_ref().and_then(|v| serde_json::to_value(v).ok()),
                k,
            ),
            Field::Ec2Tag(k) => env
                .enrichment
                .as_ref()
                .and_then(|e| e.ec2.as_ref())
                .and_then(|e| e.tags.get(k).cloned())
                .unwrap_or_default(),
        }
    }
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
}

impl Route {
    /// Whether every matcher holds for the envelope.
    pub fn matches(&self, env: &Envelope) -> bool {
        self.matchers
            .iter()
            .all(|(field, m)| m.matches(&field.value(env)))
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

/// The decision for one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Names of the routes that matched, in order (empty: the default route).
    pub routes: Vec<String>,
    /// Sinks, each once, in first-mentioned order.
    pub sinks: Vec<String>,
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
            routes.push(Route {
                name: r.name.clone().unwrap_or_else(|| format!("routes[{i}]")),
                matchers,
                sinks: r.sinks.clone(),
                continue_matching: r.continue_matching,
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

    /// Where one alert goes.
    pub fn route(&self, env: &Envelope) -> Decision {
        let mut decision = Decision {
            routes: Vec::new(),
            sinks: Vec::new(),
        };
        let add = |sinks: &[String], d: &mut Decision| {
            for s in sinks {
                if !d.sinks.contains(s) {
                    d.sinks.push(s.clone());
                }
            }
        };
        for route in &self.routes {
            if route.matches(env) {
                decision.routes.push(route.name.clone());
                add(&route.sinks, &mut decision);
                if !route.continue_matching {
                    break;
                }
            }
        }
        if decision.routes.is_empty() {
            add(&self.default, &mut decision);
        }
        decision
    }
}
