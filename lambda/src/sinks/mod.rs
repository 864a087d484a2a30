//! Where enriched alerts go. Every sink has the same shape, as Vector's sinks
//! and Alertmanager's integrations do:
//! - a `Config` (serde, `deny_unknown_fields`, a doc on every field) with
//!   `validate()`, whose error names the field;
//! - a sink built once per loaded routing table, holding its client;
//! - `deliver`, which takes the envelopes routed to it and answers one
//!   [`Outcome`] per envelope.
//!
//! Sinks never retry on their own: one attempt says retryable or permanent
//! ([`alert_aws::Failure`]) and [`alert_aws::RetryStage`] retries, bounded by
//! the invocation's [`alert_aws::Deadline`]. Adding a sink is one file here
//! and one arm in [`SinkConfig`] and [`Sink`].
//!
//! Secrets (Slack URL, PagerDuty routing key, HMAC key) are [`SecretRef`]s,
//! fetched through [`SecretStore`] and never formatted into a log line or an
//! error: HTTP errors are reported without their URL.

pub mod eventbridge;
pub mod http;
pub mod pagerduty;
pub mod slack;
pub mod slack_api;
pub mod slack_app;
pub mod sns;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use alert_aws::{ConfigError, Deadline, Failure, RetryStage};
use alert_envelope::Envelope;
use serde::Deserialize;

pub use eventbridge::{EventBridgeConfig, EventBridgeSink};
pub use http::HttpClient;
pub use pagerduty::{PagerDutyConfig, PagerDutySink};
pub use slack::{SlackConfig, SlackSink};
pub use slack_app::{SlackAppConfig, SlackAppSink};
pub use sns::{SnsSink, SnsSinkConfig};
pub use webhook::{WebhookConfig, WebhookSink};

use crate::secrets::{SecretRef, SecretStore};
use crate::state::SinkRecord;
use crate::storm::SummaryRecord;
use crate::storm::summary::Summary;

/// A sink as declared in the routing document, by `type`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkConfig {
    /// An SNS topic (PublishBatch, envelope attributes for filter policies).
    Sns(SnsSinkConfig),
    /// An EventBridge bus (PutEvents, the envelope as `detail`).
    Eventbridge(EventBridgeConfig),
    /// A Slack incoming webhook.
    Slack(SlackConfig),
    /// Slack as an app (Web API, bot token): one message per alert's life.
    #[serde(rename = "slack_app")]
    SlackApp(SlackAppConfig),
    /// PagerDuty Events API v2.
    Pagerduty(PagerDutyConfig),
    /// A signed HTTP webhook.
    Webhook(WebhookConfig),
}

impl SinkConfig {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self {
            SinkConfig::Sns(c) => c.topic().map(drop),
            SinkConfig::Eventbridge(c) => c.validate(),
            SinkConfig::Slack(c) => c.validate(),
            SinkConfig::SlackApp(c) => c.validate(),
            SinkConfig::Pagerduty(c) => c.validate(),
            SinkConfig::Webhook(c) => c.validate(),
        }
    }

    /// `sns`, `eventbridge`, `slack`, `slack_app`, `pagerduty` or `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            SinkConfig::Sns(_) => "sns",
            SinkConfig::Eventbridge(_) => "eventbridge",
            SinkConfig::Slack(_) => "slack",
            SinkConfig::SlackApp(_) => "slack_app",
            SinkConfig::Pagerduty(_) => "pagerduty",
            SinkConfig::Webhook(_) => "webhook",
        }
    }
}

/// The clients sinks are built over, made once at init.
#[derive(Debug, Clone)]
pub struct SinkClients {
    /// SNS, for the SNS sinks.
    pub sns: aws_sdk_sns::Client,
    /// EventBridge, for the EventBridge sinks; `None` refuses them.
    pub eventbridge: Option<aws_sdk_eventbridge::Client>,
    /// HTTP, for the others (built on first use).
    pub http: HttpClient,
    /// Where the HTTP sinks' secrets come from; `None` refuses them.
    pub secrets: Option<Arc<SecretStore>>,
    /// The Slack Web API base URL (`SLACK_API_URL`).
    pub slack_api: String,
}

/// What happened to one envelope at one sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Accepted, or the final failure after the retry stage.
    pub result: Result<(), Failure>,
    /// Time to that result, retries included.
    pub latency: Duration,
    /// What the sink's record in the alert state becomes (Slack app: the
    /// message's channel and `ts`); `None` leaves it as it was.
    pub receipt: Option<SinkRecord>,
}

/// A sink's answer for the envelopes given to it.
#[derive(Debug, Default)]
pub struct Delivery {
    /// One per envelope, in the order given.
    pub outcomes: Vec<Outcome>,
    /// AWS calls made (PublishBatch), for the call budget.
    pub aws_calls: u64,
}

impl Delivery {
    /// One outcome per envelope of a batched sink (SNS, EventBridge): each
    /// its result, or, when the deadline left it none, expired; all with
    /// the batch's latency.
    pub fn of(
        results: Vec<Option<Result<(), Failure>>>,
        latency: Duration,
        aws_calls: u64,
    ) -> Delivery {
        Delivery {
            outcomes: results
                .into_iter()
                .map(|r| Outcome {
                    result: r.unwrap_or_else(|| Err(Deadline::expired())),
                    latency,
                    receipt: None,
                })
                .collect(),
            aws_calls,
        }
    }
}

/// A sink ready to deliver.
#[derive(Debug, Clone)]
pub enum Sink {
    /// An SNS topic.
    Sns(SnsSink),
    /// An EventBridge bus.
    EventBridge(EventBridgeSink),
    /// Slack, incoming webhook.
    Slack(SlackSink),
    /// Slack, app.
    SlackApp(SlackAppSink),
    /// PagerDuty.
    PagerDuty(PagerDutySink),
    /// Signed webhook.
    Webhook(WebhookSink),
}

impl Sink {
    /// Whether it is a machines' sink (SNS, EventBridge): it gets every
    /// envelope, muted, held, stale or absorbed by a storm as well.
    pub fn is_machines(&self) -> bool {
        matches!(self, Sink::Sns(_) | Sink::EventBridge(_))
    }

    /// Builds the sink a config describes.
    pub fn build(config: &SinkConfig, clients: &SinkClients) -> Result<Sink, ConfigError> {
        let secrets = || clients.secrets.clone();
        Ok(match config {
            SinkConfig::Sns(c) => Sink::Sns(SnsSink::new(c.topic()?, clients.sns.clone())),
            SinkConfig::Eventbridge(c) => {
                let client = clients.eventbridge.clone().ok_or_else(|| {
                    ConfigError::new(
                        "type",
                        "eventbridge: this enricher has no EventBridge client",
                    )
                })?;
                Sink::EventBridge(EventBridgeSink::new(c.clone(), client))
            }
            SinkConfig::Slack(c) => {
                Sink::Slack(SlackSink::new(c.clone(), clients.http.clone(), secrets()))
            }
            SinkConfig::SlackApp(c) => Sink::SlackApp(SlackAppSink::new(
                c.clone(),
                &clients.slack_api,
                clients.http.clone(),
                secrets(),
            )?),
            SinkConfig::Pagerduty(c) => Sink::PagerDuty(PagerDutySink::new(
                c.clone(),
                clients.http.clone(),
                secrets(),
            )),
            SinkConfig::Webhook(c) => {
                Sink::Webhook(WebhookSink::new(c.clone(), clients.http.clone(), secrets()))
            }
        })
    }

    /// Every sink a routing table declares, plus `enriched` (the topic of
    /// `ENRICHED_TOPIC_ARN`) unless the table declares its own.
    pub fn for_table(
        table: &crate::routing::RoutingTable,
        enriched: &alert_aws::TopicArn,
        clients: &SinkClients,
    ) -> crate::deliver::Sinks {
        let mut sinks = crate::deliver::Sinks::new();
        for (name, config) in &table.sinks {
            // Parsing the table validated every sink, so this does not fail;
            // a sink that did would be refused per envelope as unknown.
            match Sink::build(config, clients) {
                Ok(sink) => {
                    sinks.insert(name.clone(), sink);
                }
                Err(e) => tracing::error!(sink = %name, error = %e, "sink not built"),
            }
        }
        sinks
            .entry(crate::routing::ENRICHED_SINK.to_string())
            .or_insert_with(|| Sink::Sns(SnsSink::new(enriched.clone(), clients.sns.clone())));
        sinks
    }

    /// Delivers `envelopes`, retrying within `deadline`. `priors` holds,
    /// per envelope, this sink's record in the alert state (what it was
    /// sent before), or `None`.
    pub async fn deliver(
        &self,
        envelopes: &[&Envelope],
        priors: &[Option<SinkRecord>],
        deadline: &Deadline,
        retry: &RetryStage,
    ) -> Delivery {
        let none = |r: Result<(), Failure>| r.map(|()| None);
        match self {
            Sink::Sns(s) => s.deliver(envelopes, deadline, retry).await,
            Sink::EventBridge(s) => s.deliver(envelopes, deadline, retry).await,
            Sink::Slack(s) => {
                http::delivery(envelopes, deadline, retry, |i, t| async move {
                    none(s.attempt(envelopes[i], t).await)
                })
                .await
            }
            Sink::SlackApp(s) => {
                http::delivery(envelopes, deadline, retry, |i, t| async move {
                    let prior = priors.get(i).and_then(Option::as_ref);
                    s.attempt(envelopes[i], prior, t).await
                })
                .await
            }
            Sink::PagerDuty(s) => {
                http::delivery(envelopes, deadline, retry, |i, t| async move {
                    none(s.attempt(envelopes[i], t).await)
                })
                .await
            }
            Sink::Webhook(s) => {
                http::delivery(envelopes, deadline, retry, |i, t| async move {
                    none(s.attempt(envelopes[i], t).await)
                })
                .await
            }
        }
    }
}

impl Sink {
    /// Sends one update of a storm's summary through the retry stage, and
    /// answers the sink's record of it. Slack's incoming webhooks cannot
    /// edit a message, so they get the first summary and the final one only.
    pub async fn summarize(
        &self,
        summary: &Summary,
        prior: &SummaryRecord,
        deadline: &Deadline,
        retry: &RetryStage,
    ) -> Result<SummaryRecord, Failure> {
        let closed = summary.status == "closed";
        retry
            .run(deadline, http::ATTEMPT_TIMEOUT, |timeout| async move {
                match self {
                    // Machines' sinks get every envelope, never a summary.
                    Sink::Sns(_) | Sink::EventBridge(_) => {}
                    Sink::Slack(s) if prior.updates == 0 || closed => {
                        s.post(&summary.slack(), timeout).await?
                    }
                    Sink::Slack(_) => {}
                    Sink::SlackApp(s) => return s.summarize(summary, prior, timeout).await,
                    Sink::PagerDuty(s) => s.send(|key| summary.pagerduty(key), timeout).await?,
                    Sink::Webhook(s) => {
                        let body = serde_json::to_vec(summary)
                            .map_err(|e| Failure::permanent("encode", e.to_string()))?;
                        let id = format!("{}#{}", summary.key, summary.update);
                        s.post(body, &id, timeout).await?
                    }
                }
                Ok(prior.clone())
            })
            .await
    }
}

/// The secret a sink needs, or the failure that explains why it has none.
pub(crate) async fn secret(
    store: Option<&SecretStore>,
    r: &SecretRef,
    timeout: Duration,
) -> Result<crate::secrets::Secret, Failure> {
    match store {
        Some(store) => store.get(r, timeout).await,
        None => Err(Failure::permanent(
            "secret_unset",
            "no secret store configured",
        )),
    }
}

/// Validates a secret reference field.
pub(crate) fn validate_secret(field: &str, r: &SecretRef) -> Result<(), ConfigError> {
    r.validate().map_err(|m| ConfigError::new(field, m))
}
