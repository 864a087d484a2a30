//! The agent's Grafana dashboard and the chart's PrometheusRule, proven
//! against a real Prometheus (Debian's `prometheus`, which
//! `infra/local/bootstrap.sh` installs with `promtool`). Grafana does not
//! install here, so instead:
//!
//! - The dashboard JSON is checked structurally: unique panel ids, every panel
//!   and query on the `datasource` variable, `$cluster` and `$pod` on every
//!   query and no cluster name written in; `infra/dashboards/agent.json` is a
//!   symlink to the chart's copy, which the chart ships as a ConfigMap.
//! - `promtool check rules` passes on the rules of the rendered chart, and
//!   every `runbook_url` is a heading of the operator guide.
//! - Prometheus scrapes two real agents (1 s interval, with the labels a
//!   ServiceMonitor gives plus `cluster`) that take load: webhooks answered
//!   200, 400, 401 and 503, alerts without their cluster context, an
//!   envelope cut to fit SNS, Kubernetes Warning events from the mock API
//!   server, some filtered and some dropped from a full buffer. Every panel
//!   query and every rule expression is then evaluated through
//!   `/api/v1/query` and must be valid and return series.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alert_manager_tests::agent::{AGENT_TOKEN, AgentProcess};
use alert_manager_tests::{ChildGuard, MockKubeApi, MotoServer, free_port, workspace_root};
use serde::Deserialize;
use serde_json::{Value, json};

const RELEASE: &str = "alert-manager-agent";
const NAMESPACE: &str = "alert-manager-system";
const CLUSTER: &str = "e2e-cluster";
/// Pod names as the Deployment gives them (`<fullname>-<hash>-<id>`).
const POD_A: &str = "alert-manager-agent-5d8f7c9b4-aaaaa";
const POD_B: &str = "alert-manager-agent-5d8f7c9b4-bbbbb";
/// What every panel and query must name as its data source.
const DATASOURCE: &str = "${datasource}";
/// The whole Prometheus test is bounded by this.
const TEST_BUDGET: Duration = Duration::from_secs(150);

fn chart_dir() -> PathBuf {
    workspace_root().join("infra/helm/alert-manager-agent")
}

fn dashboard() -> Value {
    let path = chart_dir().join("dashboards/agent.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The dashboard's panels, rows' nested panels included.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner);
        }
    }
    out
}

/// (panel title, refId, expr) of every query of every panel.
fn targets(dash: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for p in panels(dash) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or_default().to_string(),
                t["refId"].as_str().unwrap_or_default().to_string(),
                t["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

/// A panel's query with Grafana's variables filled in as Grafana would for
/// a 1 s scrape interval; a variable left over is a failure.
fn substitute(expr: &str, cluster: &str, pod: &str) -> String {
    let out = expr
        .replace("$__rate_interval", "1m")
        .replace("${cluster}", cluster)
        .replace("$cluster", cluster)
        .replace("${pod}", pod)
        .replace("$pod", pod);
    assert!(!out.contains('$'), "unknown variable left in {out}");
    out
}

// ---------------------------------------------------------------- helm

/// Helm 4 as `infra/local/bootstrap.sh helm` installs it (the same lookup as
/// helm.rs); missing is a failure, never a skip.
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
        "helm is missing at {}; run `make bootstrap` (infra/local/bootstrap.sh helm)",
        path.display()
    );
    path
}

/// `helm template` (offline, its own dirs) of the chart with `args`; the objects.
fn render(args: &[&str]) -> Vec<serde_yaml::Value> {
    let home = tempfile::tempdir().unwrap();
    let chart = chart_dir().display().to_string();
    let mut all = vec!["template", RELEASE, &chart, "--namespace", NAMESPACE];
    all.extend_from_slice(args);
    let out = Command::new(helm_bin())
        .args(&all)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        out.status.success(),
        "helm {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// The chart with every optional feature on (ci/full-values.yaml: events,
/// Kubernetes context, PrometheusRule) plus the dashboard.
fn render_full() -> Vec<serde_yaml::Value> {
    let values = chart_dir()
        .join("ci/full-values.yaml")
        .display()
        .to_string();
    render(&["-f", &values, "--set", "grafanaDashboard.enabled=true"])
}

fn of_kind<'a>(objs: &'a [serde_yaml::Value], kind: &str) -> Vec<&'a serde_yaml::Value> {
    objs.iter()
        .filter(|o| o["kind"].as_str() == Some(kind))
        .collect()
}

/// The rules of the rendered PrometheusRule: (alert, expr).
fn chart_rules(objs: &[serde_yaml::Value]) -> Vec<(String, String)> {
    let rules = of_kind(objs, "PrometheusRule");
    assert_eq!(rules.len(), 1, "one PrometheusRule");
    rules[0]["spec"]["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .map(|r| {
            (
                r["alert"].as_str().unwrap().to_string(),
                r["expr"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A program on PATH, or a failure saying how to install it.
fn program(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed; run make bootstrap (it installs Debian's prometheus package)"
        )
    })
}

/// GitHub's anchor of a Markdown heading: lower case, punctuation dropped,
/// spaces to hyphens.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

// ---------------------------------------------------------------- structure

#[test]
fn dashboard_has_unique_ids_datasource_variables_and_no_cluster_name() {
    let dash = dashboard();
    let all = panels(&dash);
    let ids: Vec<u64> = all.iter().map(|p| p["id"].as_u64().expect("id")).collect();
    let unique: BTreeSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate panel ids: {ids:?}");

    // Variables: a Prometheus data source, and cluster and pod from the agent's series.
    let vars: BTreeMap<&str, &Value> = dash["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    assert_eq!(
        vars.keys().copied().collect::<Vec<_>>(),
        ["cluster", "datasource", "pod"]
    );
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    for name in ["cluster", "pod"] {
        let v = vars[name];
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"]["uid"], DATASOURCE, "{name}");
        let q = v["query"]["query"].as_str().unwrap();
        assert!(
            q.starts_with("label_values(alert_manager_agent_")
                && q.ends_with(&format!(", {name})")),
            "{name}: {q}"
        );
    }

    let mut titles = BTreeSet::new();
    for p in &all {
        let title = p["title"].as_str().unwrap();
        if p["type"] == "row" {
            assert!(p.get("targets").is_none(), "row {title} has queries");
            continue;
        }
        titles.insert(title);
        assert_eq!(
            p["datasource"],
            json!({"type": "prometheus", "uid": DATASOURCE}),
            "panel {title}"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title} has no query");
        for t in targets {
            assert_eq!(t["datasource"], p["datasource"], "{title} {}", t["refId"]);
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains(r#"cluster=~"$cluster""#) && expr.contains(r#"pod=~"$pod""#),
                "{title}: not scoped by $cluster and $pod: {expr}"
            );
            // Every selector of an agent metric carries both.
            assert_eq!(
                expr.matches("alert_manager_agent_").count(),
                expr.matches(r#"cluster=~"$cluster""#).count(),
                "{title}: {expr}"
            );
        }
    }
    // The panels the issue asks for.
    for want in [
        "Alerts received and published, by source",
        "Publish failures, by reason",
        "Webhook responses, by code",
        "Publish latency p50 / p99",
        "Envelope size and truncations",
        "Kubernetes context misses, by reason",
        "Events seen and dropped, by reason",
        "Event buffer depth",
        "Leader",
    ] {
        assert!(titles.contains(want), "no panel {want:?}: {titles:?}");
    }

    // No cluster written in: every `cluster` matcher anywhere is the variable.
    let text = serde_json::to_string(&dash).unwrap();
    for (i, _) in text.match_indices("cluster=") {
        let rest = &text[i..];
        assert!(
            rest.starts_with(r#"cluster=~\"$cluster\""#),
            "hard-coded cluster matcher: {}",
            &rest[..rest.len().min(40)]
        );
    }
    for name in [CLUSTER, "prod-eu-1", "test-cluster"] {
        assert!(!text.contains(name), "cluster name {name} in the dashboard");
    }
}

#[test]
fn dashboard_file_is_the_charts_copy_and_the_chart_ships_it_off_by_default() {
    // The chart can read only its own files, so the JSON lives in the chart
    // and infra/dashboards/agent.json links to it: one copy, no drift.
    let root = workspace_root();
    let link = root.join("infra/dashboards/agent.json");
    let meta = std::fs::symlink_metadata(&link).expect("infra/dashboards/agent.json");
    assert!(
        meta.file_type().is_symlink(),
        "{} is not a symlink",
        link.display()
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../helm/alert-manager-agent/dashboards/agent.json")
    );
    let chart_copy = std::fs::read_to_string(chart_dir().join("dashboards/agent.json")).unwrap();
    assert_eq!(std::fs::read_to_string(&link).unwrap(), chart_copy);

    let required = [
        "--set",
        "topicArn=arn:aws:sns:us-east-1:123456789012:alerts",
        "--set",
        "clusterName=test-cluster",
    ];
    let default = render(&required);
    assert!(
        of_kind(&default, "ConfigMap").is_empty(),
        "the dashboard is off by default"
    );

    let objs = render_full();
    let maps = of_kind(&objs, "ConfigMap");
    assert_eq!(maps.len(), 1);
    let cm = maps[0];
    assert_eq!(
        cm["metadata"]["labels"]["grafana_dashboard"].as_str(),
        Some("1"),
        "the Grafana sidecar's label"
    );
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    let shipped = cm["data"]["alert-manager-agent.json"].as_str().unwrap();
    let shipped: Value = serde_json::from_str(shipped).expect("the ConfigMap holds JSON");
    assert_eq!(
        shipped,
        dashboard(),
        "the ConfigMap holds the dashboard file"
    );
}

#[test]
fn chart_rules_pass_promtool_and_link_to_troubleshooting_headings() {
    let objs = render_full();
    let rule = of_kind(&objs, "PrometheusRule")[0];
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    let groups = serde_yaml::to_string(&serde_yaml::Mapping::from_iter([(
        "groups".into(),
        rule["spec"]["groups"].clone(),
    )]))
    .unwrap();
    std::fs::write(&file, &groups).unwrap();
    let out = Command::new(program("promtool"))
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check rules:\n{said}\n{groups}"
    );
    let rules = chart_rules(&objs);
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{said}"
    );

    // The alerts the issue asks for.
    let names: BTreeSet<&str> = rules.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "AlertManagerAgentPublishFailures",
        "AlertManagerAgentNotReady",
        "AlertManagerAgentWebhookErrors",
        "AlertManagerAgentEventsDropped",
        "AlertManagerAgentNoEventsLeader",
    ] {
        assert!(names.contains(want), "{want} missing: {names:?}");
    }

    // Every runbook_url points at a heading of the operator guide.
    let guide = std::fs::read_to_string(workspace_root().join("docs/aws-integration.md")).unwrap();
    let anchors: BTreeSet<String> = guide
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| github_anchor(l.trim_start_matches('#')))
        .collect();
    for r in rule["spec"]["groups"][0]["rules"].as_sequence().unwrap() {
        let name = r["alert"].as_str().unwrap();
        let url = r["annotations"]["runbook_url"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no runbook_url"));
        let (page, anchor) = url.split_once('#').unwrap_or_else(|| panic!("{url}"));
        assert_eq!(
            page,
            "https://github.com/alert-manager/alert-manager/blob/main/docs/aws-integration.md",
            "{name}"
        );
        assert!(
            anchors.contains(anchor),
            "{name}: #{anchor} is no heading of docs/aws-integration.md"
        );
    }

    // No leader for more than two lease durations (full values: 20 s).
    let leader = rule["spec"]["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["alert"].as_str() == Some("AlertManagerAgentNoEventsLeader"))
        .unwrap();
    assert_eq!(leader["for"].as_str(), Some("40s"));
}

// ---------------------------------------------------------------- Prometheus

/// Debian's Prometheus on 127.0.0.1, scraping every second; killed on drop.
struct Prometheus {
    url: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(config_yaml: &str) -> Prometheus {
        let bin = program("prometheus");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, config_yaml).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(log);
        let child = ChildGuard::spawn("prometheus", cmd);
        let url = format!("http://127.0.0.1:{port}");
        alert_manager_tests::wait_until_http_ok(
            "prometheus",
            &format!("{url}/-/ready"),
            Duration::from_secs(30),
        )
        .await;
        Prometheus {
            url,
            _child: child,
            _dir: dir,
        }
    }

    /// `/api/v1/query` of `expr`: the result vector; panics unless status is success.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let resp = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .unwrap_or_else(|e| panic!("query {expr}: {e}"));
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        assert_eq!(body["data"]["resultType"], "vector", "{expr}: {body}");
        body["data"]["result"].as_array().unwrap().clone()
    }

    /// The values of `label` on the series of `selector` (Grafana's `label_values`).
    async fn label_values(&self, selector: &str, label: &str) -> BTreeSet<String> {
        let body: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/label/{label}/values", self.url))
            .query(&[("match[]", selector)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{selector}: {body}");
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// Waits until `expr` returns at least `n` series.
    async fn wait_for(&self, expr: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.query(expr).await;
            if got.len() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{expr}: {} series after {timeout:?}, want {n}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The value of `label` in each series of a result.
fn label_set(result: &[Value], label: &str) -> BTreeSet<String> {
    result
        .iter()
        .filter_map(|s| s["metric"][label].as_str().map(String::from))
        .collect()
}

/// kube-state-metrics' `kube_pod_status_ready` for the two agents, from
/// their real /readyz (the probe the chart gives the pod), served on
/// 127.0.0.1 so that the NotReady rule's readiness half has its real input.
async fn fake_kube_state_metrics(agents: Vec<(String, String)>) -> u16 {
    use axum::{Router, routing::get};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let agents = agents.clone();
            async move {
                let mut out = String::from(
                    "# HELP kube_pod_status_ready Describes whether the pod is ready to serve requests.\n\
                     # TYPE kube_pod_status_ready gauge\n",
                );
                for (pod, readyz) in &agents {
                    let ready = matches!(
                        reqwest::get(readyz).await.map(|r| r.status().is_success()),
                        Ok(true)
                    );
                    for (condition, value) in
                        [("true", ready), ("false", !ready), ("unknown", false)]
                    {
                        out.push_str(&format!(
                            "kube_pod_status_ready{{namespace=\"{NAMESPACE}\",pod=\"{pod}\",uid=\"uid-{pod}\",condition=\"{condition}\"}} {}\n",
                            u8::from(value)
                        ));
                    }
                }
                out
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

fn port_of(url: &str) -> String {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

fn prometheus_config(a: &AgentProcess, b: &AgentProcess, ksm_port: u16) -> String {
    // The ServiceMonitor gives job (the Service: the release's fullname),
    // namespace and pod; `cluster` is what a multi-cluster setup (Thanos,
    // Mimir, an external label) adds and the dashboard selects on.
    let target = |agent: &AgentProcess, pod: &str| {
        format!(
            "      - targets: ['127.0.0.1:{}']\n        labels: {{cluster: {CLUSTER}, namespace: {NAMESPACE}, pod: {pod}, service: {RELEASE}, endpoint: metrics}}\n",
            port_of(&agent.metrics)
        )
    };
    format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n\
         \x20 - job_name: {RELEASE}\n    static_configs:\n{}{}\
         \x20 - job_name: kube-state-metrics\n    honor_labels: true\n    static_configs:\n      - targets: ['127.0.0.1:{ksm_port}']\n        labels: {{cluster: {CLUSTER}}}\n",
        target(a, POD_A),
        target(b, POD_B)
    )
}

fn fixture(name: &str) -> Value {
    let path = workspace_root().join("agent/fixtures/kube").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn cluster_objects() -> Vec<Value> {
    [
        "node-managed.json",
        "namespace-annotated.json",
        "namespace-labelled.json",
        "pod.json",
    ]
    .iter()
    .map(|n| fixture(n))
    .collect()
}

/// A fresh Warning event of `reason` about pod `pod` in payments.
fn warning_event(name: &str, pod: &str, reason: &str) -> Value {
    let now = jiff::Timestamp::now();
    let first = now - jiff::SignedDuration::from_secs(30);
    let mut ev = fixture("event-backoff-series.json");
    ev["metadata"]["name"] = json!(name);
    ev["metadata"]["uid"] = json!(format!("uid-{name}"));
    ev["metadata"]["creationTimestamp"] = json!(first.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["deprecatedFirstTimestamp"] = json!(first.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["deprecatedLastTimestamp"] = json!(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    ev["series"] =
        json!({"count": 3, "lastObservedTime": now.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()});
    ev["reason"] = json!(reason);
    ev["regarding"]["name"] = json!(pod);
    ev
}

/// One Alertmanager notification of one firing alert with `labels`.
fn webhook(labels: Value, summary: &str) -> Value {
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
            "annotations": {"summary": summary},
            "startsAt": "2026-11-28T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    })
}

/// POSTs `body` with `token`; the status.
async fn post(url: &str, token: &str, body: String) -> u16 {
    reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or_else(|e| panic!("POST {url}: {e}"))
}

/// Waits for the agent's /readyz, or fails with its log.
async fn wait_ready(agent: &AgentProcess, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let url = format!("{}/readyz", agent.metrics);
    loop {
        if matches!(
            reqwest::get(&url).await.map(|r| r.status().is_success()),
            Ok(true)
        ) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "agent not ready in {timeout:?}; its log:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One round of load. Agent A (SNS reachable, Kubernetes context, no events)
/// publishes, answers 400 and 401, misses context (pod not found, API
/// errors) and cuts an oversized envelope; agent B (SNS unreachable, so never
/// ready; the events Lease holder) answers 503 and its one-slot event buffer
/// overflows while its publisher retries.
async fn load_round(round: usize, a: &AgentProcess, b: &AgentProcess, api: &MockKubeApi) {
    let ok = |pod: &str, ns: &str| {
        webhook(
            json!({"alertname": "KubePodCrashLooping", "severity": "critical",
                "namespace": ns, "pod": pod, "round": round.to_string()}),
            "Pod is crash looping.",
        )
        .to_string()
    };
    // Published with full context, and twice without (pod unknown; the API fails).
    for (pod, ns) in [
        ("checkout-7d9f8b6c5-x2k4p", "payments"),
        ("ghost-0", "payments"),
        (&*format!("indexer-{round}"), "search"),
    ] {
        assert_eq!(
            post(&a.webhook, AGENT_TOKEN, ok(pod, ns)).await,
            200,
            "{pod}"
        );
    }
    // An annotation larger than SNS takes: cut to fit, still published.
    let big = webhook(
        json!({"alertname": "HugeAnnotation", "round": round.to_string()}),
        &"x".repeat(300 * 1024),
    );
    assert_eq!(post(&a.webhook, AGENT_TOKEN, big.to_string()).await, 200);
    assert_eq!(
        post(&a.webhook, AGENT_TOKEN, "{\"version\":".into()).await,
        400
    );
    assert_eq!(
        post(&a.webhook, "not-the-token", ok("x", "payments")).await,
        401
    );

    // Warning events: two kept (the buffer holds one while the publisher
    // retries an unreachable SNS: buffer_full) and one filtered out.
    for (i, reason) in ["BackOff", "BackOff", "BackOff", "Pulled"]
        .iter()
        .enumerate()
    {
        api.add(warning_event(
            &format!("ev-{round}-{i}.17f1"),
            &format!("worker-{round}-{i}"),
            reason,
        ));
    }
    let code = post(
        &b.webhook,
        AGENT_TOKEN,
        ok("checkout-7d9f8b6c5-x2k4p", "payments"),
    )
    .await;
    assert_eq!(code, 503, "SNS unreachable from agent B");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_and_rule_returns_series_from_prometheus_scraping_loaded_agents() {
    let started = Instant::now();
    let proved = tokio::time::timeout(TEST_BUDGET, prove_against_prometheus()).await;
    assert!(
        proved.is_ok(),
        "the Prometheus test took longer than {TEST_BUDGET:?}"
    );
    eprintln!(
        "dashboards: proven against Prometheus in {:?}",
        started.elapsed()
    );
}

async fn prove_against_prometheus() {
    // Fail early and clearly if Prometheus is not installed.
    program("prometheus");
    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    let _queue = moto.subscribe_queue(&topic, "inbox", None).await;
    let api = MockKubeApi::start(cluster_objects()).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_str().unwrap().to_string();
    api.fail("/api/v1/namespaces/search/pods", 500);

    // AWS_ACCOUNT_ID: the account is given, so readiness is only the topic check.
    let a = AgentProcess::start(
        &moto.endpoint(),
        &topic,
        &[
            ("KUBERNETES_CONTEXT", "auto"),
            ("KUBECONFIG", &kubeconfig),
            ("AWS_ACCOUNT_ID", alert_manager_tests::ACCOUNT_ID),
        ],
    )
    .await;
    // Ready (topic and account checked), as the Service would route to it.
    wait_ready(&a, Duration::from_secs(20)).await;
    // B's AWS endpoint is a closed port: no credentials, no SNS.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let b = AgentProcess::start(
        &dead,
        &topic,
        &[
            ("KUBERNETES_CONTEXT", "auto"),
            ("KUBECONFIG", &kubeconfig),
            ("AWS_ACCOUNT_ID", alert_manager_tests::ACCOUNT_ID),
            ("EVENTS_ENABLED", "true"),
            ("EVENT_BUFFER_SIZE", "1"),
            ("POD_NAME", POD_B),
            ("POD_NAMESPACE", NAMESPACE),
            ("LEASE_DURATION_SECONDS", "10"),
            ("PUBLISH_DEADLINE_SECONDS", "1"),
        ],
    )
    .await;
    let ksm = fake_kube_state_metrics(vec![
        (POD_A.to_string(), format!("{}/readyz", a.metrics)),
        (POD_B.to_string(), format!("{}/readyz", b.metrics)),
    ])
    .await;
    let prom = Prometheus::start(&prometheus_config(&a, &b, ksm)).await;
    prom.wait_for("up == 1", 3, Duration::from_secs(20)).await;
    prom.wait_for(
        &format!(r#"alert_manager_agent_leader{{pod="{POD_B}"}} == 1"#),
        1,
        Duration::from_secs(20),
    )
    .await;

    // Counters must rise between scrapes for rate() to see them: three rounds,
    // each a few scrapes apart, then two more scrapes.
    for round in 0..3 {
        load_round(round, &a, &b, &api).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
    }
    let dropped = format!(
        r#"alert_manager_agent_events_dropped_total{{reason="buffer_full",pod="{POD_B}"}}"#
    );
    prom.wait_for(
        &format!("increase({dropped}[1m]) > 0"),
        1,
        Duration::from_secs(20),
    )
    .await;

    // The variables: Grafana's label_values over what Prometheus holds.
    let dash = dashboard();
    let var_query = |name: &str| {
        let v = dash["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap();
        let q = v["query"]["query"].as_str().unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(&format!(", {name})")))
            .unwrap_or_else(|| panic!("{q}"));
        substitute(inner, CLUSTER, ".*")
    };
    assert_eq!(
        prom.label_values(&var_query("cluster"), "cluster").await,
        BTreeSet::from([CLUSTER.to_string()])
    );
    assert_eq!(
        prom.label_values(&var_query("pod"), "pod").await,
        BTreeSet::from([POD_A.to_string(), POD_B.to_string()])
    );

    // Every panel query, with every pod selected: valid and not empty.
    let mut results = BTreeMap::new();
    for (title, ref_id, expr) in targets(&dash) {
        let q = substitute(&expr, CLUSTER, ".*");
        let got = prom.query(&q).await;
        assert!(
            !got.is_empty(),
            "panel {title:?} {ref_id} returns no series: {q}"
        );
        results.insert((title, ref_id), got);
    }
    let series = |title: &str, ref_id: &str| &results[&(title.to_string(), ref_id.to_string())];
    // And they show what happened.
    assert_eq!(
        label_set(
            series("Alerts received and published, by source", "A"),
            "source"
        ),
        BTreeSet::from(["alertmanager".to_string(), "kubernetes-event".to_string()])
    );
    let codes = label_set(series("Webhook responses, by code", "A"), "code");
    for code in ["200", "400", "401", "503"] {
        assert!(codes.contains(code), "code {code}: {codes:?}");
    }
    let misses = label_set(
        series("Kubernetes context misses, by reason", "A"),
        "reason",
    );
    for reason in ["api_error", "pod_not_found"] {
        assert!(misses.contains(reason), "miss {reason}: {misses:?}");
    }
    let drops = label_set(series("Events seen and dropped, by reason", "B"), "reason");
    for reason in ["buffer_full", "reason_filtered"] {
        assert!(drops.contains(reason), "drop {reason}: {drops:?}");
    }
    let truncated = series("Envelope size and truncations", "C");
    assert!(
        truncated[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0,
        "truncations seen: {truncated:?}"
    );
    let leaders: BTreeMap<String, String> = series("Leader", "A")
        .iter()
        .map(|s| {
            (
                s["metric"]["pod"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        leaders,
        BTreeMap::from([
            (POD_A.to_string(), "0".into()),
            (POD_B.to_string(), "1".into())
        ])
    );
    // $pod selects: agent A alone has no publish failures.
    let (_, _, failures) = targets(&dash)
        .into_iter()
        .find(|(t, _, _)| t == "Publish failures, by reason")
        .unwrap();
    assert!(
        prom.query(&substitute(&failures, CLUSTER, POD_A))
            .await
            .is_empty(),
        "pod={POD_A} still shows B's failures"
    );
    assert!(
        !prom
            .query(&substitute(&failures, CLUSTER, POD_B))
            .await
            .is_empty()
    );

    // Every rule of the chart (full values: events and context on), as
    // Prometheus evaluates it. The load makes each condition true except
    // the leader's (B holds the Lease): for that one the expression without
    // its `== 0` must return the leader gauge, 1, and the whole expression
    // nothing.
    let rules = chart_rules(&render_full());
    assert_eq!(rules.len(), 6, "{rules:?}");
    for (name, expr) in &rules {
        let got = prom.query(expr).await;
        let pods = label_set(&got, "pod");
        match name.as_str() {
            "AlertManagerAgentNoEventsLeader" => {
                assert!(got.is_empty(), "{name} fires with a leader: {got:?}");
                let gauge = expr.strip_suffix(" == 0").expect("ends with == 0");
                let got = prom.query(gauge).await;
                assert_eq!(got.len(), 1, "{name}: {gauge}: {got:?}");
                assert_eq!(got[0]["value"][1], "1", "{name}: {got:?}");
            }
            "AlertManagerAgentContextApiErrors" => {
                assert!(pods.contains(POD_A), "{name}: {got:?}\n{expr}");
            }
            "AlertManagerAgentNotReady" => {
                // B never reached SNS, so /readyz says not ready; A is ready.
                assert_eq!(pods, BTreeSet::from([POD_B.to_string()]), "{name}: {got:?}");
            }
            "AlertManagerAgentPublishFailures"
            | "AlertManagerAgentWebhookErrors"
            | "AlertManagerAgentEventsDropped" => {
                assert_eq!(
                    pods,
                    BTreeSet::from([POD_B.to_string()]),
                    "{name}: {got:?}\n{expr}"
                );
            }
            other => panic!("rule {other} has no expectation here; add one"),
        }
    }
    // The NotReady rule's scrape half, on its own: both agents are up.
    let up = prom
        .query(&format!(r#"up{{job="{RELEASE}",namespace="{NAMESPACE}"}}"#))
        .await;
    assert_eq!(up.len(), 2, "{up:?}");
}
