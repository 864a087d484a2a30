//! Slack as an app (the Web API, a bot token): one message per alert's
//! life. The firing is posted (`chat.postMessage`), and its `channel` and
//! `ts` go to the alert state store; a repeat of the firing is replied in
//! its thread at most once per `repeat_interval`; the resolve rewrites the
//! original message (`chat.update`: green, "Resolved after 12 min") and
//! adds a short reply to its thread. Without the store, or for a resolve
//! whose firing was never posted, every notification is a new message.
//! An alert that starts flapping has that message rewritten as flapping,
//! with a thread reply; once it is stable, the final state rewrites it again.
//!
//! Slack answers HTTP 200 with `ok:false` for most errors; those are mapped
//! to the one verdict in [`super::slack_api`]. The message content is the
//! incoming-webhook sink's ([`super::slack::message`]), escaped the same way.

use std::sync::Arc;
use std::time::Duration;

use alert_aws::{ConfigError, Failure};
use alert_envelope::{Envelope, Status};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{HttpClient, post};
use super::slack::{default_key_tags, escape, message};
use super::slack_api::verdict;
use super::{secret, validate_secret};
use crate::secrets::{SecretRef, SecretStore};
use crate::state::SinkRecord;
use crate::storm::SummaryRecord;
use crate::storm::summary::Summary;

mod plan;
use plan::{Action, plan, resolved_after};

/// Where the Web API lives (`SLACK_API_URL` overrides it).
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

/// A Slack app sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackAppConfig {
    /// Where the bot token (`xoxb-…`) is stored; it is never logged.
    pub bot_token: SecretRef,
    /// Channel id (`C0123456789`) or name (`payments-alerts`); the bot
    /// needs `chat:write`, and `chat:write.public` for a channel it has not
    /// joined.
    pub channel: String,
    /// Repeats of a firing alert (new content, for example a higher event
    /// count) are replied in its thread at most this often: `30m`, `4h`.
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval: String,
    /// EC2 tags shown in the message, in order, when present.
    #[serde(default = "default_key_tags")]
    pub key_tags: Vec<String>,
}

fn default_repeat_interval() -> String {
    "4h".into()
}

impl SlackAppConfig {
    /// Checks the fields; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_secret("bot_token", &self.bot_token)?;
        let channel = self.channel.trim_start_matches('#');
        let valid = !channel.is_empty()
            && channel.len() <= 80
            && channel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(ConfigError::new(
                "channel",
                format!(
                    "{:?} is neither a channel id (C0123456789) nor a channel name",
                    self.channel
                ),
            ));
        }
        self.repeat().map(drop)
    }

    fn repeat(&self) -> Result<Duration, ConfigError> {
        let d: jiff::SignedDuration = self.repeat_interval.parse().map_err(|e| {
            ConfigError::new(
                "repeat_interval",
                format!(
                    "{:?} is not a duration like 30m or 4h: {e}",
                    self.repeat_interval
                ),
            )
        })?;
        Duration::try_from(d)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or_else(|| ConfigError::new("repeat_interval", "must be positive"))
    }
}

/// A Slack app sink ready to post.
#[derive(Debug, Clone)]
pub struct SlackAppSink {
    config: SlackAppConfig,
    repeat: Duration,
    api: String,
    http: HttpClient,
    secrets: Option<Arc<SecretStore>>,
}

impl SlackAppSink {
    /// A sink over the shared HTTP client and secret store, calling `api`.
    pub fn new(
        config: SlackAppConfig,
        api: &str,
        http: HttpClient,
        secrets: Option<Arc<SecretStore>>,
    ) -> Result<SlackAppSink, ConfigError> {
        Ok(SlackAppSink {
            repeat: config.repeat()?,
            config,
            api: api.trim_end_matches('/').to_string(),
            http,
            secrets,
        })
    }

    /// The bot token as an `Authorization` header.
    async fn auth(&self, timeout: Duration) -> Result<[(&'static str, String); 1], Failure> {
        let token = secret(self.secrets.as_deref(), &self.config.bot_token, timeout).await?;
        if !token.expose().starts_with("xoxb-") {
            return Err(Failure::permanent(
                "invalid_auth",
                "bot_token is not a bot token (xoxb-…)",
            ));
        }
        Ok([("Authorization", format!("Bearer {}", token.expose()))])
    }

    /// One Web API call, its `ok:false` mapped to the one verdict.
    async fn call(
        &self,
        auth: &[(&'static str, String)],
        method: &'static str,
        body: Value,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let url = format!("{}/{method}", self.api);
        let body =
            serde_json::to_vec(&body).map_err(|e| Failure::permanent("encode", e.to_string()))?;
        let a = post(self.http.get(), &url, auth, body, timeout).await?;
        verdict(a.status, a.retry_after.as_deref(), &a.body).map_err(|f| Failure {
            detail: format!("{method}: {}", f.detail),
            ..f
        })
    }

    /// One attempt at a storm's summary: posted the first time, then
    /// updated in place; the final update also replies in its thread.
    pub(super) async fn summarize(
        &self,
        summary: &Summary,
        prior: &SummaryRecord,
        timeout: Duration,
    ) -> Result<SummaryRecord, Failure> {
        let auth = self.auth(timeout).await?;
        let mut msg = summary.slack();
        let mut record = prior.clone();
        match (&prior.channel, &prior.ts) {
            (Some(channel), Some(ts)) => {
                msg["channel"] = json!(channel);
                msg["ts"] = json!(ts);
                self.call(&auth, "chat.update", msg, timeout).await?;
            }
            _ => {
                msg["channel"] = json!(self.config.channel);
                let answer = self.call(&auth, "chat.postMessage", msg, timeout).await?;
                record.channel = answer["channel"].as_str().map(String::from);
                record.ts = answer["ts"].as_str().map(String::from);
            }
        }
        if let (true, Some(channel), Some(ts)) =
            (summary.status == "closed", &record.channel, &record.ts)
        {
            let (firing, resolved) = (summary.firing, summary.resolved);
            let text = format!("✅ Storm over: {resolved} resolved, {firing} still firing");
            let reply = json!({"channel": channel, "thread_ts": ts, "text": text});
            self.call(&auth, "chat.postMessage", reply, timeout).await?;
        }
        Ok(record)
    }

    /// One attempt: the calls `env` needs, and the record they leave.
    pub async fn attempt(
        &self,
        env: &Envelope,
        prior: Option<&SinkRecord>,
        timeout: Duration,
    ) -> Result<Option<SinkRecord>, Failure> {
        let now = Timestamp::now();
        let action = plan(env, prior, now, self.repeat);
        if action == Action::Quiet {
            return Ok(None);
        }
        let auth = self.auth(timeout).await?;
        let call = |method: &'static str, body: Value| self.call(&auth, method, body, timeout);
        let mut msg = message(env, &self.config.key_tags);
        let mut record = prior.cloned().unwrap_or_default();
        match action {
            Action::Post => {
                msg["channel"] = json!(self.config.channel);
                let answer = call("chat.postMessage", msg).await?;
                record.channel = answer["channel"].as_str().map(String::from);
                record.ts = answer["ts"].as_str().map(String::from);
                record.repeated_at = Some(now);
                record.closed = env.status == Status::Resolved;
            }
            Action::Reply { channel, ts } => {
                msg["channel"] = json!(channel);
                msg["thread_ts"] = json!(ts);
                call("chat.postMessage", msg).await?;
                record.repeated_at = Some(now);
            }
            Action::Resolve { channel, ts } => {
                let after = resolved_after(env);
                let text = format!("{after}: {}", msg["text"].as_str().unwrap_or_default());
                msg["text"] = json!(text);
                msg["channel"] = json!(channel);
                msg["ts"] = json!(ts);
                call("chat.update", msg).await?;
                let reply = json!({"channel": channel, "thread_ts": ts, "text": format!("✅ {}", escape(&after))});
                call("chat.postMessage", reply).await?;
                record.closed = true;
            }
            Action::Flap { channel, ts } => {
                msg["channel"] = json!(channel);
                msg["ts"] = json!(ts);
                call("chat.update", msg).await?;
                let text = "🔁 Flapping: it keeps changing state. Nothing more is posted here until it has been stable for the route's flap window; then its final state.";
                let reply = json!({"channel": channel, "thread_ts": ts, "text": text});
                call("chat.postMessage", reply).await?;
                record.closed = env.status == Status::Resolved;
            }
            Action::Settle { channel, ts } => {
                let state = match env.status {
                    Status::Firing => "still firing".to_string(),
                    Status::Resolved => resolved_after(env),
                };
                if env.status == Status::Resolved {
                    let text = format!("{state}: {}", msg["text"].as_str().unwrap_or_default());
                    msg["text"] = json!(text);
                }
                msg["channel"] = json!(channel);
                msg["ts"] = json!(ts);
                call("chat.update", msg).await?;
                let text = format!("Stable again: {}", escape(&state));
                let reply = json!({"channel": channel, "thread_ts": ts, "text": text});
                call("chat.postMessage", reply).await?;
                record.closed = env.status == Status::Resolved;
                record.repeated_at = Some(now);
            }
            Action::Quiet => {}
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn fields_are_checked_by_name() {
        let mut c: SlackAppConfig = serde_yaml::from_str(
            "bot_token: {secret: alert-manager/slack-bot}\nchannel: C0123456789\n",
        )
        .unwrap();
        assert!(c.validate().is_ok());
        assert_eq!(c.repeat().unwrap(), Duration::from_secs(4 * 3600));
        c.channel = "bad channel!".into();
        assert_eq!(c.validate().unwrap_err().setting, "channel");
        c.channel = "#payments-alerts".into();
        c.repeat_interval = "soon".into();
        assert_eq!(c.validate().unwrap_err().setting, "repeat_interval");
        assert!(
            serde_yaml::from_str::<SlackAppConfig>(
                "bot_token: {secret: x}\nchannel: C1\nwebhook_url: y\n"
            )
            .is_err()
        );
    }
}
