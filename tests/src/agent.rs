//! The real agent binary, started with IRSA web-identity credentials (no
//! static keys) against moto, and an SQS reader for what it published.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alert_envelope::Envelope;

use crate::{ChildGuard, REGION, free_port, wait_until_http_ok, workspace_binary};

/// The bearer token the test agents require.
pub const AGENT_TOKEN: &str = "e2e-bearer-token-6f1b0c2a9d";
/// The IAM role the agent assumes with its web identity.
pub const AGENT_ROLE: &str = "arn:aws:iam::123456789012:role/alert-manager-agent";

/// A running agent.
pub struct AgentProcess {
    /// The process (killed on drop).
    pub child: ChildGuard,
    /// `http://127.0.0.1:PORT/webhook`.
    pub webhook: String,
    /// `http://127.0.0.1:PORT` of /metrics, /healthz, /readyz.
    pub metrics: String,
    /// Its stderr (JSON logs).
    pub log: PathBuf,
    /// Token files and logs; removed on drop.
    pub dir: tempfile::TempDir,
    /// The web-identity token file (rewrite it to rotate).
    pub web_identity: PathBuf,
    command: AgentCommand,
}

/// How to start the same agent again.
#[derive(Clone)]
struct AgentCommand {
    endpoint: String,
    topic_arn: String,
    extra: Vec<(String, String)>,
    listen: u16,
    metrics: u16,
    bearer: PathBuf,
    restarts: u32,
}

/// Writes a web-identity token and the bearer token; returns their paths.
pub fn write_token_files(dir: &Path) -> (PathBuf, PathBuf) {
    let web_identity = dir.join("irsa-token");
    let bearer = dir.join("bearer");
    let written = std::fs::write(
        &web_identity,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2ln",
    )
    .and_then(|_| std::fs::write(&bearer, format!("{AGENT_TOKEN}\n")));
    assert!(written.is_ok(), "write token files: {written:?}");
    (web_identity, bearer)
}

/// A clean environment with IRSA settings (role ARN + token file) pointing at `endpoint`.
pub fn irsa_env(cmd: &mut Command, endpoint: &str, web_identity: &Path, home: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", REGION)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ROLE_ARN", AGENT_ROLE)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", web_identity)
        .env("AWS_ROLE_SESSION_NAME", "agent-e2e");
}

impl AgentProcess {
    /// Starts the agent against `endpoint` and waits for /healthz. `extra`
    /// env vars override the defaults (Kubernetes context is off unless set).
    pub async fn start(endpoint: &str, topic_arn: &str, extra: &[(&str, &str)]) -> AgentProcess {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let (web_identity, bearer) = write_token_files(dir.path());
        let command = AgentCommand {
            endpoint: endpoint.to_string(),
            topic_arn: topic_arn.to_string(),
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            listen: free_port(),
            metrics: free_port(),
            bearer,
            restarts: 0,
        };
        let log = dir.path().join("agent.log");
        let child = spawn(&command, &web_identity, dir.path(), &log);
        let agent = AgentProcess {
            child,
            webhook: format!("http://127.0.0.1:{}/webhook", command.listen),
            metrics: format!("http://127.0.0.1:{}", command.metrics),
            log,
            dir,
            web_identity,
            command,
        };
        agent.wait_healthy().await;
        agent
    }

    /// Kills the agent with SIGKILL (no drain) and starts it again on the same
    /// ports with the same settings, as a crashed pod's container restarts.
    pub async fn crash_and_restart(&mut self) {
        self.child.signal("KILL");
        let _ = self.child.wait_exit(Duration::from_secs(5));
        self.command.restarts += 1;
        self.log = self
            .dir
            .path()
            .join(format!("agent-{}.log", self.command.restarts));
        self.child = spawn(
            &self.command,
            &self.web_identity,
            self.dir.path(),
            &self.log,
        );
        self.wait_healthy().await;
    }

    async fn wait_healthy(&self) {
        wait_until_http_ok(
            "agent /healthz",
            &format!("{}/healthz", self.metrics),
            Duration::from_secs(20),
        )
        .await;
    }

    /// The agent's /metrics text.
    pub async fn metrics_text(&self) -> String {
        match reqwest::get(format!("{}/metrics", self.metrics)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// POSTs a webhook body with the right token; returns status and body.
    pub async fn post(&self, body: &serde_json::Value) -> (u16, String) {
        let resp = reqwest::Client::new()
            .post(&self.webhook)
            .bearer_auth(AGENT_TOKEN)
            .json(body)
            .send()
            .await;
        match resp {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => panic!("POST {}: {e}", self.webhook),
        }
    }
}

fn spawn(command: &AgentCommand, web_identity: &Path, home: &Path, log: &Path) -> ChildGuard {
    let stderr = match std::fs::File::create(log) {
        Ok(f) => f,
        Err(e) => panic!("create {}: {e}", log.display()),
    };
    let mut cmd = Command::new(workspace_binary("alert-manager-agent"));
    irsa_env(&mut cmd, &command.endpoint, web_identity, home);
    cmd.env("ALERT_TOPIC_ARN", &command.topic_arn)
        .env("CLUSTER_NAME", "e2e-cluster")
        .env("LISTEN_ADDR", format!("127.0.0.1:{}", command.listen))
        .env("METRICS_ADDR", format!("127.0.0.1:{}", command.metrics))
        .env("AUTH_TOKEN_FILE", &command.bearer)
        .env("KUBERNETES_CONTEXT", "off")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .envs(command.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::null())
        .stderr(stderr);
    ChildGuard::spawn("alert-manager-agent", cmd)
}

/// Receives (and deletes) from `queue` until `done` holds for what arrived,
/// or the timeout. Each message is the envelope and its message attributes.
pub async fn receive_until(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    timeout: Duration,
    done: impl Fn(&[(Envelope, BTreeMap<String, String>)]) -> bool,
) -> Vec<(Envelope, BTreeMap<String, String>)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    while Instant::now() < deadline && !done(&got) {
        let out = match sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => panic!("receive from {queue}: {e}"),
        };
        let mut entries = Vec::new();
        for (i, m) in out.messages().iter().enumerate() {
            let env = match Envelope::from_json(m.body().unwrap_or_default()) {
                Ok(e) => e,
                Err(e) => panic!("not an envelope in {queue}: {e}"),
            };
            let attrs = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.clone(), v.string_value().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(entry) = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
            {
                entries.push(entry);
            }
            got.push((env, attrs));
        }
        if !entries.is_empty() {
            let _ = sqs
                .delete_message_batch()
                .queue_url(queue)
                .set_entries(Some(entries))
                .send()
                .await;
        }
    }
    got
}
