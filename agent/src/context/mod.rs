//! Cluster context: what only the cluster knows about an alert.
//!
//! From an alert's labels we find the objects it is about (node, pod,
//! namespace) and copy what the Lambda and the subscribers need: the EC2
//! instance behind the node, its zone and type, the nodegroup or Karpenter
//! nodepool, and the owning team of the namespace.
//!
//! Invariants:
//! - Context never blocks publishing. A missing object or an API error leaves
//!   the field empty and counts the reason in
//!   `alert_manager_agent_kubernetes_context_misses{reason}`.
//! - Nodes and namespaces come from reflector stores (no round trip per
//!   alert). Objects are stripped to the fields read here before they enter a
//!   store, so memory stays flat in a big cluster.
//! - Pods are never watched: at most one GET per pod, cached for a short TTL.

mod namespace;
mod node;
mod pods;
mod target;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alert_envelope::{AwsContext, Envelope, KubernetesContext};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

pub use namespace::{namespace_stripper, namespace_team};
pub use node::{NODE_LABELS, node_context, parse_provider_id, region_of_zone, strip_node};
pub use pods::{Miss, PodCache};
pub use target::{Target, instance_host};

use crate::metrics::Metrics;

/// How to read the owning team and which namespace labels to copy.
#[derive(Debug, Clone)]
pub struct ContextConfig {
    /// Namespace annotation naming the owning team, read first.
    pub team_annotation: String,
    /// Namespace label naming the owning team, read when the annotation is absent.
    pub team_label: String,
    /// Namespace labels copied into `kubernetes.namespace_labels`.
    pub namespace_labels: Vec<String>,
    /// How long a pod → node answer (or a pod's absence) is reused.
    pub pod_cache_ttl: Duration,
    /// Timeout of one pod GET; the alert goes out without the node after it.
    pub api_timeout: Duration,
}

impl Default for ContextConfig {
    fn default() -> Self {
        ContextConfig {
            team_annotation: "alert-manager.io/team".into(),
            team_label: "team".into(),
            namespace_labels: Vec::new(),
            pod_cache_ttl: Duration::from_secs(30),
            api_timeout: Duration::from_secs(1),
        }
    }
}

/// The stores and the pod cache, shared by every request.
#[derive(Clone)]
pub struct ClusterContext {
    /// Nodes, stripped.
    pub nodes: Store<Node>,
    /// Namespaces, stripped.
    pub namespaces: Store<Namespace>,
    /// Pod → node, on demand.
    pub pods: Option<PodCache>,
    /// Team and label settings.
    pub config: Arc<ContextConfig>,
    /// Where misses are counted.
    pub metrics: Arc<Metrics>,
}

impl ClusterContext {
    /// Fills `kubernetes` and `aws` of one envelope from its labels. Never fails:
    /// what cannot be found is left out and counted.
    pub async fn annotate(&self, env: &mut Envelope) {
        let (k8s, aws, misses) = self.resolve(&env.labels).await;
        for miss in misses {
            self.metrics.context().miss(miss.as_str());
        }
        if k8s != KubernetesContext::default() {
            env.kubernetes = Some(k8s);
        }
        if aws != AwsContext::default() {
            env.aws = Some(aws);
        }
    }

    /// The context of a label set, and the reasons for what is missing.
    pub async fn resolve(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> (KubernetesContext, AwsContext, Vec<Miss>) {
        let target = Target::from_labels(labels);
        let mut misses = Vec::new();
        let mut k8s = KubernetesContext {
            namespace: target.namespace.clone(),
            pod: target.pod.clone(),
            ..Default::default()
        };
        let mut node = None;
        if let Some(name) = &target.node {
            node = self.nodes.get(&ObjectRef::new(name));
            if node.is_none() {
                misses.push(Miss::NodeNotFound);
            }
        }
        if node.is_none()
            && let Some(instance) = &target.instance
        {
            node = self.node_by_instance(instance);
        }
        if node.is_none()
            && let (Some(ns), Some(pod), Some(pods)) = (&target.namespace, &target.pod, &self.pods)
        {
            match pods.node_of(ns, pod).await {
                Ok(Some(name)) => {
                    node = self.nodes.get(&ObjectRef::new(&name));
                    if node.is_none() {
                        misses.push(Miss::NodeNotFound);
                        k8s.node = Some(name);
                    }
                }
                Ok(None) => misses.push(Miss::PodNotFound),
                Err(miss) => misses.push(miss),
            }
        }
        let mut aws = AwsContext::default();
        if let Some(node) = &node {
            aws = node_context(node, &mut k8s);
            if aws.instance_id.is_none() {
                misses.push(Miss::NotEc2);
            }
        } else if target.node.is_none() && target.instance.is_none() && target.pod.is_none() {
            misses.push(Miss::NoTarget);
        }
        if let Some(ns_name) = &target.namespace {
            match self.namespaces.get(&ObjectRef::new(ns_name)) {
                Some(ns) => {
                    k8s.team = namespace_team(&ns, &self.config);
                    if k8s.team.is_none() {
                        misses.push(Miss::NoTeam);
                    }
                    if let Some(labels) = &ns.metadata.labels {
                        k8s.namespace_labels = self
                            .config
                            .namespace_labels
                            .iter()
                            .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
                            .collect();
                    }
                }
                None => misses.push(Miss::NamespaceNotFound),
            }
        }
        (k8s, aws, misses)
    }

    /// `instance` as a node name (with or without port), else as an InternalIP.
    fn node_by_instance(&self, instance: &str) -> Option<Arc<Node>> {
        let host = instance_host(instance);
        if let Some(node) = self.nodes.get(&ObjectRef::new(host)) {
            return Some(node);
        }
        if host.parse::<std::net::IpAddr>().is_err() {
            return None;
        }
        self.nodes.find(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.addresses.as_ref())
                .is_some_and(|a| a.iter().any(|a| a.address == host))
        })
    }
}

/// Objects per list page of the node and namespace watchers.
pub const LIST_PAGE_SIZE: u32 = 50;

/// Starts the node and namespace reflectors on `client` and returns the
/// context. The reflectors run until the process exits, re-listing with
/// backoff after any error.
pub fn start(client: Client, config: ContextConfig, metrics: Arc<Metrics>) -> ClusterContext {
    let (nodes, node_writer) = reflector::store::<Node>();
    let (namespaces, ns_writer) = reflector::store::<Namespace>();
    // Small pages: a page of full Node objects (managedFields, images) is
    // parsed whole before stripping, so the page size bounds the transient
    // memory of a re-list. Paginated lists are consistent reads from etcd:
    // the API server ignores `limit` on a `resourceVersion=0` list (its watch
    // cache answers whole), so asking for that would undo the bound; kube-rs
    // drops `resourceVersion=0` whenever a limit is set anyway.
    let cfg = watcher::Config::default().page_size(LIST_PAGE_SIZE);
    tokio::spawn(drive(
        "node",
        watcher(Api::<Node>::all(client.clone()), cfg.clone())
            .default_backoff()
            .modify(strip_node)
            .reflect(node_writer),
        nodes.clone(),
        metrics.clone(),
    ));
    tokio::spawn(drive(
        "namespace",
        watcher(Api::<Namespace>::all(client.clone()), cfg)
            .default_backoff()
            .modify(namespace_stripper(&config))
            .reflect(ns_writer),
        namespaces.clone(),
        metrics.clone(),
    ));
    let pods = PodCache::new(client, config.pod_cache_ttl, config.api_timeout);
    ClusterContext {
        nodes,
        namespaces,
        pods: Some(pods),
        config: Arc::new(config),
        metrics,
    }
}

async fn drive<K, S>(kind: &'static str, stream: S, store: Store<K>, metrics: Arc<Metrics>)
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
    S: futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut synced = false;
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::InitDone) => {
                metrics.context().store_objects(kind, store.len());
                if !synced {
                    synced = true;
                    tracing::info!(kind, objects = store.len(), "store synced");
                }
            }
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                metrics.context().store_objects(kind, store.len());
            }
            Ok(_) => {}
            Err(e) => {
                metrics.context().watch_error(kind);
                tracing::warn!(kind, error = %e, "watch failed; retrying with backoff (alerts keep flowing without this context)");
            }
        }
    }
}
