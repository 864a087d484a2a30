//! `ConfigError`: a setting that is missing or wrong, named.

/// A configuration problem: which setting (an environment variable, a flag,
/// or a field path in a document such as `sinks.pd.url`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Shown as `SETTING message`, so a message reads on from the name:
/// `ENRICHED_TOPIC_ARN is required`.
#[error("{setting} {message}")]
pub struct ConfigError {
    /// The setting, as the operator writes it.
    pub setting: String,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl ConfigError {
    /// A problem with `setting`.
    pub fn new(setting: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            setting: setting.into(),
            message: message.into(),
        }
    }

    /// The same problem, found under `prefix` (`sinks.pd` + `url` →
    /// `sinks.pd.url`).
    pub fn within(self, prefix: &str) -> ConfigError {
        ConfigError {
            setting: format!("{prefix}.{}", self.setting),
            message: self.message,
        }
    }
}
