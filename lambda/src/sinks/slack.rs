//! Slack incoming webhooks, as Block Kit messages.
//!
//! The colour bar needs a legacy attachment (Block Kit has no colour), so
//! the blocks ride in one attachment with the status colour; `text` is the
//! notification fallback. Limits applied here: header ≤ 150 characters,
//! section text ≤ 3,000, ≤ 10 fields of ≤ 2,000, ≤ 10 context elements.
//!
//! Slack has no idempotency key: a record retried as a whole (SQS) can post
//! the same alert twice. The message shows the envelope id so a reader can
//! tell.
//!
//! Every user-controlled string is escaped before Slack sees it, the
//! notification fallback and link targets included: an annotation saying
//! `<!channel>` must not ping a channel, and `<https://evil|Re-login>` must
//! not become a link.

use std::sync::Arc;
use std::time::Duration;

use alert_aws::{ConfigError, Failure};
use alert_envelope::{Envelope, Severity, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{HttpClient, post_json};
use super::{secret, validate_secret};
use crate::secrets::{SecretRef, SecretStore};

/// A Slack sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Where the incoming webhook URL is stored (it is a secret).
    pub webhook_url: SecretRef,
    /// EC2 tags shown in the message, in order, when present.
    #[serde(default = "default_key_tags")]
    pub key_tags: Vec<String>,
    /// Test only: also accept an `http://` webhook URL (the stand-ins on loopback).
    #[serde(default)]
    pub allow_http: bool,
}

pub(super) fn default_key_tags() -> Vec<String> {
    [
        "Name",
        "team",
        "owner",
        "eks:nodegroup-name",
        "aws:autoscaling:groupName",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl SlackConfig {
    /// Checks the secret reference.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_secret("webhook_url", &self.webhook_url)
    }
}

/// A Slack sink ready to post.
#[derive(Debug, Clone)]
pub struct SlackSink {
    config: SlackConfig,
    http: HttpClient,
    secrets: Option<Arc<SecretStore>>,
}

impl SlackSink {
    /// A sink over the shared HTTP client and secret store.
    pub fn new(
        config: SlackConfig,
        http: HttpClient,
        secrets: Option<Arc<SecretStore>>,
    ) -> SlackSink {
        SlackSink {
            config,
            http,
            secrets,
        }
    }

    /// One attempt; [`super::Sink::deliver`] runs it through the retry stage.
    pub async fn attempt(&self, env: &Envelope, timeout: Duration) -> Result<(), Failure> {
        self.post(&message(env, &self.config.key_tags), timeout)
            .await
    }

    /// Posts one message (an alert's, or a storm summary).
    pub(super) async fn post(&self, message: &Value, timeout: Duration) -> Result<(), Failure> {
        // The webhook URL is the secret; it is never formatted into an error.
        let url = secret(self.secrets.as_deref(), &self.config.webhook_url, timeout).await?;
        super::http::validate_url("webhook_url", url.expose(), self.config.allow_http)
            .map_err(|e| Failure::permanent("insecure_url", e.to_string()))?;
        let body =
            serde_json::to_vec(message).map_err(|e| Failure::permanent("encode", e.to_string()))?;
        post_json(self.http.get(), url.expose(), &[], body, timeout).await
    }
}

/// Colour of the bar: green when resolved, else by severity.
pub fn colour(env: &Envelope) -> &'static str {
    match (env.status, env.severity) {
        (Status::Resolved, _) => "#2EB67D",
        (_, Severity::Critical) => "#E01E5A",
        (_, Severity::Warning) => "#ECB22E",
        _ => "#439FE0",
    }
}

/// Escapes `&`, `<` and `>` as Slack's mrkdwn requires.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A mrkdwn link `<target|label>`. The target is escaped, and `|` in it is
/// percent-encoded, so a URL cannot end the link early and bring its own
/// label or a second link.
pub fn link(target: &str, label: &str) -> String {
    format!("<{}|{}>", escape(target).replace('|', "%7C"), escape(label))
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// A sparkline of the values (▁ to █), at most 30 characters.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (Some(min), Some(max)) = (
        finite.iter().copied().reduce(f64::min),
        finite.iter().copied().reduce(f64::max),
    ) else {
        return String::new();
    };
    let skip = finite.len().saturating_sub(30);
    finite[skip..]
        .iter()
        .map(|v| {
            let i = if max > min {
                ((v - min) / (max - min) * 7.0).round() as usize
            } else {
                0
            };
            BARS[i.min(7)]
        })
        .collect()
}

/// The CPU line, from the CloudWatch data: sparkline and avg/max/latest.
pub fn cpu_line(env: &Envelope) -> Option<String> {
    let cw = env.enrichment.as_ref()?.cloudwatch.as_ref()?;
    let cpu = cw
        .metrics
        .iter()
        .filter(|m| m.metric == "CPUUtilization")
        .max_by_key(|m| m.stat == "Average")?;
    let values: Vec<f64> = cpu.points.iter().map(|p| p.value).collect();
    let fmt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.0}%"));
    Some(format!(
        "`{}` avg {} · max {} · latest {}",
        sparkline(&values),
        fmt(cpu.avg),
        fmt(cpu.max),
        fmt(cpu.latest)
    ))
}

/// The Block Kit message of one alert.
pub fn message(env: &Envelope, key_tags: &[String]) -> Value {
    let flapping = env.enrichment.as_ref().is_some_and(|e| e.flapping);
    let status = match (env.status, flapping) {
        (Status::Firing, false) => "FIRING",
        (Status::Resolved, false) => "RESOLVED",
        (Status::Firing, true) => "FLAPPING, FIRING",
        (Status::Resolved, true) => "FLAPPING, RESOLVED",
    };
    let icon = match (env.status, env.severity) {
        _ if flapping => "🔁",
        (Status::Resolved, _) => "✅",
        (_, Severity::Critical) => "🔴",
        (_, Severity::Warning) => "🟠",
        _ => "🔵",
    };
    let summary = env
        .annotations
        .get("summary")
        .or_else(|| env.annotations.get("description"))
        .or_else(|| env.annotations.get("message"))
        .cloned()
        .unwrap_or_default();
    let namespace = env.namespace().unwrap_or("");
    let place = if namespace.is_empty() {
        env.cluster.clone()
    } else {
        format!("{}/{namespace}", env.cluster)
    };
    let fallback = cut(
        &escape(&format!(
            "[{status}] {} ({}) {place}: {summary}",
            env.alertname,
            env.severity.as_str()
        )),
        3000,
    );

    let mut fields = vec![
        format!("*Severity*\n{}", env.severity.as_str()),
        format!("*Cluster / namespace*\n{}", escape(&place)),
        format!("*Team*\n{}", escape(env.team().unwrap_or("unassigned"))),
    ];
    let ec2 = env.enrichment.as_ref().and_then(|e| e.ec2.as_ref());
    if let Some(ec2) = ec2 {
        fields.push(format!(
            "*Instance*\n{} ({})",
            escape(&ec2.instance_id),
            escape(ec2.instance_type.as_deref().unwrap_or("?"))
        ));
    } else if let Some(id) = env.aws.as_ref().and_then(|a| a.instance_id.as_deref()) {
        fields.push(format!("*Instance*\n{}", escape(id)));
    }
    if let Some(node) = env.kubernetes.as_ref().and_then(|k| k.node.as_deref()) {
        fields.push(format!("*Node*\n{}", escape(node)));
    }
    if let Some(cpu) = cpu_line(env) {
        fields.push(format!("*CPU*\n{cpu}"));
    }
    let fields: Vec<Value> = fields
        .into_iter()
        .take(10)
        .map(|f| json!({"type": "mrkdwn", "text": cut(&f, 2000)}))
        .collect();

    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&format!("{icon} {status}: {}", env.alertname), 150), "emoji": true}}),
    ];
    if !summary.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&escape(&summary), 3000)}}));
    }
    blocks.push(json!({"type": "section", "fields": fields}));

    if let Some(ec2) = ec2 {
        let tags: Vec<Value> = key_tags
            .iter()
            .filter_map(|k| ec2.tags.get(k).map(|v| (k, v)))
            .take(10)
            .map(|(k, v)| json!({"type": "mrkdwn", "text": cut(&format!("`{}={}`", escape(k), escape(v)), 2000)}))
            .collect();
        if !tags.is_empty() {
            blocks.push(json!({"type": "context", "elements": tags}));
        }
    }
    let mut links = Vec::new();
    if let Some(u) = &env.generator_url {
        links.push(link(u, "Source"));
    }
    if let Some(u) = env
        .enrichment
        .as_ref()
        .and_then(|e| e.cloudwatch.as_ref())
        .and_then(|c| c.console_url.as_ref())
    {
        links.push(link(u, "CloudWatch"));
    }
    if let Some(u) = &env.external_url {
        links.push(link(u, "Alertmanager"));
    }
    let mut context = vec![json!({"type": "mrkdwn", "text": format!("id `{}`", escape(&env.id))})];
    if !links.is_empty() {
        context.push(json!({"type": "mrkdwn", "text": links.join(" · ")}));
    }
    blocks.push(json!({"type": "context", "elements": context}));

    json!({
        "text": fallback,
        "attachments": [{"color": colour(env), "fallback": fallback, "blocks": blocks}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Envelope {
        let mut env = Envelope::from_json(include_str!(
            "../../../docs/examples/enriched-envelope.json"
        ))
        .unwrap();
        let bad = "<!channel> <@U123> <https://evil|x> & co";
        env.alertname = format!("Disk {bad}");
        env.annotations.insert("summary".into(), bad.into());
        env.generator_url = Some("https://prom/graph?a=1&b=<2>|<https://evil|Re-login>".into());
        env.external_url = Some("https://am|evil>".into());
        env
    }

    #[test]
    fn user_strings_arrive_escaped_everywhere() {
        let mut msg = message(&hostile(), &default_key_tags());
        // The header is plain_text, which Slack never parses for mentions or
        // links; everything else is mrkdwn.
        let blocks = msg["attachments"][0]["blocks"].as_array_mut().unwrap();
        assert_eq!(blocks[0]["text"]["type"], "plain_text");
        blocks.remove(0);
        let text = serde_json::to_string(&msg).unwrap();
        for raw in [
            "<!channel>",
            "<@U123>",
            "<https://evil|x>",
            "<https://evil|Re-login>",
            "& co",
        ] {
            assert!(
                !text.contains(raw),
                "{raw:?} reached Slack unescaped: {text}"
            );
        }
        let fallback = msg["text"].as_str().unwrap();
        assert!(
            fallback.contains("&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil|x&gt; &amp; co"),
            "{fallback}"
        );
        assert_eq!(msg["attachments"][0]["fallback"], msg["text"]);
    }

    #[test]
    fn a_link_target_cannot_close_the_link_or_bring_a_label() {
        assert_eq!(
            link("https://x/?a=1&b=<2>|<https://evil|y>", "Source"),
            "<https://x/?a=1&amp;b=&lt;2&gt;%7C&lt;https://evil%7Cy&gt;|Source>"
        );
    }
}
