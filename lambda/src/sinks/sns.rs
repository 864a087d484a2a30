//! An SNS topic as a sink. Delivered in batches by the handler (PublishBatch
//! of ≤ 10, the envelope crate's size, subject and attribute rules), with
//! the envelope id as the FIFO deduplication id on FIFO topics.

use serde::Deserialize;

/// An SNS sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsSinkConfig {
    /// Topic ARN, e.g. a per-team topic `arn:aws:sns:us-east-1:123456789012:payments-alerts`.
    pub topic_arn: String,
}

impl SnsSinkConfig {
    /// The ARN must be an SNS topic ARN.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let parts: Vec<&str> = self.topic_arn.split(':').collect();
        let ok = parts.len() == 6 && parts[0] == "arn" && parts[2] == "sns" && !parts[5].is_empty();
        if ok {
            Ok(())
        } else {
            Err((
                "topic_arn".into(),
                format!(
                    "{:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)",
                    self.topic_arn
                ),
            ))
        }
    }
}
