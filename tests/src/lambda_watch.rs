//! `cargo lambda watch`: the Lambda Runtime API emulator, running a function
//! binary of this workspace the way Lambda runs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{ChildGuard, free_port, venv_bin};

/// A running `cargo lambda watch -A 127.0.0.1 -P PORT`, killed (with the
/// builds and functions it started) on drop.
#[derive(Debug)]
pub struct LambdaWatch {
    port: u16,
    _child: ChildGuard,
}

impl LambdaWatch {
    /// Starts the emulator in `package_dir` (a crate with the function
    /// binaries). The functions inherit `envs` on top of this process's environment.
    pub async fn start(package_dir: &Path, envs: &[(&str, &str)]) -> LambdaWatch {
        let port = free_port();
        let mut cmd = Command::new(venv_bin("cargo-lambda"));
        cmd.args(["lambda", "watch", "-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .current_dir(package_dir)
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = ChildGuard::spawn("cargo lambda watch", cmd);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on 127.0.0.1:{port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        LambdaWatch {
            port,
            _child: child,
        }
    }

    /// The Runtime API port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `cargo lambda invoke` with `event` as the payload; returns the function's
    /// JSON response, or the error output when the invocation failed.
    pub async fn invoke(
        &self,
        function: &str,
        event: &serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let file = dir.path().join("event.json");
        std::fs::write(&file, event.to_string()).map_err(|e| e.to_string())?;
        let mut cmd = tokio::process::Command::new(venv_bin("cargo-lambda"));
        cmd.args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("--data-file")
            .arg(&file)
            .arg(function)
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
            .await
            .map_err(|_| "cargo lambda invoke timed out after 600 s".to_string())?
            .map_err(|e| format!("cargo lambda invoke: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "cargo lambda invoke failed: {}{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        serde_json::from_str(stdout.trim())
            .map_err(|e| format!("invoke output is not JSON ({e}): {stdout}"))
    }
}
