//! The one verdict of every failure in this system, and the one place that
//! decides whether an AWS failure can be retried.
//!
//! Throttling, 5xx, timeouts and connection failures retry; validation,
//! authorization and other client errors do not, because sending the same
//! request again cannot succeed. HTTP sinks build their verdicts with the same
//! type, so the retry stage ([`crate::retry`]) has one input.

use std::borrow::Cow;
use std::time::Duration;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Whether to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after a backoff.
    Retryable,
    /// Do not try again.
    Permanent,
}

/// A failure with its verdict: what the retry stage acts on and what metrics
/// and logs report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Retry or not.
    pub verdict: Verdict,
    /// Short reason, used as a metric label: `throttled`, `server`, `timeout`,
    /// `network`, `auth`, `not_found`, `validation`, `http_500`, `deadline`, ...
    pub reason: Cow<'static, str>,
    /// Human-readable detail (error code and message). Never a secret.
    pub detail: String,
    /// The receiver asked to wait this long before the next attempt (HTTP 429
    /// `Retry-After`).
    pub retry_after: Option<Duration>,
}

/// The former name of [`Failure`].
pub type Classified = Failure;

impl Failure {
    /// A failure another attempt may fix.
    pub fn retryable(reason: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Failure {
        Failure {
            verdict: Verdict::Retryable,
            reason: reason.into(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(reason: impl Into<Cow<'static, str>>, detail: impl Into<String>) -> Failure {
        Failure {
            verdict: Verdict::Permanent,
            reason: reason.into(),
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same failure, asking the retry stage to wait at least `after`.
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Failure {
        self.retry_after = after;
        self
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.verdict == Verdict::Retryable
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for Failure {}

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "KMSThrottlingException",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "ProvisionedThroughputExceededException",
];

const SERVER_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalErrorException",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "KMSInternalException",
    "RequestTimeout",
    "RequestTimeoutException",
];

const AUTH_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "AuthorizationErrorException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
    "InvalidSecurity",
];

const NOT_FOUND_CODES: &[&str] = &["NotFound", "NotFoundException", "ResourceNotFoundException"];

/// Classifies an error code (and HTTP status, when known) from a service
/// response or from one failed batch entry.
pub fn classify_code(code: Option<&str>, status: Option<u16>, message: &str) -> Failure {
    let code_str = code.unwrap_or("");
    let detail = match code {
        Some(c) if message.is_empty() => c.to_string(),
        Some(c) => format!("{c}: {message}"),
        None if message.is_empty() => format!("HTTP {}", status.unwrap_or(0)),
        None => message.to_string(),
    };
    let (verdict, reason) = if THROTTLING_CODES.contains(&code_str) || status == Some(429) {
        (Verdict::Retryable, "throttled")
    } else if SERVER_CODES.contains(&code_str) || status.is_some_and(|s| s >= 500) {
        (Verdict::Retryable, "server")
    } else if AUTH_CODES.contains(&code_str) || matches!(status, Some(401 | 403)) {
        (Verdict::Permanent, "auth")
    } else if NOT_FOUND_CODES.contains(&code_str) || status == Some(404) {
        (Verdict::Permanent, "not_found")
    } else if status.is_some_and(|s| (400..500).contains(&s)) || !code_str.is_empty() {
        (Verdict::Permanent, "validation")
    } else {
        (Verdict::Permanent, "other")
    };
    Failure {
        verdict,
        reason: Cow::Borrowed(reason),
        detail,
        retry_after: None,
    }
}

/// Classifies a whole-call SDK failure.
pub fn classify_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => Failure::retryable("timeout", "request timed out"),
        SdkError::DispatchFailure(f) => Failure::retryable(
            if f.is_timeout() { "timeout" } else { "network" },
            format!("request not sent: {}", describe(err)),
        ),
        SdkError::ResponseError(_) => {
            Failure::retryable("server", format!("unreadable response: {}", describe(err)))
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let e = service.err();
            // Modeled errors carry their message in the type; metadata may not.
            let message = e
                .message()
                .map(String::from)
                .unwrap_or_else(|| e.to_string());
            classify_code(e.code(), Some(status), &message)
        }
        _ => Failure::permanent("other", describe(err)),
    }
}

/// The full error chain as one line.
pub fn describe(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classification_table() {
        let cases = [
            (
                Some("Throttling"),
                Some(400),
                Verdict::Retryable,
                "throttled",
            ),
            (None, Some(429), Verdict::Retryable, "throttled"),
            (Some("InternalFailure"), None, Verdict::Retryable, "server"),
            (None, Some(503), Verdict::Retryable, "server"),
            (Some("AccessDenied"), Some(403), Verdict::Permanent, "auth"),
            (None, Some(401), Verdict::Permanent, "auth"),
            (Some("NotFound"), Some(404), Verdict::Permanent, "not_found"),
            (
                Some("InvalidParameter"),
                Some(400),
                Verdict::Permanent,
                "validation",
            ),
            (None, None, Verdict::Permanent, "other"),
        ];
        for (code, status, verdict, reason) in cases {
            let f = classify_code(code, status, "m");
            assert_eq!(
                (f.verdict, f.reason.as_ref()),
                (verdict, reason),
                "{code:?} {status:?}"
            );
        }
    }

    #[test]
    fn detail_names_code_and_message() {
        assert_eq!(classify_code(Some("X"), None, "why").detail, "X: why");
        assert_eq!(classify_code(None, Some(500), "").detail, "HTTP 500");
    }
}
