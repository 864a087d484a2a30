//! The deterministic ids of this contract: the envelope id (also the FIFO
//! deduplication id) and the fingerprint of a label set.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::envelope::Status;

/// The deterministic envelope id: 32 hex characters of SHA-256 over the
/// length-prefixed parts, so that no two distinct inputs share a preimage.
///
/// `discriminator` is for sources whose alert identity needs one more part
/// (a Kubernetes event's series count); Alertmanager alerts pass `None`.
pub fn derive_id(
    cluster: &str,
    fingerprint: &str,
    status: Status,
    starts_at: Timestamp,
    discriminator: Option<&str>,
) -> String {
    let starts_at = starts_at.to_string();
    let mut hasher = Sha256::new();
    for part in [
        cluster,
        fingerprint,
        status.as_str(),
        starts_at.as_str(),
        discriminator.unwrap_or(""),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    hex::encode(&digest[..16])
}

/// A stable fingerprint of a label set, for alerts that arrive without one.
pub fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hasher = Sha256::new();
    for (k, v) in labels {
        hasher.update((k.len() as u64).to_be_bytes());
        hasher.update(k.as_bytes());
        hasher.update((v.len() as u64).to_be_bytes());
        hasher.update(v.as_bytes());
    }
    hex::encode(&hasher.finalize()[..8])
}
