//! Logging setup: JSON or text, level from RUST_LOG (default info), shared
//! with the enricher.

use crate::config::LogFormat;

/// Installs the global subscriber, writing to stderr.
pub fn init(format: LogFormat) {
    alert_aws::sdk::init_logging(match format {
        LogFormat::Json => alert_aws::sdk::LogFormat::Json,
        LogFormat::Text => alert_aws::sdk::LogFormat::Text,
    });
}
