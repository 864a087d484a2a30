//! What the HTTP sinks share: one client (no redirects), the classification
//! of every HTTP answer, URL validation, and the per-envelope run through
//! the one retry stage.
//!
//! Redirects are never followed: a 307/308 would re-send the signed body,
//! and its signature header, to wherever `Location` points.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alert_aws::{ConfigError, Deadline, Failure, RetryStage};
use alert_envelope::Envelope;
use futures::StreamExt;
use tokio::time::Instant;

use super::{Delivery, Outcome};
use crate::state::SinkRecord;

/// HTTP deliveries in flight at once per sink and invocation.
pub const HTTP_CONCURRENCY: usize = 8;
/// Longest single HTTP attempt; the deadline may cut it shorter.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP sinks' client, built on first use: building one reads the whole
/// system CA store, which was half of the cold start when built at init, and
/// invocations that route to no HTTP sink never need it.
#[derive(Debug, Clone, Default)]
pub struct HttpClient(Arc<OnceLock<reqwest::Client>>);

impl HttpClient {
    /// The client.
    pub fn get(&self) -> &reqwest::Client {
        self.0.get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(2))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                // Fails only when the TLS backend cannot start, as
                // reqwest::Client::new (the fallback) would then.
                .unwrap_or_default()
        })
    }
}

/// Classifies an HTTP answer, in one place for every HTTP sink: 2xx is
/// delivered; 408, 429 and 5xx are retryable (429 with its `Retry-After`);
/// a 3xx is permanent (redirects are not followed); any other 4xx is
/// permanent.
pub fn classify_status(
    status: reqwest::StatusCode,
    retry_after: Option<&str>,
    body: &str,
) -> Result<(), Failure> {
    if status.is_success() {
        return Ok(());
    }
    let snippet: String = body.chars().take(200).collect();
    let code = status.as_u16();
    let detail = format!("HTTP {code}: {snippet}");
    let failure = if code == 429 {
        Failure::retryable("throttled", detail)
    } else if code == 408 || status.is_server_error() {
        Failure::retryable(format!("http_{code}"), detail)
    } else if status.is_redirection() {
        Failure::permanent(
            format!("http_{code}"),
            format!("HTTP {code}: a redirect, not followed (point the sink at the final URL)"),
        )
    } else {
        Failure::permanent(format!("http_{code}"), detail)
    };
    Err(failure.with_retry_after(
        retry_after
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs),
    ))
}

/// Classifies a transport error. The URL is removed first: a Slack webhook
/// URL is itself the secret.
pub fn classify_transport(e: reqwest::Error) -> Failure {
    let e = e.without_url();
    let detail = alert_aws::errors::describe(&e);
    if e.is_timeout() {
        Failure::retryable("timeout", detail)
    } else if e.is_connect() {
        Failure::retryable("connect", detail)
    } else if e.is_builder() {
        Failure::permanent("bad_request", detail)
    } else {
        Failure::retryable("transport", detail)
    }
}

/// A POST's answer: the status, `Retry-After`, and the body.
pub struct Answer {
    /// HTTP status.
    pub status: reqwest::StatusCode,
    /// `Retry-After`, when sent.
    pub retry_after: Option<String>,
    /// Body text.
    pub body: String,
}

/// POSTs a JSON body and reads the answer.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer, Failure> {
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
    let body = resp.text().await.unwrap_or_default();
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// POSTs a JSON body and classifies the answer by its status.
pub async fn post_json(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), Failure> {
    let answer = post(http, url, headers, body, timeout).await?;
    classify_status(answer.status, answer.retry_after.as_deref(), &answer.body)
}

/// Delivers each envelope on its own through the retry stage, at most
/// [`HTTP_CONCURRENCY`] at once; `attempt(index, timeout)` is one try of
/// `envelopes[index]`, answering the sink's new state record, if any.
pub async fn delivery<F, Fut>(
    envelopes: &[&Envelope],
    deadline: &Deadline,
    retry: &RetryStage,
    attempt: F,
) -> Delivery
where
    F: Fn(usize, Duration) -> Fut,
    Fut: Future<Output = Result<Option<SinkRecord>, Failure>>,
{
    let attempt = &attempt;
    let mut outcomes: Vec<(usize, Outcome)> = futures::stream::iter(0..envelopes.len())
        .map(|i| async move {
            let started = Instant::now();
            let result = retry
                .run(deadline, ATTEMPT_TIMEOUT, |timeout| attempt(i, timeout))
                .await;
            let (result, receipt) = match result {
                Ok(receipt) => (Ok(()), receipt),
                Err(f) => (Err(f), None),
            };
            (
                i,
                Outcome {
                    result,
                    latency: started.elapsed(),
                    receipt,
                },
            )
        })
        .buffer_unordered(HTTP_CONCURRENCY)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    Delivery {
        outcomes: outcomes.into_iter().map(|(_, o)| o).collect(),
        aws_calls: 0,
    }
}

/// Validates a URL field: `https://` only, unless `allow_http` (the test
/// stand-ins on loopback).
pub fn validate_url(field: &str, url: &str, allow_http: bool) -> Result<(), ConfigError> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" => Ok(()),
        Ok(u) if u.scheme() == "http" && allow_http => Ok(()),
        Ok(u) if u.scheme() == "http" => Err(ConfigError::new(
            field,
            "http:// is refused: alerts and signatures would cross the network in clear; use https:// (allow_http: true is for test stand-ins only)",
        )),
        Ok(u) => Err(ConfigError::new(
            field,
            format!("scheme {:?} is not https", u.scheme()),
        )),
        Err(e) => Err(ConfigError::new(field, format!("not a URL: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_once() {
        let s = |c| reqwest::StatusCode::from_u16(c).unwrap();
        assert!(classify_status(s(202), None, "").is_ok());
        let f = classify_status(s(429), Some("7"), "").unwrap_err();
        assert!(f.is_retryable());
        assert_eq!(f.retry_after, Some(Duration::from_secs(7)));
        assert!(
            classify_status(s(503), None, "")
                .unwrap_err()
                .is_retryable()
        );
        assert!(
            classify_status(s(408), None, "")
                .unwrap_err()
                .is_retryable()
        );
        let redirect = classify_status(s(308), None, "").unwrap_err();
        assert!(!redirect.is_retryable());
        assert_eq!(redirect.reason, "http_308");
        assert!(redirect.detail.contains("redirect"), "{}", redirect.detail);
        assert_eq!(
            classify_status(s(400), None, "").unwrap_err().reason,
            "http_400"
        );
    }

    #[test]
    fn only_https_unless_allowed() {
        assert!(validate_url("url", "https://example.com/x", false).is_ok());
        let e = validate_url("url", "http://example.com/x", false).unwrap_err();
        assert_eq!(e.setting, "url");
        assert!(e.message.contains("allow_http"), "{e}");
        assert!(validate_url("url", "http://127.0.0.1:1/x", true).is_ok());
        assert!(validate_url("url", "ftp://example.com", true).is_err());
        assert!(validate_url("url", "not a url", true).is_err());
    }
}
