//! A mock Kubernetes API server on 127.0.0.1, for tests and benchmarks.
//!
//! It speaks enough of the real API for kube-rs: paginated lists, watches
//! (list-then-watch and streaming lists), get, create, replace with
//! optimistic concurrency, delete, `PartialObjectMetadata` answers, bearer
//! token authentication and `Status` errors. Objects are plain JSON, routed by
//! `apiVersion` and `kind`:
//!
//! | apiVersion, kind | path |
//! |---|---|
//! | `v1` `Node` | `/api/v1/nodes` |
//! | `v1` `Namespace` | `/api/v1/namespaces` |
//! | `v1` `Pod` | `/api/v1/namespaces/{ns}/pods` |
//! | `events.k8s.io/v1` `Event` | `/apis/events.k8s.io/v1/namespaces/{ns}/events` |
//! | `v1` `Event` | `/api/v1/namespaces/{ns}/events` |
//! | `coordination.k8s.io/v1` `Lease` | `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases` |
//!
//! Namespaced types are also listed and watched across namespaces
//! (`/apis/events.k8s.io/v1/events`). Every write, from a test ([`MockKubeApi::add`],
//! [`MockKubeApi::update`], [`MockKubeApi::delete`]) or from a client, takes the
//! next `resourceVersion` of one global counter and is pushed to every open
//! watch that selects it. Watches resume from a `resourceVersion` by replaying
//! the changes made since; one older than the retained history (see
//! [`MockKubeApi::compact`]) gets a `410 Expired` ERROR event, as from a real
//! API server.
//!
//! Field selectors are those the real API server supports for the type
//! (`type=Warning` on events, `metadata.name`, `spec.nodeName`, ...); any other
//! is answered `400 BadRequest` ("field label not supported") and logged.
//! Label selectors support `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (..)` and
//! `k notin (..)`. A change that moves an object out of a watch's selector is
//! not turned into a DELETED event (the real API server does that).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use base64::Engine as _;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// The bearer token every request must carry (`Authorization: Bearer mock-token`).
pub const MOCK_TOKEN: &str = "mock-token";
/// The namespace of the kubeconfig context ([`MockKubeApi::kubeconfig`]).
pub const MOCK_NAMESPACE: &str = "alert-manager-system";
/// The annotation that names a namespace's team (the agent's default).
pub const TEAM_ANNOTATION: &str = "alert-manager.io/team";

/// Longest a watch is held open, whatever `timeoutSeconds` asks for.
const MAX_WATCH_SECONDS: u64 = 290;
/// Changes kept for watches that resume from a `resourceVersion`.
const HISTORY_CAP: usize = 50_000;
/// Requests kept by [`MockKubeApi::requests`]; older ones are forgotten.
const REQUEST_LOG_CAP: usize = 100_000;

/// Why an object or a fixture was refused, or the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockKubeError {
    /// The object is not one the mock serves, or lacks a name or namespace.
    #[error("invalid object: {0}")]
    InvalidObject(String),
    /// A fixture file could not be read or parsed.
    #[error("fixture {path}: {message}")]
    Fixture {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Binding 127.0.0.1 or writing a file failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One request as the mock received it (every request, answered or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, `PUT`, ...
    pub method: String,
    /// The path, without the query: `/api/v1/nodes`.
    pub path: String,
    /// The raw query string (`limit=500&continue=...`), empty if none.
    pub query: String,
    /// The request body as text (lossy UTF-8), empty if none.
    pub body: String,
    /// The `Accept` header, empty if none (kube-rs asks for
    /// `as=PartialObjectMetadata` when it wants metadata only).
    pub accept: String,
}

impl RecordedRequest {
    /// The decoded value of query parameter `name`, if present.
    pub fn param(&self, name: &str) -> Option<String> {
        parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// True for a `watch=true` request.
    pub fn is_watch(&self) -> bool {
        matches!(self.param("watch").as_deref(), Some("true" | "1"))
    }
}

/// A resource type the mock serves.
struct ResourceType {
    api_version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    /// Field selector labels the real API server supports for this type.
    field_labels: &'static [&'static str],
}

impl ResourceType {
    fn group(&self) -> &'static str {
        self.api_version.split_once('/').map_or("", |(g, _)| g)
    }

    /// `pods`, `leases.coordination.k8s.io`: how the API server names it in messages.
    fn qualified(&self) -> String {
        match self.group() {
            "" => self.plural.to_string(),
            group => format!("{}.{group}", self.plural),
        }
    }
}

const META_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

/// `events.k8s.io/v1` comes before core `v1` so that kind `Event` alone means it.
const TYPES: &[ResourceType] = &[
    ResourceType {
        api_version: "v1",
        kind: "Node",
        plural: "nodes",
        namespaced: false,
        field_labels: &["metadata.name", "spec.unschedulable"],
    },
    ResourceType {
        api_version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        namespaced: false,
        field_labels: &["metadata.name", "status.phase"],
    },
    ResourceType {
        api_version: "v1",
        kind: "Pod",
        plural: "pods",
        namespaced: true,
        field_labels: &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    ResourceType {
        api_version: "events.k8s.io/v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        field_labels: &[
            "metadata.name",
            "metadata.namespace",
            "type",
            "reason",
            "reportingController",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
        ],
    },
    ResourceType {
        api_version: "v1",
        kind: "Event",
        plural: "events",
        namespaced: true,
        field_labels: &[
            "metadata.name",
            "metadata.namespace",
            "type",
            "reason",
            "reportingComponent",
            "source",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
        ],
    },
    ResourceType {
        api_version: "coordination.k8s.io/v1",
        kind: "Lease",
        plural: "leases",
        namespaced: true,
        field_labels: META_FIELDS,
    },
];

/// `Node`, `Lease`, `events.k8s.io/v1/Event`, `v1/Event`: the index in [`TYPES`].
fn type_by_kind(kind: &str) -> Option<usize> {
    match kind.rsplit_once('/') {
        Some((api_version, kind)) => TYPES
            .iter()
            .position(|t| t.api_version == api_version && t.kind == kind),
        None => TYPES.iter().position(|t| t.kind == kind),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One write, kept for watches that resume from an older resourceVersion.
struct Change {
    rv: u64,
    ty: usize,
    event: EventType,
    object: Arc<Value>,
}

/// One open watch.
struct Watcher {
    ty: usize,
    filter: Filter,
    meta_only: bool,
    tx: mpsc::UnboundedSender<Bytes>,
}

type Key = (String, String);

struct Inner {
    rv: u64,
    stores: Vec<BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<Change>,
    /// A watch from a resourceVersion below this one has missed changes: 410.
    history_floor: u64,
    watchers: Vec<Watcher>,
    requests: VecDeque<RecordedRequest>,
    failures: Vec<(String, u16)>,
    uid_counter: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running mock API server on `127.0.0.1`, stopped on drop (open watches end,
/// connections close).
pub struct MockKubeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockKubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockKubeApi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockKubeApi {
    /// Starts the server with `objects` (full Kubernetes JSON objects) on a free
    /// port. Panics on an object it cannot serve; see [`MockKubeApi::try_start`].
    pub async fn start(objects: Vec<Value>) -> MockKubeApi {
        match MockKubeApi::try_start(objects).await {
            Ok(api) => api,
            Err(e) => panic!("cannot start the mock Kubernetes API: {e}"),
        }
    }

    /// Starts the server with `objects` on a free 127.0.0.1 port.
    pub async fn try_start(objects: Vec<Value>) -> Result<MockKubeApi, MockKubeError> {
        let mut inner = Inner {
            rv: 0,
            stores: TYPES.iter().map(|_| BTreeMap::new()).collect(),
            history: VecDeque::new(),
            history_floor: 0,
            watchers: Vec::new(),
            requests: VecDeque::new(),
            failures: Vec::new(),
            uid_counter: 0,
        };
        for obj in objects {
            let (ty, key, obj) = inner.prepare(obj)?;
            if inner.stores[ty].insert(key.clone(), obj).is_some() {
                tracing::warn!(kind = TYPES[ty].kind, ns = %key.0, name = %key.1, "duplicate object, the last one wins");
            }
        }
        // Nothing before this point is in the history: a watch must start from a list.
        inner.history_floor = inner.rv;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            shutdown,
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let mut stop = shared.shutdown.subscribe();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        });
        let task = tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!("mock Kubernetes API stopped: {e}");
            }
        });
        Ok(MockKubeApi { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A kubeconfig (YAML) whose current context points at this server with
    /// token [`MOCK_TOKEN`] and namespace [`MOCK_NAMESPACE`].
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: mock\n  cluster:\n    server: {url}\n\
             users:\n\
             - name: mock\n  user:\n    token: {MOCK_TOKEN}\n\
             contexts:\n\
             - name: mock\n  context:\n    cluster: mock\n    user: mock\n    namespace: {MOCK_NAMESPACE}\n\
             current-context: mock\n\
             preferences: {{}}\n",
            url = self.url()
        )
    }

    /// Writes [`MockKubeApi::kubeconfig`] to `dir/kubeconfig` and returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        if let Err(e) = std::fs::write(&path, self.kubeconfig()) {
            panic!("cannot write {}: {e}", path.display());
        }
        path
    }

    /// Stores `obj` with the next resourceVersion and pushes `ADDED` to the
    /// watches of its type (`MODIFIED` if it already existed). Returns the
    /// stored object. Panics on an object the mock cannot serve.
    pub fn add(&self, obj: Value) -> Value {
        self.write(obj)
    }

    /// Like [`MockKubeApi::add`]: replaces the object (whatever its
    /// resourceVersion) and pushes `MODIFIED` (`ADDED` if it was absent).
    pub fn update(&self, obj: Value) -> Value {
        self.write(obj)
    }

    fn write(&self, obj: Value) -> Value {
        let mut inner = self.shared.lock();
        let (ty, key, obj) = match inner.prepare(obj) {
            Ok(prepared) => prepared,
            Err(e) => panic!("{e}"),
        };
        let event = match inner.stores[ty].insert(key, Arc::clone(&obj)) {
            Some(_) => EventType::Modified,
            None => EventType::Added,
        };
        inner.emit(ty, event, Arc::clone(&obj));
        Value::clone(&obj)
    }

    /// Removes an object and pushes `DELETED` to the watches of its type.
    /// `kind` is `Node`, `Pod`, `Event` (events.k8s.io/v1), `v1/Event`, `Lease`...;
    /// `ns` is `None` for cluster-scoped objects. Returns the deleted object.
    pub fn delete(&self, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let ty = type_by_kind(kind)?;
        let mut inner = self.shared.lock();
        inner
            .remove(ty, key_of(ty, ns, name))
            .map(|obj| Value::clone(&obj))
    }

    /// The stored object, if any (same `kind`/`ns` rules as [`MockKubeApi::delete`]).
    pub fn get(&self, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let ty = type_by_kind(kind)?;
        let inner = self.shared.lock();
        inner.stores[ty]
            .get(&key_of(ty, ns, name))
            .map(|obj| Value::clone(obj))
    }

    /// Every stored object of `kind`, in list order.
    pub fn objects(&self, kind: &str) -> Vec<Value> {
        let Some(ty) = type_by_kind(kind) else {
            return Vec::new();
        };
        let inner = self.shared.lock();
        inner.stores[ty]
            .values()
            .map(|obj| Value::clone(obj))
            .collect()
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Answers every request whose path starts with `path_prefix` with a
    /// Kubernetes `Status` error of code `status` (after authentication). The
    /// latest matching rule wins.
    pub fn fail(&self, path_prefix: &str, status: u16) {
        self.shared
            .lock()
            .failures
            .push((path_prefix.to_string(), status));
    }

    /// Removes every rule set by [`MockKubeApi::fail`].
    pub fn clear_failures(&self) {
        self.shared.lock().failures.clear();
    }

    /// Watches currently open (their client has not gone away).
    pub fn open_watches(&self) -> usize {
        let mut inner = self.shared.lock();
        inner.watchers.retain(|w| !w.tx.is_closed());
        inner.watchers.len()
    }

    /// Ends every open watch, as an API server does at its timeout; clients
    /// watch again from their last resourceVersion.
    pub fn close_watches(&self) {
        self.shared.lock().watchers.clear();
    }

    /// Forgets the history of changes: a watch from any resourceVersion older
    /// than the current one gets `410 Expired` and must list again. With
    /// [`MockKubeApi::close_watches`], forces every watcher to re-list.
    pub fn compact(&self) {
        let mut inner = self.shared.lock();
        inner.history.clear();
        inner.history_floor = inner.rv;
    }
}

impl Drop for MockKubeApi {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
        self.shared.lock().watchers.clear();
        self.task.abort();
    }
}

fn key_of(ty: usize, ns: Option<&str>, name: &str) -> Key {
    let ns = if TYPES[ty].namespaced {
        ns.unwrap_or_default()
    } else {
        ""
    };
    (ns.to_string(), name.to_string())
}

fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut v = obj;
    for p in path {
        v = v.get(p)?;
    }
    v.as_str()
}

fn metadata_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.as_object_mut()?
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

impl Inner {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid_counter)
    }

    /// Checks an object from a test or a fixture, gives it the next
    /// resourceVersion (and a uid if it has none).
    fn prepare(&mut self, mut obj: Value) -> Result<(usize, Key, Arc<Value>), MockKubeError> {
        let api_version = str_at(&obj, &["apiVersion"]).unwrap_or_default();
        let kind = str_at(&obj, &["kind"]).unwrap_or_default();
        let ty = TYPES
            .iter()
            .position(|t| t.api_version == api_version && t.kind == kind)
            .ok_or_else(|| {
                MockKubeError::InvalidObject(format!(
                    "apiVersion {api_version:?} kind {kind:?} is not served by the mock"
                ))
            })?;
        let name = str_at(&obj, &["metadata", "name"]).unwrap_or_default();
        if name.is_empty() {
            return Err(MockKubeError::InvalidObject(format!(
                "{kind} without metadata.name"
            )));
        }
        let ns = str_at(&obj, &["metadata", "namespace"]).unwrap_or_default();
        if TYPES[ty].namespaced && ns.is_empty() {
            return Err(MockKubeError::InvalidObject(format!(
                "{kind} {name:?} without metadata.namespace"
            )));
        }
        let key = key_of(ty, Some(ns), name);
        let has_uid = str_at(&obj, &["metadata", "uid"]).is_some_and(|u| !u.is_empty());
        let rv = self.next_rv();
        let uid = (!has_uid).then(|| self.next_uid());
        let meta = metadata_mut(&mut obj).ok_or_else(|| {
            MockKubeError::InvalidObject(format!("{} {:?}: metadata", TYPES[ty].kind, key.1))
        })?;
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        if let Some(uid) = uid {
            meta.insert("uid".into(), Value::String(uid));
        }
        Ok((ty, key, Arc::new(obj)))
    }

    fn remove(&mut self, ty: usize, key: Key) -> Option<Arc<Value>> {
        let old = self.stores[ty].remove(&key)?;
        let mut obj = Value::clone(&old);
        let rv = self.next_rv();
        if let Some(meta) = metadata_mut(&mut obj) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let obj = Arc::new(obj);
        self.emit(ty, EventType::Deleted, Arc::clone(&obj));
        Some(obj)
    }

    /// Records a change (whose object carries the current rv) and pushes it to
    /// the open watches that select it.
    fn emit(&mut self, ty: usize, event: EventType, object: Arc<Value>) {
        self.watchers.retain(|w| !w.tx.is_closed());
        for w in &self.watchers {
            if w.ty == ty && w.filter.matches(ty, &object) {
                let _ = w.tx.send(event_line(event.as_str(), &object, w.meta_only));
            }
        }
        self.history.push_back(Change {
            rv: self.rv,
            ty,
            event,
            object,
        });
        while self.history.len() > HISTORY_CAP {
            if let Some(old) = self.history.pop_front() {
                self.history_floor = old.rv;
            }
        }
    }

    fn record(&mut self, request: RecordedRequest) {
        if self.requests.len() >= REQUEST_LOG_CAP {
            self.requests.pop_front();
        }
        self.requests.push_back(request);
    }
}

// ---------------------------------------------------------------------------
// Selectors

enum FieldReq {
    Eq(String, String),
    Ne(String, String),
}

enum LabelReq {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// What a list or watch selects: namespace, field and label selectors.
#[derive(Default)]
struct Filter {
    namespace: Option<String>,
    fields: Vec<FieldReq>,
    labels: Vec<LabelReq>,
}

/// Splits on commas outside parentheses.
fn split_terms(selector: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&selector[start..]);
    terms
        .into_iter()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_field_selector(ty: usize, selector: &str) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    for term in split_terms(selector) {
        let (key, value, equal) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, v, true)
        } else {
            return Err(format!("invalid field selector term {term:?}"));
        };
        let key = key.trim();
        if !TYPES[ty].field_labels.contains(&key) {
            tracing::warn!(
                kind = TYPES[ty].kind,
                selector,
                "field selector not supported by the API server for this type"
            );
            return Err(format!(
                "\"{key}\" is not a known field selector: only {:?}",
                TYPES[ty].field_labels
            ));
        }
        let (key, value) = (key.to_string(), value.trim().to_string());
        reqs.push(if equal {
            FieldReq::Eq(key, value)
        } else {
            FieldReq::Ne(key, value)
        });
    }
    Ok(reqs)
}

fn parse_set(values: &str) -> Result<Vec<String>, String> {
    let inner = values
        .trim()
        .strip_prefix('(')
        .and_then(|v| v.strip_suffix(')'))
        .ok_or_else(|| format!("invalid label selector set {values:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

fn parse_label_selector(selector: &str) -> Result<Vec<LabelReq>, String> {
    let mut reqs = Vec::new();
    for term in split_terms(selector) {
        let req = if let Some((k, v)) = term.split_once(" notin ") {
            LabelReq::NotIn(k.trim().to_string(), parse_set(v)?)
        } else if let Some((k, v)) = term.split_once(" in ") {
            LabelReq::In(k.trim().to_string(), parse_set(v)?)
        } else if let Some((k, v)) = term.split_once("!=") {
            LabelReq::Ne(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = term.split_once("==") {
            LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
        } else if let Some((k, v)) = term.split_once('=') {
            LabelReq::Eq(k.trim().to_string(), v.trim().to_string())
        } else if let Some(k) = term.strip_prefix('!') {
            LabelReq::NotExists(k.trim().to_string())
        } else {
            LabelReq::Exists(term.to_string())
        };
        reqs.push(req);
    }
    Ok(reqs)
}

/// The value a field selector compares: missing is "", as in the API server.
fn field_value(ty: usize, obj: &Value, field: &str) -> String {
    // Core events select `source` by its component.
    let path = if field == "source" && TYPES[ty].api_version == "v1" {
        "source.component"
    } else {
        field
    };
    let mut v = obj;
    for p in path.split('.') {
        match v.get(p) {
            Some(next) => v = next,
            None => return String::new(),
        }
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

impl Filter {
    fn parse(ty: usize, namespace: Option<String>, params: &Params) -> Result<Filter, String> {
        let fields = match params.get("fieldSelector") {
            Some(sel) if !sel.is_empty() => {
                tracing::debug!(kind = TYPES[ty].kind, sel, "field selector");
                parse_field_selector(ty, sel)?
            }
            _ => Vec::new(),
        };
        let labels = match params.get("labelSelector") {
            Some(sel) if !sel.is_empty() => {
                tracing::debug!(kind = TYPES[ty].kind, sel, "label selector");
                parse_label_selector(sel)?
            }
            _ => Vec::new(),
        };
        Ok(Filter {
            namespace,
            fields,
            labels,
        })
    }

    fn matches(&self, ty: usize, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && str_at(obj, &["metadata", "namespace"]) != Some(ns.as_str())
        {
            return false;
        }
        let fields_ok = self.fields.iter().all(|req| match req {
            FieldReq::Eq(k, v) => field_value(ty, obj, k) == *v,
            FieldReq::Ne(k, v) => field_value(ty, obj, k) != *v,
        });
        if !fields_ok {
            return false;
        }
        let label = |k: &str| str_at(obj, &["metadata", "labels", k]);
        self.labels.iter().all(|req| match req {
            LabelReq::Eq(k, v) => label(k) == Some(v.as_str()),
            LabelReq::Ne(k, v) => label(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::Exists(k) => label(k).is_some(),
            LabelReq::NotExists(k) => label(k).is_none(),
        })
    }
}

// ---------------------------------------------------------------------------
// Serialization

/// A list item as the API server sends it: without `apiVersion` and `kind`.
struct ListItem<'a>(&'a Value);

impl Serialize for ListItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_object() {
            Some(fields) => {
                let mut map = serializer.serialize_map(None)?;
                for (k, v) in fields {
                    if k != "apiVersion" && k != "kind" {
                        map.serialize_entry(k, v)?;
                    }
                }
                map.end()
            }
            None => self.0.serialize(serializer),
        }
    }
}

fn partial_metadata(obj: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

#[derive(serde::Serialize)]
struct WatchLine<'a> {
    #[serde(rename = "type")]
    event: &'a str,
    object: &'a Value,
}

/// One line of a watch stream: `{"type":"ADDED","object":{...}}\n`.
fn event_line(event: &str, object: &Value, meta_only: bool) -> Bytes {
    let partial;
    let object = if meta_only {
        partial = partial_metadata(object);
        &partial
    } else {
        object
    };
    let mut line = serde_json::to_vec(&WatchLine { event, object }).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

#[derive(serde::Serialize)]
struct ListBody<T> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: String,
    metadata: Value,
    items: Vec<T>,
}

/// The continue token of a page: base64 of `{"rv":N,"start":[ns,name]}`,
/// resuming after that key at list resourceVersion `rv`.
fn encode_continue(rv: u64, key: &Key) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": [key.0, key.1]});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(token: &str) -> Option<(u64, Key)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    let rv = value.get("rv")?.as_u64()?;
    let start = value.get("start")?.as_array()?;
    let ns = start.first()?.as_str()?.to_string();
    let name = start.get(1)?.as_str()?.to_string();
    Some((rv, (ns, name)))
}

// ---------------------------------------------------------------------------
// HTTP

fn parse_query(query: &str) -> Vec<(String, String)> {
    let uri = format!("/?{query}").parse::<Uri>();
    match uri {
        Ok(uri) => Query::<Vec<(String, String)>>::try_from_uri(&uri)
            .map(|q| q.0)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

struct Params(Vec<(String, String)>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn value_response(status: StatusCode, value: &Value) -> Response {
    json_response(status, serde_json::to_vec(value).unwrap_or_default())
}

fn object_response(status: StatusCode, obj: &Value, meta_only: bool) -> Response {
    if meta_only {
        value_response(status, &partial_metadata(obj))
    } else {
        value_response(status, obj)
    }
}

/// The `reason` the API server gives with an HTTP code.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "",
    }
}

fn status_value(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let (Some(details), Some(map)) = (details, status.as_object_mut()) {
        map.insert("details".into(), details);
    }
    status
}

fn status_response(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    value_response(status, &status_value(code, reason, message, details))
}

fn error(code: u16, message: &str) -> Response {
    status_response(code, reason_for(code), message, None)
}

fn not_found(ty: usize, name: &str) -> Response {
    let t = &TYPES[ty];
    status_response(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", t.qualified()),
        Some(json!({"name": name, "group": t.group(), "kind": t.plural})),
    )
}

enum Route {
    Version,
    Collection {
        ty: usize,
        ns: Option<String>,
    },
    Item {
        ty: usize,
        ns: Option<String>,
        name: String,
    },
    Unknown,
}

fn route(path: &str) -> Route {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (api_version, rest) = match segments.as_slice() {
        ["version"] => return Route::Version,
        ["api", version, rest @ ..] => (version.to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return Route::Unknown,
    };
    let find = |plural: &str, namespaced: bool| {
        TYPES
            .iter()
            .position(|t| t.api_version == api_version && t.plural == plural)
            .filter(|&ty| TYPES[ty].namespaced == namespaced)
    };
    let found = match rest {
        [plural] => find(plural, false)
            .or_else(|| find(plural, true))
            .map(|ty| Route::Collection { ty, ns: None }),
        ["namespaces", ns, plural] => find(plural, true).map(|ty| Route::Collection {
            ty,
            ns: Some(ns.to_string()),
        }),
        ["namespaces", ns, plural, name] => find(plural, true).map(|ty| Route::Item {
            ty,
            ns: Some(ns.to_string()),
            name: name.to_string(),
        }),
        [plural, name] => find(plural, false).map(|ty| Route::Item {
            ty,
            ns: None,
            name: name.to_string(),
        }),
        _ => None,
    };
    found.unwrap_or(Route::Unknown)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or_default().to_string();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    tracing::debug!(%method, %path, %query, "mock Kubernetes API request");
    let meta_only = accept.contains("as=PartialObjectMetadata");
    let failure = {
        let mut inner = shared.lock();
        inner.record(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
            accept,
        });
        inner
            .failures
            .iter()
            .rev()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map(|(_, code)| *code)
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if token != Some(format!("Bearer {MOCK_TOKEN}").as_str()) {
        return error(401, "Unauthorized");
    }
    if let Some(code) = failure {
        return error(code, &format!("injected failure {code} for {path}"));
    }
    let params = Params(parse_query(&query));
    match (route(&path), method) {
        (Route::Version, Method::GET) => value_response(StatusCode::OK, &version()),
        (Route::Collection { ty, ns }, Method::GET) if params.flag("watch") => {
            watch(&shared, ty, ns, &params, meta_only)
        }
        (Route::Collection { ty, ns }, Method::GET) => list(&shared, ty, ns, &params, meta_only),
        (Route::Collection { ty, ns }, Method::POST) => create(&shared, ty, ns, &body),
        (Route::Item { ty, ns, name }, Method::GET) => get(&shared, ty, ns, &name, meta_only),
        (Route::Item { ty, ns, name }, Method::PUT) => replace(&shared, ty, ns, &name, &body),
        (Route::Item { ty, ns, name }, Method::DELETE) => delete(&shared, ty, ns, &name),
        (Route::Version | Route::Collection { .. } | Route::Item { .. }, method) => error(
            405,
            &format!("the server does not allow this method on the requested resource ({method})"),
        ),
        (Route::Unknown, _) => {
            tracing::info!(%path, "mock Kubernetes API: no such resource");
            error(404, "the server could not find the requested resource")
        }
    }
}

fn version() -> Value {
    json!({
        "major": "1",
        "minor": "30",
        "gitVersion": "v1.30.4-eks-a737599",
        "gitCommit": "cd6b2a7a3e7c8f0e2bb7b4f1a0e4d3c2b1a09876",
        "gitTreeState": "clean",
        "buildDate": "2024-08-26T21:27:41Z",
        "goVersion": "go1.22.5",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

fn list(
    shared: &Shared,
    ty: usize,
    ns: Option<String>,
    params: &Params,
    meta_only: bool,
) -> Response {
    let filter = match Filter::parse(ty, ns, params) {
        Ok(filter) => filter,
        Err(message) => return error(400, &message),
    };
    // As the real API server: a `resourceVersion=0` list is served from the
    // watch cache, whole, whatever `limit` says.
    let from_cache = params.get("resourceVersion") == Some("0");
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|&l| l > 0 && !from_cache);
    let inner = shared.lock();
    let (rv, after) = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => match decode_continue(token) {
            Some((rv, key)) => (rv, Some(key)),
            None => return error(400, "continue key is not valid"),
        },
        None => (inner.rv, None),
    };
    let store = &inner.stores[ty];
    let range = match &after {
        Some(key) => {
            store.range::<Key, _>((std::ops::Bound::Excluded(key), std::ops::Bound::Unbounded))
        }
        None => store.range::<Key, _>(..),
    };
    let mut selected = range.filter(|(_, obj)| filter.matches(ty, obj));
    let page: Vec<(&Key, &Arc<Value>)> = match limit {
        Some(limit) => selected.by_ref().take(limit).collect(),
        None => selected.by_ref().collect(),
    };
    let remaining = selected.count();
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if remaining > 0
        && let (Some((last, _)), Some(meta)) = (page.last(), metadata.as_object_mut())
    {
        meta.insert("continue".into(), Value::String(encode_continue(rv, last)));
        meta.insert("remainingItemCount".into(), json!(remaining));
    }
    let t = &TYPES[ty];
    let body = if meta_only {
        serde_json::to_vec(&ListBody {
            api_version: "meta.k8s.io/v1",
            kind: "PartialObjectMetadataList".into(),
            metadata,
            items: page.iter().map(|(_, obj)| partial_metadata(obj)).collect(),
        })
    } else {
        serde_json::to_vec(&ListBody {
            api_version: t.api_version,
            kind: format!("{}List", t.kind),
            metadata,
            items: page.iter().map(|(_, obj)| ListItem(obj)).collect(),
        })
    };
    drop(inner);
    match body {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => error(500, &format!("cannot serialize the list: {e}")),
    }
}

fn bookmark_line(ty: usize, rv: u64, initial_end: bool) -> Bytes {
    let t = &TYPES[ty];
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end && let Some(meta) = metadata.as_object_mut() {
        meta.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    let object = json!({"kind": t.kind, "apiVersion": t.api_version, "metadata": metadata});
    event_line("BOOKMARK", &object, false)
}

fn watch(
    shared: &Arc<Shared>,
    ty: usize,
    ns: Option<String>,
    params: &Params,
    meta_only: bool,
) -> Response {
    let filter = match Filter::parse(ty, ns, params) {
        Ok(filter) => filter,
        Err(message) => return error(400, &message),
    };
    let timeout = params
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(MAX_WATCH_SECONDS)
        .min(MAX_WATCH_SECONDS);
    let send_initial = params.flag("sendInitialEvents");
    let bookmarks = params.flag("allowWatchBookmarks");
    if send_initial && !bookmarks {
        return error(
            400,
            "sendInitialEvents is forbidden for watch unless allowWatchBookmarks=true",
        );
    }
    let from = match params.get("resourceVersion").unwrap_or_default() {
        "" | "0" => None,
        rv => match rv.parse::<u64>() {
            Ok(rv) => Some(rv),
            Err(_) => return error(400, &format!("invalid resource version {rv:?}")),
        },
    };
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    {
        let mut inner = shared.lock();
        let mut register = true;
        match from {
            Some(rv) if !send_initial => {
                if rv < inner.history_floor {
                    let status = status_value(
                        410,
                        "Expired",
                        &format!("too old resource version: {rv} ({})", inner.history_floor),
                        None,
                    );
                    let _ = tx.send(event_line("ERROR", &status, false));
                    register = false;
                } else {
                    for change in inner.history.iter() {
                        if change.rv > rv && change.ty == ty && filter.matches(ty, &change.object) {
                            let _ = tx.send(event_line(
                                change.event.as_str(),
                                &change.object,
                                meta_only,
                            ));
                        }
                    }
                }
            }
            _ => {
                // No resourceVersion, "0", or a streaming list: the current
                // state as ADDED events first.
                for obj in inner.stores[ty].values() {
                    if filter.matches(ty, obj) {
                        let _ = tx.send(event_line("ADDED", obj, meta_only));
                    }
                }
                if send_initial {
                    let _ = tx.send(bookmark_line(ty, inner.rv, true));
                }
            }
        }
        if register {
            inner.watchers.push(Watcher {
                ty,
                filter,
                meta_only,
                tx,
            });
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let shutdown = shared.shutdown.subscribe();
    let stream =
        futures::stream::unfold((rx, shutdown), move |(mut rx, mut shutdown)| async move {
            let line = tokio::select! {
                biased;
                line = rx.recv() => line,
                _ = tokio::time::sleep_until(deadline) => None,
                _ = async { let _ = shutdown.wait_for(|stopped| *stopped).await; } => None,
            };
            line.map(|line| (Ok::<Bytes, Infallible>(line), (rx, shutdown)))
        });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn get(shared: &Shared, ty: usize, ns: Option<String>, name: &str, meta_only: bool) -> Response {
    let inner = shared.lock();
    match inner.stores[ty].get(&key_of(ty, ns.as_deref(), name)) {
        Some(obj) => object_response(StatusCode::OK, obj, meta_only),
        None => not_found(ty, name),
    }
}

/// Parses a request body into an object of type `ty` in namespace `ns`; the
/// error is the message of a 400 BadRequest.
fn parse_body(ty: usize, ns: Option<&str>, body: &[u8]) -> Result<Value, String> {
    let t = &TYPES[ty];
    let mut obj: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the body of the request is not valid JSON: {e}"))?;
    let Some(fields) = obj.as_object_mut() else {
        return Err("the body of the request is not a JSON object".into());
    };
    for (field, expected) in [("apiVersion", t.api_version), ("kind", t.kind)] {
        match fields.get(field).and_then(Value::as_str) {
            None => {
                fields.insert(field.into(), Value::String(expected.into()));
            }
            Some(found) if found != expected => {
                return Err(format!(
                    "{field} {found:?} does not match the request ({expected:?})"
                ));
            }
            Some(_) => {}
        }
    }
    let Some(meta) = metadata_mut(&mut obj) else {
        return Err("metadata is not an object".into());
    };
    if let Some(ns) = ns {
        match meta.get("namespace").and_then(Value::as_str) {
            Some(found) if !found.is_empty() && found != ns => {
                return Err("the namespace of the provided object does not match the namespace sent on the request".into());
            }
            _ => {
                meta.insert("namespace".into(), Value::String(ns.into()));
            }
        }
    }
    Ok(obj)
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn create(shared: &Shared, ty: usize, ns: Option<String>, body: &[u8]) -> Response {
    let t = &TYPES[ty];
    if t.namespaced && ns.is_none() {
        return error(
            405,
            "create a namespaced object under /namespaces/{namespace}/",
        );
    }
    let mut obj = match parse_body(ty, ns.as_deref(), body) {
        Ok(obj) => obj,
        Err(message) => return error(400, &message),
    };
    let mut inner = shared.lock();
    let name = match str_at(&obj, &["metadata", "name"]).filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => match str_at(&obj, &["metadata", "generateName"]).filter(|n| !n.is_empty()) {
            Some(prefix) => format!("{prefix}{:05x}", inner.rv + 1),
            None => {
                return error(
                    422,
                    &format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        t.kind
                    ),
                );
            }
        },
    };
    let key = key_of(ty, ns.as_deref(), &name);
    if inner.stores[ty].contains_key(&key) {
        return status_response(
            409,
            "AlreadyExists",
            &format!("{} \"{name}\" already exists", t.qualified()),
            Some(json!({"name": name, "group": t.group(), "kind": t.plural})),
        );
    }
    let rv = inner.next_rv();
    let uid = inner.next_uid();
    if let Some(meta) = metadata_mut(&mut obj) {
        meta.insert("name".into(), Value::String(name));
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("creationTimestamp".into(), Value::String(now()));
    }
    let obj = Arc::new(obj);
    inner.stores[ty].insert(key, Arc::clone(&obj));
    inner.emit(ty, EventType::Added, Arc::clone(&obj));
    drop(inner);
    value_response(StatusCode::CREATED, &obj)
}

fn replace(shared: &Shared, ty: usize, ns: Option<String>, name: &str, body: &[u8]) -> Response {
    let t = &TYPES[ty];
    let mut obj = match parse_body(ty, ns.as_deref(), body) {
        Ok(obj) => obj,
        Err(message) => return error(400, &message),
    };
    if str_at(&obj, &["metadata", "name"]) != Some(name) {
        return error(
            400,
            "the name of the object does not match the name on the URL",
        );
    }
    let key = key_of(ty, ns.as_deref(), name);
    let mut inner = shared.lock();
    let Some(stored) = inner.stores[ty].get(&key).cloned() else {
        return not_found(ty, name);
    };
    let sent_rv = str_at(&obj, &["metadata", "resourceVersion"]).unwrap_or_default();
    if sent_rv.is_empty() {
        return status_response(
            422,
            "Invalid",
            &format!(
                "{}.{} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                t.kind,
                t.group()
            ),
            None,
        );
    }
    if Some(sent_rv) != str_at(&stored, &["metadata", "resourceVersion"]) {
        return status_response(
            409,
            "Conflict",
            &format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                t.qualified()
            ),
            Some(json!({"name": name, "group": t.group(), "kind": t.plural})),
        );
    }
    let rv = inner.next_rv();
    if let Some(meta) = metadata_mut(&mut obj) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        for kept in ["uid", "creationTimestamp"] {
            if let Some(v) = stored.get("metadata").and_then(|m| m.get(kept)) {
                meta.insert(kept.into(), v.clone());
            }
        }
    }
    let obj = Arc::new(obj);
    inner.stores[ty].insert(key, Arc::clone(&obj));
    inner.emit(ty, EventType::Modified, Arc::clone(&obj));
    drop(inner);
    value_response(StatusCode::OK, &obj)
}

fn delete(shared: &Shared, ty: usize, ns: Option<String>, name: &str) -> Response {
    let mut inner = shared.lock();
    match inner.remove(ty, key_of(ty, ns.as_deref(), name)) {
        Some(obj) => {
            drop(inner);
            value_response(StatusCode::OK, &obj)
        }
        None => not_found(ty, name),
    }
}

// ---------------------------------------------------------------------------
// Fixtures and synthetic clusters

/// Every `*.json` object in `dir` (sorted by file name); a `List` file
/// (`{"kind": "...List", "items": [...]}`) gives its items, each given the
/// list's `apiVersion` and item `kind` if it lacks them.
pub fn load_fixtures(dir: &Path) -> Result<Vec<Value>, MockKubeError> {
    let fixture_err = |path: &Path, message: String| MockKubeError::Fixture {
        path: path.to_path_buf(),
        message,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| fixture_err(dir, e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut objects = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| fixture_err(&path, e.to_string()))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| fixture_err(&path, e.to_string()))?;
        let kind = str_at(&value, &["kind"]).unwrap_or_default().to_string();
        match (kind.strip_suffix("List"), value.get("items")) {
            (Some(item_kind), Some(Value::Array(items))) => {
                let api_version = str_at(&value, &["apiVersion"]).unwrap_or("v1").to_string();
                for mut item in items.iter().cloned() {
                    if let Some(fields) = item.as_object_mut() {
                        fields
                            .entry("apiVersion")
                            .or_insert_with(|| Value::String(api_version.clone()));
                        fields
                            .entry("kind")
                            .or_insert_with(|| Value::String(item_kind.to_string()));
                    }
                    objects.push(item);
                }
            }
            _ => objects.push(value),
        }
    }
    Ok(objects)
}

fn set_path(obj: &mut Value, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut v = obj;
    for p in parents {
        let Some(map) = v.as_object_mut() else {
            return;
        };
        v = map.entry(*p).or_insert_with(|| json!({}));
    }
    if let Some(map) = v.as_object_mut() {
        map.insert((*last).to_string(), value);
    }
}

/// `count` copies of a node (an EKS managed node, say) with unique names
/// `ip-10-<a>-<b>-<c>.<domain>`, InternalIP `10.a.b.c`, uid and providerID
/// instance id `i-0%016x`; every other field (managedFields, images,
/// conditions, labels) is kept as is.
pub fn synthetic_nodes(template: &Value, count: usize) -> Vec<Value> {
    let template_name = str_at(template, &["metadata", "name"]).unwrap_or_default();
    let domain = template_name
        .split_once('.')
        .map_or("us-west-2.compute.internal", |(_, d)| d)
        .to_string();
    let provider = str_at(template, &["spec", "providerID"])
        .map(|p| {
            p.rsplit_once('/')
                .map_or(p, |(prefix, _)| prefix)
                .to_string()
        })
        .unwrap_or_else(|| "aws:///us-west-2a".to_string());
    (0..count)
        .map(|i| {
            let (a, b, c) = (100 + i / (250 * 256), (i / 250) % 256, i % 250 + 1);
            let ip = format!("10.{a}.{b}.{c}");
            let name = format!("ip-10-{a}-{b}-{c}.{domain}");
            let mut node = template.clone();
            set_path(&mut node, &["metadata", "name"], json!(name));
            set_path(
                &mut node,
                &["metadata", "uid"],
                json!(format!("5e000000-0000-4000-8000-{:012x}", i + 1)),
            );
            set_path(
                &mut node,
                &["metadata", "labels", "kubernetes.io/hostname"],
                json!(name),
            );
            if str_at(
                &node,
                &[
                    "metadata",
                    "annotations",
                    "alpha.kubernetes.io/provided-node-ip",
                ],
            )
            .is_some()
            {
                set_path(
                    &mut node,
                    &[
                        "metadata",
                        "annotations",
                        "alpha.kubernetes.io/provided-node-ip",
                    ],
                    json!(ip),
                );
            }
            set_path(
                &mut node,
                &["spec", "providerID"],
                json!(format!("{provider}/i-0{:016x}", i + 1)),
            );
            if let Some(addresses) = node
                .pointer_mut("/status/addresses")
                .and_then(Value::as_array_mut)
            {
                for address in addresses {
                    let value = match str_at(address, &["type"]) {
                        Some("InternalIP") => ip.clone(),
                        Some("InternalDNS" | "Hostname") => name.clone(),
                        _ => continue,
                    };
                    set_path(address, &["address"], json!(value));
                }
            }
            node
        })
        .collect()
}

/// `count` copies of a namespace named `team-<i>`, annotated
/// [`TEAM_ANNOTATION`]`: team-<i>` and labelled `team: team-<i>`.
pub fn synthetic_namespaces(template: &Value, count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let name = format!("team-{i}");
            let mut ns = template.clone();
            set_path(&mut ns, &["metadata", "name"], json!(name));
            set_path(
                &mut ns,
                &["metadata", "uid"],
                json!(format!("7e000000-0000-4000-8000-{:012x}", i + 1)),
            );
            set_path(
                &mut ns,
                &["metadata", "labels", "kubernetes.io/metadata.name"],
                json!(name),
            );
            set_path(&mut ns, &["metadata", "labels", "team"], json!(name));
            set_path(
                &mut ns,
                &["metadata", "annotations", TEAM_ANNOTATION],
                json!(name),
            );
            ns
        })
        .collect()
}
