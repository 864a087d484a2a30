//! The webhook over TLS: certificates made here with `openssl` (a CA and a
//! server certificate for 127.0.0.1, as cert-manager's CA issuer makes
//! them), Debian's Alertmanager sending through `http_config.tls_config`
//! exactly as `docs/aws-integration.md` shows, and a renewal picked up
//! without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alert_manager_tests::agent::{AGENT_TOKEN, AgentProcess, receive_until};
use alert_manager_tests::{Alertmanager, MotoServer, wait_until_http_ok, workspace_binary};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`{name}-ca.crt`) and a server certificate for 127.0.0.1 and
/// localhost signed by it (`{name}.crt`, `{name}.key`), ECDSA P-256.
fn issue(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.crt");
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let cert = format!("{name}.crt");
    let ext = format!("{name}.ext");
    std::fs::write(
        dir.join(&ext),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &ca_key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            &ca_key,
            "-sha256",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} test CA"),
            "-out",
            &ca,
        ],
    );
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key,
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            &key,
            "-subj",
            "/CN=alert-manager-agent",
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-sha256",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    (dir.join(ca), dir.join(cert), dir.join(key))
}

/// A client that trusts only `ca`.
fn client_trusting(ca: &Path) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Status of an unauthenticated POST through `client`, or why TLS failed.
async fn probe(client: &reqwest::Client, url: &str) -> Result<u16, String> {
    client
        .post(url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

/// Installs `cert` and `key` as the agent's files, the way the kubelet
/// updates a Secret volume: each file replaced whole, never half written.
fn install(cert: &Path, key: &Path, to_cert: &Path, to_key: &Path) {
    for (from, to) in [(cert, to_cert), (key, to_key)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).unwrap();
        std::fs::rename(&tmp, to).unwrap();
    }
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn alertmanager_sends_over_tls_and_a_renewed_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca1, cert1, key1) = issue(d, "first");
    let (ca2, cert2, key2) = issue(d, "renewed");
    let (served_cert, served_key) = (d.join("tls.crt"), d.join("tls.key"));
    install(&cert1, &key1, &served_cert, &served_key);

    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    let queue = moto.subscribe_queue(&topic, "all", None).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let agent = AgentProcess::start(
        &moto.endpoint(),
        &topic,
        &[
            ("TLS_CERT_FILE", served_cert.to_str().unwrap()),
            ("TLS_KEY_FILE", served_key.to_str().unwrap()),
            ("HEADER_READ_TIMEOUT_SECONDS", "1"),
        ],
    )
    .await;
    wait_until_http_ok(
        "agent /readyz",
        &format!("{}/readyz", agent.metrics),
        Duration::from_secs(20),
    )
    .await;
    let https = agent.webhook.replacen("http://", "https://", 1);

    // Alertmanager, configured as the operator guide shows, trusting the CA.
    let token = d.join("am-token");
    std::fs::write(&token, AGENT_TOKEN).unwrap();
    let am = Alertmanager::start(&format!(
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
      - url: {https}
        send_resolved: true
        http_config:
          authorization:
            credentials_file: {token}
          tls_config:
            ca_file: {ca}
"#,
        token = token.display(),
        ca = ca1.display()
    ))
    .await;
    am.post_alerts(&serde_json::json!([{
        "labels": {"alertname": "CertTest", "severity": "critical", "namespace": "payments"},
        "annotations": {"summary": "over TLS"},
    }]))
    .await;
    let got = receive_until(&sqs, &queue, Duration::from_secs(60), |g| !g.is_empty()).await;
    assert_eq!(
        got.len(),
        1,
        "Alertmanager's notification reached SNS over TLS"
    );
    assert_eq!(got[0].0.alertname, "CertTest");

    // Plain HTTP on the TLS port gets no HTTP answer, and is counted.
    let plain = reqwest::Client::new()
        .post(&agent.webhook)
        .bearer_auth(AGENT_TOKEN)
        .json(&serde_json::json!({}))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP must not be served: {plain:?}");
    // A client that does not trust the CA cannot connect.
    let first = client_trusting(&ca1);
    let second = client_trusting(&ca2);
    assert!(
        probe(&second, &https).await.is_err(),
        "the first certificate is not the renewed CA's"
    );
    assert_eq!(
        probe(&first, &https).await,
        Ok(401),
        "TLS up, and the token still checked"
    );
    let m = agent.metrics_text().await;
    assert!(
        metric(
            &m,
            "alert_manager_agent_tls_handshake_failures_total{listener=\"webhook\",reason=\"error\"}"
        ) >= 2.0,
        "the plain-HTTP and untrusting clients are counted:\n{m}"
    );
    // A client that connects and never starts its handshake is closed after
    // HEADER_READ_TIMEOUT_SECONDS (1 s here), like one that never ends its headers.
    let port: u16 = https
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buf),
    )
    .await
    .expect("the silent client is closed, not held");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed without an answer: {read:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let m = agent.metrics_text().await;
    assert!(
        metric(
            &m,
            "alert_manager_agent_tls_handshake_failures_total{listener=\"webhook\",reason=\"timeout\"}"
        ) >= 1.0,
        "{m}"
    );

    // A key that does not fit the certificate: refused, the current pair stays.
    install(&cert1, &key2, &served_cert, &served_key);
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(
        &agent.metrics_text().await,
        "alert_manager_agent_tls_reloads_total{result=\"error\"}",
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "the mismatched pair was not reported:\n{}",
            agent.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        agent.log_text().contains("does not fit the certificate"),
        "{}",
        agent.log_text()
    );
    assert_eq!(
        probe(&first, &https).await,
        Ok(401),
        "still the first certificate"
    );

    // The renewal: the next connections get it, with no restart.
    let pid = agent.child.pid();
    install(&cert2, &key2, &served_cert, &served_key);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match probe(&client_trusting(&ca2), &https).await {
            Ok(code) => {
                assert_eq!(code, 401);
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "renewed certificate not served: {e}\n{}",
                agent.log_text()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        probe(&client_trusting(&ca1), &https).await.is_err(),
        "the old certificate is gone"
    );
    assert_eq!(agent.child.pid(), pid);
    let m = agent.metrics_text().await;
    assert!(
        metric(&m, "alert_manager_agent_tls_reloads_total{result=\"ok\"}") >= 1.0,
        "{m}"
    );
}

/// The agent binary with only config settings; what it printed on exit.
fn start_fails(envs: &[(&str, &Path)]) -> String {
    let out = Command::new(workspace_binary("alert-manager-agent"))
        .env_clear()
        .env(
            "ALERT_TOPIC_ARN",
            "arn:aws:sns:us-east-1:123456789012:alerts",
        )
        .env("CLUSTER_NAME", "tls-test")
        .env("KUBERNETES_CONTEXT", "off")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the agent must refuse {envs:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_tls_settings_stop_the_agent_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = issue(dir.path(), "one");
    let (_, _, other_key) = issue(dir.path(), "two");

    let e = start_fails(&[("TLS_CERT_FILE", &cert)]);
    assert!(
        e.contains("TLS_KEY_FILE") && e.contains("TLS_CERT_FILE"),
        "{e}"
    );
    let e = start_fails(&[("TLS_CERT_FILE", &cert), ("TLS_KEY_FILE", &other_key)]);
    assert!(
        e.contains("TLS_KEY_FILE") && e.contains("does not fit the certificate"),
        "{e}"
    );
    let e = start_fails(&[("TLS_CERT_FILE", &key), ("TLS_KEY_FILE", &key)]);
    assert!(
        e.contains("TLS_CERT_FILE") && e.contains("no CERTIFICATE"),
        "{e}"
    );
    let missing = dir.path().join("missing.crt");
    let e = start_fails(&[("TLS_CERT_FILE", &missing), ("TLS_KEY_FILE", &key)]);
    assert!(
        e.contains("TLS_CERT_FILE") && e.contains("cannot read"),
        "{e}"
    );
}
