//! AWS plumbing shared by the agent and the enricher Lambda.
//!
//! - [`errors`]: the one verdict type ([`Failure`]) and the one place that
//!   decides whether an AWS failure is retryable.
//! - [`retry`]: the one retry stage (backoff, jitter, `Retry-After`) and the
//!   one [`Deadline`] it is bounded by.
//! - [`sns`]: `SnsPublisher`, PublishBatch with per-entry outcomes through
//!   the retry stage.
//! - [`arn`]: [`TopicArn`], parsed once. [`config`]: [`ConfigError`].
//! - [`sdk`]: the SDK configuration (retries off, timeouts) and the log setup.

pub mod arn;
pub mod config;
pub mod deadline;
pub mod errors;
pub mod retry;
pub mod sdk;
pub mod sns;

pub use arn::TopicArn;
pub use config::ConfigError;
pub use deadline::Deadline;
pub use errors::{Classified, Failure, Verdict, classify_code, classify_sdk_error};
pub use retry::RetryStage;
pub use sns::{
    PreparedMessage, PublishOutcome, RetryPolicy, SnsPublisher, prepare, prepare_with_attributes,
};
