//! AWS plumbing shared by the agent and the enricher Lambda.
//!
//! - [`errors`]: the one place that decides whether an AWS failure is retryable.
//! - [`sns`]: `SnsPublisher`, PublishBatch with per-entry outcomes and the one
//!   retry stage (backoff with jitter, bounded by a deadline).

pub mod errors;
pub mod sns;

pub use errors::{Classified, Verdict, classify_code, classify_sdk_error};
pub use sns::{
    PreparedMessage, PublishOutcome, RetryPolicy, SnsPublisher, prepare, prepare_with_attributes,
};
