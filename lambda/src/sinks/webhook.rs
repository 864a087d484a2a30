//! Signed HTTP webhooks: POST of the enriched envelope JSON.
//!
//! Signature, as GitHub and Stripe do it: header
//! `X-Alert-Manager-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<body>")>`.
//! The timestamp is inside the signed text, so a receiver that rejects old
//! `t` values rejects replays. `X-Alert-Id` carries the envelope id, so a
//! receiver can drop the duplicate a retried record may produce.

use std::sync::Arc;
use std::time::Duration;

use alert_aws::{ConfigError, Failure};
use alert_envelope::Envelope;
use hmac::{KeyInit, Mac};
use serde::Deserialize;

use super::http::{HttpClient, post_json, validate_url};
use super::{secret, validate_secret};
use crate::secrets::{SecretRef, SecretStore};

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Alert-Manager-Signature";
/// Header carrying the envelope id.
pub const ID_HEADER: &str = "X-Alert-Id";

/// A webhook sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Receiver URL; `https://` only.
    pub url: String,
    /// Where the HMAC key is stored (it is a secret).
    pub hmac_key: SecretRef,
    /// Test only: also accept an `http://` URL (the stand-ins on loopback).
    #[serde(default)]
    pub allow_http: bool,
}

impl WebhookConfig {
    /// Checks the URL and the secret reference.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_url("url", &self.url, self.allow_http)?;
        validate_secret("hmac_key", &self.hmac_key)
    }
}

/// A webhook sink ready to post.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    config: WebhookConfig,
    http: HttpClient,
    secrets: Option<Arc<SecretStore>>,
}

/// The signature header value for `body` signed at `t`.
pub fn signature(key: &[u8], t: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookSink {
    /// A sink over the shared HTTP client and secret store.
    pub fn new(
        config: WebhookConfig,
        http: HttpClient,
        secrets: Option<Arc<SecretStore>>,
    ) -> WebhookSink {
        WebhookSink {
            config,
            http,
            secrets,
        }
    }

    /// One attempt, signed anew with the current time;
    /// [`super::Sink::deliver`] runs it through the retry stage.
    pub async fn attempt(&self, env: &Envelope, timeout: Duration) -> Result<(), Failure> {
        let body =
            serde_json::to_vec(env).map_err(|e| Failure::permanent("encode", e.to_string()))?;
        self.post(body, &env.id, timeout).await
    }

    /// Posts `body` signed, with `id` in [`ID_HEADER`] (an envelope's id, or
    /// `<storm key>#<update>`).
    pub(super) async fn post(
        &self,
        body: Vec<u8>,
        id: &str,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let key = secret(self.secrets.as_deref(), &self.config.hmac_key, timeout).await?;
        let t = jiff::Timestamp::now().as_second();
        let headers = [
            (
                SIGNATURE_HEADER,
                signature(key.expose().as_bytes(), t, &body),
            ),
            (ID_HEADER, id.to_string()),
        ];
        post_json(self.http.get(), &self.config.url, &headers, body, timeout).await
    }
}
