//! Pods: looked up one GET at a time (never watched) and cached briefly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};

/// Looks up and caches pod → node.
#[derive(Clone)]
pub struct PodCache {
    client: Client,
    ttl: Duration,
    timeout: Duration,
    entries: Arc<Mutex<PodEntries>>,
}

/// (namespace, pod) → (when looked up, its node).
type PodEntries = HashMap<(String, String), (Instant, Option<String>)>;

/// Beyond this many cached pods, expired entries are swept on insert.
const POD_CACHE_SWEEP_AT: usize = 4096;

/// Why a lookup found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Miss {
    /// The labels name no node, instance or pod.
    NoTarget,
    /// The node is not in the store.
    NodeNotFound,
    /// The pod does not exist (or has no node yet).
    PodNotFound,
    /// The namespace is not in the store.
    NamespaceNotFound,
    /// The namespace has neither the team annotation nor the team label.
    NoTeam,
    /// The node is not an EC2 instance (Fargate, another cloud).
    NotEc2,
    /// The pod GET failed or timed out.
    ApiError,
}

impl Miss {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Miss::NoTarget => "no_target",
            Miss::NodeNotFound => "node_not_found",
            Miss::PodNotFound => "pod_not_found",
            Miss::NamespaceNotFound => "namespace_not_found",
            Miss::NoTeam => "no_team",
            Miss::NotEc2 => "not_ec2",
            Miss::ApiError => "api_error",
        }
    }
}

impl PodCache {
    /// A cache over `client`.
    pub fn new(client: Client, ttl: Duration, timeout: Duration) -> PodCache {
        PodCache {
            client,
            ttl,
            timeout,
            entries: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The node a pod runs on; `Ok(None)` when the pod is absent or unscheduled.
    pub async fn node_of(&self, namespace: &str, pod: &str) -> Result<Option<String>, Miss> {
        let key = (namespace.to_string(), pod.to_string());
        if let Ok(entries) = self.entries.lock()
            && let Some((at, node)) = entries.get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(node.clone());
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let node = match tokio::time::timeout(self.timeout, api.get_opt(pod)).await {
            Ok(Ok(found)) => found
                .and_then(|p| p.spec)
                .and_then(|s| s.node_name)
                .filter(|n| !n.is_empty()),
            Ok(Err(e)) => {
                tracing::warn!(namespace, pod, error = %e, "pod lookup failed; publishing without node context");
                return Err(Miss::ApiError);
            }
            Err(_) => {
                tracing::warn!(
                    namespace,
                    pod,
                    "pod lookup timed out; publishing without node context"
                );
                return Err(Miss::ApiError);
            }
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= POD_CACHE_SWEEP_AT {
                let ttl = self.ttl;
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
            }
            if entries.len() < POD_CACHE_SWEEP_AT {
                entries.insert(key, (Instant::now(), node.clone()));
            }
        }
        Ok(node)
    }
}
