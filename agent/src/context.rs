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

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alert_envelope::{AwsContext, Envelope, KubernetesContext};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, NodeAddress, NodeSpec, NodeStatus, Pod};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::metrics::Metrics;

/// Node labels the agent reads; every other node label is dropped before the store.
pub const NODE_LABELS: &[&str] = &[
    LABEL_REGION,
    LABEL_ZONE,
    LABEL_INSTANCE_TYPE,
    LABEL_NODEGROUP,
    LABEL_NODEPOOL,
    LABEL_KARPENTER_PROVISIONER,
];
const LABEL_REGION: &str = "topology.kubernetes.io/region";
const LABEL_ZONE: &str = "topology.kubernetes.io/zone";
const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";
const LABEL_NODEGROUP: &str = "eks.amazonaws.com/nodegroup";
const LABEL_NODEPOOL: &str = "karpenter.sh/nodepool";
/// Karpenter before v1 (v1alpha5) named the pool a provisioner.
const LABEL_KARPENTER_PROVISIONER: &str = "karpenter.sh/provisioner-name";

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

/// What an alert's labels say it is about, before any lookup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Target {
    /// The `node` label.
    pub node: Option<String>,
    /// The `instance` label when it may name a node (not kube-state-metrics).
    pub instance: Option<String>,
    /// Namespace: `exported_namespace` when present, else `namespace`.
    pub namespace: Option<String>,
    /// Pod: `exported_pod` when present, else `pod`.
    pub pod: Option<String>,
}

impl Target {
    /// Reads the labels. `exported_*` win over the plain labels because
    /// Prometheus renames a target's own `namespace`/`pod` to `exported_*`
    /// when they clash: the exported ones are the object, the plain ones the
    /// exporter.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Target {
        let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        let is_ksm = labels
            .get("job")
            .is_some_and(|j| j.contains("kube-state-metrics"));
        Target {
            node: get("node"),
            instance: if is_ksm { None } else { get("instance") },
            namespace: get("exported_namespace").or_else(|| get("namespace")),
            pod: get("exported_pod").or_else(|| get("pod")),
        }
    }
}

/// The host part of an `instance` label (`10.0.1.23:9100` → `10.0.1.23`,
/// `[fd00::1]:9100` → `fd00::1`, `node-a` → `node-a`).
pub fn instance_host(instance: &str) -> &str {
    if let Some(rest) = instance.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match instance.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => instance,
    }
}

/// `aws:///us-west-2a/i-0abc123def4567890` → (`us-west-2a`, `i-0abc123def4567890`).
///
/// Fargate (`aws:///<az>/<id>/fargate-ip-...`), other clouds and malformed
/// values give `None`: no instance id, which is not an error.
pub fn parse_provider_id(provider_id: &str) -> Option<(&str, &str)> {
    let rest = provider_id.strip_prefix("aws://")?;
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let (zone, instance) = match parts.as_slice() {
        [zone, instance] => (*zone, *instance),
        _ => return None,
    };
    let id = instance.strip_prefix("i-")?;
    let valid_id = (id.len() == 8 || id.len() == 17)
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid_zone = !zone.is_empty()
        && zone
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (valid_id && valid_zone).then_some((zone, instance))
}

/// The region of an availability zone (`us-west-2a` → `us-west-2`; local
/// zones such as `us-west-2-lax-1a` → `us-west-2`).
pub fn region_of_zone(zone: &str) -> Option<String> {
    let mut parts = zone.split('-');
    let (geo, area, num) = (parts.next()?, parts.next()?, parts.next()?);
    let digits: String = num.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("{geo}-{area}-{digits}"))
}

/// Keeps only what [`node_context`] reads: name, the [`NODE_LABELS`],
/// `spec.providerID` and the InternalIP addresses.
pub fn strip_node(node: &mut Node) {
    let meta = &mut node.metadata;
    let labels = meta.labels.take().map(|mut l| {
        l.retain(|k, _| NODE_LABELS.contains(&k.as_str()));
        l
    });
    *meta = kube::api::ObjectMeta {
        name: meta.name.take(),
        labels,
        ..Default::default()
    };
    let provider_id = node.spec.take().and_then(|s| s.provider_id);
    node.spec = Some(NodeSpec {
        provider_id,
        ..Default::default()
    });
    let addresses: Vec<NodeAddress> = node
        .status
        .take()
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.type_ == "InternalIP")
        .collect();
    node.status = Some(NodeStatus {
        addresses: Some(addresses),
        ..Default::default()
    });
}

/// Keeps only the name, the team annotation, and the team and allow-listed labels.
pub fn namespace_stripper(config: &ContextConfig) -> impl FnMut(&mut Namespace) + use<> {
    let annotation = config.team_annotation.clone();
    let mut labels = config.namespace_labels.clone();
    labels.push(config.team_label.clone());
    move |ns: &mut Namespace| {
        let meta = &mut ns.metadata;
        let keep_labels = meta.labels.take().map(|mut l| {
            l.retain(|k, _| labels.contains(k));
            l
        });
        let keep_annotations = meta.annotations.take().map(|mut a| {
            a.retain(|k, _| *k == annotation);
            a
        });
        *meta = kube::api::ObjectMeta {
            name: meta.name.take(),
            labels: keep_labels,
            annotations: keep_annotations,
            ..Default::default()
        };
        ns.spec = None;
        ns.status = None;
    }
}

/// The node's part of the context: instance id and zone from the provider
/// id, region, type, nodegroup and nodepool from the labels.
pub fn node_context(node: &Node, k8s: &mut KubernetesContext) -> AwsContext {
    let labels = node.metadata.labels.as_ref();
    let label = |k: &str| labels.and_then(|l| l.get(k)).cloned();
    k8s.node = node.metadata.name.clone();
    k8s.nodegroup = label(LABEL_NODEGROUP);
    k8s.nodepool = label(LABEL_NODEPOOL).or_else(|| label(LABEL_KARPENTER_PROVISIONER));
    let provider = node
        .spec
        .as_ref()
        .and_then(|s| s.provider_id.as_deref())
        .and_then(parse_provider_id);
    let zone = provider
        .map(|(z, _)| z.to_string())
        .or_else(|| label(LABEL_ZONE));
    AwsContext {
        instance_id: provider.map(|(_, id)| id.to_string()),
        region: label(LABEL_REGION).or_else(|| zone.as_deref().and_then(region_of_zone)),
        availability_zone: zone,
        instance_type: label(LABEL_INSTANCE_TYPE),
    }
}

/// The owning team: the annotation, then the label.
pub fn namespace_team(ns: &Namespace, config: &ContextConfig) -> Option<String> {
    let meta = &ns.metadata;
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(&config.team_annotation))
        .or_else(|| meta.labels.as_ref().and_then(|l| l.get(&config.team_label)))
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.trim().to_string())
}

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
            self.metrics.context_miss(miss.as_str());
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
    // memory of a re-list. `any_semantic` lets the API server answer from its
    // watch cache instead of etcd.
    let cfg = watcher::Config::default()
        .any_semantic()
        .page_size(LIST_PAGE_SIZE);
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
                metrics.store_objects(kind, store.len());
                if !synced {
                    synced = true;
                    tracing::info!(kind, objects = store.len(), "store synced");
                }
            }
            Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_)) => {
                metrics.store_objects(kind, store.len());
            }
            Ok(_) => {}
            Err(e) => {
                metrics.watch_error(kind);
                tracing::warn!(kind, error = %e, "watch failed; retrying with backoff (alerts keep flowing without this context)");
            }
        }
    }
}
