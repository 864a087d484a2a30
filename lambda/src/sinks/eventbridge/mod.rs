//! An EventBridge bus as a sink, for teams that route with rules instead of
//! SNS filter policies: `PutEvents` of at most 10 entries and 256 KiB, each
//! event's `detail` the enriched envelope (cut to fit by the envelope
//! crate's rules, so it stays a valid envelope), its `source` and
//! `detail-type` set for rules to match. A `PutEvents` can answer 200 and
//! fail some entries: each entry's `ErrorCode` is judged on its own
//! (`ThrottlingException` and `InternalFailure` retryable, the rest
//! permanent), and only the failed entries go through the retry stage again.
//! Like SNS, a machines' sink: never muted, held or absorbed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alert_aws::{Deadline, Failure, RetryStage, classify_sdk_error};
use alert_envelope::{Envelope, sns};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tokio::time::Instant;

use super::Delivery;

mod config;
pub use config::EventBridgeConfig;

/// Per-attempt cap of one `PutEvents`.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// What an entry may hold besides its detail: EventBridge counts `Source`,
/// `DetailType`, `Detail`, `Resources` and 14 bytes of `Time`.
const ENTRY_OVERHEAD: usize = 14;

/// One event, ready to send.
#[derive(Debug, Clone)]
struct Prepared {
    detail_type: String,
    detail: String,
}

impl Prepared {
    fn size(&self, source: &str) -> usize {
        ENTRY_OVERHEAD + source.len() + self.detail_type.len() + self.detail.len()
    }
}

/// An EventBridge sink ready to put events.
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    config: EventBridgeConfig,
    client: aws_sdk_eventbridge::Client,
}

impl EventBridgeSink {
    /// A sink over the client built at init.
    pub fn new(config: EventBridgeConfig, client: aws_sdk_eventbridge::Client) -> EventBridgeSink {
        EventBridgeSink { config, client }
    }

    /// The event of `env`: its detail fitted to what an entry may hold.
    fn prepare(&self, env: &Envelope) -> Result<Prepared, Failure> {
        let detail_type = self.config.detail_type(env).to_string();
        let room = sns::MAX_MESSAGE_BYTES
            .saturating_sub(ENTRY_OVERHEAD + self.config.source.len() + detail_type.len());
        let mut env = env.clone();
        let fitted = sns::fit_within(&mut env, room)
            .map_err(|e| Failure::permanent("too_large", e.to_string()))?;
        Ok(Prepared {
            detail_type,
            detail: fitted.body,
        })
    }

    /// Puts every envelope in as few `PutEvents` calls as fit, retrying the
    /// entries that failed retryably.
    pub async fn deliver(
        &self,
        envelopes: &[&Envelope],
        deadline: &Deadline,
        retry: &RetryStage,
    ) -> Delivery {
        let started = Instant::now();
        let mut results: Vec<Option<Result<(), Failure>>> = vec![None; envelopes.len()];
        let mut prepared = Vec::with_capacity(envelopes.len());
        let mut index = Vec::with_capacity(envelopes.len());
        for (i, env) in envelopes.iter().enumerate() {
            match self.prepare(env) {
                Ok(p) => {
                    prepared.push(p);
                    index.push(i);
                }
                Err(f) => results[i] = Some(Err(f)),
            }
        }
        let calls = AtomicUsize::new(0);
        let answers = retry
            .run_each(deadline, ATTEMPT_TIMEOUT, prepared.len(), |pending, _| {
                let batch: Vec<&Prepared> = pending.iter().map(|&p| &prepared[p]).collect();
                let calls = &calls;
                async move {
                    let sizes: Vec<usize> =
                        batch.iter().map(|p| p.size(&self.config.source)).collect();
                    let mut out = Vec::with_capacity(batch.len());
                    for range in sns::plan_batches(&sizes) {
                        calls.fetch_add(1, Ordering::Relaxed);
                        out.extend(self.put(&batch[range]).await);
                    }
                    out
                }
            })
            .await;
        for (p, answer) in answers.into_iter().enumerate() {
            results[index[p]] = Some(answer);
        }
        Delivery::of(results, started.elapsed(), calls.into_inner() as u64)
    }

    /// One `PutEvents`; one result per event, in order.
    async fn put(&self, batch: &[&Prepared]) -> Vec<Result<(), Failure>> {
        let entries: Vec<PutEventsRequestEntry> = batch
            .iter()
            .map(|p| {
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.config.event_bus_arn)
                    .source(&self.config.source)
                    .detail_type(&p.detail_type)
                    .detail(&p.detail)
                    .build()
            })
            .collect();
        let out = match self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let f = classify_sdk_error(&e);
                let f = Failure {
                    detail: format!("PutEvents: {}", f.detail),
                    ..f
                };
                return vec![Err(f); batch.len()];
            }
        };
        let answered = out.entries();
        (0..batch.len())
            .map(|i| match answered.get(i) {
                None => Err(Failure::retryable("put_events", "no answer for this entry")),
                Some(e) => match e.error_code() {
                    None => Ok(()),
                    Some(code) => Err(entry_failure(code, e.error_message().unwrap_or(""))),
                },
            })
            .collect()
    }
}

/// An entry's `ErrorCode`: throttled or an internal failure is worth
/// another try; anything else (a bad detail, a missing bus, access denied)
/// is not.
fn entry_failure(code: &str, message: &str) -> Failure {
    let detail = format!("PutEvents entry: {code}: {message}");
    match code {
        "ThrottlingException" | "InternalFailure" | "InternalException" => {
            Failure::retryable("throttled", detail)
        }
        _ => Failure::permanent("refused", detail),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

    use super::*;
    use alert_envelope::{Source, Status};

    fn config() -> EventBridgeConfig {
        serde_yaml::from_str(
            "event_bus_arn: arn:aws:events:us-east-1:123456789012:event-bus/alerts\n",
        )
        .unwrap()
    }

    fn sink(rules: &[&Rule]) -> EventBridgeSink {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::Sequential);
        for r in rules {
            interceptor = interceptor.with_rule(r);
        }
        let client = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_eventbridge::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_eventbridge::config::Credentials::new(
                    "a", "b", None, None, "t",
                ))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        );
        EventBridgeSink::new(config(), client)
    }

    fn env(i: usize) -> Envelope {
        Envelope::new(
            Source::Alertmanager,
            "prod",
            Status::Firing,
            format!("{i:016x}"),
            "2026-12-02T10:00:00Z".parse().unwrap(),
            Default::default(),
        )
    }

    fn ok() -> PutEventsResultEntry {
        PutEventsResultEntry::builder().event_id("e").build()
    }

    fn failed(code: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder()
            .error_code(code)
            .error_message("said no")
            .build()
    }

    #[tokio::test]
    async fn a_failed_entry_is_retried_alone_and_a_refused_one_is_not() {
        let first = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| r.entries().len() == 3)
            .then_output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(2)
                    .entries(ok())
                    .entries(failed("ThrottlingException"))
                    .entries(failed("MalformedDetail"))
                    .build()
            });
        let again = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| {
                r.entries().len() == 1
                    && r.entries()[0]
                        .detail()
                        .unwrap_or("")
                        .contains("0000000000000001")
            })
            .then_output(|| PutEventsOutput::builder().entries(ok()).build());
        let sink = sink(&[&first, &again]);
        let envs = [env(0), env(1), env(2)];
        let refs: Vec<&Envelope> = envs.iter().collect();
        let retry = RetryStage::new(Duration::from_millis(1), Duration::from_millis(5));
        let deadline = Deadline::within(Duration::from_secs(5));
        let d = sink.deliver(&refs, &deadline, &retry).await;
        assert_eq!(
            (first.num_calls(), again.num_calls(), d.aws_calls),
            (1, 1, 2)
        );
        assert!(d.outcomes[0].result.is_ok());
        assert!(d.outcomes[1].result.is_ok(), "retried alone, then accepted");
        let refused = d.outcomes[2].result.as_ref().unwrap_err();
        assert!(
            !refused.is_retryable() && refused.detail.contains("MalformedDetail"),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn an_oversized_envelope_goes_cut_and_valid() {
        let put = mock!(aws_sdk_eventbridge::Client::put_events)
            .match_requests(|r| {
                let detail = r.entries()[0].detail().unwrap_or("");
                let entry = 14 + "alert-manager".len() + "Alert Firing".len() + detail.len();
                entry <= sns::MAX_MESSAGE_BYTES
                    && Envelope::from_json(detail).is_ok_and(|e| e.truncated)
            })
            .then_output(|| PutEventsOutput::builder().entries(ok()).build());
        let sink = sink(&[&put]);
        let mut big = env(0);
        big.annotations
            .insert("description".into(), "x".repeat(300 * 1024));
        let retry = RetryStage::new(Duration::from_millis(1), Duration::from_millis(5));
        let d = sink
            .deliver(&[&big], &Deadline::within(Duration::from_secs(5)), &retry)
            .await;
        assert_eq!(
            put.num_calls(),
            1,
            "the one call matched: cut, valid, within 256 KiB"
        );
        assert!(d.outcomes[0].result.is_ok());
    }
}
