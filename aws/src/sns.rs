//! `SnsPublisher`: envelopes → PublishBatch, with per-entry failure handling
//! and the one retry stage of every publisher in this system.
//!
//! A PublishBatch can answer 200 and still fail some entries, so success is
//! decided per entry. Retryable entries (and whole retryable calls) are sent
//! again with exponential backoff and jitter until the deadline; permanent
//! failures are never retried. Entries keep their envelope id as the batch
//! entry id and FIFO deduplication id, so a retry is deduplicated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alert_envelope::Envelope;
use alert_envelope::sns::{self, MessageAttributes, TooLarge};
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use crate::arn::TopicArn;
use crate::errors::{Failure, Verdict, classify_code, classify_sdk_error};
use crate::retry::{Deadline, RetryStage};
use crate::sdk::ATTEMPT_TIMEOUT;

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
    pub permanent: Vec<(usize, Failure)>,
    /// Messages still failing retryably when the deadline came, with the last failure.
    pub retryable: Vec<(usize, Failure)>,
    /// PublishBatch calls made.
    pub calls: usize,
}

impl PublishOutcome {
    /// True when SNS accepted every message.
    pub fn all_accepted(&self) -> bool {
        self.permanent.is_empty() && self.retryable.is_empty()
    }
}

/// How long and how often a publish retries when no invocation deadline
/// bounds it (the agent's webhook and events paths).
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

    fn stage(&self) -> RetryStage {
        RetryStage::new(self.min_delay, self.max_delay)
    }
}

/// Publishes prepared messages to one SNS topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic: TopicArn,
    retry: RetryPolicy,
}

impl SnsPublisher {
    /// A publisher for `topic`. The client should have SDK retries disabled:
    /// this publisher goes through the one retry stage.
    pub fn new(client: aws_sdk_sns::Client, topic: TopicArn, retry: RetryPolicy) -> Self {
        SnsPublisher {
            client,
            topic,
            retry,
        }
    }

    /// Whether the topic is FIFO.
    pub fn is_fifo(&self) -> bool {
        self.topic.is_fifo()
    }

    /// The topic.
    pub fn topic(&self) -> &TopicArn {
        &self.topic
    }

    /// The topic ARN.
    pub fn topic_arn(&self) -> &str {
        self.topic.as_str()
    }

    /// The client.
    pub fn client(&self) -> &aws_sdk_sns::Client {
        &self.client
    }

    /// Sends every message, retrying retryable failures within the policy's
    /// deadline, and reports what happened to each one.
    pub async fn publish(&self, messages: &[PreparedMessage]) -> PublishOutcome {
        let deadline = Deadline::at(
            tokio::time::Instant::now() + self.retry.deadline,
            Duration::ZERO,
        );
        self.publish_within(messages, &deadline).await
    }

    /// Like [`SnsPublisher::publish`], bounded by the caller's deadline (a
    /// Lambda's invocation deadline).
    pub async fn publish_within(
        &self,
        messages: &[PreparedMessage],
        deadline: &Deadline,
    ) -> PublishOutcome {
        self.publish_with(messages, deadline, &self.retry.stage())
            .await
    }

    /// Like [`SnsPublisher::publish_within`], with the caller's retry stage.
    pub async fn publish_with(
        &self,
        messages: &[PreparedMessage],
        deadline: &Deadline,
        stage: &RetryStage,
    ) -> PublishOutcome {
        // Two entries with one id make SNS refuse the whole call
        // (BatchEntryIdsNotDistinct), so a repeated id rides on the first.
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        let unique: Vec<usize> = (0..messages.len())
            .filter(|&i| first_of.insert(messages[i].id.as_str(), i).is_none())
            .collect();
        let calls = AtomicUsize::new(0);
        let results = stage
            .run_each(deadline, ATTEMPT_TIMEOUT, unique.len(), |pending, _| {
                let batch: Vec<&PreparedMessage> =
                    pending.iter().map(|&u| &messages[unique[u]]).collect();
                let calls = &calls;
                async move {
                    let sizes: Vec<usize> = batch.iter().map(|m| m.size).collect();
                    let mut out = Vec::with_capacity(batch.len());
                    for range in sns::plan_batches(&sizes) {
                        calls.fetch_add(1, Ordering::Relaxed);
                        out.extend(
                            self.send_batch(&batch[range])
                                .await
                                .into_iter()
                                .map(|failed| failed.map_or(Ok(()), Err)),
                        );
                    }
                    out
                }
            })
            .await;
        let mut by_id: HashMap<&str, &Result<(), Failure>> = HashMap::new();
        for (u, result) in unique.iter().zip(&results) {
            by_id.insert(messages[*u].id.as_str(), result);
        }
        let mut outcome = PublishOutcome {
            calls: calls.into_inner(),
            ..PublishOutcome::default()
        };
        for (index, m) in messages.iter().enumerate() {
            match by_id.get(m.id.as_str()) {
                Some(Ok(())) => outcome.accepted.push(index),
                Some(Err(f)) if f.is_retryable() => outcome.retryable.push((index, f.clone())),
                Some(Err(f)) => {
                    tracing::error!(id = %m.id, reason = %f.reason, detail = %f.detail, "SNS refused message; not retrying");
                    outcome.permanent.push((index, f.clone()));
                }
                None => outcome.retryable.push((index, Deadline::expired())),
            }
        }
        if let Some((_, last)) = outcome.retryable.last() {
            tracing::warn!(failed = outcome.retryable.len(), reason = %last.reason, detail = %last.detail, "publish deadline reached");
        }
        outcome
    }

    /// One PublishBatch call; one outcome per message in order: `None` when
    /// accepted, otherwise the classified failure.
    async fn send_batch(&self, batch: &[&PreparedMessage]) -> Vec<Option<Failure>> {
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
            .topic_arn(self.topic.as_str())
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await;
        match result {
            Err(err) => {
                let c = classify_sdk_error(&err);
                vec![Some(c); batch.len()]
            }
            Ok(out) => {
                let failed: HashMap<&str, Failure> = out
                    .failed()
                    .iter()
                    .map(|f| {
                        let mut c = classify_code(Some(f.code()), None, f.message().unwrap_or(""));
                        // SNS marks its own faults; those are worth another try
                        // whatever the code says.
                        if !f.sender_fault() {
                            c.verdict = Verdict::Retryable;
                            if c.reason == "validation" {
                                c.reason = "server".into();
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
