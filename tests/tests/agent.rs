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

// ---- Hostile clients: raw sockets against both listeners ----

/// The agent's resident set, from /proc.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

/// Sends an unfinished request head one byte at a time; returns how long
/// the server kept the connection open (None: still open after `give_up`).
async fn trickle_until_closed(addr: &str, give_up: Duration) -> Option<Duration> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: agent\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    while started.elapsed() < give_up {
        if stream.write_all(b"a").await.is_err() {
            return Some(started.elapsed());
        }
        match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            // An answer (408) before the close counts as the close.
            Ok(Ok(_)) => return Some(started.elapsed()),
            Err(_) => {}
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_headers_are_closed_within_the_header_read_timeout_on_both_listeners() {
    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    let agent = AgentProcess::start(
        &moto.endpoint(),
        &topic,
        &[("HEADER_READ_TIMEOUT_SECONDS", "2")],
    )
    .await;
    let (webhook_addr, metrics_addr) = (host_port(&agent.webhook), host_port(&agent.metrics));
    let (webhook, metrics) = tokio::join!(
        trickle_until_closed(&webhook_addr, Duration::from_secs(8)),
        trickle_until_closed(&metrics_addr, Duration::from_secs(8)),
    );
    for (listener, open) in [("webhook", webhook), ("metrics", metrics)] {
        let open = open.unwrap_or_else(|| {
            panic!("{listener}: a header trickled byte by byte was still open after 8 s")
        });
        assert!(
            open >= Duration::from_millis(1500) && open <= Duration::from_millis(3500),
            "{listener}: closed after {open:?}, want about the 2 s header timeout"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    let agent = AgentProcess::start(
        &moto.endpoint(),
        &topic,
        &[("HEADER_READ_TIMEOUT_SECONDS", "2")],
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(host_port(&agent.metrics))
        .await
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: agent\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "an idle keep-alive connection was still open after 8 s: {closed:?}"
    );
    assert!(
        idle.elapsed() <= Duration::from_millis(3500),
        "idle connection closed after {:?}, want about 2 s",
        idle.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_hostile_connections_keep_rss_under_64_mib_and_another_client_gets_200_within_1_s()
 {
    use tokio::io::AsyncWriteExt;
    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    let agent = AgentProcess::start(&moto.endpoint(), &topic, &[]).await;
    wait_until_http_ok(
        "agent /readyz",
        &format!("{}/readyz", agent.metrics),
        Duration::from_secs(20),
    )
    .await;
    let addr = host_port(&agent.webhook);
    let before = rss_mib(agent.child.pid());
    // Each connection sends up to 300 KB of a header that never ends, then holds.
    let mut hostile = Vec::new();
    for _ in 0..1000 {
        let addr = addr.clone();
        hostile.push(tokio::spawn(async move {
            let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
                return None;
            };
            let _ = s
                .write_all(b"POST /webhook HTTP/1.1\r\nHost: a\r\nX-Pad: ")
                .await;
            let pad = vec![b'a'; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(3), async {
                for _ in 0..75 {
                    if s.write_all(&pad).await.is_err() {
                        break;
                    }
                }
            })
            .await;
            Some(s)
        }));
    }
    let mut held = Vec::new();
    for h in hostile {
        if let Some(s) = h.await.unwrap() {
            held.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_mib(agent.child.pid());

    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(
        &std::fs::read(alert_manager_tests::workspace_root().join("envelope/fixtures/firing.json"))
            .unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let response = client
        .post(&agent.webhook)
        .bearer_auth(TOKEN)
        .json(&body)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let after = rss_mib(agent.child.pid());
    drop(held);
    eprintln!(
        "RSS before {before:.1} MiB, with 1000 hostile connections {during:.1} MiB, after the webhook {after:.1} MiB; webhook latency {latency:?}"
    );
    assert_eq!(status, 200, "{text}");
    assert!(
        latency <= Duration::from_secs(1),
        "webhook from 127.0.0.2 took {latency:?}"
    );
    assert!(
        during.max(after) <= 64.0,
        "RSS {during:.1} / {after:.1} MiB with 1000 hostile connections"
    );
    // The per-client cap was reached: connections beyond it waited (or, with
    // the waiting room full, were closed at once).
    let m = agent.metrics_text().await;
    assert!(
        m.contains(r#"connections_waited_total{listener="webhook"}"#),
        "{m}"
    );
}

// ---- Token rotation ----

/// What the webhook answers a request with `token` and no content type:
/// 415 once the token is accepted (nothing is published), 401 if not.
async fn token_answer(agent: &AgentProcess, token: &str) -> u16 {
    reqwest::Client::new()
        .post(&agent.webhook)
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `token` gets `code` (polling every 250 ms); returns when.
async fn until_answer(agent: &AgentProcess, token: &str, code: u16, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if token_answer(agent, token).await == code {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "token {token:?} did not get {code} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const ROTATED: &str = "rotated-bearer-token-8c1d";

#[tokio::test(flavor = "multi_thread")]
async fn a_rewritten_token_file_is_followed_and_the_previous_token_expires_after_the_grace() {
    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    let agent = AgentProcess::start(
        &moto.endpoint(),
        &topic,
        &[("AUTH_TOKEN_GRACE_SECONDS", "4")],
    )
    .await;
    assert_eq!(token_answer(&agent, TOKEN).await, 415);
    assert_eq!(token_answer(&agent, ROTATED).await, 401);
    std::fs::write(agent.dir.path().join("bearer"), format!("{ROTATED}\n")).unwrap();
    let accepted = until_answer(&agent, ROTATED, 415, Duration::from_secs(15)).await;
    // Alertmanager's copy of the Secret may still hold the old token a while.
    assert_eq!(
        token_answer(&agent, TOKEN).await,
        415,
        "old token within the grace"
    );
    tokio::time::sleep_until((accepted + Duration::from_millis(2500)).into()).await;
    assert_eq!(
        token_answer(&agent, TOKEN).await,
        415,
        "old token within the grace"
    );
    let refused = until_answer(&agent, TOKEN, 401, Duration::from_secs(4)).await;
    assert!(
        refused.duration_since(accepted) <= Duration::from_millis(4500),
        "old token refused {:?} after the new one was accepted",
        refused.duration_since(accepted)
    );
    assert_eq!(token_answer(&agent, ROTATED).await, 415);
    let m = agent.metrics_text().await;
    assert!(
        m.contains(r#"auth_token_reloads_total{result="ok"} 1"#),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_volume_symlink_swap_is_followed_and_an_empty_file_keeps_the_token() {
    use std::os::unix::fs::symlink;
    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    // A mounted Secret as the kubelet lays it out: token -> ..data/token,
    // ..data -> ..<timestamp>/, swapped by renaming a new ..data symlink.
    let secret = tempfile::tempdir().unwrap();
    let first = secret.path().join("..2026_12_02_06_00_00.1");
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("token"), TOKEN).unwrap();
    symlink("..2026_12_02_06_00_00.1", secret.path().join("..data")).unwrap();
    symlink("..data/token", secret.path().join("token")).unwrap();
    let token_file = secret.path().join("token");
    let agent = AgentProcess::start(
        &moto.endpoint(),
        &topic,
        &[
            ("AUTH_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AUTH_TOKEN_GRACE_SECONDS", "1"),
        ],
    )
    .await;
    assert_eq!(token_answer(&agent, TOKEN).await, 415);

    let swap = |dir: &str, content: &str| {
        let next = secret.path().join(dir);
        std::fs::create_dir(&next).unwrap();
        std::fs::write(next.join("token"), content).unwrap();
        let tmp = secret.path().join("..data_tmp");
        symlink(dir, &tmp).unwrap();
        std::fs::rename(&tmp, secret.path().join("..data")).unwrap();
    };
    swap("..2026_12_02_06_10_00.2", ROTATED);
    std::fs::remove_dir_all(&first).unwrap();
    until_answer(&agent, ROTATED, 415, Duration::from_secs(15)).await;
    until_answer(&agent, TOKEN, 401, Duration::from_secs(5)).await;

    // An empty Secret (a botched rotation) keeps the token in use.
    swap("..2026_12_02_06_20_00.3", "");
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        token_answer(&agent, ROTATED).await,
        415,
        "current token kept"
    );
    assert!(
        agent
            .log_text()
            .contains("AUTH_TOKEN_FILE cannot be used; keeping the current token"),
        "{}",
        agent.log_text()
    );
    let m = agent.metrics_text().await;
    assert!(
        m.contains(r#"auth_token_reloads_total{result="error"} 1"#),
        "{m}"
    );
}
