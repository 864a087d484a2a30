//! An EventBridge sink's settings.

use alert_aws::ConfigError;
use alert_envelope::{Envelope, Status};
use serde::Deserialize;

/// An EventBridge sink.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventBridgeConfig {
    /// The bus, in the function's region:
    /// `arn:aws:events:us-east-1:123456789012:event-bus/alerts`.
    pub event_bus_arn: String,
    /// The events' `source`, for rules to match; may not begin with `aws.`.
    #[serde(default = "default_source")]
    pub source: String,
    /// The events' `detail-type`; by default `Alert Firing` or `Alert
    /// Resolved`, by the alert's status.
    #[serde(default)]
    pub detail_type: Option<String>,
}

fn default_source() -> String {
    "alert-manager".into()
}

impl EventBridgeConfig {
    /// Checks the fields; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let parts: Vec<&str> = self.event_bus_arn.splitn(6, ':').collect();
        let name = parts
            .get(5)
            .and_then(|r| r.strip_prefix("event-bus/"))
            .unwrap_or("");
        let valid = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "events"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'));
        if !valid {
            return Err(ConfigError::new(
                "event_bus_arn",
                format!(
                    "{:?} is not an event bus ARN like arn:aws:events:us-east-1:123456789012:event-bus/alerts",
                    self.event_bus_arn
                ),
            ));
        }
        if self.source.is_empty() || self.source.len() > 256 {
            return Err(ConfigError::new("source", "must be 1 to 256 characters"));
        }
        if self.source.starts_with("aws.") {
            return Err(ConfigError::new(
                "source",
                format!(
                    "{:?}: sources beginning with aws. are AWS's own",
                    self.source
                ),
            ));
        }
        if let Some(t) = &self.detail_type
            && (t.is_empty() || t.len() > 128)
        {
            return Err(ConfigError::new(
                "detail_type",
                "must be 1 to 128 characters",
            ));
        }
        Ok(())
    }

    pub(super) fn detail_type(&self, env: &Envelope) -> &str {
        match (&self.detail_type, env.status) {
            (Some(t), _) => t,
            (None, Status::Firing) => "Alert Firing",
            (None, Status::Resolved) => "Alert Resolved",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use alert_envelope::Source;

    fn config() -> EventBridgeConfig {
        serde_yaml::from_str(
            "event_bus_arn: arn:aws:events:us-east-1:123456789012:event-bus/alerts\n",
        )
        .unwrap()
    }

    fn env() -> Envelope {
        Envelope::new(
            Source::Alertmanager,
            "prod",
            Status::Firing,
            "fp".into(),
            "2026-12-02T10:00:00Z".parse().unwrap(),
            Default::default(),
        )
    }

    #[test]
    fn fields_are_checked_by_name() {
        assert!(config().validate().is_ok());
        let mut c = config();
        c.event_bus_arn = "arn:aws:sns:us-east-1:123456789012:alerts".into();
        assert_eq!(c.validate().unwrap_err().setting, "event_bus_arn");
        let mut c = config();
        c.source = "aws.cloudwatch".into();
        assert_eq!(c.validate().unwrap_err().setting, "source");
        let mut c = config();
        c.detail_type = Some("x".repeat(129));
        assert_eq!(c.validate().unwrap_err().setting, "detail_type");
        assert_eq!(config().detail_type(&env()), "Alert Firing");
        assert!(
            serde_yaml::from_str::<EventBridgeConfig>("event_bus_arn: x\nbus: y\n").is_err(),
            "unknown fields are refused"
        );
    }
}
