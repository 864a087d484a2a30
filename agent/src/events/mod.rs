//! Kubernetes Warning events as a second alert source (`source = kubernetes-event`).
//!
//! Pipeline: watcher (`events.k8s.io/v1`, `type=Warning`) → filter (namespace,
//! reason, count, age) → per-object rate limit → bounded buffer → publisher.
//! Only the replica holding the lease runs it (see [`crate::leader`]).
//!
//! Invariants:
//! - A repeating event (same object and reason) keeps one fingerprint, so
//!   downstream it is one alert; its id changes with the series count, so a
//!   repeat is a new message while a re-delivery of the same count is not.
//! - Nothing is dropped silently: every event that does not become a message
//!   is counted in `alert_manager_agent_events_dropped{reason}` and, when the
//!   buffer overflows or SNS refuses, logged.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alert_envelope::{Envelope, Severity, Source, Status, derive_id, label_fingerprint};
use clap::ValueEnum;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::{Notify, watch};

use crate::context::ClusterContext;
use crate::metrics::Metrics;
use alert_aws::{SnsPublisher, prepare};

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

fn event_namespace(ev: &Event) -> Option<&str> {
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
    let discriminator = format!("count={count}");
    Envelope {
        schema: alert_envelope::SCHEMA_V1.to_string(),
        id: derive_id(
            cluster,
            &fingerprint,
            Status::Firing,
            starts_at,
            Some(&discriminator),
        ),
        source: Source::KubernetesEvent,
        cluster: cluster.to_string(),
        status: Status::Firing,
        alertname: reason,
        severity: Severity::Warning,
        severity_raw: Some("warning".into()),
        fingerprint,
        group_key: None,
        receiver: None,
        starts_at,
        ends_at: None,
        generator_url: None,
        external_url: None,
        truncated_alerts: 0,
        labels,
        annotations,
        kubernetes: None,
        aws: None,
        enrichment: None,
        truncated: false,
    }
}

/// Allows at most `burst` alerts per involved object per `window`, so a
/// crash-looping pod cannot flood SNS.
#[derive(Debug)]
pub struct RateLimiter {
    burst: usize,
    window: Duration,
    seen: HashMap<String, VecDeque<Instant>>,
}

/// Objects tracked before idle ones are swept.
const RATE_LIMITER_SWEEP_AT: usize = 10_000;

impl RateLimiter {
    /// A limiter of `burst` per `window` per object.
    pub fn new(burst: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            burst,
            window,
            seen: HashMap::new(),
        }
    }

    /// True when the object may send one more alert at `now` (and records it).
    pub fn allow(&mut self, object: &str, now: Instant) -> bool {
        if self.seen.len() >= RATE_LIMITER_SWEEP_AT {
            let window = self.window;
            self.seen.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let times = self.seen.entry(object.to_string()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.burst {
            return false;
        }
        times.push_back(now);
        true
    }
}

/// What the buffer does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OverflowPolicy {
    /// Drop the oldest buffered alert to make room (default: recent events matter most).
    DropOldest,
    /// Drop the incoming alert.
    DropNewest,
}

/// A bounded queue between the watcher and the publisher.
#[derive(Debug)]
pub struct EventBuffer {
    queue: Mutex<VecDeque<Envelope>>,
    capacity: usize,
    policy: OverflowPolicy,
    notify: Notify,
}

impl EventBuffer {
    /// A buffer of `capacity` envelopes.
    pub fn new(capacity: usize, policy: OverflowPolicy) -> EventBuffer {
        EventBuffer {
            queue: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
            capacity: capacity.max(1),
            policy,
            notify: Notify::new(),
        }
    }

    /// Adds an envelope; returns the one dropped to keep the bound, if any.
    pub fn push(&self, env: Envelope) -> Option<Envelope> {
        let dropped = match self.queue.lock() {
            Ok(mut q) => {
                if q.len() < self.capacity {
                    q.push_back(env);
                    None
                } else {
                    match self.policy {
                        OverflowPolicy::DropOldest => {
                            let old = q.pop_front();
                            q.push_back(env);
                            old
                        }
                        OverflowPolicy::DropNewest => Some(env),
                    }
                }
            }
            Err(_) => Some(env),
        };
        self.notify.notify_one();
        dropped
    }

    /// Up to `max` envelopes, waiting until there is at least one.
    pub async fn pop_batch(&self, max: usize) -> Vec<Envelope> {
        loop {
            let notified = self.notify.notified();
            if let Ok(mut q) = self.queue.lock()
                && !q.is_empty()
            {
                let n = q.len().min(max);
                return q.drain(..n).collect();
            }
            notified.await;
        }
    }

    /// Buffered envelopes.
    pub fn len(&self) -> usize {
        self.queue.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Empties the buffer, returning how many were dropped.
    pub fn clear(&self) -> usize {
        self.queue
            .lock()
            .map(|mut q| {
                let n = q.len();
                q.clear();
                n
            })
            .unwrap_or(0)
    }
}

/// Everything the event pipeline needs.
#[derive(Clone)]
pub struct EventPipeline {
    /// Cluster name.
    pub cluster: String,
    /// Filters.
    pub filter: Arc<EventFilter>,
    /// Per-object limit: alerts per window.
    pub rate_burst: usize,
    /// Per-object limit: the window.
    pub rate_window: Duration,
    /// The buffer.
    pub buffer: Arc<EventBuffer>,
    /// SNS.
    pub publisher: SnsPublisher,
    /// Cluster context for the involved object.
    pub context: Option<ClusterContext>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

impl EventPipeline {
    /// Turns one watched event into a buffered envelope, or counts why not.
    pub async fn accept(&self, ev: &Event, limiter: &mut RateLimiter, now: Timestamp) {
        self.metrics.event_seen();
        if let Err(skip) = self.filter.check(ev, now) {
            self.metrics.event_dropped(skip.as_str());
            return;
        }
        let mut env = event_envelope(&self.cluster, ev);
        let object = format!(
            "{}/{}/{}",
            env.labels.get("kind").map_or("", String::as_str),
            env.labels.get("namespace").map_or("", String::as_str),
            env.labels.get("name").map_or("", String::as_str)
        );
        if !limiter.allow(&object, Instant::now()) {
            self.metrics.event_dropped("rate_limited");
            tracing::debug!(object, reason = %env.alertname, "event rate-limited");
            return;
        }
        if let Some(ctx) = &self.context {
            ctx.annotate(&mut env).await;
        }
        self.metrics.alert_received("kubernetes-event", 1);
        if let Some(dropped) = self.buffer.push(env) {
            self.metrics.event_dropped("buffer_full");
            tracing::warn!(
                id = %dropped.id,
                alertname = %dropped.alertname,
                "event buffer full; dropped an alert (raise EVENT_BUFFER_SIZE or check SNS)"
            );
        }
        self.metrics.event_buffer_depth(self.buffer.len());
    }

    /// Watches Warning events and feeds the buffer until the stream ends.
    pub async fn watch(&self, client: Client) {
        let api: Api<Event> = Api::all(client);
        let cfg = watcher::Config::default().fields("type=Warning");
        let mut limiter = RateLimiter::new(self.rate_burst, self.rate_window);
        let stream = watcher(api, cfg).default_backoff().applied_objects();
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => self.accept(&ev, &mut limiter, Timestamp::now()).await,
                Err(e) => {
                    self.metrics.watch_error("event");
                    tracing::warn!(error = %e, "event watch failed; retrying with backoff");
                }
            }
        }
    }

    /// Publishes buffered envelopes, retrying with backoff until SNS takes
    /// them. A refused envelope is dropped, counted and logged.
    pub async fn publish_forever(&self) {
        use backon::BackoffBuilder;
        let fifo = self.publisher.is_fifo();
        loop {
            let batch = self.buffer.pop_batch(10).await;
            self.metrics.event_buffer_depth(self.buffer.len());
            let mut pending = Vec::with_capacity(batch.len());
            for env in batch {
                let id = env.id.clone();
                match prepare(env, fifo) {
                    Ok(p) => pending.push(p),
                    Err(e) => {
                        self.metrics.failed("too_large", 1);
                        tracing::error!(%id, error = %e, "event alert too large for SNS; dropped");
                    }
                }
            }
            let mut backoff = backon::ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(30))
                .with_jitter()
                .without_max_times()
                .build();
            while !pending.is_empty() {
                let outcome = self.publisher.publish(&pending).await;
                self.metrics.published(outcome.accepted.len());
                for (i, c) in &outcome.permanent {
                    self.metrics.failed(c.reason, 1);
                    if let Some(p) = pending.get(*i) {
                        tracing::error!(id = %p.id, reason = c.reason, detail = %c.detail, "SNS refused an event alert; dropped");
                    }
                }
                let retry: Vec<usize> = outcome.retryable.iter().map(|(i, _)| *i).collect();
                if let Some((_, c)) = outcome.retryable.first() {
                    tracing::warn!(alerts = retry.len(), reason = c.reason, detail = %c.detail, "event alerts not accepted yet; retrying");
                }
                pending = pending
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| retry.contains(i))
                    .map(|(_, p)| p)
                    .collect();
                if !pending.is_empty() {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(30));
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Runs watcher and publisher while this replica leads; stops both within
    /// a moment of losing the lease and forgets what it buffered (the next
    /// leader re-lists, and ids are deterministic).
    pub async fn run_while_leader(self, client: Client, mut leader: watch::Receiver<bool>) {
        loop {
            if leader.wait_for(|l| *l).await.is_err() {
                return;
            }
            tracing::info!("leading: publishing Kubernetes events");
            tokio::select! {
                _ = self.watch(client.clone()) => {}
                _ = self.publish_forever() => {}
                _ = leader.wait_for(|l| !*l) => {}
            }
            let forgotten = self.buffer.clear();
            if forgotten > 0 {
                self.metrics.event_dropped_n("lost_leadership", forgotten);
            }
            self.metrics.event_buffer_depth(0);
            tracing::info!(
                forgotten,
                "no longer leading: stopped publishing Kubernetes events"
            );
        }
    }
}
