//! Where enriched alerts go. One module per integration, each the same shape:
//! a `Config` (serde, validated with the field named) → a client → a
//! verdict on every failure: retryable or not. The one retry stage is
//! [`crate::delivery`]; sinks never retry on their own.
//!
//! Secrets (Slack URL, PagerDuty routing key, HMAC key) are [`SecretRef`]s,
//! fetched through [`crate::secrets::SecretStore`] and never formatted into a
//! log line or an error: HTTP errors are reported without their URL.

pub mod pagerduty;
pub mod slack;
pub mod sns;
pub mod webhook;

use std::time::Duration;

use alert_envelope::Envelope;
use serde::Deserialize;

pub use pagerduty::{PagerDutyConfig, PagerDutySink};
pub use slack::{SlackConfig, SlackSink};
pub use sns::SnsSinkConfig;
pub use webhook::{WebhookConfig, WebhookSink};

use crate::secrets::SecretRef;

/// A sink as declared in the routing document, by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    /// An SNS topic (PublishBatch, envelope attributes for filter policies).
    Sns(SnsSinkConfig),
    /// A Slack incoming webhook.
    Slack(SlackConfig),
    /// PagerDuty Events API v2.
    Pagerduty(PagerDutyConfig),
    /// A signed HTTP webhook.
    Webhook(WebhookConfig),
}

impl SinkConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), (String, String)> {
        match self {
            SinkConfig::Sns(c) => c.validate(),
            SinkConfig::Slack(c) => c.validate(),
            SinkConfig::Pagerduty(c) => c.validate(),
            SinkConfig::Webhook(c) => c.validate(),
        }
    }

    /// `sns`, `slack`, `pagerduty` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Sns(_) => "sns",
            SinkConfig::Slack(_) => "slack",
            SinkConfig::Pagerduty(_) => "pagerduty",
            SinkConfig::Webhook(_) => "webhook",
        }
    }
}

/// Why one delivery attempt failed, and whether another attempt can help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// Another attempt may succeed (5xx, 429, timeout, connection).
    pub retryable: bool,
    /// Short reason for metrics: `http_500`, `throttled`, `timeout`, ...
    pub reason: String,
    /// What happened, for logs. Never contains a secret.
    pub detail: String,
    /// The receiver asked us to wait this long (429 `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl SinkError {
    /// A failure another attempt may fix.
    pub fn retryable(reason: impl Into<String>, detail: impl Into<String>) -> SinkError {
        SinkError {
            retryable: true,
            reason: reason.into(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(reason: impl Into<String>, detail: impl Into<String>) -> SinkError {
        SinkError {
            retryable: false,
            reason: reason.into(),
            detail: detail.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

/// Classifies an HTTP answer, in one place for every HTTP sink: 2xx is
/// delivered; 408, 429 and 5xx are retryable (429 with its `Retry-After`);
/// any other 4xx is permanent.
pub fn classify_status(
    status: reqwest::StatusCode,
    retry_after: Option<&str>,
    body: &str,
) -> Result<(), SinkError> {
    if status.is_success() {
        return Ok(());
    }
    let snippet: String = body.chars().take(200).collect();
    let code = status.as_u16();
    let detail = format!("HTTP {code}: {snippet}");
    let mut e = if code == 429 {
        SinkError::retryable("throttled", detail)
    } else if code == 408 || status.is_server_error() {
        SinkError::retryable(format!("http_{code}"), detail)
    } else {
        SinkError::permanent(format!("http_{code}"), detail)
    };
    e.retry_after = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(e)
}

/// Classifies a transport error. The URL is removed first: a Slack webhook
/// URL is itself the secret.
pub fn classify_transport(e: reqwest::Error) -> SinkError {
    let e = e.without_url();
    if e.is_timeout() {
        SinkError::retryable("timeout", e.to_string())
    } else if e.is_connect() {
        SinkError::retryable("connect", e.to_string())
    } else if e.is_builder() {
        SinkError::permanent("bad_request", e.to_string())
    } else {
        SinkError::retryable("transport", e.to_string())
    }
}

/// POSTs a JSON body and classifies the answer.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), SinkError> {
    let mut req = http
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            reqwest::header::USER_AGENT,
            concat!("alert-manager-enricher/", env!("CARGO_PKG_VERSION")),
        );
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.body(body).send().await.map_err(classify_transport)?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if status.is_success() {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    classify_status(status, retry_after.as_deref(), &body)
}

/// An HTTP sink, ready to deliver. SNS sinks are delivered in batches by the
/// handler instead (PublishBatch), so they are not here.
#[derive(Debug, Clone)]
pub enum HttpSink {
    /// Slack.
    Slack(SlackSink),
    /// PagerDuty.
    PagerDuty(PagerDutySink),
    /// Signed webhook.
    Webhook(WebhookSink),
}

impl HttpSink {
    /// One attempt to deliver one envelope.
    pub async fn deliver(
        &self,
        env: &Envelope,
        secrets: &crate::secrets::SecretStore,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        match self {
            HttpSink::Slack(s) => s.deliver(env, secrets, timeout).await,
            HttpSink::PagerDuty(s) => s.deliver(env, secrets, timeout).await,
            HttpSink::Webhook(s) => s.deliver(env, secrets, timeout).await,
        }
    }
}

/// Validates a secret reference field.
pub(crate) fn validate_secret(field: &str, r: &SecretRef) -> Result<(), (String, String)> {
    r.validate().map_err(|m| (field.to_string(), m))
}

/// Validates an `http(s)://` URL field.
pub(crate) fn validate_url(field: &str, url: &str) -> Result<(), (String, String)> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Ok(()),
        Ok(u) => Err((
            field.to_string(),
            format!("scheme {:?} is not http or https", u.scheme()),
        )),
        Err(e) => Err((field.to_string(), format!("not a URL: {e}"))),
    }
}
