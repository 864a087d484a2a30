//! The Lambda Runtime API emulator of `cargo lambda watch`, serving a
//! function binary that this workspace's own build made, the way Lambda runs it.
//!
//! The emulator runs with `--only-lambda-apis`: it serves the invoke API
//! (`cargo lambda invoke`, `POST /2015-03-31/functions/NAME/invocations`) and
//! the Runtime API, and builds nothing. The function is the binary that
//! `cargo test --workspace` already built (`target/debug/NAME`; see
//! `build_once`), started here with the environment `cargo lambda watch`
//! gives the functions it builds itself. Without `--only-lambda-apis` the
//! emulator would compile the package a second time (`cargo run` in the
//! package, without the tests' features): on a fresh `target/`, the
//! enricher and the whole AWS SDK again, 8 min on 2 cores.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::process::{ChildGuard, free_port, venv_bin, workspace_root};

/// A running `cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P PORT`
/// and one function process polling it; both killed (with their process
/// groups) on drop.
#[derive(Debug)]
pub struct LambdaWatch {
    port: u16,
    function: String,
    // Declared first, so dropped (killed) before the emulator it polls.
    process: Mutex<ChildGuard>,
    /// How to start the function again, as a new execution environment.
    command: FunctionCommand,
    _emulator: ChildGuard,
}

#[derive(Debug)]
struct FunctionCommand {
    binary: std::path::PathBuf,
    package_dir: std::path::PathBuf,
    envs: Vec<(String, String)>,
}

impl LambdaWatch {
    /// Starts the emulator in `package_dir` (the crate with the function
    /// binaries; the emulator accepts invokes for its binary names), then the
    /// workspace-built binary `function` (see [`crate::workspace_binary`]) as
    /// the function of that name. The function inherits `envs` on top of this
    /// process's environment.
    pub async fn start(package_dir: &Path, function: &str, envs: &[(&str, &str)]) -> LambdaWatch {
        build_once();
        let binary = crate::workspace_binary(function);

        let port = free_port();
        let mut cmd = Command::new(venv_bin("cargo-lambda"));
        cmd.args(["lambda", "watch", "--only-lambda-apis"])
            .args(["-A", "127.0.0.1", "-P"])
            .arg(port.to_string())
            .current_dir(package_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let emulator = ChildGuard::spawn("cargo lambda watch --only-lambda-apis", cmd);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen on 127.0.0.1:{port} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let command = FunctionCommand {
            binary,
            package_dir: package_dir.to_path_buf(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let process = command.spawn(port, function);
        LambdaWatch {
            port,
            function: function.to_string(),
            process: Mutex::new(process),
            command,
            _emulator: emulator,
        }
    }

    /// SIGKILLs the function process, as Lambda ends an execution
    /// environment at its timeout or a host fails: no response, nothing
    /// flushed. Its invocation in flight is never answered.
    pub fn kill_function(&self) {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        process.signal("KILL");
        let _ = process.wait_exit(Duration::from_secs(5));
    }

    /// Starts the function again (a new execution environment, init
    /// included) polling the same emulator.
    pub fn restart_function(&self) {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        *process = self.command.spawn(self.port, &self.function);
    }

    /// The Runtime API (and invoke) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The function's exit status, if its process has ended.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut process = self.process.lock().unwrap_or_else(|e| e.into_inner());
        process.wait_exit(Duration::ZERO)
    }

    /// `cargo lambda invoke` with `event` as the payload; returns the function's
    /// JSON response, or the error output when the invocation failed (or the
    /// function process exited, which Lambda would answer with a new
    /// execution environment and the emulator with a hang).
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
        let output = cmd.output();
        tokio::pin!(output);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let out = loop {
            tokio::select! {
                out = &mut output => break out.map_err(|e| format!("cargo lambda invoke: {e}"))?,
                () = tokio::time::sleep(Duration::from_millis(200)) => {
                    if let Some(status) = self.exited() {
                        return Err(format!("the function {} exited ({status})", self.function));
                    }
                    if tokio::time::Instant::now() > deadline {
                        return Err("cargo lambda invoke timed out after 600 s".to_string());
                    }
                }
            }
        };
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

impl FunctionCommand {
    /// The function process against the emulator on `port`, with what
    /// cargo-lambda 1.9's watcher sets for a function it starts itself
    /// (crates/cargo-lambda-watch/src/watcher.rs): the per-function Runtime
    /// API path under `/.rt`, so that the function takes the invocations
    /// sent to its name. Not its AWS_LAMBDA_MAX_CONCURRENCY=1, which Lambda
    /// itself does not set and lambda_runtime warns about.
    fn spawn(&self, port: u16, function: &str) -> ChildGuard {
        let mut cmd = Command::new(&self.binary);
        cmd.env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt/{function}"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", function)
            .current_dir(&self.package_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        ChildGuard::spawn(function, cmd)
    }
}

/// Makes sure `target/debug` holds this checkout's current binaries, built
/// with the features of the tests, once per process:
/// `cargo test --workspace --no-run`, the build `cargo test --workspace`,
/// `make test` and `make demo` have just done (then it only checks, in about
/// a second). `cargo test --workspace --test X` builds only the bins of the
/// package that owns test X, so without this an edited enricher would run
/// stale, and a target directory shared by two checkouts would hold whichever
/// built last. Not `cargo build`: without the dev-dependencies' features it
/// is another variant of every crate that depends on tokio, the AWS SDK included.
fn build_once() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(&cargo)
            .args(["test", "--workspace", "--no-run", "--quiet"])
            .current_dir(workspace_root())
            .stdout(Stdio::null())
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("`cargo test --workspace --no-run` failed ({s})"),
            Err(e) => panic!("cannot run {}: {e}", Path::new(&cargo).display()),
        }
    });
}
