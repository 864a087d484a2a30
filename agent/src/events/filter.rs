//! Which Warning events become alerts: namespace, reason, count and age.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;

/// Reasons published when no `--event-reasons` are given.
pub const DEFAULT_REASONS: &[&str] = &[
    "BackOff",
    "FailedScheduling",
    "OOMKilling",
    "NodeNotReady",
    "FailedMount",
    "FailedAttachVolume",
    "Evicted",
    "FailedCreatePodSandBox",
];

/// Which Warning events become alerts.
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// Only these namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Never these namespaces.
    pub exclude_namespaces: Vec<String>,
    /// Only these reasons (empty: all).
    pub reasons: Vec<String>,
    /// Never these reasons.
    pub exclude_reasons: Vec<String>,
    /// Minimum occurrence count (series count, or the legacy count).
    pub min_count: u32,
    /// Events last seen longer ago than this are ignored, so a restart does
    /// not replay the cluster's event history.
    pub max_age: Duration,
}

impl Default for EventFilter {
    fn default() -> Self {
        EventFilter {
            namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            reasons: DEFAULT_REASONS.iter().map(|r| r.to_string()).collect(),
            exclude_reasons: Vec::new(),
            min_count: 1,
            max_age: Duration::from_secs(300),
        }
    }
}

/// Why an event did not become an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Not a Warning.
    NotWarning,
    /// Namespace filtered out.
    Namespace,
    /// Reason filtered out.
    Reason,
    /// Count below the minimum.
    Count,
    /// Last seen before the age cut-off.
    TooOld,
}

impl Skip {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NotWarning => "not_warning",
            Skip::Namespace => "namespace_filtered",
            Skip::Reason => "reason_filtered",
            Skip::Count => "below_min_count",
            Skip::TooOld => "too_old",
        }
    }
}

/// How many times the event has happened: the series count, else the legacy count, else 1.
pub fn event_count(ev: &Event) -> u32 {
    ev.series
        .as_ref()
        .map(|s| s.count)
        .or(ev.deprecated_count)
        .filter(|c| *c > 0)
        .map_or(1, |c| c as u32)
}

/// When the event was last observed.
pub fn last_seen(ev: &Event) -> Option<Timestamp> {
    ev.series
        .as_ref()
        .map(|s| s.last_observed_time.0)
        .or(ev.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or(ev.event_time.as_ref().map(|t| t.0))
        .or(ev.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// When the event first happened.
pub fn first_seen(ev: &Event) -> Option<Timestamp> {
    ev.event_time
        .as_ref()
        .map(|t| t.0)
        .or(ev.deprecated_first_timestamp.as_ref().map(|t| t.0))
        .or(ev.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

pub(super) fn event_namespace(ev: &Event) -> Option<&str> {
    ev.regarding
        .as_ref()
        .and_then(|r| r.namespace.as_deref())
        .or(ev.metadata.namespace.as_deref())
        .filter(|n| !n.is_empty())
}

impl EventFilter {
    /// `Ok` when the event should become an alert at `now`.
    pub fn check(&self, ev: &Event, now: Timestamp) -> Result<(), Skip> {
        if ev.type_.as_deref() != Some("Warning") {
            return Err(Skip::NotWarning);
        }
        let ns = event_namespace(ev).unwrap_or("");
        if (!self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == ns))
            || self.exclude_namespaces.iter().any(|n| n == ns)
        {
            return Err(Skip::Namespace);
        }
        let reason = ev.reason.as_deref().unwrap_or("");
        if (!self.reasons.is_empty() && !self.reasons.iter().any(|r| r == reason))
            || self.exclude_reasons.iter().any(|r| r == reason)
        {
            return Err(Skip::Reason);
        }
        if event_count(ev) < self.min_count {
            return Err(Skip::Count);
        }
        let max_age = jiff::SignedDuration::try_from(self.max_age).unwrap_or_default();
        match last_seen(ev) {
            Some(t) if now.duration_since(t) <= max_age => Ok(()),
            _ => Err(Skip::TooOld),
        }
    }
}
