//! Stand-ins for what cannot run on this machine, shared by the tests
//! (`alert-manager-tests` re-exports them) and the benchmarks (`make bench`
//! runs the binaries of this crate).
//!
//! - [`MockKubeApi`] (binary `mock-kube-apiserver`): a mock Kubernetes API
//!   server that kube-rs talks to through a kubeconfig.
//! - [`CloudWatchBridge`] (binary `cloudwatch-bridge`): translates the SDK's
//!   Smithy RPC v2 CBOR CloudWatch protocol into the JSON 1.0 protocol moto
//!   speaks.
//! - binary `null-sns`: an SNS endpoint that accepts every Publish and
//!   PublishBatch at once and counts them, for load benchmarks where moto
//!   would be the bottleneck.
//!
//! The crate stays free of the AWS SDK and of any TLS stack: a cold `make
//! bench` builds it beside the release builds, and it must not add minutes.

mod cloudwatch_bridge;
mod kube_api;

use std::path::PathBuf;

pub use cloudwatch_bridge::CloudWatchBridge;
pub use kube_api::{
    MOCK_NAMESPACE, MOCK_TOKEN, MockKubeApi, MockKubeError, RecordedRequest, TEAM_ANNOTATION,
    load_fixtures, synthetic_namespaces, synthetic_nodes,
};

/// The workspace's root directory (where `Cargo.toml` and `agent/` are).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .map(PathBuf::from)
        .unwrap_or(manifest)
}
