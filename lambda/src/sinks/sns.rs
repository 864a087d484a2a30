//! An SNS topic as a sink: the enriched topic (`ENRICHED_TOPIC_ARN`) and any
//! per-team topic. PublishBatch of ≤ 10 entries and 256 KiB, the envelope
//! crate's size, subject and attribute rules, plus `instance_type` for filter
//! policies; on FIFO topics the envelope id is the deduplication id.

use std::time::Duration;

use alert_aws::{
    ConfigError, Deadline, Failure, PreparedMessage, RetryPolicy, RetryStage, SnsPublisher,
    TopicArn,
};
use alert_envelope::Envelope;
use alert_envelope::sns::MessageAttributes;
use serde::Deserialize;
use tokio::time::Instant;

use super::Delivery;

/// An SNS sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnsSinkConfig {
    /// Topic ARN, e.g. a per-team topic `arn:aws:sns:us-east-1:123456789012:payments-alerts`.
    pub topic_arn: String,
}

impl SnsSinkConfig {
    /// The topic; the error names the field. (A parse inside serde would
    /// lose the field's path in the routing document's tagged sinks.)
    pub fn topic(&self) -> Result<TopicArn, ConfigError> {
        TopicArn::parse(&self.topic_arn).map_err(|e| ConfigError::new("topic_arn", e))
    }
}

/// An SNS sink ready to publish.
#[derive(Debug, Clone)]
pub struct SnsSink {
    publisher: SnsPublisher,
}

impl SnsSink {
    /// A sink publishing to `topic` over the shared SNS client.
    pub fn new(topic: TopicArn, client: aws_sdk_sns::Client) -> SnsSink {
        SnsSink {
            // The policy's own deadline is unused: the invocation's bounds
            // every publish (`publish_with`).
            publisher: SnsPublisher::new(client, topic, RetryPolicy::within(Duration::ZERO)),
        }
    }

    /// Publishes every envelope in as few PublishBatch calls as fit.
    pub async fn deliver(
        &self,
        envelopes: &[&Envelope],
        deadline: &Deadline,
        retry: &RetryStage,
    ) -> Delivery {
        let started = Instant::now();
        let mut results: Vec<Option<Result<(), Failure>>> = vec![None; envelopes.len()];
        let mut prepared: Vec<PreparedMessage> = Vec::with_capacity(envelopes.len());
        let mut prepared_index: Vec<usize> = Vec::with_capacity(envelopes.len());
        for (i, env) in envelopes.iter().enumerate() {
            match alert_aws::prepare_with_attributes(
                (*env).clone(),
                self.publisher.is_fifo(),
                attributes(env),
            ) {
                Ok(p) => {
                    prepared.push(p);
                    prepared_index.push(i);
                }
                // Cannot fit even without annotations: retrying cannot help.
                Err(e) => results[i] = Some(Err(Failure::permanent("too_large", e.to_string()))),
            }
        }
        let outcome = self
            .publisher
            .publish_with(&prepared, deadline, retry)
            .await;
        for &p in &outcome.accepted {
            results[prepared_index[p]] = Some(Ok(()));
        }
        for (p, f) in outcome.permanent.into_iter().chain(outcome.retryable) {
            results[prepared_index[p]] = Some(Err(f));
        }
        Delivery::of(results, started.elapsed(), outcome.calls as u64)
    }
}

/// The envelope's standard attributes, plus the EC2 instance type.
fn attributes(env: &Envelope) -> MessageAttributes {
    let mut attributes = MessageAttributes::for_envelope(env);
    if let Some(t) = env
        .enrichment
        .as_ref()
        .and_then(|e| e.ec2.as_ref())
        .and_then(|e| e.instance_type.as_deref())
    {
        let _ = attributes.insert("instance_type", t);
    }
    if let Some(e) = &env.enrichment {
        for (set, name) in [
            (e.stale, "stale"),
            (e.muted.is_some(), "muted"),
            (e.in_storm.is_some(), "in_storm"),
            (e.flapping, "flapping"),
        ] {
            if set {
                let _ = attributes.insert(name, "true");
            }
        }
    }
    attributes
}
