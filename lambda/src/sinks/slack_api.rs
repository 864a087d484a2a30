//! The Slack Web API's answers as the one verdict: HTTP 200 with `ok:false`
//! and an `error` is how Slack says most things.

use std::time::Duration;

use alert_aws::Failure;
use serde_json::Value;

use super::http::classify_status;

/// Slack's answer as the one verdict: the HTTP status first (429 with
/// `Retry-After`), then `ok:false` and its `error`.
pub fn verdict(
    status: reqwest::StatusCode,
    retry_after: Option<&str>,
    body: &str,
) -> Result<Value, Failure> {
    classify_status(status, retry_after, body)?;
    let answer: Value = serde_json::from_str(body)
        .map_err(|e| Failure::retryable("slack_unreadable", format!("not JSON: {e}")))?;
    if answer["ok"].as_bool() == Some(true) {
        return Ok(answer);
    }
    let error = answer["error"].as_str().unwrap_or("unknown");
    let detail = format!("Slack answered ok:false, error {error:?}");
    Err(match error {
        "ratelimited" => Failure::retryable("throttled", detail).with_retry_after(
            retry_after
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        ),
        "internal_error" | "fatal_error" | "service_unavailable" | "request_timeout" => {
            Failure::retryable("slack_server", detail)
        }
        // Known permanent errors are their own reason (a metric label);
        // anything else is one label, so Slack cannot grow the label set.
        "invalid_auth"
        | "not_authed"
        | "account_inactive"
        | "token_revoked"
        | "missing_scope"
        | "channel_not_found"
        | "not_in_channel"
        | "is_archived"
        | "msg_too_long"
        | "message_not_found"
        | "cant_update_message"
        | "thread_not_found"
        | "invalid_blocks"
        | "invalid_attachments"
        | "no_text" => Failure::permanent(error.to_string(), detail),
        _ => Failure::permanent("slack_error", detail),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn slack_errors_map_to_the_one_verdict() {
        let ok = reqwest::StatusCode::OK;
        assert!(verdict(ok, None, r#"{"ok":true,"ts":"1"}"#).is_ok());
        let f = verdict(ok, Some("1"), r#"{"ok":false,"error":"ratelimited"}"#).unwrap_err();
        assert!(f.is_retryable());
        assert_eq!(f.retry_after, Some(Duration::from_secs(1)));
        let f = verdict(reqwest::StatusCode::TOO_MANY_REQUESTS, Some("3"), "").unwrap_err();
        assert!(f.is_retryable());
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));
        for permanent in [
            "invalid_auth",
            "not_authed",
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "msg_too_long",
        ] {
            let f = verdict(
                ok,
                None,
                &format!(r#"{{"ok":false,"error":"{permanent}"}}"#),
            )
            .unwrap_err();
            assert!(!f.is_retryable(), "{permanent}");
            assert_eq!(f.reason, permanent);
        }
        let f = verdict(ok, None, r#"{"ok":false,"error":"something_new"}"#).unwrap_err();
        assert_eq!(f.reason, "slack_error");
        assert!(f.detail.contains("something_new"));
    }
}
