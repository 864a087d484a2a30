//! A storm's summary as each people's sink shows it: the signed webhook's
//! JSON payload (documented in docs/sinks.md), a Slack message, and a
//! PagerDuty event. Every string from an alert is escaped for Slack.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use super::{FirstAlert, StormState, Update};
use crate::sinks::slack::escape;

/// Top values listed per dimension.
const TOP: usize = 5;

/// One value and how many of the group's alerts have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    /// The value.
    pub value: String,
    /// Alerts with it.
    pub count: u64,
}

/// The most frequent namespaces, instances and nodegroups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Top {
    /// Namespaces.
    pub namespaces: Vec<Count>,
    /// EC2 instances (else nodes).
    pub instances: Vec<Count>,
    /// EKS nodegroups.
    pub nodegroups: Vec<Count>,
}

/// The summary payload (`type: storm`, `version: 1`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Always `storm`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Payload version, 1.
    pub version: u32,
    /// The storm's key: the same in every update of this storm.
    pub key: String,
    /// The route whose storm rule this is.
    pub route: String,
    /// The group's values, by `group_by` field.
    pub group: BTreeMap<String, String>,
    /// `open`, or `closed` for the final update.
    pub status: &'static str,
    /// Why it closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_reason: Option<String>,
    /// When the storm began.
    pub since: Timestamp,
    /// When this update was made.
    pub updated_at: Timestamp,
    /// This update's number at this sink, from 1.
    pub update: u64,
    /// Alerts firing now.
    pub firing: u64,
    /// Alerts resolved.
    pub resolved: u64,
    /// The most frequent namespaces, instances and nodegroups.
    pub top: Top,
    /// The first alerts absorbed (at most 10).
    pub first_alerts: Vec<FirstAlert>,
    /// PagerDuty's severity: the highest seen.
    pub severity: String,
}

fn top<'a>(values: impl Iterator<Item = Option<&'a String>>) -> Vec<Count> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for v in values.flatten() {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<Count> = counts
        .into_iter()
        .map(|(value, count)| Count {
            value: value.to_string(),
            count,
        })
        .collect();
    ranked.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    ranked.truncate(TOP);
    ranked
}

impl Summary {
    /// The summary of `state` (key `key`) for update `update` of one sink.
    pub fn of(key: &str, state: &StormState, kind: Update, update: u64, now: Timestamp) -> Summary {
        let (firing, resolved) = state.counts();
        let members = || state.members.values();
        Summary {
            kind: "storm",
            version: 1,
            key: key.to_string(),
            route: state.route.clone(),
            group: state.group.clone(),
            status: match kind {
                Update::Open => "open",
                Update::Close => "closed",
            },
            closed_reason: None,
            since: state.since.unwrap_or(now),
            updated_at: now,
            update,
            firing,
            resolved,
            top: Top {
                namespaces: top(members().map(|m| m.namespace.as_ref())),
                instances: top(members().map(|m| m.instance.as_ref())),
                nodegroups: top(members().map(|m| m.nodegroup.as_ref())),
            },
            first_alerts: state.first.clone(),
            severity: if state.severity.is_empty() {
                "warning".into()
            } else {
                state.severity.clone()
            },
        }
    }

    /// `route payments-critical (cluster=prod, alertname=PodDown)`.
    pub fn title(&self) -> String {
        let group: Vec<String> = self.group.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if group.is_empty() {
            format!("route {}", self.route)
        } else {
            format!("route {} ({})", self.route, group.join(", "))
        }
    }

    /// The Slack message (text and blocks), every alert string escaped.
    pub fn slack(&self) -> Value {
        let title = escape(&self.title());
        let headline = match self.status {
            "closed" => format!(
                "✅ Storm over ({}): {title}: {} resolved, {} firing",
                escape(self.closed_reason.as_deref().unwrap_or("closed")),
                self.resolved,
                self.firing
            ),
            _ => format!(
                "🌩️ Storm: {} firing, {} resolved: {title}",
                self.firing, self.resolved
            ),
        };
        let mut lines = vec![format!(
            "Since {} · updated {}",
            self.since.strftime("%Y-%m-%d %H:%M:%S UTC"),
            self.updated_at.strftime("%H:%M:%S UTC")
        )];
        for (name, counts) in [
            ("namespaces", &self.top.namespaces),
            ("instances", &self.top.instances),
            ("nodegroups", &self.top.nodegroups),
        ] {
            if !counts.is_empty() {
                let list: Vec<String> = counts
                    .iter()
                    .map(|c| format!("{} ({})", escape(&c.value), c.count))
                    .collect();
                lines.push(format!("*Top {name}:* {}", list.join(", ")));
            }
        }
        let first: Vec<String> = self
            .first_alerts
            .iter()
            .map(|a| {
                let mut line = format!("• {}", escape(&a.alertname));
                for part in [&a.namespace, &a.instance].into_iter().flatten() {
                    line.push_str(&format!(" · {}", escape(part)));
                }
                if let Some(s) = &a.summary {
                    line.push_str(&format!(": {}", escape(s)));
                }
                line
            })
            .collect();
        // Slack refuses a section text over 3,000 characters.
        let section = |text: &str| {
            let text: String = text.chars().take(3000).collect();
            json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
        };
        let mut blocks = vec![section(&headline), section(&lines.join("\n"))];
        if !first.is_empty() {
            let text = format!("*First {} alerts:*\n{}", first.len(), first.join("\n"));
            blocks.push(section(&text));
        }
        json!({"text": headline, "blocks": blocks})
    }

    /// The PagerDuty Events API v2 body: one incident per storm, resolved
    /// by the final update.
    pub fn pagerduty(&self, routing_key: &str) -> Value {
        let dedup_key: String = self.key.chars().take(255).collect();
        if self.status == "closed" {
            return json!({"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key});
        }
        let summary = format!(
            "[storm] {} firing, {} resolved: {}",
            self.firing,
            self.resolved,
            self.title()
        );
        json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": dedup_key,
            "client": "alert-manager",
            "payload": {
                "summary": summary.chars().take(1024).collect::<String>(),
                "source": self.group.get("cluster").cloned().unwrap_or_else(|| "alert-manager".into()),
                "severity": self.severity,
                "timestamp": self.since.to_string(),
                "class": "storm",
                "custom_details": {
                    "route": self.route,
                    "group": self.group,
                    "firing": self.firing,
                    "resolved": self.resolved,
                    "since": self.since.to_string(),
                    "top": self.top,
                    "first_alerts": self.first_alerts,
                },
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::storm::Member;

    fn state() -> StormState {
        let mut s = StormState::new(
            "pods",
            BTreeMap::from([("cluster".to_string(), "<!channel>".to_string())]),
        );
        s.since = Some(Timestamp::from_second(1_796_000_000).unwrap());
        for (i, ns) in ["a", "a", "b", "a", "c"].iter().enumerate() {
            s.members.insert(
                format!("k{i}"),
                Member {
                    firing: i != 4,
                    individual: false,
                    at: 0,
                    arrived: 0,
                    namespace: Some(ns.to_string()),
                    instance: Some(format!("i-{}", i % 2)),
                    nodegroup: None,
                },
            );
        }
        s.first.push(FirstAlert {
            alertname: "PodDown".into(),
            namespace: Some("a".into()),
            instance: None,
            summary: Some("<script> & co".into()),
        });
        s
    }

    #[test]
    fn the_summary_counts_and_ranks_the_groups_alerts() {
        let s = Summary::of("#storm/pods/x", &state(), Update::Open, 1, Timestamp::now());
        assert_eq!((s.firing, s.resolved), (4, 1));
        assert_eq!(
            s.top.namespaces,
            vec![
                Count {
                    value: "a".into(),
                    count: 3
                },
                Count {
                    value: "b".into(),
                    count: 1
                },
                Count {
                    value: "c".into(),
                    count: 1
                }
            ]
        );
        assert_eq!(
            s.top.instances[0],
            Count {
                value: "i-0".into(),
                count: 3
            }
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["type"], "storm");
        assert_eq!(json["status"], "open");
        assert!(json.get("closed_reason").is_none());
    }

    #[test]
    fn slack_shows_alert_strings_escaped_and_pagerduty_resolves_on_close() {
        let s = Summary::of("#storm/pods/x", &state(), Update::Open, 1, Timestamp::now());
        let text = serde_json::to_string(&s.slack()).unwrap();
        assert!(
            !text.contains("<!channel>") && !text.contains("<script>"),
            "{text}"
        );
        assert!(text.contains("&lt;!channel&gt;"), "{text}");
        let pd = s.pagerduty("key");
        assert_eq!(pd["event_action"], "trigger");
        assert_eq!(pd["dedup_key"], "#storm/pods/x");
        assert_eq!(pd["payload"]["custom_details"]["firing"], 4);
        let closed = Summary::of(
            "#storm/pods/x",
            &state(),
            Update::Close,
            2,
            Timestamp::now(),
        );
        assert_eq!(closed.pagerduty("key")["event_action"], "resolve");
    }
}
