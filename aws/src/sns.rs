//! `SnsPublisher`: envelopes → PublishBatch, with per-entry failure handling
//! and the one retry stage of every publisher in this system.
//!
//! A PublishBatch can answer 200 and still fail some entries, so success is
//! decided per entry. Retryable entries (and whole retryable calls) are sent
//! again with exponential backoff and jitter until the deadline; permanent
//! failures are never retried. Entries keep their envelope id as the batch
//! entry id and FIFO deduplication id, so a retry is deduplicated.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alert_envelope::Envelope;
use alert_envelope::sns::{self, MessageAttributes, TooLarge};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use backon::{BackoffBuilder, ExponentialBuilder};

use crate::errors::{Classified, Verdict, classify_code, classify_sdk_error};

/// One envelope, ready to send.
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    /// Envelope id; also the batch entry id and FIFO deduplication id.
    pub id: String,
    /// JSON body, fitted to SNS's limit.
    pub body: String,
    /// SNS subject.
    pub subject: String,
    /// Message attributes.
    pub attributes: MessageAttributes,
    /// FIFO group id, for FIFO topics.
    pub group_id: Option<String>,
    /// Body plus attributes, in bytes.
    pub size: usize,
    /// True when annotations were cut.
    pub truncated: bool,
}

/// Turns an envelope into a message that satisfies every SNS rule, with the
/// standard attributes.
pub fn prepare(env: Envelope, fifo: bool) -> Result<PreparedMessage, TooLarge> {
    let attributes = MessageAttributes::for_envelope(&env);
    prepare_with_attributes(env, fifo, attributes)
}

/// Like [`prepare`], with the caller's attributes.
pub fn prepare_with_attributes(
    mut env: Envelope,
    fifo: bool,
    attributes: MessageAttributes,
) -> Result<PreparedMessage, TooLarge> {
    let fitted = sns::fit_to_size(&mut env, &attributes)?;
    Ok(PreparedMessage {
        id: env.id.clone(),
        subject: sns::subject(&env),
        group_id: fifo.then(|| sns::fifo_group_id(&env)),
        size: fitted.body.len() + attributes.size_bytes(),
        truncated: fitted.truncated,
        body: fitted.body,
        attributes,
    })
}

/// What happened to each message of a publish.
#[derive(Debug, Default)]
pub struct PublishOutcome {
    /// Indices of the messages SNS accepted.
    pub accepted: Vec<usize>,
    /// Messages SNS refused for good, with why. Not retried.
    pub permanent: Vec<(usize, Classified)>,
    /// Messages still failing retryably when the deadline came, with the last failure.
    pub retryable: Vec<(usize, Classified)>,
    /// PublishBatch calls made.
    pub calls: usize,
}

impl PublishOutcome {
    /// True when SNS accepted every message.
    pub fn all_accepted(&self) -> bool {
        self.permanent.is_empty() && self.retryable.is_empty()
    }
}

/// How long and how often to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Give up (retryably) after this long.
    pub deadline: Duration,
    /// First backoff.
    pub min_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// Retries within `deadline`, backing off from 50 ms to 2 s.
    pub fn within(deadline: Duration) -> RetryPolicy {
        RetryPolicy {
            deadline,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Publishes prepared messages to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
    fifo: bool,
    retry: RetryPolicy,
}

impl SnsPublisher {
    /// A publisher for `topic_arn`. The client should have SDK retries
    /// disabled: this publisher is the one retry stage.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: String, retry: RetryPolicy) -> Self {
        SnsPublisher {
            fifo: sns::is_fifo_topic(&topic_arn),
            client,
            topic_arn,
            retry,
        }
    }

    /// Whether the topic is FIFO.
    pub fn is_fifo(&self) -> bool {
        self.fifo
    }

    /// The topic ARN.
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }

    /// The client.
    pub fn client(&self) -> &aws_sdk_sns::Client {
        &self.client
    }

    /// Sends every message, retrying retryable failures until the deadline,
    /// and reports what happened to each one.
    pub async fn publish(&self, messages: &[PreparedMessage]) -> PublishOutcome {
        self.publish_within(messages, self.retry.deadline).await
    }

    /// Like [`SnsPublisher::publish`], with a deadline for this call only
    /// (a Lambda derives it from the time the invocation has left).
    pub async fn publish_within(
        &self,
        messages: &[PreparedMessage],
        deadline: Duration,
    ) -> PublishOutcome {
        let started = Instant::now();
        let mut outcome = PublishOutcome::default();
        let mut pending: Vec<usize> = (0..messages.len()).collect();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            let mut retry_next: Vec<(usize, Classified)> = Vec::new();
            let sizes: Vec<usize> = pending.iter().map(|&i| messages[i].size).collect();
            for range in sns::plan_batches(&sizes) {
                let batch: Vec<&PreparedMessage> = pending[range.clone()]
                    .iter()
                    .map(|&i| &messages[i])
                    .collect();
                outcome.calls += 1;
                let results = self.send_batch(&batch).await;
                for (&index, result) in pending[range].iter().zip(results) {
                    match result {
                        None => outcome.accepted.push(index),
                        Some(c) if c.verdict == Verdict::Retryable => retry_next.push((index, c)),
                        Some(c) => {
                            tracing::error!(id = %messages[index].id, reason = c.reason, detail = %c.detail, "SNS refused message; not retrying");
                            outcome.permanent.push((index, c));
                        }
                    }
                }
            }
            let Some((_, last)) = retry_next.last() else {
                break;
            };
            let delay = backoff.next().unwrap_or(self.retry.max_delay);
            if started.elapsed() + delay > deadline {
                tracing::warn!(failed = retry_next.len(), reason = last.reason, detail = %last.detail, "publish deadline reached");
                outcome.retryable = retry_next;
                break;
            }
            tracing::debug!(
                pending = retry_next.len(),
                ?delay,
                reason = last.reason,
                "retrying publish"
            );
            tokio::time::sleep(delay).await;
            pending = retry_next.into_iter().map(|(i, _)| i).collect();
        }
        outcome
    }

    /// One PublishBatch call; one outcome per message in order: `None` when
    /// accepted, otherwise the classified failure.
    async fn send_batch(&self, batch: &[&PreparedMessage]) -> Vec<Option<Classified>> {
        let entries: Vec<PublishBatchRequestEntry> =
            batch.iter().filter_map(|m| self.entry(m)).collect();
        if entries.len() != batch.len() {
            let c = classify_code(
                Some("InvalidParameter"),
                None,
                "could not build batch entry",
            );
            return vec![Some(c); batch.len()];
        }
        let result = self
            .client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await;
        match result {
            Err(err) => {
                let c = classify_sdk_error(&err);
                vec![Some(c); batch.len()]
            }
            Ok(out) => {
                let failed: HashMap<&str, Classified> = out
                    .failed()
                    .iter()
                    .map(|f| {
                        let mut c = classify_code(Some(f.code()), None, f.message().unwrap_or(""));
                        // SNS marks its own faults; those are worth another try
                        // whatever the code says.
                        if !f.sender_fault() {
                            c.verdict = Verdict::Retryable;
                            if c.reason == "validation" {
                                c.reason = "server";
                            }
                        }
                        (f.id(), c)
                    })
                    .collect();
                let succeeded: std::collections::HashSet<&str> =
                    out.successful().iter().filter_map(|s| s.id()).collect();
                batch
                    .iter()
                    .map(|m| {
                        if let Some(c) = failed.get(m.id.as_str()) {
                            Some(c.clone())
                        } else if succeeded.contains(m.id.as_str()) {
                            None
                        } else {
                            // Neither listed as successful nor failed: SNS did not
                            // confirm it, so it is not accepted.
                            Some(classify_code(
                                None,
                                Some(500),
                                "entry missing from PublishBatch response",
                            ))
                        }
                    })
                    .collect()
            }
        }
    }

    /// The PublishBatch entries for `messages` (what `publish` sends; public for the benchmark).
    pub fn batch_entries(&self, messages: &[PreparedMessage]) -> Vec<PublishBatchRequestEntry> {
        messages.iter().filter_map(|m| self.entry(m)).collect()
    }

    fn entry(&self, m: &PreparedMessage) -> Option<PublishBatchRequestEntry> {
        let mut entry = PublishBatchRequestEntry::builder()
            .id(&m.id)
            .message(&m.body)
            .subject(&m.subject);
        for (name, value) in m.attributes.iter() {
            let value = MessageAttributeValue::builder()
                .data_type(sns::ATTRIBUTE_DATA_TYPE)
                .string_value(value)
                .build()
                .ok()?;
            entry = entry.message_attributes(name, value);
        }
        if let Some(group) = &m.group_id {
            entry = entry
                .message_group_id(group)
                .message_deduplication_id(&m.id);
        }
        entry.build().ok()
    }
}
