//! A route's noise rules: `storm` (many alerts of one group become one
//! summary per people's sink) and `flap` (an alert that keeps changing state
//! is held until it is stable), as written and as compiled.

use std::collections::BTreeMap;
use std::time::Duration;

use alert_envelope::Envelope;
use serde::Deserialize;

use super::{Field, RoutingError};

/// Summary updates per sink and group are at most this often by default.
pub const DEFAULT_UPDATE_INTERVAL: &str = "10s";
/// The longest `window`: a storm's state lives in the state store's item,
/// and a day covers any incident a summary should span.
const MAX_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// `storm:` on a route, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StormDocument {
    /// More than this many distinct firing alerts of one group within
    /// `window` is a storm; the alerts before it are delivered one by one.
    pub threshold: u32,
    /// The counting window (`5m`), and how long a storm stays open without
    /// a new alert before its summary is closed.
    pub window: String,
    /// Fields whose values key a group, in the route `match` syntax
    /// (`cluster`, `alertname`, `labels.node`). Empty: one group per route.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// At most one summary update per sink and group this often (`10s`);
    /// alerts in between are coalesced into the next update.
    #[serde(default = "default_update_interval")]
    pub update_interval: String,
}

fn default_update_interval() -> String {
    DEFAULT_UPDATE_INTERVAL.into()
}

/// `flap:` on a route, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlapDocument {
    /// An alert that changes state (firing ↔ resolved) at least this often
    /// within `window` is flapping.
    pub transitions: u32,
    /// The window (`30m`); a flapping alert is stable again after a whole
    /// window without a change, and then its final state is delivered.
    pub window: String,
}

/// A compiled storm rule.
#[derive(Debug, Clone, PartialEq)]
pub struct StormRule {
    /// More than this many firing alerts in `window` is a storm.
    pub threshold: usize,
    /// Counting window, and the quiet time that closes a storm.
    pub window: Duration,
    /// The group's fields, with their names as written.
    pub group_by: Vec<(String, Field)>,
    /// Least time between two updates of one summary at one sink.
    pub update_interval: Duration,
}

impl StormRule {
    /// The group of `env`: each `group_by` field's value, by field.
    pub fn group(&self, env: &Envelope) -> BTreeMap<String, String> {
        self.group_by
            .iter()
            .map(|(name, field)| (name.clone(), field.value(env)))
            .collect()
    }
}

/// A compiled flap rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapRule {
    /// State changes within `window` that make an alert flapping.
    pub transitions: usize,
    /// The window, and the stable time that ends flapping.
    pub window: Duration,
}

/// `text` as a positive duration (`30s`, `5m`, `1h`), or the error at `path`.
fn duration(path: &str, text: &str) -> Result<Duration, RoutingError> {
    let err = |message: String| RoutingError {
        path: path.to_string(),
        message,
    };
    let d: jiff::SignedDuration = text.parse().map_err(|e| {
        err(format!(
            "{text:?} is not a duration like 30s, 5m or 1h: {e}"
        ))
    })?;
    Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| err(format!("{text:?} must be positive")))
}

impl StormDocument {
    /// Compiles the rule of the route at `path` (`routes[2]`), which sends
    /// to `people` of its sinks (all but SNS).
    pub fn compile(&self, path: &str, people: usize) -> Result<StormRule, RoutingError> {
        let err = |field: &str, message: String| RoutingError {
            path: format!("{path}.storm.{field}"),
            message,
        };
        if people == 0 {
            return Err(RoutingError {
                path: format!("{path}.storm"),
                message: "the route has only machines' sinks (sns, eventbridge), which get every alert; a storm needs a people's sink (slack, slack_app, pagerduty, webhook) to summarise for".into(),
            });
        }
        if self.threshold == 0 {
            return Err(err(
                "threshold",
                "must be at least 1: the storm begins with alert threshold+1".into(),
            ));
        }
        let window = duration(&format!("{path}.storm.window"), &self.window)?;
        if window > MAX_WINDOW {
            return Err(err(
                "window",
                format!("{:?} is longer than 24h", self.window),
            ));
        }
        let update_interval = duration(
            &format!("{path}.storm.update_interval"),
            &self.update_interval,
        )?;
        if update_interval > window {
            return Err(err(
                "update_interval",
                format!(
                    "{:?} is longer than the window {:?}: the summary would never update",
                    self.update_interval, self.window
                ),
            ));
        }
        let mut group_by: Vec<(String, Field)> = Vec::with_capacity(self.group_by.len());
        for (i, name) in self.group_by.iter().enumerate() {
            let field = Field::parse(name).map_err(|m| err(&format!("group_by[{i}]"), m))?;
            if group_by.iter().any(|(n, _)| n == name) {
                return Err(err(&format!("group_by[{i}]"), format!("{name:?} twice")));
            }
            group_by.push((name.clone(), field));
        }
        Ok(StormRule {
            threshold: self.threshold as usize,
            window,
            group_by,
            update_interval,
        })
    }
}

impl FlapDocument {
    /// Compiles the rule of the route at `path`.
    pub fn compile(&self, path: &str) -> Result<FlapRule, RoutingError> {
        if self.transitions < 2 {
            return Err(RoutingError {
                path: format!("{path}.flap.transitions"),
                message: "must be at least 2: one change is an alert firing or resolving".into(),
            });
        }
        let window = duration(&format!("{path}.flap.window"), &self.window)?;
        if window > MAX_WINDOW {
            return Err(RoutingError {
                path: format!("{path}.flap.window"),
                message: format!("{:?} is longer than 24h", self.window),
            });
        }
        Ok(FlapRule {
            transitions: self.transitions as usize,
            window,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn storm(yaml: &str) -> Result<StormRule, RoutingError> {
        serde_yaml::from_str::<StormDocument>(yaml)
            .unwrap()
            .compile("routes[0]", 1)
    }

    #[test]
    fn a_storm_rule_compiles_with_its_defaults() {
        let rule = storm("{threshold: 20, window: 5m, group_by: [cluster, alertname]}").unwrap();
        assert_eq!(rule.threshold, 20);
        assert_eq!(rule.window, Duration::from_secs(300));
        assert_eq!(rule.update_interval, Duration::from_secs(10));
        let names: Vec<&str> = rule.group_by.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cluster", "alertname"]);
    }

    #[test]
    fn an_impossible_storm_names_its_field() {
        let path = |yaml: &str| storm(yaml).unwrap_err().path;
        assert_eq!(
            path("{threshold: 0, window: 5m}"),
            "routes[0].storm.threshold"
        );
        assert_eq!(
            path("{threshold: 5, window: soon}"),
            "routes[0].storm.window"
        );
        assert_eq!(path("{threshold: 5, window: 0s}"), "routes[0].storm.window");
        assert_eq!(
            path("{threshold: 5, window: 48h}"),
            "routes[0].storm.window"
        );
        assert_eq!(
            path("{threshold: 5, window: 1m, update_interval: 5m}"),
            "routes[0].storm.update_interval"
        );
        assert_eq!(
            path("{threshold: 5, window: 1m, group_by: [clustr]}"),
            "routes[0].storm.group_by[0]"
        );
        assert_eq!(
            path("{threshold: 5, window: 1m, group_by: [cluster, cluster]}"),
            "routes[0].storm.group_by[1]"
        );
        let only_sns = serde_yaml::from_str::<StormDocument>("{threshold: 5, window: 1m}")
            .unwrap()
            .compile("routes[3]", 0)
            .unwrap_err();
        assert_eq!(only_sns.path, "routes[3].storm");
        assert!(serde_yaml::from_str::<StormDocument>("{threshold: 5, window: 1m, x: 1}").is_err());
    }

    #[test]
    fn a_flap_rule_needs_two_transitions_and_a_window() {
        let flap = |yaml: &str| {
            serde_yaml::from_str::<FlapDocument>(yaml)
                .unwrap()
                .compile("routes[1]")
        };
        assert_eq!(
            flap("{transitions: 4, window: 30m}").unwrap(),
            FlapRule {
                transitions: 4,
                window: Duration::from_secs(1800)
            }
        );
        assert_eq!(
            flap("{transitions: 1, window: 30m}").unwrap_err().path,
            "routes[1].flap.transitions"
        );
        assert_eq!(
            flap("{transitions: 4, window: -5m}").unwrap_err().path,
            "routes[1].flap.window"
        );
    }
}
