//! The bearer token, re-read when its file changes ([`super::reload`]).
//!
//! After a change the previous token stays valid for a grace period:
//! Alertmanager's own mounted copy of the Secret updates on the kubelet's
//! schedule, not at the same moment, and Alertmanager never retries a 401.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::config::BearerToken;
use crate::metrics::Metrics;

/// How often the token file is read again.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// The tokens accepted now: the current one, and the previous one until its
/// grace period ends.
#[derive(Debug, Clone)]
pub struct TokenStore {
    tokens: Arc<RwLock<Tokens>>,
}

#[derive(Debug)]
struct Tokens {
    current: BearerToken,
    previous: Option<(BearerToken, Instant)>,
}

impl Tokens {
    fn rotate(&mut self, new: BearerToken, grace: Duration, now: Instant) -> bool {
        if same(new.expose(), self.current.expose()) {
            return false;
        }
        let old = std::mem::replace(&mut self.current, new);
        self.previous = Some((old, now + grace));
        true
    }

    fn accepts(&self, given: &[u8], now: Instant) -> bool {
        // Both comparisons always run, so the timing does not tell which matched.
        let current = same(given, self.current.expose());
        let previous = self
            .previous
            .as_ref()
            .is_some_and(|(token, until)| same(given, token.expose()) & (now < *until));
        current | previous
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// Reads a token file: the trimmed content, or why it cannot be used.
pub fn read_token_file(path: &Path) -> Result<BearerToken, String> {
    let token = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let token = token.trim();
    if token.is_empty() {
        return Err("is empty".into());
    }
    Ok(BearerToken::new(token.to_string()))
}

impl TokenStore {
    /// A store accepting `token`.
    pub fn new(token: BearerToken) -> TokenStore {
        TokenStore {
            tokens: Arc::new(RwLock::new(Tokens {
                current: token,
                previous: None,
            })),
        }
    }

    /// True when `given` is the current token, or the previous one within its grace.
    pub fn accepts(&self, given: &[u8]) -> bool {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.accepts(given, Instant::now())
    }

    /// Reads `path` every `interval` and rotates to a changed token, keeping
    /// the previous one valid for `grace`. An unreadable or empty file keeps
    /// the tokens as they are and logs an error (once per distinct error).
    pub async fn follow(
        self,
        path: PathBuf,
        grace: Duration,
        interval: Duration,
        metrics: Arc<Metrics>,
    ) {
        let read = {
            let path = path.clone();
            move || read_token_file(&path)
        };
        let apply = |token| {
            let rotated = self
                .tokens
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .rotate(token, grace, Instant::now());
            if rotated {
                metrics.webhook().token_reload("ok");
                tracing::info!(
                    file = %path.display(),
                    grace_seconds = grace.as_secs(),
                    "bearer token changed; the previous one stays valid for the grace period (AUTH_TOKEN_GRACE_SECONDS)"
                );
            }
            Ok(())
        };
        let report = |e: &str| {
            metrics.webhook().token_reload("error");
            tracing::error!(
                file = %path.display(),
                error = %e,
                "AUTH_TOKEN_FILE cannot be used; keeping the current token"
            );
        };
        super::reload::every(interval, read, apply, report).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn tokens(t: &str) -> Tokens {
        Tokens {
            current: BearerToken::new(t.into()),
            previous: None,
        }
    }

    #[test]
    fn the_previous_token_is_accepted_until_its_grace_ends() {
        let now = Instant::now();
        let mut t = tokens("old");
        assert!(t.rotate(
            BearerToken::new("new".into()),
            Duration::from_secs(300),
            now
        ));
        assert!(t.accepts(b"new", now));
        assert!(t.accepts(b"old", now + Duration::from_secs(299)));
        assert!(!t.accepts(b"old", now + Duration::from_secs(300)));
        assert!(t.accepts(b"new", now + Duration::from_secs(301)));
        assert!(!t.accepts(b"other", now));
    }

    #[test]
    fn reading_the_same_token_again_is_not_a_rotation() {
        let now = Instant::now();
        let mut t = tokens("same");
        assert!(!t.rotate(
            BearerToken::new("same".into()),
            Duration::from_secs(300),
            now
        ));
        assert!(t.previous.is_none());
    }

    #[test]
    fn a_second_rotation_retires_the_first_token_at_once() {
        let now = Instant::now();
        let mut t = tokens("a");
        t.rotate(BearerToken::new("b".into()), Duration::from_secs(300), now);
        t.rotate(BearerToken::new("c".into()), Duration::from_secs(300), now);
        assert!(!t.accepts(b"a", now));
        assert!(t.accepts(b"b", now));
        assert!(t.accepts(b"c", now));
    }

    #[test]
    fn an_empty_or_missing_file_is_refused_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(read_token_file(&path).unwrap_err().contains("cannot read"));
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(read_token_file(&path).unwrap_err(), "is empty");
        std::fs::write(&path, "tok\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap().expose(), b"tok");
    }
}
