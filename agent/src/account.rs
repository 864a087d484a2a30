//! `Account`: the AWS account this agent's cluster runs in, put into every
//! envelope as `aws.account_id`, so that a central enricher serving many
//! accounts knows whose EC2 instances and metrics to read.
//!
//! It is the account of the agent's own identity (STS GetCallerIdentity at
//! startup, the call `whoami` makes), or `AWS_ACCOUNT_ID`. The topic may be
//! in another account: that is the organisation setup, where every
//! cluster publishes to one central topic.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use alert_envelope::{AwsContext, Envelope};

use crate::Error;

/// The account, once known; shared by the webhook and the events pipeline.
#[derive(Debug, Clone, Default)]
pub struct Account(Arc<OnceLock<String>>);

impl Account {
    /// An account given by `AWS_ACCOUNT_ID`, or to be looked up.
    pub fn new(id: Option<String>) -> Account {
        let account = Account::default();
        if let Some(id) = id {
            let _ = account.0.set(id);
        }
        account
    }

    /// The account id, if known yet.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Writes `aws.account_id` into `env` (nothing while it is unknown:
    /// the enricher then takes its own account).
    pub fn stamp(&self, env: &mut Envelope) {
        if let Some(id) = self.get() {
            env.aws.get_or_insert_with(AwsContext::default).account_id = Some(id.to_string());
        }
    }

    /// Asks STS who this agent is until it answers, with backoff; the agent
    /// stays unready meanwhile.
    pub async fn look_up(&self, sts: &aws_sdk_sts::Client) {
        use backon::BackoffBuilder;
        if self.get().is_some() {
            return;
        }
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match sts.get_caller_identity().send().await {
                Ok(identity) => match identity.account() {
                    Some(id) if valid(id) => {
                        let _ = self.0.set(id.to_string());
                        tracing::info!(
                            account = id,
                            arn = identity.arn().unwrap_or("?"),
                            "AWS account known"
                        );
                        return;
                    }
                    other => tracing::warn!(
                        account = ?other,
                        "sts:GetCallerIdentity gave no 12-digit account; not ready (set AWS_ACCOUNT_ID)"
                    ),
                },
                Err(e) => {
                    let c = alert_aws::classify_sdk_error(&e);
                    tracing::warn!(reason = %c.reason, detail = %c.detail, "sts:GetCallerIdentity failed; not ready until the account is known (or set AWS_ACCOUNT_ID)");
                }
            }
            let delay = backoff.next().unwrap_or(Duration::from_secs(10));
            tokio::time::sleep(delay).await;
        }
    }
}

fn valid(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Checks `AWS_ACCOUNT_ID`; empty means "look it up".
pub fn parse_override(value: Option<&str>) -> Result<Option<String>, Error> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) if valid(id) => Ok(Some(id.to_string())),
        Some(id) => Err(Error::Config(format!(
            "--aws-account-id / AWS_ACCOUNT_ID is {id:?}; it must be a 12-digit account id"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_override_is_twelve_digits_or_empty() {
        assert_eq!(parse_override(None).unwrap(), None);
        assert_eq!(parse_override(Some(" ")).unwrap(), None);
        assert_eq!(
            parse_override(Some(" 123456789012 ")).unwrap().as_deref(),
            Some("123456789012")
        );
        for bad in ["12345678901", "1234567890123", "12345678901a"] {
            let e = parse_override(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("AWS_ACCOUNT_ID"), "{e}");
        }
    }

    #[test]
    fn a_known_account_is_stamped_and_keeps_the_machine() {
        let mut env =
            Envelope::from_json(include_str!("../../docs/examples/enriched-envelope.json"))
                .unwrap();
        let instance = env.aws.as_ref().and_then(|a| a.instance_id.clone());
        Account::new(None).stamp(&mut env);
        assert_eq!(
            env.aws.as_ref().and_then(|a| a.instance_id.clone()),
            instance
        );
        Account::new(Some("210987654321".into())).stamp(&mut env);
        let aws = env.aws.unwrap();
        assert_eq!(aws.account_id.as_deref(), Some("210987654321"));
        assert_eq!(aws.instance_id, instance);
        let mut bare =
            Envelope::from_json(include_str!("../../docs/examples/enriched-envelope.json"))
                .unwrap();
        bare.aws = None;
        Account::new(Some("210987654321".into())).stamp(&mut bare);
        assert_eq!(
            bare.aws.and_then(|a| a.account_id).as_deref(),
            Some("210987654321")
        );
    }
}
