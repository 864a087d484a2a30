//! Debian's Alertmanager as a child process.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{ChildGuard, free_port, wait_until_http_ok};

/// A running `prometheus-alertmanager` on 127.0.0.1 with clustering off, killed on drop.
#[derive(Debug)]
pub struct Alertmanager {
    port: u16,
    // Fields drop in order: stop the process before removing its storage.
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts Alertmanager with the given YAML config and waits until it is ready.
    pub async fn start(config_yaml: &str) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, config_yaml).unwrap_or_else(|e| panic!("write config: {e}"));
        let storage = dir.path().join("data");
        let port = free_port();
        let program =
            std::env::var("ALERTMANAGER").unwrap_or_else(|_| "prometheus-alertmanager".into());
        let mut cmd = Command::new(&program);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = ChildGuard::spawn("alertmanager", cmd);
        let am = Alertmanager {
            port,
            _dir: dir,
            _child: child,
        };
        wait_until_http_ok(
            "alertmanager",
            &format!("{}/-/ready", am.url()),
            Duration::from_secs(30),
        )
        .await;
        am
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Posts alerts to `/api/v2/alerts` (a JSON array of postable alerts).
    pub async fn post_alerts(&self, alerts: &serde_json::Value) {
        reqwest::Client::new()
            .post(format!("{}/api/v2/alerts", self.url()))
            .json(alerts)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("post alerts to alertmanager: {e}"));
    }
}
