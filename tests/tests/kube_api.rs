#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

//! The mock Kubernetes API server against the real kube-rs client: if kube-rs
//! can list, watch, get and write leases through it, the agent can too.

use std::collections::BTreeSet;
use std::time::Duration;

use alert_manager_tests::{
    MOCK_NAMESPACE, MOCK_TOKEN, MockKubeApi, TEAM_ANNOTATION, kube_client, load_fixtures,
    synthetic_namespaces, synthetic_nodes, workspace_root,
};
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, ObjectMeta, PartialObjectMeta, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = workspace_root().join("agent/fixtures/kube").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn nodes(count: usize) -> Vec<Value> {
    synthetic_nodes(&fixture("node-managed.json"), count)
}

fn node_named(name: &str) -> Value {
    let mut node = fixture("node-managed.json");
    node["metadata"]["name"] = json!(name);
    node
}

async fn client_from_kubeconfig(api: &MockKubeApi, dir: &tempfile::TempDir) -> Client {
    let path = api.write_kubeconfig(dir.path());
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, MOCK_NAMESPACE);
    Client::try_from(config).unwrap()
}

fn api_error(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(status) => (status.code, status.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The next watcher event, skipping errors; panics after 10 s.
async fn next_event<K, S>(stream: &mut S) -> watcher::Event<K>
where
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                Some(Ok(event)) => return event,
                Some(Err(_)) => continue,
                None => panic!("the watcher stream ended"),
            }
        }
    })
    .await
    .expect("no watcher event within 10 s")
}

/// Names of the objects of one initial list (Init .. InitDone).
async fn initial_names<K: ResourceExt + std::fmt::Debug, S>(stream: &mut S) -> Vec<String>
where
    S: Stream<Item = watcher::Result<watcher::Event<K>>> + Unpin,
{
    assert!(matches!(next_event(stream).await, watcher::Event::Init));
    let mut names = Vec::new();
    loop {
        match next_event(stream).await {
            watcher::Event::InitApply(obj) => names.push(obj.name_any()),
            watcher::Event::InitDone => return names,
            other => panic!("unexpected event during the initial list: {other:?}"),
        }
    }
}

async fn wait_for_watches(api: &MockKubeApi, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api.open_watches() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no open watch within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn list_paginates_with_limit_and_continue_until_every_node_is_returned() {
    let api = MockKubeApi::start(nodes(1203)).await;
    let dir = tempfile::tempdir().unwrap();
    let nodes: Api<Node> = Api::all(client_from_kubeconfig(&api, &dir).await);

    let mut names = BTreeSet::new();
    let mut lp = ListParams::default().limit(500);
    let mut pages = 0;
    let mut versions = BTreeSet::new();
    loop {
        let page = nodes.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 500);
        versions.insert(page.metadata.resource_version.clone().unwrap());
        names.extend(page.items.iter().map(ResourceExt::name_any));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => lp = lp.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 1203, "every node once");
    assert_eq!(versions.len(), 1, "one list resourceVersion across pages");

    let unpaged = nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(unpaged.items.len(), 1203);
    assert_eq!(unpaged.metadata.continue_, None);
    // Real shape: kube-rs parsed the EKS node with its conditions and images.
    let node = &unpaged.items[0];
    assert!(
        !node
            .status
            .as_ref()
            .unwrap()
            .images
            .as_ref()
            .unwrap()
            .is_empty()
    );
    assert!(node.metadata.managed_fields.is_some());

    let requests = api.requests();
    let lists: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/api/v1/nodes")
        .collect();
    assert_eq!(lists.len(), 4);
    assert_eq!(lists[0].param("limit").as_deref(), Some("500"));
    assert!(lists[0].param("continue").is_none());
    assert!(lists[1].param("continue").is_some());
}

#[tokio::test]
async fn a_resource_version_0_list_is_answered_whole_whatever_the_limit() {
    // The real API server serves `resourceVersion=0` from its watch cache
    // and ignores `limit`; a mock that paginated it would hide a switch to
    // RV=0 (unbounded pages) from the node-memory benchmark.
    let api = MockKubeApi::start(nodes(5)).await;
    let get = |query: &'static str| {
        let url = format!("{}/api/v1/nodes?{query}", api.url());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(MOCK_TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let cached = get("limit=2&resourceVersion=0").await;
    assert_eq!(cached["items"].as_array().unwrap().len(), 5);
    assert!(cached["metadata"].get("continue").is_none(), "{cached}");
    let paged = get("limit=2").await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 2);
    assert!(paged["metadata"]["continue"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_lists_nodes_in_consistent_pages_not_from_the_watch_cache() {
    let api = MockKubeApi::start(nodes(120)).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    // Only the Kubernetes side is looked at: SNS is never reached here.
    let _agent = alert_manager_tests::agent::AgentProcess::start(
        "http://127.0.0.1:9",
        "arn:aws:sns:us-east-1:123456789012:alerts",
        &[
            ("KUBERNETES_CONTEXT", "auto"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
        ],
    )
    .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lists = loop {
        let lists: Vec<_> = api
            .requests()
            .into_iter()
            .filter(|r| r.path == "/api/v1/nodes" && r.param("watch").is_none())
            .collect();
        if lists.len() >= 3 || std::time::Instant::now() > deadline {
            break lists;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(lists.len(), 3, "120 nodes in pages of 50: {lists:?}");
    for list in &lists {
        assert_eq!(list.param("limit").as_deref(), Some("50"), "{list:?}");
        assert_ne!(
            list.param("resourceVersion").as_deref(),
            Some("0"),
            "{list:?}"
        );
    }
    assert!(lists[1].param("continue").is_some());
}

#[tokio::test]
async fn raw_list_has_kubernetes_list_shape() {
    let api = MockKubeApi::start(nodes(3)).await;
    let body: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/nodes?limit=2", api.url()))
        .bearer_auth(MOCK_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["kind"], "NodeList");
    assert_eq!(body["metadata"]["resourceVersion"], "3");
    assert_eq!(body["metadata"]["remainingItemCount"], 1);
    assert!(body["metadata"]["continue"].as_str().is_some());
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    // Like the API server, list items carry no apiVersion/kind.
    assert!(body["items"][0].get("kind").is_none());
    assert!(body["items"][0]["metadata"]["name"].as_str().is_some());
}

#[tokio::test]
async fn watcher_lists_then_watches_and_sees_added_modified_and_deleted_nodes() {
    let api = MockKubeApi::start(nodes(3)).await;
    let client = kube_client(&api).await;
    let mut stream = watcher(Api::<Node>::all(client), watcher::Config::default()).boxed();

    let initial = initial_names(&mut stream).await;
    assert_eq!(initial.len(), 3);

    // The watcher sends its watch request on the next poll; wait for it here.
    let next = tokio::spawn(async move {
        let event = next_event(&mut stream).await;
        (event, stream)
    });
    wait_for_watches(&api, 1).await;
    api.add(node_named("ip-10-9-9-9.us-west-2.compute.internal"));
    let (event, mut stream) = next.await.unwrap();
    match event {
        watcher::Event::Apply(node) => {
            assert_eq!(node.name_any(), "ip-10-9-9-9.us-west-2.compute.internal")
        }
        other => panic!("expected Apply, got {other:?}"),
    }

    let mut changed = node_named("ip-10-9-9-9.us-west-2.compute.internal");
    changed["metadata"]["labels"]["changed"] = json!("yes");
    api.update(changed);
    match next_event(&mut stream).await {
        watcher::Event::Apply(node) => assert_eq!(node.labels()["changed"], "yes"),
        other => panic!("expected Apply, got {other:?}"),
    }

    let deleted = api
        .delete("Node", None, "ip-10-9-9-9.us-west-2.compute.internal")
        .unwrap();
    match next_event(&mut stream).await {
        watcher::Event::Delete(node) => {
            assert_eq!(node.name_any(), "ip-10-9-9-9.us-west-2.compute.internal");
            assert_eq!(
                node.resource_version().unwrap(),
                deleted["metadata"]["resourceVersion"]
            );
        }
        other => panic!("expected Delete, got {other:?}"),
    }

    // kube-runtime's ListWatch: a paged list (limit=500), then a watch from
    // the list's resourceVersion.
    let requests = api.requests();
    let list = requests.iter().find(|r| !r.is_watch()).unwrap();
    assert_eq!(list.param("limit").as_deref(), Some("500"));
    let watch = requests.iter().find(|r| r.is_watch()).unwrap();
    assert_eq!(watch.path, "/api/v1/nodes");
    assert_eq!(watch.param("resourceVersion").as_deref(), Some("3"));
    assert_eq!(watch.param("allowWatchBookmarks").as_deref(), Some("true"));
}

#[tokio::test]
async fn watch_from_a_resource_version_replays_changes_made_before_it_started() {
    let api = MockKubeApi::start(nodes(2)).await;
    let mut stream = watcher(
        Api::<Node>::all(kube_client(&api).await),
        Default::default(),
    )
    .boxed();
    assert_eq!(initial_names(&mut stream).await.len(), 2);

    // Between the list and the watch request: must not be lost.
    assert_eq!(api.open_watches(), 0);
    api.add(node_named("between-list-and-watch"));
    match next_event(&mut stream).await {
        watcher::Event::Apply(node) => assert_eq!(node.name_any(), "between-list-and-watch"),
        other => panic!("expected Apply, got {other:?}"),
    }
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_then_changes() {
    let api = MockKubeApi::start(nodes(4)).await;
    let config = watcher::Config::default().streaming_lists();
    let mut stream = watcher(Api::<Node>::all(kube_client(&api).await), config).boxed();
    assert_eq!(initial_names(&mut stream).await.len(), 4);
    api.add(node_named("streamed"));
    match next_event(&mut stream).await {
        watcher::Event::Apply(node) => assert_eq!(node.name_any(), "streamed"),
        other => panic!("expected Apply, got {other:?}"),
    }
    let watch = api.requests().into_iter().find(|r| r.is_watch()).unwrap();
    assert_eq!(watch.param("sendInitialEvents").as_deref(), Some("true"));
}

#[tokio::test]
async fn compacted_history_makes_the_watcher_relist_after_410() {
    let api = MockKubeApi::start(nodes(2)).await;
    let mut stream = watcher(
        Api::<Node>::all(kube_client(&api).await),
        Default::default(),
    )
    .boxed();
    assert_eq!(initial_names(&mut stream).await.len(), 2);
    let next = tokio::spawn(async move {
        let event = next_event(&mut stream).await;
        (event, stream)
    });
    wait_for_watches(&api, 1).await;
    api.add(node_named("third"));
    let (event, mut stream) = next.await.unwrap();
    assert!(matches!(event, watcher::Event::Apply(_)));

    // Watch ends, history is gone: resuming from the old version gets 410 Expired.
    api.close_watches();
    let stale = api.resource_version();
    api.add(node_named("fourth"));
    api.compact();
    let mut saw_expired = false;
    let relisted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.next().await.unwrap() {
                Err(watcher::Error::WatchError(status)) => {
                    assert_eq!(status.code, 410);
                    saw_expired = true;
                }
                Ok(watcher::Event::Init) => break,
                _ => {}
            }
        }
        let mut names = Vec::new();
        loop {
            match stream.next().await.unwrap() {
                Ok(watcher::Event::InitApply(node)) => names.push(node.name_any()),
                Ok(watcher::Event::InitDone) => return names,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(saw_expired, "the resumed watch from {stale} got no 410");
    assert_eq!(relisted.len(), 4);
}

#[tokio::test]
async fn warning_field_selector_filters_event_lists_and_watches() {
    let objects = load_fixtures(&workspace_root().join("agent/fixtures/kube")).unwrap();
    let api = MockKubeApi::start(objects).await;
    let events: Api<Event> = Api::all(kube_client(&api).await);

    let all = events.list(&ListParams::default()).await.unwrap();
    let warnings = events
        .list(&ListParams::default().fields("type=Warning"))
        .await
        .unwrap();
    assert!(
        all.items
            .iter()
            .any(|e| e.type_.as_deref() == Some("Normal"))
    );
    assert!(!warnings.items.is_empty());
    assert!(warnings.items.len() < all.items.len());
    assert!(
        warnings
            .items
            .iter()
            .all(|e| e.type_.as_deref() == Some("Warning"))
    );

    let config = watcher::Config::default().fields("type=Warning");
    let mut stream = watcher(events.clone(), config).boxed();
    assert_eq!(initial_names(&mut stream).await.len(), warnings.items.len());
    let next = tokio::spawn(async move { next_event(&mut stream).await });
    wait_for_watches(&api, 1).await;
    let mut normal = fixture("event-normal.json");
    normal["metadata"]["name"] = json!("normal-after-watch");
    api.add(normal);
    let mut warning = fixture("event-failedscheduling.json");
    warning["metadata"]["name"] = json!("warning-after-watch");
    api.add(warning);
    match next.await.unwrap() {
        watcher::Event::Apply(event) => assert_eq!(event.name_any(), "warning-after-watch"),
        other => panic!("expected the Warning event, got {other:?}"),
    }

    // Namespaced lists select the namespace.
    let payments: Api<Event> = Api::namespaced(kube_client(&api).await, "payments");
    let in_payments = payments.list(&ListParams::default()).await.unwrap();
    assert!(!in_payments.items.is_empty());
    assert!(
        in_payments
            .items
            .iter()
            .all(|e| e.namespace().as_deref() == Some("payments"))
    );

    // A field the API server cannot select on is a 400, as there.
    let err = events
        .list(&ListParams::default().fields("involvedObject.kind=Pod"))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (400, "BadRequest".to_string()));
}

#[tokio::test]
async fn pod_get_answers_the_pod_or_a_404_status() {
    let api = MockKubeApi::start(vec![fixture("pod.json")]).await;
    let pods: Api<Pod> = Api::namespaced(kube_client(&api).await, "payments");
    let pod = pods.get("checkout-7d9f8b6c5-x2k4p").await.unwrap();
    assert_eq!(
        pod.spec.unwrap().node_name.as_deref(),
        Some("ip-10-0-1-23.us-west-2.compute.internal")
    );
    assert!(pods.get_opt("no-such-pod").await.unwrap().is_none());
    let err = pods.get("no-such-pod").await.unwrap_err();
    assert_eq!(api_error(err), (404, "NotFound".to_string()));
    // Same name, other namespace: not found either.
    let other: Api<Pod> = Api::namespaced(kube_client(&api).await, "default");
    assert!(
        other
            .get_opt("checkout-7d9f8b6c5-x2k4p")
            .await
            .unwrap()
            .is_none()
    );
}

fn lease(holder: &str, resource_version: Option<String>) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some("alert-manager-agent-events".into()),
            namespace: Some(MOCK_NAMESPACE.into()),
            resource_version,
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn lease_create_conflicts_and_optimistic_replace() {
    let api = MockKubeApi::start(Vec::new()).await;
    let leases: Api<Lease> = Api::default_namespaced(kube_client(&api).await);
    let pp = PostParams::default();
    let name = "alert-manager-agent-events";

    assert!(leases.get_opt(name).await.unwrap().is_none());
    let created = leases.create(&pp, &lease("agent-a", None)).await.unwrap();
    let first_rv = created.resource_version().unwrap();
    assert!(created.uid().is_some());

    let err = leases
        .create(&pp, &lease("agent-b", None))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "AlreadyExists".to_string()));

    // Both agents read the same version; only the first replace wins.
    let a = leases
        .replace(name, &pp, &lease("agent-a", Some(first_rv.clone())))
        .await
        .unwrap();
    assert_ne!(a.resource_version().unwrap(), first_rv);
    assert_eq!(a.uid(), created.uid());
    let err = leases
        .replace(name, &pp, &lease("agent-b", Some(first_rv)))
        .await
        .unwrap_err();
    assert_eq!(api_error(err), (409, "Conflict".to_string()));

    let stored = leases.get(name).await.unwrap();
    assert_eq!(
        stored.spec.unwrap().holder_identity.as_deref(),
        Some("agent-a")
    );
    assert_eq!(
        api.get("Lease", Some(MOCK_NAMESPACE), name).unwrap()["spec"]["holderIdentity"],
        "agent-a"
    );

    // A replace of a lease that does not exist is a 404.
    let mut missing = lease("agent-a", Some("1".into()));
    missing.metadata.name = Some("missing".into());
    let err = leases.replace("missing", &pp, &missing).await.unwrap_err();
    assert_eq!(api_error(err).0, 404);
}

#[tokio::test]
async fn concurrent_lease_writers_have_exactly_one_winner() {
    let api = MockKubeApi::start(Vec::new()).await;
    let leases: Api<Lease> = Api::default_namespaced(kube_client(&api).await);
    let pp = PostParams::default();
    let rv = leases
        .create(&pp, &lease("nobody", None))
        .await
        .unwrap()
        .resource_version();
    let writers = (0..8).map(|i| {
        let leases = leases.clone();
        let rv = rv.clone();
        async move {
            leases
                .replace(
                    "alert-manager-agent-events",
                    &PostParams::default(),
                    &lease(&format!("agent-{i}"), rv),
                )
                .await
        }
    });
    let results = futures::future::join_all(writers).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
}

#[tokio::test]
async fn fail_answers_matching_requests_with_that_status_until_cleared() {
    let api = MockKubeApi::start(vec![fixture("pod.json"), fixture("node-managed.json")]).await;
    let client = kube_client(&api).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "payments");
    let nodes: Api<Node> = Api::all(client);

    api.fail("/api/v1/namespaces/payments/pods", 500);
    let err = pods.get("checkout-7d9f8b6c5-x2k4p").await.unwrap_err();
    assert_eq!(api_error(err), (500, "InternalError".to_string()));
    // Other paths are untouched.
    assert_eq!(
        nodes.list(&Default::default()).await.unwrap().items.len(),
        1
    );

    api.fail("/api/v1/", 403);
    let err = nodes.list(&Default::default()).await.unwrap_err();
    assert_eq!(api_error(err), (403, "Forbidden".to_string()));
    let err = pods.get("checkout-7d9f8b6c5-x2k4p").await.unwrap_err();
    assert_eq!(api_error(err).0, 403, "the latest matching rule wins");

    api.clear_failures();
    assert!(pods.get("checkout-7d9f8b6c5-x2k4p").await.is_ok());
    // Failed requests are recorded too.
    let failed = api
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v1/namespaces/payments/pods"))
        .count();
    assert_eq!(failed, 3);
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let api = MockKubeApi::start(vec![fixture("node-managed.json")]).await;
    let kubeconfig = api
        .kubeconfig()
        .replace(&format!("token: {MOCK_TOKEN}"), "token: wrong-token");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let nodes: Api<Node> = Api::all(Client::try_from(config).unwrap());
    let err = nodes.list(&Default::default()).await.unwrap_err();
    assert_eq!(api_error(err), (401, "Unauthorized".to_string()));

    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/nodes", api.url());
    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let status: Value = anonymous.json().await.unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["code"], 401);
    let ok = http.get(url).bearer_auth(MOCK_TOKEN).send().await.unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn version_answers_and_unknown_paths_are_404_and_recorded() {
    let api = MockKubeApi::start(Vec::new()).await;
    let version = kube_client(&api).await.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "30")
    );

    let response = reqwest::Client::new()
        .get(format!("{}/apis/apps/v1/deployments?limit=1", api.url()))
        .bearer_auth(MOCK_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let status: Value = response.json().await.unwrap();
    assert_eq!(
        (status["reason"].as_str(), status["code"].as_u64()),
        (Some("NotFound"), Some(404))
    );
    let recorded = api.requests();
    let last = recorded.last().unwrap();
    assert_eq!(
        (
            last.method.as_str(),
            last.path.as_str(),
            last.query.as_str()
        ),
        ("GET", "/apis/apps/v1/deployments", "limit=1")
    );
}

#[tokio::test]
async fn metadata_only_lists_and_watches_answer_partial_object_metadata() {
    let template = fixture("namespace-annotated.json");
    let api = MockKubeApi::start(synthetic_namespaces(&template, 3)).await;
    let namespaces: Api<Namespace> = Api::all(kube_client(&api).await);
    let list = namespaces
        .list_metadata(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(list.items.len(), 3);
    assert_eq!(list.items[0].annotations()[TEAM_ANNOTATION], "team-0");

    let partial: Api<PartialObjectMeta<Namespace>> = Api::all(kube_client(&api).await);
    let mut stream = watcher(partial, watcher::Config::default()).boxed();
    assert_eq!(initial_names(&mut stream).await.len(), 3);
    let accept = &api.requests()[1].accept;
    assert!(accept.contains("as=PartialObjectMetadataList"), "{accept}");
}

#[tokio::test]
async fn raw_watch_streams_lines_and_ends_at_timeout_seconds() {
    let api = MockKubeApi::start(nodes(2)).await;
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/nodes?watch=true&timeoutSeconds=1",
            api.url()
        ))
        .bearer_auth(MOCK_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l["type"] == "ADDED"));
    assert_eq!(lines[0]["object"]["kind"], "Node");
}

#[tokio::test]
async fn dropping_the_server_ends_open_watches() {
    let api = MockKubeApi::start(nodes(1)).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/nodes?watch=true", api.url()))
        .bearer_auth(MOCK_TOKEN)
        .send()
        .await
        .unwrap();
    wait_for_watches(&api, 1).await;
    let url = api.url();
    drop(api);
    let body = tokio::time::timeout(Duration::from_secs(5), response.text())
        .await
        .expect("the watch outlived the server");
    assert!(body.unwrap_or_default().contains("ADDED"));
    assert!(
        reqwest::get(format!("{url}/version")).await.is_err(),
        "the server still accepts connections"
    );
}

#[tokio::test]
async fn synthetic_nodes_are_unique_and_keep_the_eks_shape() {
    let template = fixture("node-managed.json");
    let nodes = synthetic_nodes(&template, 5000);
    let unique = |pointer: &str| {
        nodes
            .iter()
            .map(|n| n.pointer(pointer).unwrap().as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(unique("/metadata/name"), 5000);
    assert_eq!(unique("/metadata/uid"), 5000);
    assert_eq!(unique("/spec/providerID"), 5000);
    assert_eq!(unique("/status/addresses/0/address"), 5000);
    let node = &nodes[4999];
    let name = node["metadata"]["name"].as_str().unwrap();
    let ip = node["status"]["addresses"][0]["address"].as_str().unwrap();
    assert_eq!(
        name,
        format!("ip-{}.us-west-2.compute.internal", ip.replace('.', "-"))
    );
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], name);
    let provider = node["spec"]["providerID"].as_str().unwrap();
    let instance = provider.rsplit('/').next().unwrap();
    assert!(provider.starts_with("aws:///us-west-2a/i-0"), "{provider}");
    assert_eq!(instance.len(), 19, "{instance}");
    assert_eq!(
        node["metadata"]["managedFields"],
        template["metadata"]["managedFields"]
    );
    for kept in ["images", "conditions", "nodeInfo", "capacity"] {
        assert_eq!(node["status"][kept], template["status"][kept]);
    }
}
