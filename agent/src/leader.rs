//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one
//! replica publishes Kubernetes events (every replica serves the webhook).
//!
//! The protocol is client-go's: the holder renews `renewTime` every
//! `retry_period`; another replica takes over only once the lease record has
//! not changed for `leaseDurationSeconds`, timed by its own clock from the
//! moment it first saw that record (not by comparing its wall clock with the
//! holder's `renewTime`, so clock skew between nodes does not matter).
//! Writes carry the `resourceVersion` read, so two replicas racing for an
//! expired lease cannot both win (the API server answers 409 to the loser).
//!
//! A leader steps down on a timer `renew_deadline` after the start of its
//! last successful renewal, whether or not a request is still pending; every
//! request has a timeout. The deadline, a retry and a request timeout fit
//! inside the lease duration, so the old leader has stopped before a
//! follower's lease duration from the renewal it saw can end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::events::watermark::{ANNOTATION, Mark, Watermark};
use crate::metrics::Metrics;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Namespace of the lease: the agent's own.
    pub namespace: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down.
    pub renew_deadline: Duration,
    /// How often to renew or try to acquire.
    pub retry_period: Duration,
    /// The longest one request to the API server may take.
    pub request_timeout: Duration,
}

/// The shortest lease duration: its fifth (the retry period and the request
/// timeout) must leave a request to the API server a second or more.
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(10);

impl LeaseConfig {
    /// Timings derived from the lease duration: renew deadline 1/2, retry
    /// period and request timeout 1/5 each, so that the three fit inside it.
    pub fn new(name: String, namespace: String, identity: String, duration: Duration) -> Self {
        LeaseConfig {
            name,
            namespace,
            identity,
            lease_duration: duration,
            renew_deadline: duration / 2,
            retry_period: (duration / 5).max(Duration::from_millis(100)),
            request_timeout: (duration / 5).max(Duration::from_millis(100)),
        }
    }
}

/// The lease record as last seen, and when this replica first saw it.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    record: LeaseSpec,
    at: Instant,
}

/// One replica's side of the election.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Arc<Mutex<Option<Observed>>>,
    /// True while this process is in a term of its own (a restarted
    /// container keeps its pod name, so holding the lease is not enough).
    in_term: Arc<AtomicBool>,
    watermark: Option<Arc<Watermark>>,
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// We hold the lease (acquired or renewed).
    Leading,
    /// Someone else holds a valid lease (or won a race).
    Following {
        /// The holder, if known.
        holder: Option<String>,
    },
}

impl LeaderElector {
    /// An elector over the lease in `config.namespace`.
    pub fn new(client: Client, config: LeaseConfig) -> LeaderElector {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Arc::new(Mutex::new(None)),
            in_term: Arc::new(AtomicBool::new(false)),
            watermark: None,
        }
    }

    /// Carries the events' watermark in the Lease: written at every
    /// renewal, taken over at the start of a term.
    pub fn with_watermark(mut self, watermark: Arc<Watermark>) -> LeaderElector {
        self.watermark = Some(watermark);
        self
    }

    fn start_term(&self, lease: Option<&ObjectMeta>) {
        if let Some(w) = &self.watermark {
            let mark = lease
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get(ANNOTATION))
                .and_then(|v| Mark::decode(v));
            tracing::info!(published_through = ?mark.as_ref().map(|m| m.through), "new term: events the previous leader finished are not published again");
            w.inherit(mark);
        }
        self.in_term.store(true, Ordering::SeqCst);
    }

    fn end_term(&self) {
        self.in_term.store(false, Ordering::SeqCst);
    }

    /// When this replica first saw `record` (now, if it differs from the last one seen).
    fn observe(&self, record: &LeaseSpec) -> Instant {
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match &*observed {
            Some(o) if o.record == *record => o.at,
            _ => {
                let at = Instant::now();
                *observed = Some(Observed {
                    record: record.clone(),
                    at,
                });
                at
            }
        }
    }

    /// Acquires, renews or observes the lease once, at `now`.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<Attempt, kube::Error> {
        let me = &self.config.identity;
        let duration_secs = i32::try_from(self.config.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let Some(current) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.start_term(None);
                    Ok(Attempt::Leading)
                }
                Err(e) if is_conflict(&e) => Ok(Attempt::Following { holder: None }),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mut next = spec.clone();
        let mut metadata = current.metadata.clone();
        let new_term = if holder.as_deref() == Some(me.as_str()) {
            next.renew_time = Some(MicroTime(now));
            next.lease_duration_seconds = Some(duration_secs);
            !self.in_term.load(Ordering::SeqCst)
        } else {
            let held_for = spec.lease_duration_seconds.unwrap_or(duration_secs).max(0) as u64;
            let seen_at = self.observe(&spec);
            let expired = holder.is_none()
                || spec.renew_time.is_none()
                || seen_at.elapsed() >= Duration::from_secs(held_for);
            if !expired {
                return Ok(Attempt::Following { holder });
            }
            next.holder_identity = Some(me.clone());
            next.lease_duration_seconds = Some(duration_secs);
            next.acquire_time = Some(MicroTime(now));
            next.renew_time = Some(MicroTime(now));
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            true
        };
        if let Some(mark) = self
            .watermark
            .as_ref()
            .filter(|_| !new_term)
            .and_then(|w| w.mark())
        {
            metadata
                .annotations
                .get_or_insert_with(Default::default)
                .insert(ANNOTATION.to_string(), mark.encode());
        }
        let lease = Lease {
            metadata,
            spec: Some(next),
        };
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if new_term {
                    self.start_term(Some(&current.metadata));
                }
                Ok(Attempt::Leading)
            }
            Err(e) if is_conflict(&e) => Ok(Attempt::Following { holder }),
            Err(e) => Err(e),
        }
    }

    /// Runs the election forever, publishing `true` on `leading` while this
    /// replica holds the lease.
    pub async fn run(self, leading: watch::Sender<bool>, metrics: std::sync::Arc<Metrics>) {
        // Start of the last successful renewal: the lease may have been
        // written at any moment after it, so the deadline counts from here.
        let mut renewed_at: Option<Instant> = None;
        loop {
            let step_down_at = renewed_at.map(|t| t + self.config.renew_deadline);
            let started = Instant::now();
            let attempt = tokio::time::timeout(
                self.config.request_timeout,
                self.try_acquire_or_renew(Timestamp::now()),
            );
            let result = tokio::select! {
                r = attempt => Some(r.unwrap_or_else(|_| Err(kube::Error::Service("lease request timed out".into())))),
                () = sleep_until_some(step_down_at) => None,
            };
            let is_leader = match result {
                None => {
                    tracing::warn!(lease = %self.config.name, "renew deadline passed with a lease request pending; stepping down");
                    renewed_at = None;
                    false
                }
                Some(Ok(Attempt::Leading)) => {
                    renewed_at = Some(started);
                    true
                }
                Some(Ok(Attempt::Following { holder })) => {
                    if *leading.borrow() {
                        tracing::warn!(holder = ?holder, "lost the lease");
                    }
                    renewed_at = None;
                    false
                }
                Some(Err(e)) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "lease request failed");
                    // Keep leading only until the renew deadline.
                    renewed_at.is_some_and(|t| Instant::now() < t + self.config.renew_deadline)
                }
            };
            self.publish(&leading, &metrics, is_leader);
            if !is_leader {
                renewed_at = None;
                self.end_term();
            }
            let step_down_at = renewed_at.map(|t| t + self.config.renew_deadline);
            tokio::select! {
                () = tokio::time::sleep(self.config.retry_period) => {}
                () = sleep_until_some(step_down_at) => {
                    tracing::warn!(lease = %self.config.name, "renew deadline passed; stepping down");
                    renewed_at = None;
                    self.end_term();
                    self.publish(&leading, &metrics, false);
                    tokio::time::sleep(self.config.retry_period).await;
                }
            }
        }
    }

    fn publish(&self, leading: &watch::Sender<bool>, metrics: &Metrics, is_leader: bool) {
        if is_leader != *leading.borrow() {
            tracing::info!(
                leader = is_leader,
                identity = %self.config.identity,
                lease = %self.config.name,
                "leadership changed"
            );
        }
        leading.send_replace(is_leader);
        metrics.events().set_leader(is_leader);
    }
}

/// Sleeps until `at`; forever when there is none.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
