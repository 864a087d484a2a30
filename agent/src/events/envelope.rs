//! One Warning event as an envelope.

use std::collections::BTreeMap;

use alert_envelope::{Envelope, Source, Status, label_fingerprint};
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;

use super::filter::{event_count, event_namespace, first_seen};

/// The envelope of one Warning event.
///
/// Labels: `alertname` (the reason), `severity=warning`, `kind`, `name`,
/// `namespace`, and `pod` or `node` for those kinds so that the cluster
/// context finds the machine behind it.
pub fn event_envelope(cluster: &str, ev: &Event) -> Envelope {
    let reason = ev.reason.clone().unwrap_or_else(|| "Unknown".into());
    let regarding = ev.regarding.clone().unwrap_or_default();
    let kind = regarding.kind.clone().unwrap_or_default();
    let name = regarding.name.clone().unwrap_or_default();
    let namespace = event_namespace(ev).map(str::to_string);

    let mut identity = BTreeMap::new();
    identity.insert("kind".to_string(), kind.clone());
    identity.insert("name".to_string(), name.clone());
    identity.insert(
        "namespace".to_string(),
        namespace.clone().unwrap_or_default(),
    );
    identity.insert("reason".to_string(), reason.clone());
    let fingerprint = label_fingerprint(&identity);

    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), reason.clone());
    labels.insert("severity".to_string(), "warning".to_string());
    labels.insert("kind".to_string(), kind.clone());
    labels.insert("name".to_string(), name.clone());
    if let Some(ns) = &namespace {
        labels.insert("namespace".to_string(), ns.clone());
    }
    match kind.as_str() {
        "Pod" => {
            labels.insert("pod".to_string(), name.clone());
        }
        "Node" => {
            labels.insert("node".to_string(), name.clone());
        }
        _ => {}
    }
    if let Some(c) = ev.reporting_controller.as_ref().filter(|c| !c.is_empty()) {
        labels.insert("reporting_controller".to_string(), c.clone());
    }
    let mut annotations = BTreeMap::new();
    if let Some(note) = ev.note.as_ref().filter(|n| !n.is_empty()) {
        annotations.insert("summary".to_string(), note.clone());
    }
    let count = event_count(ev);
    annotations.insert("count".to_string(), count.to_string());
    if let Some(name) = &ev.metadata.name {
        annotations.insert("event".to_string(), name.clone());
    }
    let starts_at = first_seen(ev).unwrap_or_else(Timestamp::now);
    // The event object, not only what it is about: two FailedMount events on
    // one pod in the same second (first_seen has one-second resolution) are
    // two objects, two messages.
    let object = ev
        .metadata
        .uid
        .as_deref()
        .or(ev.metadata.name.as_deref())
        .unwrap_or("");
    let mut env = Envelope::new(
        Source::KubernetesEvent,
        cluster,
        Status::Firing,
        fingerprint,
        starts_at,
        labels,
    )
    .with_id_discriminator(&format!("event={object};count={count}"));
    env.annotations = annotations;
    env
}
