//! The fleet against aws-smithy-mocks STS.

use aws_sdk_sts::operation::assume_role::{AssumeRoleError, AssumeRoleOutput};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

use std::time::{Duration, SystemTime};

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
        "../../../../docs/examples/enriched-envelope.json"
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
