//! Where the routing document comes from, and keeping it current.
//!
//! Sources, in order of precedence: `ROUTES` (inline YAML/JSON), `ROUTES_FILE`
//! (a file in the package), `ROUTES_SSM_PARAMETER` (read at init and again
//! once per `ROUTES_TTL_SECONDS`; a changed value is parsed and, if valid,
//! replaces the table). An invalid document fails init, naming the setting
//! and the path of the bad field; an invalid *reload* keeps the last good
//! table and logs why, so a typo in SSM cannot stop delivery.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alert_aws::{ConfigError, Deadline};

use crate::Error;
use crate::routing::RoutingTable;

/// The configured source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutesSource {
    /// No document: everything to the enriched topic.
    None,
    /// `ROUTES`.
    Inline(String),
    /// `ROUTES_FILE`.
    File(PathBuf),
    /// `ROUTES_SSM_PARAMETER`, re-read every `ttl`.
    Ssm {
        /// Parameter name.
        name: String,
        /// Re-read interval.
        ttl: Duration,
    },
}

struct Current {
    table: Arc<RoutingTable>,
    raw: Option<String>,
    checked: Instant,
}

/// The routing table, reloaded from SSM when configured so.
pub struct Routes {
    source: RoutesSource,
    ssm: Option<aws_sdk_ssm::Client>,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("source", &self.source)
            .finish()
    }
}

impl Routes {
    /// A fixed table (tests and the no-document case).
    pub fn fixed(table: RoutingTable) -> Routes {
        Routes {
            source: RoutesSource::None,
            ssm: None,
            current: Mutex::new(Current {
                table: Arc::new(table),
                raw: None,
                checked: Instant::now(),
            }),
        }
    }

    /// Loads the document at init; any problem is a config error naming the setting.
    pub async fn load(source: RoutesSource, ssm: aws_sdk_ssm::Client) -> Result<Routes, Error> {
        let (table, raw) = match &source {
            RoutesSource::None => (RoutingTable::enriched_only(), None),
            RoutesSource::Inline(text) => (
                RoutingTable::parse(text).map_err(|e| {
                    ConfigError::new("ROUTES", format!("has an invalid routing document at {e}"))
                })?,
                None,
            ),
            RoutesSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::new(
                        "ROUTES_FILE",
                        format!("{}: cannot read: {e}", path.display()),
                    )
                })?;
                (
                    RoutingTable::parse(&text).map_err(|e| {
                        ConfigError::new(
                            "ROUTES_FILE",
                            format!("{}: invalid routing document at {e}", path.display()),
                        )
                    })?,
                    None,
                )
            }
            RoutesSource::Ssm { name, .. } => {
                let text = read_parameter(&ssm, name, alert_aws::sdk::ATTEMPT_TIMEOUT)
                    .await
                    .map_err(|e| {
                        ConfigError::new("ROUTES_SSM_PARAMETER", format!("{name}: {e}"))
                    })?;
                (
                    RoutingTable::parse(&text).map_err(|e| {
                        ConfigError::new(
                            "ROUTES_SSM_PARAMETER",
                            format!("{name}: invalid routing document at {e}"),
                        )
                    })?,
                    Some(text),
                )
            }
        };
        Ok(Routes {
            source,
            ssm: Some(ssm),
            current: Mutex::new(Current {
                table: Arc::new(table),
                raw,
                checked: Instant::now(),
            }),
        })
    }

    /// The table to use now; re-reads SSM when the TTL has passed, within
    /// the invocation's deadline.
    pub async fn table(&self, deadline: &Deadline) -> Arc<RoutingTable> {
        let (table, due) = match self.current.lock() {
            Ok(c) => {
                let due = match &self.source {
                    RoutesSource::Ssm { ttl, .. } => c.checked.elapsed() >= *ttl,
                    _ => false,
                };
                (c.table.clone(), due)
            }
            Err(_) => return Arc::new(RoutingTable::enriched_only()),
        };
        if !due {
            return table;
        }
        let (RoutesSource::Ssm { name, .. }, Some(ssm)) = (&self.source, &self.ssm) else {
            return table;
        };
        let Some(timeout) = deadline.timeout(alert_aws::sdk::ATTEMPT_TIMEOUT) else {
            return table;
        };
        let fetched = read_parameter(ssm, name, timeout).await;
        let Ok(mut current) = self.current.lock() else {
            return table;
        };
        current.checked = Instant::now();
        match fetched {
            Err(e) => {
                tracing::warn!(parameter = %name, error = %e, "routing reload failed; keeping the current table");
            }
            Ok(text) if current.raw.as_deref() == Some(text.as_str()) => {}
            Ok(text) => match RoutingTable::parse(&text) {
                Ok(new) => {
                    tracing::info!(parameter = %name, routes = new.routes.len(), "routing document changed; reloaded");
                    current.table = Arc::new(new);
                    current.raw = Some(text);
                }
                Err(e) => {
                    tracing::error!(parameter = %name, error = %e, "new routing document is invalid; keeping the current table");
                    current.raw = Some(text);
                }
            },
        }
        current.table.clone()
    }
}

async fn read_parameter(
    ssm: &aws_sdk_ssm::Client,
    name: &str,
    timeout: std::time::Duration,
) -> Result<String, String> {
    let call = ssm.get_parameter().name(name).with_decryption(true).send();
    let out = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| {
            format!(
                "ssm:GetParameter timed out after {} ms",
                timeout.as_millis()
            )
        })?
        .map_err(|e| {
            let c = alert_aws::classify_sdk_error(&e);
            format!("ssm:GetParameter failed ({}): {}", c.reason, c.detail)
        })?;
    out.parameter()
        .and_then(|p| p.value())
        .map(str::to_string)
        .ok_or_else(|| "parameter has no value".to_string())
}
