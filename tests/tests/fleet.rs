//! One pipeline for many accounts and regions, in moto: moto keeps each
//! account's resources apart and maps the credentials `AssumeRole` returns
//! to the role's account, so the enricher's cross-account reads run for
//! real. Member accounts are set up as an administrator of an organisation
//! does, through `OrganizationAccountAccessRole`; `infra/local/moto_server.py`
//! refuses AssumeRole of any other role that does not exist, as AWS does.
//!
//! Calls are counted per (action, account, region) from moto's recording:
//! the region is in each request's SigV4 credential scope, and the account
//! is what moto answers `GetCallerIdentity` with for that access key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use alert_envelope::{AwsContext, Envelope, SCHEMA_V1, Severity, Source, Status, derive_id};
use alert_manager_enricher::Enricher;
use alert_manager_enricher::config::EnricherArgs;
use alert_manager_tests::agent::{AgentProcess, receive_until};
use alert_manager_tests::{ACCOUNT_ID, CloudWatchBridge, MotoServer, REGION, free_port};
use aws_credential_types::Credentials;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use clap::Parser;
use serde_json::{Value, json};

/// The central account: the enricher's own (moto's default account).
const CENTRAL: &str = ACCOUNT_ID;
const MEMBER_B: &str = "111111111111";
const MEMBER_C: &str = "222222222222";
const REGIONS: [&str; 2] = [REGION, "eu-west-1"];
const EXTERNAL_ID: &str = "fleet-external-id-42";
const READ_ROLE: &str = "alert-manager-enricher-read";
const ENRICHER_ROLE: &str = "arn:aws:iam::123456789012:role/alert-manager-enricher";

/// An SDK config acting in `account` and `region`: the default account's
/// keys, or those of `OrganizationAccountAccessRole` assumed in a member.
async fn acting_in(moto: &MotoServer, account: &str, region: &str) -> aws_config::SdkConfig {
    let central = moto.sdk_config().await;
    let config = if account == CENTRAL {
        central
    } else {
        let creds = aws_sdk_sts::Client::new(&central)
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{account}:role/OrganizationAccountAccessRole"
            ))
            .role_session_name("fleet-test-admin")
            .send()
            .await
            .unwrap();
        let c = creds.credentials().unwrap();
        central
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    c.access_key_id(),
                    c.secret_access_key(),
                    Some(c.session_token().to_string()),
                    None,
                    "org-admin",
                )),
            )
            .build()
    };
    config
        .to_builder()
        .region(aws_config::Region::new(region.to_string()))
        .build()
}

/// The read role `member-account.yaml` creates, made here through IAM:
/// trusted by the central enricher role, with the external id.
async fn create_read_role(moto: &MotoServer, account: &str) {
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ENRICHER_ROLE}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}}]});
    create_role_in(moto, account, &trust).await;
}

/// IAM CreateRole in `account` through the query API (the workspace has
/// no IAM SDK crate, and does not need one for this).
async fn create_role_in(moto: &MotoServer, account: &str, trust: &Value) {
    let config = acting_in(moto, account, REGION).await;
    let creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(
        config.credentials_provider().as_ref().unwrap(),
    )
    .await
    .unwrap();
    let body = format!(
        "Action=CreateRole&Version=2010-05-08&RoleName={READ_ROLE}&AssumeRolePolicyDocument={}",
        urlencode(&trust.to_string())
    );
    let resp = reqwest::Client::new()
        .post(moto.endpoint())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header(
            "Authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={}/20261203/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
                creds.access_key_id()
            ),
        )
        .header("X-Amz-Security-Token", creds.session_token().unwrap_or(""))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "CreateRole in {account}: {text}");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One machine of the fleet.
#[derive(Debug, Clone)]
struct Machine {
    account: String,
    region: String,
    instance_id: String,
    team: String,
    cpu_max: f64,
}

/// `per_pair` instances in each (account, region), each with a team tag and
/// CPU points whose maximum is distinct per pair.
async fn seed(
    moto: &MotoServer,
    bridge: &CloudWatchBridge,
    accounts: &[&str],
    per_pair: usize,
) -> Vec<Machine> {
    let mut machines = Vec::new();
    let now = jiff::Timestamp::now().as_second();
    for (a, account) in accounts.iter().enumerate() {
        for (r, region) in REGIONS.iter().enumerate() {
            let config = acting_in(moto, account, region).await;
            let ec2 = aws_sdk_ec2::Client::new(&config);
            let image = ec2.describe_images().send().await.unwrap().images()[0]
                .image_id()
                .unwrap()
                .to_string();
            let team = format!("team-{account}-{region}");
            let cpu_max = (10 * (a * REGIONS.len() + r) + 15) as f64;
            let out = ec2
                .run_instances()
                .image_id(&image)
                .instance_type(aws_sdk_ec2::types::InstanceType::M6iLarge)
                .min_count(per_pair as i32)
                .max_count(per_pair as i32)
                .tag_specifications(
                    TagSpecification::builder()
                        .resource_type(ResourceType::Instance)
                        .tags(Tag::builder().key("team").value(&team).build())
                        .build(),
                )
                .send()
                .await
                .unwrap();
            let cw = aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(&config)
                    .endpoint_url(bridge.endpoint())
                    .build(),
            );
            for instance in out.instances() {
                let id = instance.instance_id().unwrap().to_string();
                let mut put = cw.put_metric_data().namespace("AWS/EC2");
                for (k, v) in [cpu_max - 10.0, cpu_max, cpu_max - 5.0]
                    .into_iter()
                    .enumerate()
                {
                    put = put.metric_data(
                        MetricDatum::builder()
                            .metric_name("CPUUtilization")
                            .dimensions(Dimension::builder().name("InstanceId").value(&id).build())
                            .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                                now - 600 + 120 * k as i64,
                            ))
                            .value(v)
                            .build(),
                    );
                }
                put.send().await.unwrap();
                machines.push(Machine {
                    account: account.to_string(),
                    region: region.to_string(),
                    instance_id: id,
                    team: team.clone(),
                    cpu_max,
                });
            }
        }
    }
    machines
}

fn envelope(i: usize, machine: &Machine) -> Envelope {
    let starts_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(300);
    let fingerprint = format!("{i:016x}");
    let mut labels = BTreeMap::new();
    labels.insert("alertname".to_string(), format!("NodeHot{i}"));
    labels.insert("severity".to_string(), "warning".to_string());
    Envelope {
        schema: SCHEMA_V1.into(),
        id: derive_id("fleet", &fingerprint, Status::Firing, starts_at, None),
        source: Source::Alertmanager,
        cluster: format!("cluster-{}-{}", machine.account, machine.region),
        status: Status::Firing,
        alertname: format!("NodeHot{i}"),
        severity: Severity::Warning,
        severity_raw: Some("warning".into()),
        fingerprint,
        group_key: None,
        receiver: None,
        starts_at,
        ends_at: None,
        generator_url: None,
        external_url: None,
        truncated_alerts: 0,
        labels,
        annotations: BTreeMap::new(),
        kubernetes: None,
        aws: Some(AwsContext {
            instance_id: Some(machine.instance_id.clone()),
            availability_zone: None,
            region: Some(machine.region.clone()),
            instance_type: None,
            account_id: Some(machine.account.clone()),
        }),
        enrichment: None,
        truncated: false,
    }
}

fn sqs_event(bodies: &[Envelope]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, env)| {
            json!({
                "messageId": format!("msg-{}-{i}", env.fingerprint),
                "receiptHandle": "rh",
                "body": serde_json::to_string(env).unwrap(),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "SenderId": "s", "ApproximateFirstReceiveTimestamp": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:enricher-inbox",
                "awsRegion": REGION,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The central enricher, in process, over moto and the bridge.
async fn central_enricher(
    moto: &MotoServer,
    bridge: &CloudWatchBridge,
    topic: &str,
    allowed: &str,
    role_name: &str,
) -> Enricher {
    let config = moto.sdk_config().await;
    let args = EnricherArgs::try_parse_from([
        "alert-manager-enricher",
        "--enriched-topic-arn",
        topic,
        "--cross-account-role-name",
        role_name,
        "--allowed-accounts",
        allowed,
        "--cross-account-external-id",
        EXTERNAL_ID,
    ])
    .unwrap();
    Enricher::new(
        args.validate().unwrap(),
        aws_sdk_ec2::Client::new(&config),
        aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::config::Builder::from(&config)
                .endpoint_url(bridge.endpoint())
                .build(),
        ),
        aws_sdk_sns::Client::new(&config),
        REGION.into(),
    )
    .with_cross_account(aws_sdk_sts::Client::new(&config))
}

/// A recorded request: its action, the account and region it acted in,
/// and its body.
#[derive(Debug)]
struct Call {
    action: String,
    account: String,
    region: String,
    body: String,
}

async fn recorded_calls(moto: &MotoServer) -> Vec<Call> {
    use base64::Engine;
    let recording = moto.recording().await;
    let actions = moto.recorded_actions().await;
    assert_eq!(
        recording.len(),
        actions.len(),
        "every recorded request has an action"
    );
    let central = moto.sdk_config().await;
    let mut accounts: HashMap<String, String> = HashMap::new();
    let mut calls = Vec::new();
    for (r, action) in recording.iter().zip(actions) {
        let auth = r["headers"]["Authorization"].as_str().unwrap_or_default();
        let scope = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split(',').next())
            .unwrap_or_default();
        let mut parts = scope.split('/');
        let key = parts.next().unwrap_or_default().to_string();
        let region = parts.nth(1).unwrap_or_default().to_string();
        if !accounts.contains_key(&key) {
            // moto checks no signature: any secret with this key id is "this caller".
            let who = aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(&central)
                    .credentials_provider(Credentials::new(&key, "x", None, None, "probe"))
                    .build(),
            )
            .get_caller_identity()
            .send()
            .await
            .unwrap();
            accounts.insert(key.clone(), who.account().unwrap().to_string());
        }
        let raw = r["body"].as_str().unwrap_or_default();
        let body = if r["body_encoded"].as_bool() == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        } else {
            raw.to_string()
        };
        calls.push(Call {
            action,
            account: accounts[&key].clone(),
            region,
            body,
        });
    }
    calls
}

/// Calls of `action` per (account, region).
fn per_pair(calls: &[Call], action: &str) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for c in calls.iter().filter(|c| c.action == action) {
        *out.entry((c.account.clone(), c.region.clone()))
            .or_insert(0) += 1;
    }
    out
}

fn every_pair(accounts: &[&str], n: usize) -> BTreeMap<(String, String), usize> {
    accounts
        .iter()
        .flat_map(|a| {
            REGIONS
                .iter()
                .map(move |r| ((a.to_string(), r.to_string()), n))
        })
        .collect()
}

async fn drain(sqs: &aws_sdk_sqs::Client, queue: &str, want: usize) -> Vec<Envelope> {
    receive_until(sqs, queue, Duration::from_secs(60), |got| got.len() >= want)
        .await
        .into_iter()
        .map(|(e, _)| e)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_accounts_by_two_regions_are_each_enriched_from_their_own_account_within_the_call_budget()
 {
    let moto = MotoServer::start().await;
    let bridge = CloudWatchBridge::start(&moto.endpoint());
    let accounts = [CENTRAL, MEMBER_B, MEMBER_C];
    for member in [MEMBER_B, MEMBER_C] {
        create_read_role(&moto, member).await;
    }
    let machines = seed(&moto, &bridge, &accounts, 5).await;
    assert_eq!(machines.len(), 30);
    let enriched_topic = moto.create_topic("alerts-enriched").await;
    let queue = moto.subscribe_queue(&enriched_topic, "all", None).await;
    let e = central_enricher(
        &moto,
        &bridge,
        &enriched_topic,
        &format!("{MEMBER_B},{MEMBER_C}"),
        READ_ROLE,
    )
    .await;

    let alerts: Vec<Envelope> = (0..300).map(|i| envelope(i, &machines[i % 30])).collect();
    for (batch, chunk) in alerts.chunks(100).enumerate() {
        moto.start_recording().await;
        let out = e
            .handle(&sqs_event(chunk), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(out, json!({"batchItemFailures": []}), "batch {batch}");
        let calls = recorded_calls(&moto).await;
        let metrics = per_pair(&calls, "GetMetricData");
        assert_eq!(
            metrics,
            every_pair(&accounts, 1),
            "batch {batch}: one GetMetricData per pair"
        );
        let describes = per_pair(&calls, "DescribeInstances");
        let assumes = per_pair(&calls, "AssumeRole");
        if batch == 0 {
            assert_eq!(
                describes,
                every_pair(&accounts, 1),
                "one DescribeInstances per pair"
            );
            // Both AssumeRoles are the central account's own calls, one per member.
            assert_eq!(
                assumes,
                BTreeMap::from([((CENTRAL.to_string(), REGION.to_string()), 2)])
            );
            for member in [MEMBER_B, MEMBER_C] {
                let arn = urlencode(&format!("arn:aws:iam::{member}:role/{READ_ROLE}"));
                let bodies: Vec<&Call> = calls
                    .iter()
                    .filter(|c| c.action == "AssumeRole" && c.body.contains(&arn))
                    .collect();
                assert_eq!(bodies.len(), 1, "one AssumeRole of {member}'s read role");
                assert!(
                    bodies[0]
                        .body
                        .contains("RoleSessionName=alert-manager-enricher")
                );
                assert!(
                    bodies[0]
                        .body
                        .contains(&format!("ExternalId={EXTERNAL_ID}"))
                );
            }
        } else {
            // Within the cache TTL and the credentials' lifetime.
            assert_eq!(
                describes,
                BTreeMap::new(),
                "batch {batch}: instances are cached"
            );
            assert_eq!(
                assumes,
                BTreeMap::new(),
                "batch {batch}: credentials are kept"
            );
        }
    }

    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let got = drain(&sqs, &queue, 300).await;
    assert_eq!(got.len(), 300);
    let by_instance: HashMap<&str, &Machine> = machines
        .iter()
        .map(|m| (m.instance_id.as_str(), m))
        .collect();
    for env in &got {
        let aws = env.aws.as_ref().unwrap();
        let m = by_instance[aws.instance_id.as_deref().unwrap()];
        let enrichment = env.enrichment.as_ref().unwrap();
        assert!(
            enrichment.errors.is_empty(),
            "{}: {:?}",
            m.account,
            enrichment.errors
        );
        let ec2 = enrichment.ec2.as_ref().unwrap();
        assert_eq!(
            ec2.tags["team"], m.team,
            "tags of its own account and region"
        );
        assert_eq!(ec2.instance_type.as_deref(), Some("m6i.large"));
        assert_eq!(
            enrichment.team.as_deref(),
            Some(m.team.as_str()),
            "team from its own tag"
        );
        let cw = enrichment.cloudwatch.as_ref().unwrap();
        let max = cw
            .metrics
            .iter()
            .find(|s| s.metric == "CPUUtilization" && s.stat == "Maximum")
            .unwrap();
        assert_eq!(
            max.max,
            Some(m.cpu_max),
            "metrics of its own account and region"
        );
        let link = cw.console_url.as_deref().unwrap();
        assert!(
            link.starts_with(&format!("https://{}.console.aws.amazon.com/", m.region)),
            "{link}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_not_allowed_and_a_denied_role_degrade_only_their_own_envelopes() {
    let moto = MotoServer::start().await;
    let bridge = CloudWatchBridge::start(&moto.endpoint());
    // B has the read role; C is allowed but has none (member stack not deployed).
    create_read_role(&moto, MEMBER_B).await;
    let machines = seed(&moto, &bridge, &[MEMBER_B, MEMBER_C], 1).await;
    let not_allowed = "333333333333";
    let stranger = Machine {
        account: not_allowed.into(),
        region: REGION.into(),
        instance_id: "i-0123456789abcdef0".into(),
        team: String::new(),
        cpu_max: 0.0,
    };
    let enriched_topic = moto.create_topic("alerts-enriched").await;
    let queue = moto.subscribe_queue(&enriched_topic, "all", None).await;
    let e = central_enricher(
        &moto,
        &bridge,
        &enriched_topic,
        &format!("{MEMBER_B},{MEMBER_C}"),
        READ_ROLE,
    )
    .await;

    let mut alerts: Vec<Envelope> = machines
        .iter()
        .enumerate()
        .map(|(i, m)| envelope(i, m))
        .collect();
    alerts.push(envelope(99, &stranger));
    moto.start_recording().await;
    let out = e
        .handle(&sqs_event(&alerts), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        out,
        json!({"batchItemFailures": []}),
        "degraded, never failed"
    );
    let calls = recorded_calls(&moto).await;
    assert!(
        !calls
            .iter()
            .any(|c| c.action == "AssumeRole" && c.body.contains(not_allowed)),
        "a role was assumed in an account not allowed"
    );
    assert_eq!(
        calls.iter().filter(|c| c.action == "AssumeRole").count(),
        2,
        "B's and C's, once each"
    );
    // Nothing was read in C: its role was refused.
    assert!(
        !calls.iter().any(|c| c.account == MEMBER_C),
        "a call acted in C"
    );

    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let got = drain(&sqs, &queue, alerts.len()).await;
    assert_eq!(got.len(), alerts.len(), "every envelope delivered");
    for env in &got {
        let account = env.aws.as_ref().unwrap().account_id.clone().unwrap();
        let enrichment = env.enrichment.as_ref().unwrap();
        let account_errors: Vec<&str> = enrichment
            .errors
            .iter()
            .filter(|e| e.stage == "account")
            .map(|e| e.message.as_str())
            .collect();
        match account.as_str() {
            MEMBER_B => {
                assert!(enrichment.errors.is_empty(), "{:?}", enrichment.errors);
                assert_eq!(
                    enrichment.ec2.as_ref().unwrap().tags["team"],
                    format!(
                        "team-{MEMBER_B}-{}",
                        env.aws.as_ref().unwrap().region.as_deref().unwrap()
                    )
                );
            }
            MEMBER_C => {
                assert_eq!(account_errors.len(), 1, "{:?}", enrichment.errors);
                assert!(
                    account_errors[0].contains("AccessDenied")
                        && account_errors[0]
                            .contains(&format!("arn:aws:iam::{MEMBER_C}:role/{READ_ROLE}")),
                    "{}",
                    account_errors[0]
                );
                assert!(enrichment.ec2.is_none() && enrichment.cloudwatch.is_none());
            }
            other => {
                assert_eq!(other, not_allowed);
                assert_eq!(account_errors.len(), 1, "{:?}", enrichment.errors);
                assert!(
                    account_errors[0].contains("ALLOWED_ACCOUNTS"),
                    "{}",
                    account_errors[0]
                );
                assert!(enrichment.ec2.is_none());
            }
        }
    }
}

fn webhook_body(alertname: &str) -> Value {
    json!({
        "version": "4", "groupKey": format!("{{}}:{{alertname=\"{alertname}\"}}"), "truncatedAlerts": 0,
        "status": "firing", "receiver": "agent", "groupLabels": {"alertname": alertname},
        "commonLabels": {"alertname": alertname}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": {"alertname": alertname, "severity": "warning"},
            "annotations": {}, "startsAt": "2026-12-03T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": format!("{:016x}", alertname.len())}]
    })
}

async fn readyz(agent: &AgentProcess) -> (u16, String) {
    match reqwest::get(format!("{}/readyz", agent.metrics)).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => panic!("readyz: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_stamps_its_account_from_sts_or_the_override_and_is_unready_while_sts_is_down() {
    let moto = MotoServer::start().await;
    let topic = moto.create_topic("alerts").await;
    let queue = moto.subscribe_queue(&topic, "all", None).await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let ready_within = |agent: &AgentProcess| {
        let url = format!("{}/readyz", agent.metrics);
        async move {
            alert_manager_tests::wait_until_http_ok("agent /readyz", &url, Duration::from_secs(30))
                .await
        }
    };

    // From STS: the account of the agent's own (IRSA) identity.
    let agent = AgentProcess::start(&moto.endpoint(), &topic, &[]).await;
    ready_within(&agent).await;
    assert_eq!(agent.post(&webhook_body("FromSts")).await.0, 200);
    let got = receive_until(&sqs, &queue, Duration::from_secs(20), |g| !g.is_empty()).await;
    assert_eq!(
        got[0].0.aws.as_ref().and_then(|a| a.account_id.as_deref()),
        Some(CENTRAL)
    );
    drop(agent);

    // STS down (its endpoint refuses connections), SNS up, static keys: the
    // account stays unknown and the agent unready, saying why.
    let dead_sts = format!("http://127.0.0.1:{}", free_port());
    let keys = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL_STS", dead_sts.as_str()),
    ];
    let agent = AgentProcess::start(&moto.endpoint(), &topic, &keys).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = readyz(&agent).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("account"), "{body}");
    assert!(
        agent
            .metrics_text()
            .await
            .contains("\nalert_manager_agent_ready 0\n"),
        "the ready gauge says what /readyz says"
    );
    assert!(agent.log_text().contains("GetCallerIdentity failed"));
    drop(agent);

    // The override: ready without STS, and every envelope says it.
    let mut with_override = keys.to_vec();
    with_override.push(("AWS_ACCOUNT_ID", "210987654321"));
    let agent = AgentProcess::start(&moto.endpoint(), &topic, &with_override).await;
    ready_within(&agent).await;
    assert!(
        agent
            .metrics_text()
            .await
            .contains("\nalert_manager_agent_ready 1\n")
    );
    assert_eq!(agent.post(&webhook_body("Overridden")).await.0, 200);
    let got = receive_until(&sqs, &queue, Duration::from_secs(20), |g| !g.is_empty()).await;
    assert_eq!(
        got[0].0.aws.as_ref().and_then(|a| a.account_id.as_deref()),
        Some("210987654321")
    );
    drop(agent);

    // A bad override is a config error naming the variable.
    let bad =
        std::process::Command::new(alert_manager_tests::workspace_binary("alert-manager-agent"))
            .env("ALERT_TOPIC_ARN", &topic)
            .env("CLUSTER_NAME", "c")
            .env("AWS_ACCOUNT_ID", "12345")
            .env("AWS_REGION", REGION)
            .output()
            .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("AWS_ACCOUNT_ID"));
}

fn output(stack: &Value, key: &str) -> String {
    stack["outputs"][key]
        .as_str()
        .unwrap_or_else(|| panic!("stack output {key}: {}", stack["outputs"]))
        .to_string()
}

/// docs/aws-integration.md, "One pipeline for an organisation", step by
/// step in moto: (1) the central stack, (2) the member stack (the
/// StackSet's instance) in member account B, (3) the agent stack in B and
/// the agent, with B's IRSA role, publishing to the central topic; then the
/// central enricher, with the environment step 1 gives it, reads what the
/// central queue received.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_in_a_member_account_publishes_to_the_central_topic_and_is_enriched_with_its_tags()
{
    let moto = MotoServer::start().await;
    let bridge = CloudWatchBridge::start(&moto.endpoint());
    let root = alert_manager_tests::workspace_root();
    let central_template = root.join("infra/cloudformation/alert-manager.yaml");
    let member_template = root.join("infra/cloudformation/member-account.yaml");
    let oidc = |account: &str| {
        let url = format!("oidc.eks.{REGION}.amazonaws.com/id/FLEET{account}");
        let arn = format!("arn:aws:iam::{account}:oidc-provider/{url}");
        (url, arn)
    };

    // Step 1: the central stack, with the organisation and the allow-list.
    let (central_oidc, central_oidc_arn) = oidc(CENTRAL);
    let central = moto
        .boto3(
            "create",
            &json!({"stack": "alert-manager", "template": central_template, "parameters": {
                "ClusterName": "central", "OidcProviderUrl": central_oidc,
                "OidcProviderArn": central_oidc_arn, "OrganizationId": "o-fleet1234",
                "AllowedAccounts": MEMBER_B, "CrossAccountRoleName": READ_ROLE,
                "ExternalId": EXTERNAL_ID,
            }}),
        )
        .await;
    assert_eq!(central["status"], "CREATE_COMPLETE", "{central}");
    let raw_topic = output(&central, "RawTopicArn");
    let enriched_topic = output(&central, "EnrichedTopicArn");
    // moto's CreateStack skips AWS::SNS::Subscription: RawTopicToQueue by hand, as the stack has it.
    aws_sdk_sns::Client::new(&moto.sdk_config().await)
        .subscribe()
        .topic_arn(&raw_topic)
        .protocol("sqs")
        .endpoint(output(&central, "QueueArn"))
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();

    // Step 2: the member stack (the StackSet's instance) in B.
    let member = moto
        .boto3(
            "create",
            &json!({"stack": "alert-manager-member", "template": member_template,
                    "account": MEMBER_B, "parameters": {
                "CreateReadRole": "true",
                "EnricherRoleArn": output(&central, "EnricherRoleArn"),
                "CrossAccountRoleName": READ_ROLE, "ExternalId": EXTERNAL_ID,
                "CentralTopicArn": raw_topic, "ClusterName": "",
            }}),
        )
        .await;
    assert_eq!(member["status"], "CREATE_COMPLETE", "{member}");

    // Step 3: the agent stack of one cluster in B, then the agent with its role.
    let (member_oidc, member_oidc_arn) = oidc(MEMBER_B);
    let agent_stack = moto
        .boto3(
            "create",
            &json!({"stack": "alert-manager-agent-payments-prod", "template": member_template,
                    "account": MEMBER_B, "parameters": {
                "CreateReadRole": "false", "CentralTopicArn": raw_topic,
                "ClusterName": "payments-prod", "OidcProviderUrl": member_oidc,
                "OidcProviderArn": member_oidc_arn,
            }}),
        )
        .await;
    assert_eq!(agent_stack["status"], "CREATE_COMPLETE", "{agent_stack}");
    let agent_role = output(&agent_stack, "AgentRoleArn");
    assert!(agent_role.starts_with(&format!("arn:aws:iam::{MEMBER_B}:role/")));

    // The member cluster's node is an instance of B, with B's tags.
    let machines = seed(&moto, &bridge, &[MEMBER_B], 1).await;
    let machine = &machines[0];
    let kube = alert_manager_tests::MockKubeApi::start(
        alert_manager_tests::pipeline::cluster_objects(&machine.instance_id),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kube.write_kubeconfig(dir.path());
    let kubeconfig = kubeconfig.to_string_lossy().to_string();
    let agent = AgentProcess::start(
        &moto.endpoint(),
        &raw_topic,
        &[
            ("AWS_ROLE_ARN", agent_role.as_str()),
            ("KUBERNETES_CONTEXT", "auto"),
            ("KUBECONFIG", kubeconfig.as_str()),
        ],
    )
    .await;
    alert_manager_tests::wait_until_http_ok(
        "agent /readyz",
        &format!("{}/readyz", agent.metrics),
        Duration::from_secs(30),
    )
    .await;
    // As Alertmanager sends the pipeline's pod alert.
    let mut alert =
        alert_manager_tests::pipeline::pod_alert("KubePodCrashLooping", "critical", None);
    alert["status"] = json!("firing");
    alert["startsAt"] = json!("2026-12-03T08:00:00Z");
    alert["endsAt"] = json!("0001-01-01T00:00:00Z");
    alert["fingerprint"] = json!("f1ee7f1ee7f1ee70");
    let body = json!({
        "version": "4", "groupKey": "{}:{alertname=\"KubePodCrashLooping\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "agent", "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    });
    let (code, text) = agent.post(&body).await;
    assert_eq!(code, 200, "{text}");

    // The central account: its queue received it; the enricher, configured
    // from the stack's outputs, enriches it from B.
    let config = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let subscriber = moto
        .subscribe_queue(&enriched_topic, "central-subscriber", None)
        .await;
    let queue_url = output(&central, "QueueUrl");
    let mut messages = Vec::new();
    for _ in 0..20 {
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        messages.extend(out.messages().iter().cloned());
        if !messages.is_empty() {
            break;
        }
    }
    let subs = aws_sdk_sns::Client::new(&config)
        .list_subscriptions_by_topic()
        .topic_arn(&raw_topic)
        .send()
        .await
        .unwrap();
    assert_eq!(
        messages.len(),
        1,
        "the central queue got the member's alert; subscriptions {:?}; resources {}; agent log {}",
        subs.subscriptions(),
        central["resources"],
        agent.log_text()
    );
    let enricher = central_enricher(
        &moto,
        &bridge,
        &enriched_topic,
        &output(&central, "AllowedAccounts"),
        &output(&central, "CrossAccountRoleName"),
    )
    .await;
    let event = alert_manager_tests::pipeline::sqs_event(&messages, &output(&central, "QueueArn"));
    let out = enricher
        .handle(&event, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(out, json!({"batchItemFailures": []}));

    let got = drain(&sqs, &subscriber, 1).await;
    assert_eq!(got.len(), 1);
    let env = &got[0];
    let aws = env.aws.as_ref().unwrap();
    assert_eq!(
        aws.account_id.as_deref(),
        Some(MEMBER_B),
        "the agent's own account"
    );
    assert_eq!(
        aws.instance_id.as_deref(),
        Some(machine.instance_id.as_str())
    );
    let enrichment = env.enrichment.as_ref().unwrap();
    assert!(enrichment.errors.is_empty(), "{:?}", enrichment.errors);
    assert_eq!(
        enrichment.ec2.as_ref().unwrap().tags["team"],
        machine.team,
        "B's tags, read in B"
    );
    let cw = enrichment.cloudwatch.as_ref().unwrap();
    assert!(
        cw.metrics.iter().any(|m| m.max == Some(machine.cpu_max)),
        "B's metrics"
    );
}
