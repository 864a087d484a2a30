//! The one place that decides whether an AWS failure can be retried.
//!
//! Throttling, 5xx, timeouts and connection failures retry; validation,
//! authorization and other client errors do not, because sending the same
//! request again cannot succeed.

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

/// A classified failure: the verdict and a short reason, used as a metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// Retry or not.
    pub verdict: Verdict,
    /// `throttled`, `server`, `timeout`, `network`, `auth`, `not_found`, `validation` or `other`.
    pub reason: &'static str,
    /// Human-readable detail (error code and message), never credentials.
    pub detail: String,
}

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
];

const SERVER_CODES: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalErrorException",
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
/// response or from one failed PublishBatch entry.
pub fn classify_code(code: Option<&str>, status: Option<u16>, message: &str) -> Classified {
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
    Classified {
        verdict,
        reason,
        detail,
    }
}

/// Classifies a whole-call SDK failure.
pub fn classify_sdk_error<E>(err: &SdkError<E, HttpResponse>) -> Classified
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => Classified {
            verdict: Verdict::Retryable,
            reason: "timeout",
            detail: "request timed out".into(),
        },
        SdkError::DispatchFailure(f) => Classified {
            verdict: Verdict::Retryable,
            reason: if f.is_timeout() { "timeout" } else { "network" },
            detail: format!("request not sent: {}", describe(err)),
        },
        SdkError::ResponseError(_) => Classified {
            verdict: Verdict::Retryable,
            reason: "server",
            detail: format!("unreadable response: {}", describe(err)),
        },
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
        _ => Classified {
            verdict: Verdict::Permanent,
            reason: "other",
            detail: describe(err),
        },
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
