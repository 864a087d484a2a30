//! `alert-envelope`: the versioned wire contract between the alert-manager
//! agent, the enricher Lambda and every downstream subscriber.
//!
//! - [`webhook`]: Alertmanager webhook v4 payloads, as Alertmanager sends them.
//! - [`Envelope`]: one JSON message per alert, schema `alert-manager/v1`.
//! - [`sns`]: the SNS rules every publisher applies (attributes, subject,
//!   fit-to-size, FIFO ids, batch planning).
//! - [`schema`]: the JSON Schema of the envelope, committed at
//!   `docs/envelope.schema.json`.
//!
//! No I/O happens here.

pub mod alarm;
mod enrichment;
mod envelope;
mod id;
pub mod schema;
pub mod sns;
pub mod webhook;

pub use envelope::{
    AwsContext, CloudWatchEnrichment, Ec2Enrichment, Enrichment, EnrichmentError, Envelope,
    EnvelopeError, InStorm, KubernetesContext, MetricPoint, MetricSummary, Muted, SCHEMA_MAJOR,
    SCHEMA_V1, Severity, Source, Status, derive_id, label_fingerprint, schema_major,
};
