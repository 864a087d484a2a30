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

use alert_aws::{ConfigError, Deadline};
use alert_envelope::Envelope;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_ec2::config::Region;

mod role;
#[cfg(test)]
mod tests;

use role::{AssumedRole, AssumedRoleProvider, RoleState};

/// The role session name every assumed session carries (CloudTrail shows it).
pub const SESSION_NAME: &str = "alert-manager-enricher";
/// Default `CROSS_ACCOUNT_ROLE_NAME`: the role `member-account.yaml` creates.
pub const DEFAULT_ROLE_NAME: &str = "alert-manager-enricher-read";
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
