//! Secrets for the sinks, from Secrets Manager or SSM SecureString.
//!
//! Invariants: a secret is fetched at most once per TTL (warm invocations
//! reuse it); its value is a [`Secret`], whose `Debug` is redacted and which
//! has no `Display`, so it cannot end up in a log line by accident.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use alert_aws::Failure;

/// Where a secret lives. Exactly one of `secret` or `ssm`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Secrets Manager secret ARN or name; its `SecretString` is the value.
    #[serde(default)]
    pub secret: Option<String>,
    /// With `secret`: the SecretString is a JSON object and this key holds the value.
    #[serde(default)]
    pub key: Option<String>,
    /// SSM parameter name (SecureString, read with decryption).
    #[serde(default)]
    pub ssm: Option<String>,
}

impl SecretRef {
    /// Checks that exactly one source is named.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.secret, &self.ssm) {
            (Some(s), None) if !s.is_empty() => Ok(()),
            (None, Some(p)) if !p.is_empty() => {
                if self.key.is_some() {
                    Err("`key` applies to `secret` only".into())
                } else {
                    Ok(())
                }
            }
            (Some(_), Some(_)) => Err("name either `secret` or `ssm`, not both".into()),
            _ => Err(
                "needs `secret: <Secrets Manager ARN or name>` or `ssm: <parameter name>`".into(),
            ),
        }
    }

    /// Where it lives, for logs (the location, never the value).
    pub fn location(&self) -> String {
        match (&self.secret, &self.ssm) {
            (Some(s), _) => format!("secretsmanager:{s}"),
            (_, Some(p)) => format!("ssm:{p}"),
            _ => "unset".into(),
        }
    }
}

/// A secret value. `Debug` is redacted; there is no `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Fetches and caches secrets.
#[derive(Debug)]
pub struct SecretStore {
    secretsmanager: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
    ttl: Duration,
    cache: Mutex<HashMap<SecretRef, (Instant, Secret)>>,
}

impl SecretStore {
    /// A store that keeps each secret for `ttl`.
    pub fn new(
        secretsmanager: aws_sdk_secretsmanager::Client,
        ssm: aws_sdk_ssm::Client,
        ttl: Duration,
    ) -> SecretStore {
        SecretStore {
            secretsmanager,
            ssm,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The secret, from the cache when fresh; a fetch is cut at `timeout`.
    pub async fn get(&self, r: &SecretRef, timeout: Duration) -> Result<Secret, Failure> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, s)) = cache.get(r)
            && at.elapsed() < self.ttl
        {
            return Ok(s.clone());
        }
        let value = tokio::time::timeout(timeout, self.fetch(r))
            .await
            .map_err(|_| {
                Failure::retryable(
                    "secret_timeout",
                    format!(
                        "reading {}: no answer within {} ms",
                        r.location(),
                        timeout.as_millis()
                    ),
                )
            })??;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(r.clone(), (Instant::now(), value.clone()));
        }
        Ok(value)
    }

    async fn fetch(&self, r: &SecretRef) -> Result<Secret, Failure> {
        let fail = |c: Failure| Failure {
            reason: format!("secret_{}", c.reason).into(),
            detail: format!("reading {}: {}", r.location(), c.detail),
            ..c
        };
        if let Some(id) = &r.secret {
            let out = self
                .secretsmanager
                .get_secret_value()
                .secret_id(id)
                .send()
                .await
                .map_err(|e| fail(alert_aws::classify_sdk_error(&e)))?;
            let raw = out.secret_string().unwrap_or_default();
            let value = match &r.key {
                None => raw.to_string(),
                Some(key) => {
                    let doc: serde_json::Value = serde_json::from_str(raw).map_err(|_| {
                        Failure::permanent(
                            "secret_format",
                            format!(
                                "{}: SecretString is not a JSON object, but `key` is set",
                                r.location()
                            ),
                        )
                    })?;
                    doc.get(key)
                        .and_then(|v| v.as_str())
                        .map(str::to_string)
                        .ok_or_else(|| {
                            Failure::permanent(
                                "secret_format",
                                format!("{}: no string key {key:?}", r.location()),
                            )
                        })?
                }
            };
            return non_empty(value, r);
        }
        if let Some(name) = &r.ssm {
            let out = self
                .ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| fail(alert_aws::classify_sdk_error(&e)))?;
            let value = out
                .parameter()
                .and_then(|p| p.value())
                .unwrap_or_default()
                .to_string();
            return non_empty(value, r);
        }
        Err(Failure::permanent("secret_unset", "no secret source"))
    }
}

fn non_empty(value: String, r: &SecretRef) -> Result<Secret, Failure> {
    if value.trim().is_empty() {
        Err(Failure::permanent(
            "secret_empty",
            format!("{} is empty", r.location()),
        ))
    } else {
        Ok(Secret::new(value.trim().to_string()))
    }
}
