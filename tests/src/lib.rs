//! Test support: starts the real components this project is tested against,
//! each on a free 127.0.0.1 port, and stops them on drop. No leftover processes.
//!
//! - [`MotoServer`]: the moto AWS emulator (SNS, SQS, STS, EC2, CloudWatch, ...).
//! - [`CloudWatchBridge`]: translates the SDK's Smithy RPC v2 CBOR CloudWatch
//!   protocol into the JSON 1.0 protocol moto speaks.
//! - [`Alertmanager`]: Debian's `prometheus-alertmanager`, given a config.
//! - [`LambdaWatch`]: the Lambda Runtime API emulator (`cargo lambda watch
//!   --only-lambda-apis`) with the workspace-built function binary polling it.
//! - [`TcpProxy`]: takes a service down and up again without losing its state.
//! - [`MockKubeApi`]: an in-process mock Kubernetes API server (lists, watches,
//!   pods, leases, injected errors) that kube-rs talks to through a kubeconfig
//!   ([`kube_client`]). It and the CloudWatch bridge live in the light
//!   `alert-manager-fakes` crate, which the benchmarks build on their own.
//! - [`SlackReceiver`], [`PagerDutyReceiver`], [`WebhookReceiver`]: local stand-ins
//!   for the enricher's HTTP sinks, validating like the real APIs, and
//!   [`SlackApi`], the Slack Web API (`chat.postMessage`, `chat.update`).
//!
//! A component that is not installed is a test failure that says how to
//! install it (`infra/local/bootstrap.sh`), never a silent skip.

pub mod agent;
mod alertmanager;
pub mod iam;
mod lambda_watch;
mod moto;
pub mod pipeline;
mod process;
mod receivers;
mod slack_api;
mod tcp_proxy;

pub use alert_manager_fakes::{
    CloudWatchBridge, MOCK_NAMESPACE, MOCK_TOKEN, MockKubeApi, MockKubeError, RecordedRequest,
    TEAM_ANNOTATION, load_fixtures, synthetic_namespaces, synthetic_nodes,
};
pub use alertmanager::Alertmanager;
pub use lambda_watch::LambdaWatch;
pub use moto::{ACCOUNT_ID, MotoServer, REGION};
pub use process::{ChildGuard, free_port, venv_bin, wait_until_http_ok, workspace_root};
pub use receivers::{
    ALERT_ID_HEADER, Behavior, DETAIL_HEADER, HANG_CAP, PAGERDUTY_PATH, PagerDutyReceiver,
    Recorded, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_SECS, SLACK_WEBHOOK_PATH, SignatureError,
    SlackReceiver, WEBHOOK_PATH, WebhookReceiver, signature_header, verify_signature,
};
pub use slack_api::{SlackApi, SlackApiCall, SlackApiMessage};
pub use tcp_proxy::TcpProxy;

/// A kube-rs client configured from [`MockKubeApi::kubeconfig`], as the
/// agent builds it from `KUBECONFIG`. Panics if kube-rs refuses it.
pub async fn kube_client(api: &MockKubeApi) -> kube::Client {
    let config = async {
        let kubeconfig = kube::config::Kubeconfig::from_yaml(&api.kubeconfig())?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await
    }
    .await
    .unwrap_or_else(|e| panic!("kube-rs refuses the mock's kubeconfig: {e}"));
    kube::Client::try_from(config)
        .unwrap_or_else(|e| panic!("cannot build a kube-rs client for the mock: {e}"))
}

/// A binary of this workspace (`alert-manager-agent`, ...), built by
/// `cargo test --workspace`, next to the running executable: a test runs from
/// `target/debug/deps/`, a tool such as `demo` from `target/debug/`.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let dir = if dir.ends_with("deps") {
        dir.parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    } else {
        dir
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing; build it with `cargo test --workspace` (or `make test`)",
        path.display()
    );
    path
}
