//! Optional TLS on the webhook listener, from a certificate and key in files.
//!
//! The files are normally a cert-manager `Certificate`'s Secret mounted into
//! the pod. cert-manager renews by rewriting the Secret, and the kubelet
//! swaps the mount's `..data` symlink; so, as with the bearer token, both
//! files are read again every few seconds through their paths. A changed
//! pair serves the next handshake (connections already open keep theirs). A
//! pair that does not load (half written, or a key that does not fit the
//! certificate) keeps the current one and logs why, once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::metrics::Metrics;

/// How often the certificate and key files are read again.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

const CERT_SETTING: &str = "--tls-cert-file / TLS_CERT_FILE";
const KEY_SETTING: &str = "--tls-key-file / TLS_KEY_FILE";

/// Where the certificate chain and its key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's certificate first (`tls.crt`).
    pub cert: PathBuf,
    /// PEM private key: PKCS#8, PKCS#1 or SEC1 (`tls.key`).
    pub key: PathBuf,
}

/// The pair served now; swapped when the files change.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// TLS of one listener: the acceptor, and the pair it serves.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    files: TlsFiles,
    loaded: Arc<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{setting} {}: cannot read: {e}", path.display()))
}

/// The pair in two PEM texts, or what is wrong with it, naming the setting.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    files: &TlsFiles,
) -> Result<CertifiedKey, String> {
    let cert_file = format!("{CERT_SETTING} {}", files.cert.display());
    let key_file = format!("{KEY_SETTING} {}", files.key.display());
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_file}: not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{cert_file}: holds no CERTIFICATE block"));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("{key_file}: not a PEM private key: {e}"))?;
    let key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{key_file}: cannot be used: {e}"))?;
    let pair = CertifiedKey::new(chain, key);
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(pair)
        }
        Err(e) => Err(format!(
            "{key_file} does not fit the certificate in {cert_file}: {e}"
        )),
    }
}

impl ServerTls {
    /// Reads and checks both files; the error names the setting at fault.
    pub fn load(files: TlsFiles) -> Result<ServerTls, String> {
        let cert_pem = read(&files.cert, CERT_SETTING)?;
        let key_pem = read(&files.key, KEY_SETTING)?;
        let pair = certified_key(&cert_pem, &key_pem, &files)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(pair))));
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // The listener speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            current,
            files,
            loaded: Arc::new((cert_pem, key_pem)),
        })
    }

    /// The acceptor that wraps each accepted connection.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads both files every `interval` and serves a changed pair from the
    /// next handshake on. A pair that does not load keeps the current one.
    pub async fn follow(self, interval: Duration, metrics: Arc<Metrics>) {
        let mut last = (*self.loaded).clone();
        let files = self.files.clone();
        let read = move || {
            Ok((
                read(&files.cert, CERT_SETTING)?,
                read(&files.key, KEY_SETTING)?,
            ))
        };
        let apply = |pem: (Vec<u8>, Vec<u8>)| {
            if pem == last {
                return Ok(());
            }
            let pair = certified_key(&pem.0, &pem.1, &self.files)?;
            *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(pair);
            last = pem;
            metrics.webhook().tls_reload("ok");
            tracing::info!(
                cert = %self.files.cert.display(),
                "TLS certificate changed; new connections get the new one"
            );
            Ok(())
        };
        let report = |e: &str| {
            metrics.webhook().tls_reload("error");
            tracing::error!(error = %e, "TLS certificate or key cannot be used; keeping the current pair");
        };
        super::reload::every(interval, read, apply, report).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn files() -> TlsFiles {
        TlsFiles {
            cert: "/tls/tls.crt".into(),
            key: "/tls/tls.key".into(),
        }
    }

    #[test]
    fn a_file_without_a_certificate_is_refused_naming_the_setting() {
        let e = certified_key(b"hello", b"", &files()).unwrap_err();
        assert!(e.contains("TLS_CERT_FILE /tls/tls.crt"), "{e}");
        assert!(e.contains("no CERTIFICATE block"), "{e}");
    }

    #[test]
    fn a_missing_key_is_refused_naming_the_setting() {
        // Any DER inside a CERTIFICATE block passes the PEM stage; the key is checked next.
        let cert = b"-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let e = certified_key(cert, b"no key here", &files()).unwrap_err();
        assert!(e.contains("TLS_KEY_FILE /tls/tls.key"), "{e}");
        assert!(e.contains("not a PEM private key"), "{e}");
    }

    #[test]
    fn an_unreadable_file_names_its_setting() {
        let e = read(Path::new("/nonexistent/tls.key"), KEY_SETTING).unwrap_err();
        assert!(
            e.starts_with("--tls-key-file / TLS_KEY_FILE /nonexistent/tls.key: cannot read"),
            "{e}"
        );
    }
}
