//! Cluster context: label → object resolution, providerID parsing, team
//! resolution, stripping, and an API error that still publishes — against
//! real-shaped EKS fixtures and a mock API server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alert_manager_agent::context::{
    ClusterContext, ContextConfig, Miss, PodCache, instance_host, namespace_stripper,
    parse_provider_id, region_of_zone, strip_node,
};
use alert_manager_agent::metrics::Metrics;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use support::{fixture, mock_client, object, status};

const MANAGED: &str = "ip-10-0-1-23.us-west-2.compute.internal";
const KARPENTER: &str = "ip-10-0-2-45.us-west-2.compute.internal";
const FARGATE: &str = "fargate-ip-10-0-3-4.us-west-2.compute.internal";
const POD: &str = "checkout-7d9f8b6c5-x2k4p";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn config() -> ContextConfig {
    ContextConfig {
        namespace_labels: vec!["env".into(), "missing".into()],
        ..ContextConfig::default()
    }
}

/// Stores filled the way the reflectors fill them: stripped objects.
fn context(client: Option<kube::Client>) -> (ClusterContext, Arc<Metrics>) {
    let cfg = config();
    let (nodes, mut node_writer) = reflector::store::<Node>();
    for name in [
        "node-managed.json",
        "node-karpenter.json",
        "node-fargate.json",
    ] {
        let mut node: Node = object(name);
        strip_node(&mut node);
        node_writer.apply_watcher_event(&Event::Apply(node));
    }
    let (namespaces, mut ns_writer) = reflector::store::<Namespace>();
    let mut strip = namespace_stripper(&cfg);
    for name in [
        "namespace-annotated.json",
        "namespace-labelled.json",
        "namespace-plain.json",
    ] {
        let mut ns: Namespace = object(name);
        strip(&mut ns);
        ns_writer.apply_watcher_event(&Event::Apply(ns));
    }
    let metrics = Arc::new(Metrics::new());
    let pods = client.map(|c| PodCache::new(c, Duration::from_secs(30), Duration::from_secs(2)));
    (
        ClusterContext {
            nodes,
            namespaces,
            pods,
            config: Arc::new(cfg),
            metrics: metrics.clone(),
        },
        metrics,
    )
}

#[test]
fn provider_id_gives_zone_and_instance_and_rejects_everything_else() {
    assert_eq!(
        parse_provider_id("aws:///us-west-2a/i-0abc123def4567890"),
        Some(("us-west-2a", "i-0abc123def4567890"))
    );
    assert_eq!(
        parse_provider_id("aws:///eu-central-1b/i-0123abcd"),
        Some(("eu-central-1b", "i-0123abcd")),
        "8-hex-digit legacy ids are EC2 ids too"
    );
    assert_eq!(
        parse_provider_id("aws://us-west-2a/i-0abc123def4567890"),
        Some(("us-west-2a", "i-0abc123def4567890"))
    );
    let fargate = fixture("node-fargate.json")["spec"]["providerID"]
        .as_str()
        .unwrap()
        .to_string();
    for bad in [
        fargate.as_str(),
        "",
        "aws:///",
        "aws:///us-west-2a/",
        "aws:///us-west-2a",
        "aws:///us-west-2a/i-",
        "aws:///us-west-2a/i-xyz0123456789abcd",
        "aws:///us-west-2a/i-0ABC123DEF4567890",
        "aws:///us-west-2a/i-0abc123def45678901",
        "aws:///US-WEST-2A/i-0abc123def4567890",
        "aws:///us-west-2a/i-0abc123def4567890/extra",
        "gce://my-project/us-central1-a/gke-node-1",
        "azure:///subscriptions/x/resourceGroups/y/providers/Microsoft.Compute/virtualMachines/z",
        "kind://docker/kind/kind-control-plane",
        "i-0abc123def4567890",
    ] {
        assert_eq!(parse_provider_id(bad), None, "{bad:?}");
    }
}

#[test]
fn zone_gives_region_including_local_zones() {
    assert_eq!(region_of_zone("us-west-2a").as_deref(), Some("us-west-2"));
    assert_eq!(
        region_of_zone("us-west-2-lax-1a").as_deref(),
        Some("us-west-2")
    );
    assert_eq!(region_of_zone("nonsense"), None);
}

#[test]
fn instance_label_host_part() {
    assert_eq!(instance_host("10.0.1.23:9100"), "10.0.1.23");
    assert_eq!(instance_host("10.0.1.23"), "10.0.1.23");
    assert_eq!(instance_host("[fd00::1]:9100"), "fd00::1");
    assert_eq!(instance_host("fd00::1"), "fd00::1");
    assert_eq!(instance_host(&format!("{MANAGED}:10250")), MANAGED);
}

#[test]
fn stripped_node_keeps_only_what_context_reads() {
    let full: Node = object("node-managed.json");
    let full_size = serde_json::to_vec(&full).unwrap().len();
    let mut node = full.clone();
    strip_node(&mut node);
    let json = serde_json::to_value(&node).unwrap();
    assert!(json["metadata"].get("managedFields").is_none());
    assert!(json["metadata"].get("annotations").is_none());
    assert!(json["status"].get("images").is_none());
    assert!(json["status"].get("conditions").is_none());
    assert_eq!(
        json["status"]["addresses"],
        serde_json::json!([{"type": "InternalIP", "address": "10.0.1.23"}])
    );
    assert_eq!(
        json["spec"]["providerID"],
        "aws:///us-west-2a/i-0abc123def4567890"
    );
    let kept: Vec<&String> = node.metadata.labels.as_ref().unwrap().keys().collect();
    assert_eq!(
        kept,
        vec![
            "eks.amazonaws.com/nodegroup",
            "node.kubernetes.io/instance-type",
            "topology.kubernetes.io/region",
            "topology.kubernetes.io/zone"
        ]
    );
    let stripped_size = serde_json::to_vec(&node).unwrap().len();
    assert!(
        stripped_size * 10 < full_size,
        "stripped {stripped_size} bytes vs full {full_size}"
    );
}

#[test]
fn stripped_namespace_keeps_team_and_allow_listed_labels_only() {
    let mut ns: Namespace = object("namespace-annotated.json");
    namespace_stripper(&config())(&mut ns);
    let meta = &ns.metadata;
    assert_eq!(
        meta.annotations
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["alert-manager.io/team"],
        "last-applied-configuration and other annotations are dropped"
    );
    assert_eq!(
        meta.labels.as_ref().unwrap().keys().collect::<Vec<_>>(),
        vec!["env", "team"]
    );
    assert!(meta.managed_fields.is_none());
}

#[tokio::test]
async fn node_label_resolves_managed_nodegroup_node() {
    let (ctx, _) = context(None);
    let (k8s, aws, misses) = ctx
        .resolve(&labels(&[
            ("node", MANAGED),
            ("alertname", "KubeNodeNotReady"),
        ]))
        .await;
    assert_eq!(aws.instance_id.as_deref(), Some("i-0abc123def4567890"));
    assert_eq!(aws.availability_zone.as_deref(), Some("us-west-2a"));
    assert_eq!(aws.region.as_deref(), Some("us-west-2"));
    assert_eq!(aws.instance_type.as_deref(), Some("m5.large"));
    assert_eq!(k8s.node.as_deref(), Some(MANAGED));
    assert_eq!(k8s.nodegroup.as_deref(), Some("general"));
    assert_eq!(k8s.nodepool, None);
    assert!(misses.is_empty(), "{misses:?}");
}

#[tokio::test]
async fn instance_ip_and_port_resolves_karpenter_node_by_internal_ip() {
    let (ctx, _) = context(None);
    let (k8s, aws, _) = ctx
        .resolve(&labels(&[
            ("instance", "10.0.2.45:9100"),
            ("job", "node-exporter"),
        ]))
        .await;
    assert_eq!(aws.instance_id.as_deref(), Some("i-0def456abc7890123"));
    assert_eq!(aws.instance_type.as_deref(), Some("c6i.xlarge"));
    assert_eq!(k8s.node.as_deref(), Some(KARPENTER));
    assert_eq!(k8s.nodepool.as_deref(), Some("default"));
    assert_eq!(k8s.nodegroup, None);
}

#[tokio::test]
async fn instance_as_node_name_with_port_resolves() {
    let (ctx, _) = context(None);
    let (k8s, aws, _) = ctx
        .resolve(&labels(&[
            ("instance", &format!("{MANAGED}:10250")),
            ("job", "kubelet"),
        ]))
        .await;
    assert_eq!(k8s.node.as_deref(), Some(MANAGED));
    assert_eq!(aws.instance_id.as_deref(), Some("i-0abc123def4567890"));
}

#[tokio::test]
async fn kube_state_metrics_instance_is_the_exporter_not_the_node() {
    let (ctx, _) = context(None);
    // 10.0.1.23 is the managed node's IP, but for kube-state-metrics the
    // instance is the exporter's own address and must not be read as a node.
    let (k8s, aws, misses) = ctx
        .resolve(&labels(&[
            ("instance", "10.0.1.23:8080"),
            ("job", "kube-state-metrics"),
            ("namespace", "search"),
        ]))
        .await;
    assert_eq!(aws.instance_id, None);
    assert_eq!(k8s.node, None);
    assert_eq!(k8s.team.as_deref(), Some("search"));
    assert!(misses.contains(&Miss::NoTarget), "{misses:?}");
}

#[tokio::test]
async fn pod_and_namespace_resolve_through_one_cached_get() {
    let (client, mut api) = mock_client();
    let (ctx, _) = context(Some(client));
    let pod = fixture("pod.json");
    let server = tokio::spawn(async move {
        let seen = api
            .expect(
                "GET",
                &format!("/api/v1/namespaces/payments/pods/{POD}"),
                None,
                200,
                pod,
            )
            .await;
        assert_eq!(seen.body, serde_json::Value::Null);
        // The second alert about the same pod is served from the cache.
        api.expect_silence(Duration::from_millis(300)).await;
    });
    let alert = labels(&[
        ("namespace", "payments"),
        ("pod", POD),
        ("container", "checkout"),
    ]);
    for _ in 0..2 {
        let (k8s, aws, misses) = ctx.resolve(&alert).await;
        assert_eq!(aws.instance_id.as_deref(), Some("i-0abc123def4567890"));
        assert_eq!(k8s.node.as_deref(), Some(MANAGED));
        assert_eq!(k8s.pod.as_deref(), Some(POD));
        assert_eq!(k8s.namespace.as_deref(), Some("payments"));
        assert_eq!(k8s.team.as_deref(), Some("payments"));
        assert!(misses.is_empty(), "{misses:?}");
    }
    server.await.unwrap();
}

#[tokio::test]
async fn exported_namespace_and_pod_win_over_the_exporter_labels() {
    let (client, mut api) = mock_client();
    let (ctx, _) = context(Some(client));
    let pod = fixture("pod.json");
    let server = tokio::spawn(async move {
        api.expect(
            "GET",
            &format!("/api/v1/namespaces/payments/pods/{POD}"),
            None,
            200,
            pod,
        )
        .await;
    });
    let (k8s, aws, _) = ctx
        .resolve(&labels(&[
            ("job", "kube-state-metrics"),
            ("namespace", "monitoring"),
            ("pod", "kube-state-metrics-6c9d8f7b5-abcde"),
            ("exported_namespace", "payments"),
            ("exported_pod", POD),
        ]))
        .await;
    server.await.unwrap();
    assert_eq!(k8s.namespace.as_deref(), Some("payments"));
    assert_eq!(k8s.pod.as_deref(), Some(POD));
    assert_eq!(aws.instance_id.as_deref(), Some("i-0abc123def4567890"));
}

#[tokio::test]
async fn fargate_node_gives_no_instance_id_and_is_not_an_error() {
    let (ctx, _) = context(None);
    let (k8s, aws, misses) = ctx.resolve(&labels(&[("node", FARGATE)])).await;
    assert_eq!(aws.instance_id, None);
    assert_eq!(aws.availability_zone.as_deref(), Some("us-west-2c"));
    assert_eq!(aws.region.as_deref(), Some("us-west-2"));
    assert_eq!(k8s.node.as_deref(), Some(FARGATE));
    assert_eq!(misses, vec![Miss::NotEc2]);
}

#[tokio::test]
async fn team_comes_from_annotation_then_label_and_labels_are_allow_listed() {
    let (ctx, _) = context(None);
    // payments has both: annotation "payments" and label team=payments-label.
    let (k8s, _, _) = ctx.resolve(&labels(&[("namespace", "payments")])).await;
    assert_eq!(k8s.team.as_deref(), Some("payments"));
    assert_eq!(
        k8s.namespace_labels,
        labels(&[("env", "prod")]),
        "only allow-listed labels are copied"
    );
    let (k8s, _, _) = ctx.resolve(&labels(&[("namespace", "search")])).await;
    assert_eq!(k8s.team.as_deref(), Some("search"));
    let (k8s, _, misses) = ctx.resolve(&labels(&[("namespace", "kube-system")])).await;
    assert_eq!(k8s.team, None);
    assert!(misses.contains(&Miss::NoTeam));
    let (k8s, _, misses) = ctx.resolve(&labels(&[("namespace", "gone")])).await;
    assert_eq!(k8s.namespace.as_deref(), Some("gone"));
    assert!(misses.contains(&Miss::NamespaceNotFound));
}

#[tokio::test]
async fn custom_team_annotation_and_label_are_honoured() {
    let (mut ctx, _) = context(None);
    ctx.config = Arc::new(ContextConfig {
        team_annotation: "example.com/owner".into(),
        team_label: "env".into(),
        ..config()
    });
    let (k8s, _, _) = ctx.resolve(&labels(&[("namespace", "search")])).await;
    assert_eq!(
        k8s.team.as_deref(),
        Some("staging"),
        "falls back to the configured label"
    );
}

#[tokio::test]
async fn unknown_node_and_missing_pod_are_counted_misses() {
    let (client, mut api) = mock_client();
    let (ctx, metrics) = context(Some(client));
    let server = tokio::spawn(async move {
        api.expect(
            "GET",
            "/api/v1/namespaces/payments/pods/gone-pod",
            None,
            404,
            status(404, "NotFound", "pods \"gone-pod\" not found"),
        )
        .await;
    });
    let mut env = envelope(&[("node", "ip-10-9-9-9.us-west-2.compute.internal")]);
    ctx.annotate(&mut env).await;
    assert_eq!(env.aws, None);
    let mut env = envelope(&[("namespace", "payments"), ("pod", "gone-pod")]);
    ctx.annotate(&mut env).await;
    server.await.unwrap();
    assert_eq!(env.aws, None);
    assert_eq!(
        env.kubernetes.as_ref().unwrap().team.as_deref(),
        Some("payments")
    );
    let text = metrics.encode();
    assert!(
        text.contains(
            r#"alert_manager_agent_kubernetes_context_misses_total{reason="node_not_found"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"alert_manager_agent_kubernetes_context_misses_total{reason="pod_not_found"} 1"#
        ),
        "{text}"
    );
}

fn envelope(pairs: &[(&str, &str)]) -> alert_envelope::Envelope {
    let msg = alert_envelope::webhook::WebhookMessage::from_slice(
        serde_json::to_vec(&webhook(pairs)).unwrap().as_slice(),
    )
    .unwrap();
    alert_envelope::Envelope::from_alertmanager("prod", &msg, &msg.alerts[0])
}

fn webhook(pairs: &[(&str, &str)]) -> serde_json::Value {
    let mut l = labels(pairs);
    l.insert("alertname".into(), "KubePodCrashLooping".into());
    serde_json::json!({
        "version": "4", "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "alert-manager", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": l, "annotations": {"summary": "crash looping"},
            "startsAt": "2026-11-28T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": "0f1e2d3c4b5a6978"}]
    })
}

/// The Kubernetes API fails (500 on the pod GET): the webhook still answers
/// 200 once SNS accepts, the alert goes out with the context the stores
/// had (namespace, team) and without the node, and the miss is counted.
#[tokio::test]
async fn api_error_publishes_without_context_and_counts_why() {
    use alert_manager_agent::server::{AppState, webhook_router};
    use aws_sdk_sns::operation::publish_batch::PublishBatchOutput;
    use aws_sdk_sns::types::PublishBatchResultEntry;
    use http_body_util::BodyExt;
    use std::sync::Mutex;
    use tower::ServiceExt;

    let sent: Arc<Mutex<Vec<String>>> = Arc::default();
    let captured = sent.clone();
    let rule = aws_smithy_mocks::mock!(aws_sdk_sns::Client::publish_batch).then_compute_output(
        move |input| {
            let mut ok = Vec::new();
            for e in input.publish_batch_request_entries() {
                captured.lock().unwrap().push(e.message().to_string());
                ok.push(
                    PublishBatchResultEntry::builder()
                        .id(e.id())
                        .message_id("m-1")
                        .build(),
                );
            }
            PublishBatchOutput::builder()
                .set_successful(Some(ok))
                .build()
        },
    );
    let interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny)
        .with_rule(&rule);
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sns::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_sns::config::Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            ))
            .retry_config(aws_sdk_sns::config::retry::RetryConfig::disabled())
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );

    let (client, mut api) = mock_client();
    let (ctx, metrics) = context(Some(client));
    let server = tokio::spawn(async move {
        api.expect(
            "GET",
            &format!("/api/v1/namespaces/payments/pods/{POD}"),
            None,
            500,
            status(500, "InternalError", "etcdserver: request timed out"),
        )
        .await;
    });
    let state = AppState {
        account: alert_manager_agent::account::Account::default(),
        publisher: alert_manager_agent::SnsPublisher::new(
            sns,
            "arn:aws:sns:us-east-1:123456789012:alerts".parse().unwrap(),
            alert_aws::RetryPolicy::within(Duration::from_secs(2)),
        ),
        cluster: "prod".into(),
        auth: None,
        max_body_bytes: 1 << 20,
        body_read_timeout: std::time::Duration::from_secs(10),
        webhook_slots: Arc::new(tokio::sync::Semaphore::new(64)),
        metrics: metrics.clone(),
        context: Some(ctx),
        recent: Arc::new(alert_manager_agent::recent::RecentIds::new(
            std::num::NonZeroUsize::new(1000).unwrap(),
            std::time::Duration::from_secs(300),
        )),
        resolves: Arc::new(alert_manager_agent::recent::Resolves::new(
            std::num::NonZeroUsize::new(1000).unwrap(),
        )),
    };
    let body = serde_json::to_vec(&webhook(&[("namespace", "payments"), ("pod", POD)])).unwrap();
    let response = webhook_router(state)
        .oneshot(
            http::Request::post("/webhook")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let code = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    server.await.unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&bytes));
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1);
    let env: serde_json::Value = serde_json::from_str(&sent[0]).unwrap();
    assert!(env.get("aws").is_none(), "{env}");
    assert_eq!(env["kubernetes"]["team"], "payments");
    assert_eq!(env["kubernetes"]["pod"], POD);
    assert!(env["kubernetes"].get("node").is_none());
    assert!(
        metrics
            .encode()
            .contains(r#"kubernetes_context_misses_total{reason="api_error"} 1"#)
    );
}
