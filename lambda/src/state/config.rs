//! The store's settings: `STATE_TABLE`, `STATE_TTL_HOURS`, `STATE_FAILURE`.

use std::time::Duration;

use alert_aws::ConfigError;

/// What to do with a batch when the store cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateFailure {
    /// Deliver anyway, at least once as without a store, and record the
    /// error in `enrichment.errors` (stage `state`).
    Deliver,
    /// Fail the records, so they come back from SQS after the visibility
    /// timeout.
    Retry,
}

/// Settings of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// Table name (`STATE_TABLE`, a name or a table ARN).
    pub table: String,
    /// How long an item lives after its alert's last change.
    pub ttl: Duration,
    /// When the store cannot be used.
    pub failure: StateFailure,
    /// Longest single DynamoDB call ([`DEFAULT_CALL_TIMEOUT`]); the
    /// invocation's deadline may cut it shorter.
    pub call_timeout: Duration,
}

/// DynamoDB answers in milliseconds; a call that takes 2 s is better
/// failed (and the batch delivered at least once) than waited for.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(2);

impl StateConfig {
    /// The settings; errors name the variable.
    pub fn new(table: &str, ttl_hours: u64, failure: StateFailure) -> Result<Self, ConfigError> {
        let table = table_name(table).map_err(|m| ConfigError::new("STATE_TABLE", m))?;
        if ttl_hours == 0 {
            return Err(ConfigError::new("STATE_TTL_HOURS", "must be at least 1"));
        }
        Ok(StateConfig {
            table,
            ttl: Duration::from_secs(ttl_hours * 3600),
            failure,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })
    }
}

/// The table name of `STATE_TABLE`: a name, or
/// `arn:aws:dynamodb:<region>:<account>:table/<name>`.
fn table_name(value: &str) -> Result<String, String> {
    let value = value.trim();
    let name = match value.strip_prefix("arn:") {
        Some(_) => {
            let parts: Vec<&str> = value.splitn(6, ':').collect();
            match parts.as_slice() {
                [_, _, "dynamodb", _, _, resource] => resource
                    .strip_prefix("table/")
                    .ok_or_else(|| format!("{value:?} is not a table ARN (…:table/<name>)"))?,
                _ => return Err(format!("{value:?} is not a DynamoDB table ARN")),
            }
        }
        None => value,
    };
    let valid = (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(format!(
            "{name:?} is not a table name (3-255 of a-z, A-Z, 0-9, _ - .)"
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    #[test]
    fn state_table_takes_a_name_or_a_table_arn_and_names_itself_when_wrong() {
        assert_eq!(table_name("alert-state").unwrap(), "alert-state");
        assert_eq!(
            table_name("arn:aws:dynamodb:us-east-1:123456789012:table/alert-state").unwrap(),
            "alert-state"
        );
        assert!(table_name("arn:aws:sns:us-east-1:123456789012:t").is_err());
        assert!(table_name("a b").is_err());
        let e = StateConfig::new("x", 168, StateFailure::Deliver).unwrap_err();
        assert_eq!(e.setting, "STATE_TABLE");
        let e = StateConfig::new("alerts", 0, StateFailure::Deliver).unwrap_err();
        assert_eq!(e.setting, "STATE_TTL_HOURS");
    }
}
