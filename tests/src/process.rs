//! Child processes that die with the test, free ports, readiness polling.

use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child process killed (with its whole process group) when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    pid: u32,
    name: String,
}

impl ChildGuard {
    /// Spawns `cmd` in its own process group, so that grandchildren (the
    /// processes a Python or shell wrapper starts, for example) are stopped too.
    pub fn spawn(name: &str, mut cmd: Command) -> ChildGuard {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start {name} ({cmd:?}): {e}; run infra/local/bootstrap.sh")
        });
        ChildGuard {
            pid: child.id(),
            child: Some(child),
            name: name.to_string(),
        }
    }

    /// Process id of the child (and its process group).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// True while the child runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, ...) to the child's process group.
    pub fn signal(&self, signal: &str) {
        // Never signal group 0 (our own) or 1.
        if self.pid <= 1 {
            return;
        }
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg("--")
            .arg(format!("-{}", self.pid()))
            .stderr(std::process::Stdio::null())
            .status();
    }

    /// Waits up to `timeout` for the child to exit by itself; its exit status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process group and reaps the child.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                self.signal("TERM");
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                self.signal("KILL");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Name given at spawn, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// Polls `url` until it answers 2xx, or panics after `timeout` naming `what`.
pub async fn wait_until_http_ok(what: &str, url: &str, timeout: Duration) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        match client.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(r) if r.status().is_success() => return,
            _ if Instant::now() > deadline => {
                panic!("{what} did not become ready at {url} within {timeout:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub use alert_manager_fakes::workspace_root;

/// A program from the project's Python venv (moto, cargo-lambda, cfn-lint, ...),
/// the one `infra/local/bootstrap.sh` creates. `ALERT_MANAGER_VENV` overrides it.
pub fn venv_bin(program: &str) -> PathBuf {
    let venv = std::env::var_os("ALERT_MANAGER_VENV")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("ALERT_MANAGER_CACHE").map(|c| PathBuf::from(c).join("venv")))
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|c| PathBuf::from(c).join("alert-manager/venv"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/alert-manager/venv"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/alert-manager/venv"));
    let path = venv.join("bin").join(program);
    assert!(
        path.exists(),
        "{} is missing; run infra/local/bootstrap.sh (or `make test`, which runs it)",
        path.display()
    );
    path
}
