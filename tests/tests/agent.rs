//! The real agent binary between Debian's Alertmanager and moto's SNS, with
//! IRSA web-identity credentials and SQS subscribers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use alert_envelope::Status;
use alert_manager_tests::agent::{
    AGENT_TOKEN, AgentProcess, irsa_env, receive_until, write_token_files,
};
use alert_manager_tests::{
    Alertmanager, MotoServer, TcpProxy, wait_until_http_ok, workspace_binary,
};

const TOKEN: &str = AGENT_TOKEN;

struct Topology {
    topic_arn: String,
    all_queue: String,
    critical_queue: String,
    sqs: aws_sdk_sqs::Client,
}

async fn topology(moto: &MotoServer) -> Topology {
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic_arn = moto.create_topic("alerts").await;
    let all_queue = moto.subscribe_queue(&topic_arn, "all", None).await;
    let critical_queue = moto
        .subscribe_queue(&topic_arn, "critical", Some(r#"{"severity":["critical"]}"#))
        .await;
    Topology {
        topic_arn,
        critical_queue,
        all_queue,
        sqs,
    }
}

type Agent = AgentProcess;

async fn alertmanager_for(agent: &Agent, token_dir: &Path) -> Alertmanager {
    let token = token_dir.join("am-token");
    std::fs::write(&token, TOKEN).unwrap();
    Alertmanager::start(&format!(
        r#"
route:
  receiver: agent
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: agent
    webhook_configs:
      - url: {}
        send_resolved: true
        http_config:
          authorization:
            credentials_file: {}
"#,
        agent.webhook,
        token.display()
    ))
    .await
}

fn alert(
    name: &str,
    severity: &str,
    description: &str,
    ends_at: Option<&str>,
) -> serde_json::Value {
    let mut a = serde_json::json!({
        "labels": {"alertname": name, "severity": severity, "namespace": "payments", "pod": "api-0"},
        "annotations": {"summary": format!("{name} summary"), "description": description},
        "generatorURL": "http://prometheus.monitoring.svc:9090/graph?g0.expr=up",
    });
    if let Some(end) = ends_at {
        a["endsAt"] = serde_json::json!(end);
    }
    a
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_to_agent_to_sns_to_sqs_with_filter_policy_and_truncation() {
    let moto = MotoServer::start().await;
    let t = topology(&moto).await;
    let agent = AgentProcess::start(&moto.endpoint(), &t.topic_arn, &[]).await;
    wait_until_http_ok(
        "agent /readyz",
        &format!("{}/readyz", agent.metrics),
        Duration::from_secs(20),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager_for(&agent, dir.path()).await;

    let huge = "disk usage report line\n".repeat(300 * 1024 / 23);
    am.post_alerts(&serde_json::json!([
        alert("NodeDiskFull", "critical", &huge, None),
        alert("PodLagging", "warning", "lagging", None),
    ]))
    .await;
    let firing = receive_until(&t.sqs, &t.all_queue, Duration::from_secs(60), |g| {
        g.len() >= 2
    })
    .await;
    assert_eq!(firing.len(), 2, "both firing alerts arrive");

    let now = jiff::Timestamp::now().to_string();
    am.post_alerts(&serde_json::json!([alert(
        "NodeDiskFull",
        "critical",
        &huge,
        Some(&now)
    )]))
    .await;
    let resolved = receive_until(&t.sqs, &t.all_queue, Duration::from_secs(60), |g| {
        !g.is_empty()
    })
    .await;
    assert_eq!(resolved.len(), 1);

    let all: Vec<_> = firing.iter().chain(resolved.iter()).collect();
    let disk_firing = all
        .iter()
        .find(|(e, _)| e.alertname == "NodeDiskFull" && e.status == Status::Firing)
        .expect("NodeDiskFull firing arrived");
    let disk_resolved = all
        .iter()
        .find(|(e, _)| e.alertname == "NodeDiskFull" && e.status == Status::Resolved)
        .expect("NodeDiskFull resolved arrived");
    assert_ne!(disk_firing.0.id, disk_resolved.0.id);
    assert_eq!(disk_firing.0.fingerprint, disk_resolved.0.fingerprint);

    // The 300 KiB annotation arrives cut, marked, and still a valid envelope.
    let (env, attrs) = disk_firing;
    assert!(env.truncated);
    assert!(env.annotations["description"].ends_with(alert_envelope::sns::TRUNCATION_MARKER));
    assert_eq!(env.annotations["summary"], "NodeDiskFull summary");
    assert_eq!(env.cluster, "e2e-cluster");
    assert_eq!(env.receiver.as_deref(), Some("agent"));
    assert!(env.external_url.is_some());
    assert_eq!(attrs["cluster"], "e2e-cluster");
    assert_eq!(attrs["severity"], "critical");
    assert_eq!(attrs["status"], "firing");
    assert_eq!(attrs["namespace"], "payments");
    assert_eq!(attrs["source"], "alertmanager");
    assert_eq!(disk_resolved.1["status"], "resolved");

    // The filter policy subscriber got exactly the critical ones.
    let critical =
        receive_until(&t.sqs, &t.critical_queue, Duration::from_secs(5), |_| false).await;
    let mut got: Vec<_> = critical
        .iter()
        .map(|(e, _)| (e.alertname.clone(), e.status))
        .collect();
    got.sort_by_key(|(n, s)| (n.clone(), s.as_str()));
    assert_eq!(
        got,
        vec![
            ("NodeDiskFull".to_string(), Status::Firing),
            ("NodeDiskFull".to_string(), Status::Resolved)
        ]
    );

    let metrics = reqwest::get(format!("{}/metrics", agent.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("alert_manager_agent_alerts_published_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("alert_manager_agent_envelopes_truncated_total 2"),
        "{metrics}"
    );
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(log.contains("published"), "{log}");
    assert!(
        !log.contains(TOKEN),
        "the bearer token leaked into the agent log"
    );

    // SIGTERM: stop accepting, drain, exit 0.
    let mut agent = agent;
    agent.child.signal("TERM");
    let status = agent.child.wait_exit(Duration::from_secs(25));
    assert!(
        status.is_some_and(|s| s.success()),
        "agent did not exit 0 on SIGTERM: {status:?}"
    );
    let log = std::fs::read_to_string(&agent.log).unwrap();
    assert!(log.contains("drained; exiting"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sns_outage_gets_503_and_alertmanager_retries_until_every_alert_arrives() {
    let moto = MotoServer::start().await;
    let t = topology(&moto).await;
    let proxy = TcpProxy::start(moto.port()).await;
    let agent = AgentProcess::start(
        &proxy.endpoint(),
        &t.topic_arn,
        &[("PUBLISH_DEADLINE_SECONDS", "1")],
    )
    .await;
    wait_until_http_ok(
        "agent /readyz",
        &format!("{}/readyz", agent.metrics),
        Duration::from_secs(20),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let am = alertmanager_for(&agent, dir.path()).await;

    proxy.set_up(false);
    let names: Vec<String> = (0..5).map(|i| format!("OutageAlert{i}")).collect();
    am.post_alerts(&serde_json::Value::Array(
        names
            .iter()
            .map(|n| alert(n, "warning", "during an SNS outage", None))
            .collect(),
    ))
    .await;
    // The agent answers 503 while SNS is unreachable.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = reqwest::get(format!("{}/metrics", agent.metrics))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.contains(r#"webhook_responses_total{code="503"}"#) {
            break;
        }
        assert!(Instant::now() < deadline, "no 503 during the outage: {m}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.set_up(true);

    let got = receive_until(&t.sqs, &t.all_queue, Duration::from_secs(90), |g| {
        let distinct: std::collections::BTreeSet<_> =
            g.iter().map(|(e, _)| e.alertname.clone()).collect();
        distinct.len() == 5
    })
    .await;
    let distinct: std::collections::BTreeSet<_> =
        got.iter().map(|(e, _)| e.alertname.clone()).collect();
    assert_eq!(
        distinct,
        names.iter().cloned().collect(),
        "every alert arrives after the outage"
    );
    // Duplicates, if any, carry the same id as the original.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (e, _) in &got {
        let id = ids
            .entry(e.alertname.clone())
            .or_insert_with(|| e.id.clone());
        assert_eq!(*id, e.id);
    }
}

fn whoami(
    env: &[(&str, &str)],
    web_identity: Option<&Path>,
    endpoint: &str,
    home: &Path,
) -> (bool, String) {
    let mut cmd = Command::new(workspace_binary("alert-manager-agent"));
    cmd.arg("whoami");
    match web_identity {
        Some(w) => irsa_env(&mut cmd, endpoint, w, home),
        None => {
            cmd.env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        }
    }
    cmd.env("LOG_FORMAT", "text").envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn whoami_reports_the_irsa_identity_and_names_what_is_missing() {
    let moto = MotoServer::start().await;
    let t = topology(&moto).await;
    let dir = tempfile::tempdir().unwrap();
    let (web_identity, _) = write_token_files(dir.path());
    let topic = [("ALERT_TOPIC_ARN", t.topic_arn.as_str())];

    let (ok, out) = whoami(&topic, Some(&web_identity), &moto.endpoint(), dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("web identity (IRSA)"), "{out}");
    assert!(
        out.contains("assumed-role/alert-manager-agent/agent-e2e"),
        "{out}"
    );
    assert!(out.contains("region:      us-east-1"), "{out}");
    assert!(out.contains("reachable"), "{out}");

    let missing_topic = [("ALERT_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:nope")];
    let (ok, out) = whoami(
        &missing_topic,
        Some(&web_identity),
        &moto.endpoint(),
        dir.path(),
    );
    assert!(!ok, "{out}");
    assert!(
        out.contains("sns:GetTopicAttributes failed (not_found)"),
        "{out}"
    );

    let unreadable = dir.path().join("no-such-token");
    let (ok, out) = whoami(&topic, Some(&unreadable), &moto.endpoint(), dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("AWS_WEB_IDENTITY_TOKEN_FILE"), "{out}");
    assert!(out.contains("not readable"), "{out}");

    let (ok, out) = whoami(
        &[
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("HOME", dir.path().to_str().unwrap()),
        ],
        None,
        &moto.endpoint(),
        dir.path(),
    );
    assert!(!ok, "{out}");
    assert!(out.contains("no AWS region"), "{out}");
    assert!(out.contains("AWS_REGION"), "{out}");
}
