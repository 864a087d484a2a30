//! The example values the tests give the `${Name}` placeholders of the
//! policy files in `infra/iam/`, and the substitution: one table for every
//! test that reads those files (infra.rs, scanners.rs).

use std::collections::BTreeMap;

use crate::{ACCOUNT_ID, REGION};

/// The agent cluster's OIDC provider (IRSA).
pub const OIDC: &str = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE";
/// A member account of the organisation (moto keeps its resources apart from [`ACCOUNT_ID`]'s).
pub const MEMBER_ACCOUNT: &str = "222222222222";
/// The organisation.
pub const ORGANIZATION_ID: &str = "o-a1b2c3d4e5";
/// The external id of the member read roles.
pub const EXTERNAL_ID: &str = "alert-manager-3f9c";
/// The read role's default name in both templates (the enricher's CROSS_ACCOUNT_ROLE_NAME).
pub const READ_ROLE_NAME: &str = "alert-manager-enricher-read";

/// The OIDC provider's ARN in the central account.
pub fn oidc_provider_arn() -> String {
    format!("arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{OIDC}")
}

/// Placeholders of the IAM files and the example values they take in the tests.
pub fn placeholder_values() -> BTreeMap<&'static str, String> {
    let a = ACCOUNT_ID;
    let r = REGION;
    BTreeMap::from([
        ("TopicArn", format!("arn:aws:sns:{r}:{a}:alert-manager-raw")),
        (
            "EnrichedTopicArn",
            format!("arn:aws:sns:{r}:{a}:alert-manager-enriched"),
        ),
        (
            "QueueArn",
            format!("arn:aws:sqs:{r}:{a}:alert-manager-enricher"),
        ),
        (
            "TopicKmsKeyArn",
            format!("arn:aws:kms:{r}:{a}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        (
            "SecretsKmsKeyArn",
            format!("arn:aws:kms:{r}:{a}:key/0987dcba-09fe-87dc-65ba-ab0987654321"),
        ),
        (
            "SecretArn",
            format!("arn:aws:secretsmanager:{r}:{a}:secret:alert-manager/slack-AbCdEf"),
        ),
        ("RoutesParameterName", "alert-manager/routes".to_string()),
        (
            "EventBusArn",
            format!("arn:aws:events:{r}:{a}:event-bus/alerts"),
        ),
        ("StateTableName", "alert-manager-state".to_string()),
        ("FunctionName", "alert-manager-enricher".to_string()),
        ("OidcProviderArn", oidc_provider_arn()),
        ("OidcProvider", OIDC.to_string()),
        ("ClusterName", "prod".to_string()),
        ("Region", r.to_string()),
        ("AccountId", a.to_string()),
        ("CrossAccountRoleName", READ_ROLE_NAME.to_string()),
        ("ExternalId", EXTERNAL_ID.to_string()),
        (
            "EnricherRoleArn",
            format!("arn:aws:iam::{a}:role/alert-manager-EnricherRole-AbC123"),
        ),
        ("OrganizationId", ORGANIZATION_ID.to_string()),
        ("MemberAccountId", MEMBER_ACCOUNT.to_string()),
    ])
}

/// `text` (the file `name`) with every `${Name}` replaced; panics on an
/// unknown placeholder, naming it.
pub fn substitute(name: &str, text: &str) -> String {
    let values = placeholder_values();
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}').map(|e| e + start) else {
            panic!("{name}: unterminated placeholder at {:?}", &rest[start..]);
        };
        let key = &rest[start + 2..end];
        let value = values.get(key).unwrap_or_else(|| {
            panic!(
                "{name}: unknown placeholder ${{{key}}}; add its example value to tests/src/iam.rs"
            )
        });
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}
