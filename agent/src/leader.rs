//! Leader election on a `coordination.k8s.io/v1` Lease, so that only one
//! replica publishes Kubernetes events (every replica serves the webhook).
//!
//! The protocol is client-go's: the holder renews `renewTime` every
//! `retry_period`; another replica takes over only once `renewTime +
//! leaseDurationSeconds` has passed. Writes carry the `resourceVersion` read,
//! so two replicas racing for an expired lease cannot both win (the API
//! server answers 409 to the loser).
//!
//! A leader that cannot renew for `renew_deadline` (< lease duration) steps
//! down on its own, so it has stopped publishing before anyone else may take
//! over: there is never a moment with two publishers by design.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;

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
}

impl LeaseConfig {
    /// Timings derived from the lease duration as client-go does (2/3 and 1/5).
    pub fn new(name: String, namespace: String, identity: String, duration: Duration) -> Self {
        LeaseConfig {
            name,
            namespace,
            identity,
            lease_duration: duration,
            renew_deadline: duration * 2 / 3,
            retry_period: (duration / 5).max(Duration::from_millis(100)),
        }
    }
}

/// One replica's side of the election.
#[derive(Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
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
                Ok(_) => Ok(Attempt::Leading),
                Err(e) if is_conflict(&e) => Ok(Attempt::Following { holder: None }),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let mut next = spec.clone();
        if holder.as_deref() == Some(me.as_str()) {
            next.renew_time = Some(MicroTime(now));
            next.lease_duration_seconds = Some(duration_secs);
        } else {
            let held_for = spec.lease_duration_seconds.unwrap_or(duration_secs).max(0) as i64;
            let expired = match (&holder, spec.renew_time.as_ref()) {
                (None, _) | (_, None) => true,
                (Some(_), Some(renewed)) => {
                    now.duration_since(renewed.0) > jiff::SignedDuration::from_secs(held_for)
                }
            };
            if !expired {
                return Ok(Attempt::Following { holder });
            }
            next.holder_identity = Some(me.clone());
            next.lease_duration_seconds = Some(duration_secs);
            next.acquire_time = Some(MicroTime(now));
            next.renew_time = Some(MicroTime(now));
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        let lease = Lease {
            metadata: current.metadata.clone(),
            spec: Some(next),
        };
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Leading),
            Err(e) if is_conflict(&e) => Ok(Attempt::Following { holder }),
            Err(e) => Err(e),
        }
    }

    /// Runs the election forever, publishing `true` on `leading` while this
    /// replica holds the lease.
    pub async fn run(self, leading: watch::Sender<bool>, metrics: std::sync::Arc<Metrics>) {
        let mut last_renewed: Option<Instant> = None;
        loop {
            let attempt = tokio::time::timeout(
                self.config.retry_period.max(Duration::from_secs(1)),
                self.try_acquire_or_renew(Timestamp::now()),
            )
            .await
            .unwrap_or_else(|_| Err(kube::Error::Service("lease request timed out".into())));
            let is_leader = match attempt {
                Ok(Attempt::Leading) => {
                    last_renewed = Some(Instant::now());
                    true
                }
                Ok(Attempt::Following { holder }) => {
                    if *leading.borrow() {
                        tracing::warn!(holder = ?holder, "lost the lease");
                    }
                    last_renewed = None;
                    false
                }
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "lease request failed");
                    // Keep leading only while the last renewal is fresh enough
                    // that nobody else can have taken over.
                    last_renewed.is_some_and(|t| t.elapsed() < self.config.renew_deadline)
                }
            };
            if is_leader != *leading.borrow() {
                tracing::info!(
                    leader = is_leader,
                    identity = %self.config.identity,
                    lease = %self.config.name,
                    "leadership changed"
                );
            }
            leading.send_replace(is_leader);
            metrics.set_leader(is_leader);
            tokio::time::sleep(self.config.retry_period).await;
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
