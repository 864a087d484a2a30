//! Kubernetes Warning events as a second alert source (`source = kubernetes-event`).
//!
//! Pipeline: watcher (`events.k8s.io/v1`, `type=Warning`) → filter (namespace,
//! reason, count, age) → per-object rate limit → bounded buffer → publisher.
//! Only the replica holding the lease runs it (see [`crate::leader`]).
//!
//! Invariants:
//! - A repeating event (same object and reason) keeps one fingerprint, so
//!   downstream it is one alert. Its id is the event object's (uid) and its
//!   series count: a repeat is a new message, a re-delivery of the same
//!   count is not, and two event objects are never one message.
//! - Nothing is dropped silently: every event that does not become a message
//!   is counted in `alert_manager_agent_events_dropped{reason}` and, when the
//!   buffer overflows or SNS refuses, logged.

mod buffer;
mod envelope;
mod filter;
mod publish;
mod rate_limit;
pub mod watermark;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::events::v1::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

pub use buffer::{EventBuffer, OverflowPolicy};
pub use envelope::event_envelope;
pub use filter::{DEFAULT_REASONS, EventFilter, Skip, event_count, first_seen, last_seen};
pub use rate_limit::RateLimiter;
pub use watermark::Watermark;

use crate::context::ClusterContext;
use crate::metrics::Metrics;
use crate::recent::RecentIds;
use alert_aws::SnsPublisher;

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
    /// The AWS account put into every envelope.
    pub account: crate::account::Account,
    /// Ids SNS accepted lately: a relist does not publish them again.
    pub recent: Arc<RecentIds>,
    /// How far this leader (and the one before) has published.
    pub watermark: Arc<Watermark>,
}

impl EventPipeline {
    /// Turns one watched event into a buffered envelope, or counts why not.
    pub async fn accept(&self, ev: &Event, limiter: &mut RateLimiter, now: Timestamp) {
        self.metrics.events().seen();
        if let Err(skip) = self.filter.check(ev, now) {
            self.metrics.events().dropped(skip.as_str(), 1);
            return;
        }
        let mut env = event_envelope(&self.cluster, ev);
        let seen = last_seen(ev).unwrap_or(now);
        if self.recent.contains(&env.id) || self.watermark.inherited_covers(seen, &env.id) {
            // A relist (or a new leader's list) replays the last
            // EVENT_MAX_AGE_SECONDS of events; these are published already,
            // and must not use up the object's rate.
            self.metrics.already_published(1);
            return;
        }
        let object = format!(
            "{}/{}/{}",
            env.labels.get("kind").map_or("", String::as_str),
            env.labels.get("namespace").map_or("", String::as_str),
            env.labels.get("name").map_or("", String::as_str)
        );
        if !limiter.allow(&object, Instant::now()) {
            self.metrics.events().dropped("rate_limited", 1);
            tracing::debug!(object, reason = %env.alertname, "event rate-limited");
            return;
        }
        if let Some(ctx) = &self.context {
            ctx.annotate(&mut env).await;
        }
        self.account.stamp(&mut env);
        self.metrics.alert_received("kubernetes-event", 1);
        self.watermark.queued(&env.id, seen);
        if let Some(dropped) = self.buffer.push(env) {
            self.watermark.finished(&dropped.id);
            self.metrics.events().dropped("buffer_full", 1);
            tracing::warn!(
                id = %dropped.id,
                alertname = %dropped.alertname,
                "event buffer full; dropped an alert (raise EVENT_BUFFER_SIZE or check SNS)"
            );
        }
        self.metrics.events().buffer_depth(self.buffer.len());
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
                    self.metrics.context().watch_error("event");
                    tracing::warn!(error = %e, "event watch failed; retrying with backoff");
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
                self.metrics.events().dropped("lost_leadership", forgotten);
            }
            self.metrics.events().buffer_depth(0);
            tracing::info!(
                forgotten,
                "no longer leading: stopped publishing Kubernetes events"
            );
        }
    }
}
