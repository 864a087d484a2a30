//! The real agent binary with cluster context: a mock Kubernetes API server
//! (real-shaped EKS objects), moto's SNS and SQS, IRSA credentials.
//!
//! - An alert about a pod arrives in SQS with the EC2 instance behind the
//!   pod's node and the team of its namespace.
//! - With two replicas and events enabled, a Warning event is published by
//!   exactly one of them (the Lease holder), and after the leader is killed
//!   the other takes over.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::time::{Duration, Instant};

use alert_envelope::Source;
use alert_manager_tests::agent::{AgentProcess, receive_until};
use alert_manager_tests::{MockKubeApi, MotoServer, workspace_root};
use serde_json::{Value, json};

const POD: &str = "checkout-7d9f8b6c5-x2k4p";

fn fixture(name: &str) -> Value {
    let path = workspace_root().join("agent/fixtures/kube").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Nodes, namespaces and the pod; events are added by the tests with fresh times.
fn cluster_objects() -> Vec<Value> {
    [
        "node-managed.json",
        "node-karpenter.json",
        "node-fargate.json",
        "namespace-annotated.json",
        "namespace-labelled.json",
        "namespace-plain.json",
        "pod.json",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

async fn topic_and_queue(moto: &MotoServer) -> (String, String, aws_sdk_sqs::Client) {
    let config = moto.sdk_config().await;
    let topic = moto.create_topic("alerts").await;
    let queue = moto.subscribe_queue(&topic, "inbox", None).await;
    (topic, queue, aws_sdk_sqs::Client::new(&config))
}

async fn wait_for_metric(agent: &AgentProcess, line: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let text = agent.metrics_text().await;
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metric {line:?} not seen in time:\n{text}\nlog:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn webhook(labels: Value) -> Value {
    // Alertmanager's fingerprint is a hash of the label set: distinct alerts
    // have distinct fingerprints (and so distinct ids).
    let fingerprint = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        labels.to_string().hash(&mut h);
        format!("{:016x}", h.finish())
    };
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "alert-manager", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels,
            "annotations": {"summary": "Pod is crash looping."},
            "startsAt": "2026-11-28T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_alert_arrives_in_sqs_with_instance_id_and_team() {
    let moto = MotoServer::start().await;
    let (topic, queue, sqs) = topic_and_queue(&moto).await;
    let api = MockKubeApi::start(cluster_objects()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let agent = AgentProcess::start(
        &moto.endpoint(),
        &topic,
        &[
            ("KUBERNETES_CONTEXT", "auto"),
            ("KUBECONFIG", kubeconfig.to_str().unwrap()),
            ("NAMESPACE_LABELS", "env"),
        ],
    )
    .await;
    wait_for_metric(
        &agent,
        r#"alert_manager_agent_kubernetes_store_objects{kind="node"} 3"#,
        Duration::from_secs(20),
    )
    .await;
    wait_for_metric(
        &agent,
        r#"alert_manager_agent_kubernetes_store_objects{kind="namespace"} 3"#,
        Duration::from_secs(20),
    )
    .await;

    let (code, body) = agent
        .post(&webhook(json!({
            "alertname": "KubePodCrashLooping", "severity": "critical",
            "namespace": "payments", "pod": POD, "container": "checkout",
            "job": "kube-state-metrics", "instance": "10.0.0.99:8080"
        })))
        .await;
    assert_eq!(code, 200, "{body}");
    let got = receive_until(&sqs, &queue, Duration::from_secs(15), |g| !g.is_empty()).await;
    assert_eq!(got.len(), 1);
    let (env, attrs) = &got[0];
    let aws = env.aws.as_ref().expect("aws context");
    assert_eq!(aws.instance_id.as_deref(), Some("i-0abc123def4567890"));
    assert_eq!(aws.availability_zone.as_deref(), Some("us-west-2a"));
    assert_eq!(aws.instance_type.as_deref(), Some("m5.large"));
    let k8s = env.kubernetes.as_ref().expect("kubernetes context");
    assert_eq!(k8s.team.as_deref(), Some("payments"));
    assert_eq!(
        k8s.node.as_deref(),
        Some("ip-10-0-1-23.us-west-2.compute.internal")
    );
    assert_eq!(k8s.nodegroup.as_deref(), Some("general"));
    assert_eq!(
        k8s.namespace_labels.get("env").map(String::as_str),
        Some("prod")
    );
    assert_eq!(
        attrs.get("team").map(String::as_str),
        Some("payments"),
        "{attrs:?}"
    );

    // The node and namespace came from the stores; the pod cost one GET.
    let pod_gets: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/pods/"))
        .collect();
    assert_eq!(pod_gets.len(), 1, "{pod_gets:?}");
    assert_eq!(
        pod_gets[0].path,
        format!("/api/v1/namespaces/payments/pods/{POD}")
    );

    // The API server fails now: alerts still go out, without the node.
    api.fail("/api/v1/namespaces/search/pods", 500);
    let (code, body) = agent
        .post(&webhook(json!({
            "alertname": "KubePodCrashLooping", "severity": "warning",
            "namespace": "search", "pod": "indexer-0"
        })))
        .await;
    assert_eq!(code, 200, "{body}");
    let got = receive_until(&sqs, &queue, Duration::from_secs(15), |g| !g.is_empty()).await;
    assert_eq!(got.len(), 1);
    // No machine found: only the agent's account.
    let aws = got[0].0.aws.clone().unwrap_or_default();
    assert_eq!(aws.instance_id, None);
    assert_eq!(
        aws.account_id.as_deref(),
        Some(alert_manager_tests::ACCOUNT_ID)
    );
    assert_eq!(
        got[0].0.kubernetes.as_ref().unwrap().team.as_deref(),
        Some("search")
    );
    wait_for_metric(
        &agent,
        r#"alert_manager_agent_kubernetes_context_misses_total{reason="api_error"} 1"#,
        Duration::from_secs(5),
    )
    .await;
}

fn warning_event(name: &str, pod: &str, count: i32) -> Value {
    let now = jiff::Timestamp::now();
    let first = now - jiff::SignedDuration::from_secs(60);
    let mut ev = fixture("event-backoff-series.json");
    ev["metadata"]["name"] = json!(name);
    ev["metadata"]["creationTimestamp"] = json!(first.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["deprecatedFirstTimestamp"] = json!(first.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["deprecatedLastTimestamp"] = json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["series"] = json!({"count": count, "lastObservedTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()});
    ev["regarding"]["name"] = json!(pod);
    ev
}

async fn leader_of(agents: &[&AgentProcess], timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    loop {
        let mut leaders = Vec::new();
        for (i, a) in agents.iter().enumerate() {
            let text = a.metrics_text().await;
            if text.lines().any(|l| l == "alert_manager_agent_leader 1") {
                leaders.push(i);
            }
        }
        assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
        if let [one] = leaders[..] {
            return one;
        }
        assert!(
            Instant::now() < deadline,
            "no leader elected in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn warning_event_is_published_once_by_the_lease_holder_and_failover_works() {
    let moto = MotoServer::start().await;
    let (topic, queue, sqs) = topic_and_queue(&moto).await;
    let api = MockKubeApi::start(cluster_objects()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();
    let env = |pod: &'static str| {
        vec![
            ("KUBERNETES_CONTEXT", "auto"),
            ("KUBECONFIG", kubeconfig.as_str()),
            ("EVENTS_ENABLED", "true"),
            ("POD_NAME", pod),
            ("POD_NAMESPACE", "alert-manager-system"),
            ("LEASE_DURATION_SECONDS", "10"),
        ]
    };
    let mut a = AgentProcess::start(&moto.endpoint(), &topic, &env("agent-a")).await;
    let mut b = AgentProcess::start(&moto.endpoint(), &topic, &env("agent-b")).await;
    let leader = leader_of(&[&a, &b], Duration::from_secs(15)).await;

    api.add(warning_event("checkout.1", POD, 3));
    let got = receive_until(&sqs, &queue, Duration::from_secs(15), |g| !g.is_empty()).await;
    assert_eq!(got.len(), 1);
    let (first, attrs) = &got[0];
    assert_eq!(first.source, Source::KubernetesEvent);
    assert_eq!(first.alertname, "BackOff");
    assert_eq!(
        attrs.get("source").map(String::as_str),
        Some("kubernetes-event")
    );
    assert_eq!(
        first.aws.as_ref().and_then(|a| a.instance_id.as_deref()),
        Some("i-0abc123def4567890"),
        "pod → node → instance applies to events too"
    );
    assert_eq!(
        first.kubernetes.as_ref().and_then(|k| k.team.as_deref()),
        Some("payments")
    );
    // The follower watches nothing and publishes nothing: no second copy.
    let extra = receive_until(&sqs, &queue, Duration::from_secs(3), |_| false).await;
    assert!(extra.is_empty(), "a follower published: {extra:?}");

    // Kill the leader without a goodbye (after a renewal carried its
    // watermark); the follower takes over after the lease expires and
    // publishes the next event.
    let (killed, survivor) = if leader == 0 {
        (&mut a, &b)
    } else {
        (&mut b, &a)
    };
    killed.child.signal("KILL");
    let _ = killed.child.wait_exit(Duration::from_secs(5));
    wait_for_metric(
        survivor,
        "alert_manager_agent_leader 1",
        Duration::from_secs(30),
    )
    .await;
    api.add(warning_event("checkout.2", "checkout-7d9f8b6c5-zz9q1", 1));
    let got = receive_until(&sqs, &queue, Duration::from_secs(15), |g| {
        g.iter()
            .any(|(e, _)| e.labels["name"] == "checkout-7d9f8b6c5-zz9q1")
    })
    .await;
    // The new leader re-lists, and the first event is still within
    // EVENT_MAX_AGE_SECONDS; the old leader's watermark in the Lease says it
    // was published, so it does not go out again.
    let replayed: Vec<_> = got
        .iter()
        .filter(|(e, _)| e.labels["name"] == POD)
        .collect();
    assert!(
        replayed.is_empty(),
        "the new leader published the old leader's event again: {replayed:?}"
    );
    let second: Vec<_> = got
        .iter()
        .filter(|(e, _)| e.labels["name"] == "checkout-7d9f8b6c5-zz9q1")
        .collect();
    assert_eq!(second.len(), 1, "{got:?}");
    let lease = api
        .get(
            "Lease",
            Some("alert-manager-system"),
            "alert-manager-agent-events",
        )
        .expect("the lease exists");
    let survivor_name = if leader == 0 { "agent-b" } else { "agent-a" };
    assert_eq!(lease["spec"]["holderIdentity"], survivor_name);
}
