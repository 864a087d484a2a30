//! `alert-manager-agent whoami`: what AWS sees of this pod, and what is missing.

use std::fmt::Write as _;

use aws_config::SdkConfig;

use crate::Error;
use alert_aws::classify_sdk_error;

/// Where the default chain will take credentials from, read from the same
/// environment variables aws-config reads, in the same order.
pub fn credential_source() -> Result<String, Error> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if var("AWS_ACCESS_KEY_ID").is_some() {
        return Ok("environment (AWS_ACCESS_KEY_ID); not IRSA".into());
    }
    if let (Some(role), Some(file)) = (var("AWS_ROLE_ARN"), var("AWS_WEB_IDENTITY_TOKEN_FILE")) {
        if let Err(e) = std::fs::read(&file) {
            return Err(Error::Whoami(format!(
                "AWS_WEB_IDENTITY_TOKEN_FILE={file} is not readable ({e}); is the IRSA token volume mounted, and is the ServiceAccount annotated with eks.amazonaws.com/role-arn?"
            )));
        }
        return Ok(format!(
            "web identity (IRSA): role {role}, token file {file}"
        ));
    }
    if let Some(uri) = var("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        let token = var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").unwrap_or_default();
        return Ok(format!(
            "container credentials (EKS Pod Identity): {uri}, token file {token}"
        ));
    }
    if var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some() {
        return Ok("container credentials (ECS task role)".into());
    }
    if var("AWS_PROFILE").is_some() {
        return Ok("shared config profile (AWS_PROFILE)".into());
    }
    Ok("no IRSA, Pod Identity or env credentials found; falling back to profile files and the EC2 instance role (IMDS)".into())
}

/// Runs every check and returns the report, or the first missing piece.
pub async fn whoami(config: &SdkConfig, topic_arn: Option<&str>) -> Result<String, Error> {
    let mut out = String::new();
    let source = credential_source()?;
    let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
        Error::Whoami("no AWS region: set AWS_REGION (IRSA and Pod Identity set it in EKS)".into())
    })?;
    let _ = writeln!(out, "credentials: {source}");
    let _ = writeln!(out, "region:      {region}");

    let identity = aws_sdk_sts::Client::new(config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| {
            let c = classify_sdk_error(&e);
            Error::Whoami(format!(
                "{out}sts:GetCallerIdentity failed ({}): {}",
                c.reason, c.detail
            ))
        })?;
    let own = identity.account().unwrap_or("?").to_string();
    let _ = writeln!(out, "identity:    {}", identity.arn().unwrap_or("?"));
    let _ = writeln!(
        out,
        "account:     {own} (put into envelopes as aws.account_id)"
    );
    match std::env::var("AWS_ACCOUNT_ID")
        .ok()
        .filter(|a| !a.trim().is_empty())
    {
        Some(a) if a.trim() != own => {
            let _ = writeln!(
                out,
                "warning:     AWS_ACCOUNT_ID={} overrides it: envelopes say {}, and the enricher reads that account's EC2 instances",
                a.trim(),
                a.trim()
            );
        }
        _ => {}
    }

    let Some(topic) = topic_arn else {
        let _ = writeln!(
            out,
            "topic:       not checked (set --topic-arn / ALERT_TOPIC_ARN)"
        );
        return Ok(out);
    };
    let topic_arn = alert_aws::TopicArn::parse(topic).map_err(Error::Whoami)?;
    let _ = writeln!(
        out,
        "topic in:    account {}, region {}",
        topic_arn.account(),
        topic_arn.region()
    );
    if topic_arn.account() != own {
        let _ = writeln!(
            out,
            "warning:     the topic is in account {}, not {own}: its topic policy must allow sns:Publish from {own} (the organisation setup, docs/aws-integration.md \"One pipeline for an organisation\")",
            topic_arn.account()
        );
    }
    let sns = alert_aws::sdk::sns_client(config, &topic_arn);
    match sns.get_topic_attributes().topic_arn(topic).send().await {
        Ok(attrs) => {
            let attrs = attrs.attributes().cloned().unwrap_or_default();
            let _ = writeln!(
                out,
                "topic:       {topic} reachable (sns:GetTopicAttributes ok)"
            );
            if let Some(key) = attrs.get("KmsMasterKeyId") {
                let _ = writeln!(
                    out,
                    "encryption:  SSE-KMS with {key}; publishing needs kms:GenerateDataKey and kms:Decrypt on it"
                );
            }
            let _ = writeln!(
                out,
                "publish:     sns:Publish is not tried here (it would send a message); the agent's first webhook proves it"
            );
            Ok(out)
        }
        Err(e) => {
            let c = classify_sdk_error(&e);
            Err(Error::Whoami(format!(
                "{out}topic:       {topic}: sns:GetTopicAttributes failed ({}): {}",
                c.reason, c.detail
            )))
        }
    }
}
