//! The invocation shapes: SQS (raw or SNS-wrapped bodies), direct SNS, and
//! the scheduled tick (`{"alert-manager": "tick"}`).

use serde::Deserialize;
use serde_json::Value;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

use crate::Error;
use crate::deliver::BatchReport;

/// Where the records came from; decides how failures are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// SQS event source mapping: partial batch failures.
    Sqs,
    /// Direct SNS subscription: an error means async retry.
    Sns,
    /// The scheduled tick: hand the envelopes whose maintenance window
    /// ended to people's sinks. Its records come from the state store.
    Tick,
}

/// One record: its message id and the envelope JSON it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// SQS `messageId` or SNS `MessageId`; reported back in batch item failures.
    pub message_id: String,
    /// The envelope JSON.
    pub body: String,
    /// SQS FIFO `MessageGroupId`: records of one group are delivered in
    /// order, and none after a failed one.
    pub group: Option<String>,
}

/// Reads an invocation payload into records.
pub fn parse(payload: &Value) -> Result<(EventKind, Vec<Record>), Error> {
    if let Some(what) = payload.get("alert-manager") {
        return match what.as_str() {
            Some("tick") => Ok((EventKind::Tick, Vec::new())),
            _ => Err(Error::Event(format!(
                "alert-manager event {what}; the one known is {{\"alert-manager\": \"tick\"}}"
            ))),
        };
    }
    let records = payload
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Event("no Records array: expected an SQS or SNS event".into()))?;
    let source = records
        .first()
        .and_then(|r| r.get("eventSource").or_else(|| r.get("EventSource")))
        .and_then(Value::as_str)
        .unwrap_or("");
    match source {
        "aws:sqs" => {
            let event: aws_lambda_events::event::sqs::SqsEvent =
                serde_json::from_value(payload.clone())
                    .map_err(|e| Error::Event(format!("SQS event: {e}")))?;
            let records = event
                .records
                .into_iter()
                .map(|r| Record {
                    group: r.attributes.get("MessageGroupId").cloned(),
                    message_id: r.message_id.unwrap_or_default(),
                    body: unwrap_sns_notification(r.body.as_deref().unwrap_or("")),
                })
                .collect();
            Ok((EventKind::Sqs, records))
        }
        "aws:sns" => {
            let event: aws_lambda_events::event::sns::SnsEvent =
                serde_json::from_value(payload.clone())
                    .map_err(|e| Error::Event(format!("SNS event: {e}")))?;
            let records = event
                .records
                .into_iter()
                .map(|r| Record {
                    message_id: r.sns.message_id,
                    body: r.sns.message,
                    group: None,
                })
                .collect();
            Ok((EventKind::Sns, records))
        }
        "" if records.is_empty() => Ok((EventKind::Sqs, Vec::new())),
        other => Err(Error::Event(format!(
            "records from {other:?}; expected aws:sqs or aws:sns"
        ))),
    }
}

/// An SQS body from a subscription without raw delivery is the SNS
/// notification JSON; the envelope is its `Message`.
fn unwrap_sns_notification(body: &str) -> String {
    #[derive(Deserialize)]
    struct Notification {
        #[serde(rename = "Type")]
        kind: String,
        #[serde(rename = "Message")]
        message: String,
    }
    match serde_json::from_str::<Notification>(body) {
        Ok(n) if n.kind == "Notification" => n.message,
        _ => body.to_string(),
    }
}

/// The invocation's answer: for SQS an `SqsBatchResponse` naming the failed
/// records; for SNS `{}`, or an error so that Lambda's async retry applies.
pub fn response(kind: EventKind, total: usize, report: BatchReport) -> Result<Value, Error> {
    match kind {
        EventKind::Sqs => {
            let mut response = SqsBatchResponse::default();
            for item_identifier in report.failed_message_ids {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = item_identifier;
                response.batch_item_failures.push(failure);
            }
            serde_json::to_value(response).map_err(|e| Error::Event(e.to_string()))
        }
        EventKind::Sns if report.failed_message_ids.is_empty() => {
            Ok(Value::Object(Default::default()))
        }
        EventKind::Tick => Ok(serde_json::json!({
            "handed_over": total - report.failed_message_ids.len(),
            "still_held": report.failed_message_ids.len(),
        })),
        EventKind::Sns => Err(Error::Delivery {
            failed: report.failed_message_ids.len(),
            total,
            detail: report.first_failure.unwrap_or_default(),
        }),
    }
}
