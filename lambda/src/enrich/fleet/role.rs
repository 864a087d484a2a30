//! `AssumedRole`: one account's role and its current credentials, assumed
//! once and kept until shortly before they expire; shared by every region's
//! clients of that account through [`AssumedRoleProvider`].

use std::time::{Duration, Instant, SystemTime};

use alert_aws::{Deadline, classify_sdk_error};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials};

use super::{FleetCalls, SESSION_NAME};

/// Credentials closer than this to their expiry are assumed again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// A refused AssumeRole is not asked again for this long.
const REFUSED_TTL: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub(super) enum RoleState {
    Unknown,
    Assumed(Credentials),
    Refused { at: Instant, message: String },
}

/// One account's role and its current credentials.
#[derive(Debug)]
pub(super) struct AssumedRole {
    pub(super) sts: aws_sdk_sts::Client,
    pub(super) role_arn: String,
    pub(super) external_id: Option<String>,
    // Held across the AssumeRole call, so concurrent scopes of one account
    // wait for one call instead of each making their own.
    pub(super) state: tokio::sync::Mutex<RoleState>,
}

impl AssumedRole {
    pub(super) async fn credentials(
        &self,
        deadline: &Deadline,
        calls: &mut FleetCalls,
    ) -> Result<Credentials, String> {
        let mut state = self.state.lock().await;
        match &*state {
            RoleState::Assumed(c) if fresh(c) => return Ok(c.clone()),
            RoleState::Refused { at, message } if at.elapsed() < REFUSED_TTL => {
                return Err(message.clone());
            }
            _ => {}
        }
        let Some(timeout) = deadline.timeout(alert_aws::sdk::ATTEMPT_TIMEOUT) else {
            return Err(format!(
                "AssumeRole of {} not sent: no time left before the deadline",
                self.role_arn
            ));
        };
        calls.assume_role += 1;
        let call = self
            .sts
            .assume_role()
            .role_arn(&self.role_arn)
            .role_session_name(SESSION_NAME)
            .set_external_id(self.external_id.clone())
            .send();
        let outcome = match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(format!(
                "AssumeRole of {} timed out after {} ms",
                self.role_arn,
                timeout.as_millis()
            )),
            Ok(Err(e)) => {
                let c = classify_sdk_error(&e);
                Err(format!(
                    "AssumeRole of {} failed ({}): {}; is member-account.yaml deployed in that account, trusting this enricher's role{}?",
                    self.role_arn,
                    c.reason,
                    c.detail,
                    if self.external_id.is_some() {
                        " with the same external id"
                    } else {
                        ""
                    }
                ))
            }
            Ok(Ok(out)) => out
                .credentials()
                .map(|c| {
                    Credentials::new(
                        c.access_key_id(),
                        c.secret_access_key(),
                        Some(c.session_token().to_string()),
                        SystemTime::try_from(*c.expiration()).ok(),
                        "alert-manager-assume-role",
                    )
                })
                .ok_or_else(|| format!("AssumeRole of {} returned no credentials", self.role_arn)),
        };
        *state = match &outcome {
            Ok(c) => RoleState::Assumed(c.clone()),
            Err(message) => RoleState::Refused {
                at: Instant::now(),
                message: message.clone(),
            },
        };
        outcome
    }
}

fn fresh(c: &Credentials) -> bool {
    c.expiry().is_none_or(|at| {
        at.duration_since(SystemTime::now())
            .is_ok_and(|left| left > REFRESH_BEFORE)
    })
}

/// The SDK's view of an [`AssumedRole`]: the credentials [`Fleet::clients`]
/// made fresh before the call.
#[derive(Debug)]
pub(super) struct AssumedRoleProvider(pub(super) std::sync::Arc<AssumedRole>);

impl ProvideCredentials for AssumedRoleProvider {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let deadline = Deadline::within(alert_aws::sdk::ATTEMPT_TIMEOUT);
            self.0
                .credentials(&deadline, &mut FleetCalls::default())
                .await
                .map_err(provider::error::CredentialsError::provider_error)
        })
    }
}
