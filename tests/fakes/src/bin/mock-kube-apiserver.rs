//! The mock Kubernetes API server of `alert_manager_fakes::MockKubeApi`, for
//! scripts and benchmarks (`infra/bench/agent-stores-rss.py`).
//!
//!   mock-kube-apiserver [--fixtures DIR]... [--synthetic-nodes N]
//!                       [--synthetic-namespaces M] [--kubeconfig PATH]
//!
//! Serves every `*.json` object of the fixture directories, plus N copies of
//! `agent/fixtures/kube/node-managed.json` and M copies of
//! `agent/fixtures/kube/namespace-annotated.json` with unique names. Prints
//! `listening on http://127.0.0.1:PORT`, writes a kubeconfig (token
//! `mock-token`) if asked, and runs until SIGTERM or SIGINT. `RUST_LOG=debug`
//! logs every request to stderr.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use alert_manager_fakes::{
    MockKubeApi, load_fixtures, synthetic_namespaces, synthetic_nodes, workspace_root,
};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(about = "A mock Kubernetes API server on 127.0.0.1 for tests and benchmarks")]
struct Args {
    /// A directory of Kubernetes JSON objects to serve (repeatable).
    #[arg(long)]
    fixtures: Vec<PathBuf>,
    /// Copies of agent/fixtures/kube/node-managed.json to add, uniquely named.
    #[arg(long, default_value_t = 0)]
    synthetic_nodes: usize,
    /// Copies of agent/fixtures/kube/namespace-annotated.json to add (`team-<i>`).
    #[arg(long, default_value_t = 0)]
    synthetic_namespaces: usize,
    /// Where to write a kubeconfig for this server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
}

fn read_json(path: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()).into())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let mut objects = Vec::new();
    for dir in &args.fixtures {
        objects.extend(load_fixtures(dir)?);
    }
    let kube_fixtures = workspace_root().join("agent/fixtures/kube");
    if args.synthetic_nodes > 0 {
        let template = read_json(&kube_fixtures.join("node-managed.json"))?;
        objects.extend(synthetic_nodes(&template, args.synthetic_nodes));
    }
    if args.synthetic_namespaces > 0 {
        let template = read_json(&kube_fixtures.join("namespace-annotated.json"))?;
        objects.extend(synthetic_namespaces(&template, args.synthetic_namespaces));
    }

    let api = MockKubeApi::try_start(objects).await?;
    if let Some(path) = &args.kubeconfig {
        std::fs::write(path, api.kubeconfig())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", api.url())?;
        stdout.flush()?;
    }
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    drop(api);
    Ok(())
}
