//! `Fleet`: the EC2 and CloudWatch clients of every (account, region) a
//! batch names, built once and kept across warm invocations.
//!
//! The enricher's own account uses its own role; another account's clients
//! carry the credentials of `arn:PARTITION:iam::ACCOUNT:role/ROLE_NAME`,
//! assumed once and kept until shortly before they expire, so a batch costs
//! at most one AssumeRole per account per credential lifetime whatever the
//! number of regions. Only accounts on the allow-list are ever assumed.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use alert_aws::{ConfigError, Deadline, classify_sdk_error};
use alert_envelope::Envelope;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_ec2::config::Region;

/// The role session name every assumed session carries (CloudTrail shows it).
pub const SESSION_NAME: &str = "alert-manager-enricher";
/// Default `CROSS_ACCOUNT_ROLE_NAME`: the role `member-account.yaml` creates.
pub const DEFAULT_ROLE_NAME: &str = "alert-manager-enricher-read";
/// Credentials closer than this to their expiry are assumed again.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);
/// A refused AssumeRole is not asked again for this long.
const REFUSED_TTL: Duration = Duration::from_secs(60);
/// Most (account, region) pairs with clients; more are refused, so hostile
/// region strings cannot grow the map without bound.
const MAX_SCOPES: usize = 256;

/// Where an alert's machine lives: the account and region its EC2 and
/// CloudWatch calls go to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// 12-digit account id.
    pub account: String,
    /// Region, e.g. `eu-west-1`.
    pub region: String,
}

/// Who may be assumed, and how (`CROSS_ACCOUNT_*`, `ALLOWED_ACCOUNTS`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FleetConfig {
    /// Role name assumed in every other account.
    pub role_name: String,
    /// `sts:ExternalId` sent with each AssumeRole, if any.
    pub external_id: Option<String>,
    /// Accounts other than the enricher's own whose alerts are enriched.
    pub allowed: BTreeSet<String>,
}

impl FleetConfig {
    /// Checks the settings; errors name the variable.
    pub fn new(
        role_name: &str,
        external_id: Option<&str>,
        allowed: &str,
    ) -> Result<FleetConfig, ConfigError> {
        let role_name = role_name.trim();
        let valid_name = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
        if role_name.is_empty() || role_name.len() > 64 || !role_name.chars().all(valid_name) {
            return Err(ConfigError::new(
                "CROSS_ACCOUNT_ROLE_NAME",
                format!("{role_name:?} is not an IAM role name (1-64 of A-Z a-z 0-9 +=,.@_-)"),
            ));
        }
        let external_id = external_id.map(str::trim).filter(|e| !e.is_empty());
        if let Some(e) = external_id
            && (e.len() < 2 || e.len() > 1224)
        {
            return Err(ConfigError::new(
                "CROSS_ACCOUNT_EXTERNAL_ID",
                "must be 2 to 1,224 characters (STS's limit)",
            ));
        }
        let mut accounts = BTreeSet::new();
        for a in allowed.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            if !is_account_id(a) {
                return Err(ConfigError::new(
                    "ALLOWED_ACCOUNTS",
                    format!("has {a:?}, not a 12-digit account id"),
                ));
            }
            accounts.insert(a.to_string());
        }
        Ok(FleetConfig {
            role_name: role_name.to_string(),
            external_id: external_id.map(String::from),
            allowed: accounts,
        })
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A region name as AWS spells them (`us-east-1`, `us-gov-west-1`,
/// `ap-southeast-3`): lowercase words and a number, dash-separated.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    s.len() <= 25
        && (3..=4).contains(&parts.len())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The clients of one scope.
#[derive(Debug, Clone)]
pub struct ScopeClients {
    /// EC2, for DescribeInstances.
    pub ec2: aws_sdk_ec2::Client,
    /// CloudWatch, for GetMetricData.
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

/// What a batch cost in role assumptions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FleetCalls {
    /// AssumeRole calls sent.
    pub assume_role: usize,
}

/// The clients of every scope, built on demand from the own-account ones.
#[derive(Debug)]
pub struct Fleet {
    own: Scope,
    partition: String,
    config: FleetConfig,
    base: ScopeClients,
    sts: Option<aws_sdk_sts::Client>,
    scopes: Mutex<HashMap<Scope, ScopeClients>>,
    roles: Mutex<HashMap<String, Arc<AssumedRole>>>,
}

impl Fleet {
    /// A fleet whose own scope is `own`, served by `base`; other scopes'
    /// clients are `base`'s configuration with their region and, for another
    /// account, the assumed role's credentials. Until
    /// [`Fleet::with_sts`], only the own account is enriched.
    pub fn new(own: Scope, partition: &str, config: FleetConfig, base: ScopeClients) -> Fleet {
        let mut scopes = HashMap::new();
        scopes.insert(own.clone(), base.clone());
        Fleet {
            own,
            partition: partition.to_string(),
            config,
            base,
            sts: None,
            scopes: Mutex::new(scopes),
            roles: Mutex::new(HashMap::new()),
        }
    }

    /// The same fleet, assuming other accounts' roles through `sts`.
    pub fn with_sts(mut self, sts: aws_sdk_sts::Client) -> Fleet {
        self.sts = Some(sts);
        self
    }

    /// The scope of an envelope: its `aws.account_id` and `aws.region`,
    /// each defaulting to the enricher's own. The error says why the
    /// envelope cannot be enriched there (stage `account`).
    pub fn scope_of(&self, env: &Envelope) -> Result<Scope, String> {
        let aws = env.aws.as_ref();
        let account = aws
            .and_then(|a| a.account_id.as_deref())
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .unwrap_or(&self.own.account);
        let region = aws
            .and_then(|a| a.region.as_deref())
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .unwrap_or(&self.own.region);
        if !is_account_id(account) {
            return Err(format!(
                "aws.account_id {account:?} is not a 12-digit account id"
            ));
        }
        if !is_region(region) {
            return Err(format!("aws.region {region:?} is not an AWS region name"));
        }
        if account != self.own.account && !self.config.allowed.contains(account) {
            return Err(format!(
                "account {account} is not in ALLOWED_ACCOUNTS; no role assumed, so no EC2 or CloudWatch data"
            ));
        }
        Ok(Scope {
            account: account.to_string(),
            region: region.to_string(),
        })
    }

    /// The clients of `scope`, with credentials that are valid now, or why
    /// not. No AssumeRole is started after `deadline`.
    pub async fn clients(
        &self,
        scope: &Scope,
        deadline: &Deadline,
        calls: &mut FleetCalls,
    ) -> Result<ScopeClients, String> {
        if scope.account != self.own.account {
            let role = self.role(&scope.account)?;
            role.credentials(deadline, calls).await?;
        }
        let mut scopes = self.scopes.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = scopes.get(scope) {
            return Ok(c.clone());
        }
        if scopes.len() >= MAX_SCOPES {
            return Err(format!(
                "more than {MAX_SCOPES} (account, region) pairs seen; {}/{} not enriched",
                scope.account, scope.region
            ));
        }
        let credentials = (scope.account != self.own.account)
            .then(|| self.role(&scope.account))
            .transpose()?
            .map(|role| SharedCredentialsProvider::new(AssumedRoleProvider(role)));
        let region = Region::new(scope.region.clone());
        let mut ec2 = self.base.ec2.config().to_builder().region(region.clone());
        let mut cloudwatch = self.base.cloudwatch.config().to_builder().region(region);
        if let Some(c) = credentials {
            ec2 = ec2.credentials_provider(c.clone());
            cloudwatch = cloudwatch.credentials_provider(c);
        }
        let clients = ScopeClients {
            ec2: aws_sdk_ec2::Client::from_conf(ec2.build()),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(cloudwatch.build()),
        };
        scopes.insert(scope.clone(), clients.clone());
        Ok(clients)
    }

    /// The one assumed role of `account`, shared by all its regions.
    fn role(&self, account: &str) -> Result<Arc<AssumedRole>, String> {
        let Some(sts) = &self.sts else {
            return Err(format!(
                "account {account}: cross-account enrichment is off in this build of the enricher"
            ));
        };
        let mut roles = self.roles.lock().unwrap_or_else(|e| e.into_inner());
        Ok(roles
            .entry(account.to_string())
            .or_insert_with(|| {
                Arc::new(AssumedRole {
                    sts: sts.clone(),
                    role_arn: format!(
                        "arn:{}:iam::{account}:role/{}",
                        self.partition, self.config.role_name
                    ),
                    external_id: self.config.external_id.clone(),
                    state: tokio::sync::Mutex::new(RoleState::Unknown),
                })
            })
            .clone())
    }
}

#[derive(Debug)]
enum RoleState {
    Unknown,
    Assumed(Credentials),
    Refused { at: Instant, message: String },
}

/// One account's role and its current credentials.
#[derive(Debug)]
struct AssumedRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    external_id: Option<String>,
    // Held across the AssumeRole call, so concurrent scopes of one account
    // wait for one call instead of each making their own.
    state: tokio::sync::Mutex<RoleState>,
}

impl AssumedRole {
    async fn credentials(
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
struct AssumedRoleProvider(Arc<AssumedRole>);

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

#[cfg(test)]
mod tests {
    use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

    use super::*;

    const OWN: &str = "111111111111";

    fn sts(rule: &Rule) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_sts::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_sts::config::Credentials::new(
                    "a", "b", None, None, "t",
                ))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(
                    MockResponseInterceptor::new()
                        .rule_mode(RuleMode::MatchAny)
                        .with_rule(rule),
                )
                .build(),
        )
    }

    fn base() -> ScopeClients {
        let creds = aws_sdk_ec2::config::Credentials::new("a", "b", None, None, "t");
        ScopeClients {
            ec2: aws_sdk_ec2::Client::from_conf(
                aws_sdk_ec2::Config::builder()
                    .behavior_version_latest()
                    .region(Region::new("us-east-1"))
                    .credentials_provider(creds.clone())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::Config::builder()
                    .behavior_version_latest()
                    .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
                    .credentials_provider(creds)
                    .build(),
            ),
        }
    }

    fn fleet(rule: &Rule, allowed: &str) -> Fleet {
        Fleet::new(
            Scope {
                account: OWN.into(),
                region: "us-east-1".into(),
            },
            "aws",
            FleetConfig::new(DEFAULT_ROLE_NAME, Some("ext-1"), allowed).unwrap(),
            base(),
        )
        .with_sts(sts(rule))
    }

    fn granted(expires_in: Duration) -> Rule {
        mock!(aws_sdk_sts::Client::assume_role).then_compute_output(move |input| {
            assert_eq!(input.role_session_name(), Some(SESSION_NAME));
            assert_eq!(input.external_id(), Some("ext-1"));
            let expiry = SystemTime::now() + expires_in;
            AssumeRoleOutput::builder()
                .credentials(
                    aws_sdk_sts::types::Credentials::builder()
                        .access_key_id(format!("ASIA{}", input.role_arn().unwrap_or("")))
                        .secret_access_key("s")
                        .session_token("t")
                        .expiration(aws_smithy_types::DateTime::from(expiry))
                        .build()
                        .unwrap(),
                )
                .build()
        })
    }

    fn scope(account: &str, region: &str) -> Scope {
        Scope {
            account: account.into(),
            region: region.into(),
        }
    }

    fn deadline() -> Deadline {
        Deadline::within(Duration::from_secs(30))
    }

    fn envelope(account: Option<&str>, region: Option<&str>) -> Envelope {
        let mut env = Envelope::from_json(include_str!(
            "../../../docs/examples/enriched-envelope.json"
        ))
        .unwrap();
        env.aws = Some(alert_envelope::AwsContext {
            account_id: account.map(String::from),
            region: region.map(String::from),
            ..Default::default()
        });
        env
    }

    #[tokio::test]
    async fn one_assume_role_per_account_whatever_the_regions() {
        let rule = granted(Duration::from_secs(3600));
        let f = fleet(&rule, "222222222222,333333333333");
        let mut calls = FleetCalls::default();
        for region in ["us-east-1", "eu-west-1", "us-east-1"] {
            for account in ["222222222222", "333333333333"] {
                let c = f
                    .clients(&scope(account, region), &deadline(), &mut calls)
                    .await
                    .unwrap();
                assert_eq!(
                    c.ec2.config().region().map(|r| r.as_ref()),
                    Some(region),
                    "the scope's region"
                );
            }
        }
        assert_eq!(calls.assume_role, 2);
        assert_eq!(rule.num_calls(), 2);
        // The own account never assumes anything.
        f.clients(&scope(OWN, "eu-west-1"), &deadline(), &mut calls)
            .await
            .unwrap();
        assert_eq!(rule.num_calls(), 2);
    }

    #[tokio::test]
    async fn credentials_near_their_expiry_are_assumed_again() {
        let rule = granted(Duration::from_secs(200));
        let f = fleet(&rule, "222222222222");
        let mut calls = FleetCalls::default();
        for _ in 0..2 {
            f.clients(&scope("222222222222", "us-east-1"), &deadline(), &mut calls)
                .await
                .unwrap();
        }
        assert_eq!(
            calls.assume_role, 2,
            "200 s left is inside the refresh margin"
        );
    }

    #[tokio::test]
    async fn a_refused_role_is_an_error_naming_it_and_is_not_asked_again_at_once() {
        let rule = mock!(aws_sdk_sts::Client::assume_role).then_error(|| {
            AssumeRoleError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: sts:AssumeRole")
                    .build(),
            )
        });
        let f = fleet(&rule, "222222222222");
        let mut calls = FleetCalls::default();
        for _ in 0..3 {
            let e = f
                .clients(&scope("222222222222", "us-east-1"), &deadline(), &mut calls)
                .await
                .unwrap_err();
            assert!(
                e.contains("arn:aws:iam::222222222222:role/alert-manager-enricher-read")
                    && e.contains("AccessDenied"),
                "{e}"
            );
        }
        assert_eq!(rule.num_calls(), 1);
    }

    #[test]
    fn an_envelope_is_scoped_by_its_account_and_region_defaulting_to_the_own() {
        let rule = granted(Duration::from_secs(3600));
        let f = fleet(&rule, "222222222222");
        assert_eq!(
            f.scope_of(&envelope(None, None)),
            Ok(scope(OWN, "us-east-1"))
        );
        assert_eq!(
            f.scope_of(&envelope(Some("222222222222"), Some("ap-southeast-3"))),
            Ok(scope("222222222222", "ap-southeast-3"))
        );
        let not_allowed = f
            .scope_of(&envelope(Some("999999999999"), None))
            .unwrap_err();
        assert!(not_allowed.contains("ALLOWED_ACCOUNTS"), "{not_allowed}");
        for (account, region, field) in [
            (Some("12345"), None, "aws.account_id"),
            (None, Some("Mars-1"), "aws.region"),
            (None, Some("us-east-1\nx"), "aws.region"),
        ] {
            let e = f.scope_of(&envelope(account, region)).unwrap_err();
            assert!(e.contains(field), "{e}");
        }
        assert_eq!(rule.num_calls(), 0);
    }

    #[test]
    fn settings_are_checked_naming_the_variable() {
        for (name, external, allowed, setting) in [
            ("", None, "", "CROSS_ACCOUNT_ROLE_NAME"),
            ("has space", None, "", "CROSS_ACCOUNT_ROLE_NAME"),
            ("r", Some("x"), "", "CROSS_ACCOUNT_EXTERNAL_ID"),
            ("r", None, "222222222222, 12", "ALLOWED_ACCOUNTS"),
        ] {
            let e = FleetConfig::new(name, external, allowed).unwrap_err();
            assert_eq!(e.setting, setting);
        }
        let ok = FleetConfig::new("r", Some(" "), " 222222222222 ,,333333333333").unwrap();
        assert_eq!(ok.allowed.len(), 2);
        assert_eq!(ok.external_id, None);
    }

    #[test]
    fn region_names() {
        for r in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-3",
            "il-central-1",
        ] {
            assert!(is_region(r), "{r}");
        }
        for r in [
            "",
            "us",
            "us-east",
            "US-east-1",
            "us-east-1a",
            "us--1",
            "a-b-c-d-1",
        ] {
            assert!(!is_region(r), "{r}");
        }
    }
}
