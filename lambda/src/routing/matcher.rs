//! Matchers and the envelope fields they match on.

use alert_envelope::Envelope;
use regex::Regex;

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
