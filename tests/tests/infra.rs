//! The deployable infrastructure: IAM policy files, the CloudFormation stack and the
//! enricher's `cargo lambda deploy` settings, checked against real tools.
//!
//! - `infra/iam/*.json`: least-privilege rules, checked in Rust, then each document
//!   (placeholders filled in) created in moto's IAM, which validates policy grammar.
//! - `infra/cloudformation/alert-manager.yaml` and `member-account.yaml`: `cfn-lint` clean,
//!   then created in moto (CloudFormation create/update through boto3 from the project venv;
//!   the member stack in another account, with the credentials of an assumed role), asserting
//!   what moto builds. moto skips `AWS::SNS::Subscription`, `AWS::SQS::QueuePolicy`,
//!   `AWS::SNS::TopicPolicy`, `AWS::CloudWatch::Alarm` and `AWS::EKS::PodIdentityAssociation`;
//!   those are covered by cfn-lint only. The topic policy's statements are also resolved by
//!   moto's template evaluator (the one its CreateStack uses) with the stack's parameters.
//! - `cargo lambda deploy` of the enricher binary that `cargo test --workspace` already
//!   built (no `cargo lambda build` here: a lambda-only build recompiles the AWS SDK),
//!   with the stack's role and topic, then the function's configuration in moto.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use alert_manager_tests::iam::{
    EXTERNAL_ID, MEMBER_ACCOUNT, OIDC, ORGANIZATION_ID, READ_ROLE_NAME, oidc_provider_arn,
    placeholder_values, substitute,
};
use alert_manager_tests::{
    ACCOUNT_ID, MotoServer, REGION, venv_bin, workspace_binary, workspace_root,
};
use serde_json::{Value, json};

const NAMESPACE: &str = "alert-manager-system";
const SERVICE_ACCOUNT: &str = "alert-manager-controller";
/// The two actions that have no resource-level permissions (AWS service authorization reference).
const UNSCOPABLE: [&str; 2] = ["ec2:DescribeInstances", "cloudwatch:GetMetricData"];
/// A second member account, for a member stack with other parameters.
const OTHER_MEMBER_ACCOUNT: &str = "333333333333";

fn iam_dir() -> PathBuf {
    workspace_root().join("infra/iam")
}

fn template_path() -> PathBuf {
    workspace_root().join("infra/cloudformation/alert-manager.yaml")
}

fn member_template_path() -> PathBuf {
    workspace_root().join("infra/cloudformation/member-account.yaml")
}

/// The key policy files: statements for a KMS key's policy, not IAM identity policies.
fn is_key_policy(name: &str) -> bool {
    name.contains("key-policy")
}

/// Every `infra/iam/*.json`, parsed, by file name.
fn iam_files() -> BTreeMap<String, Value> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(iam_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
        files.insert(name, doc);
    }
    files
}

/// A string or a list of strings, as IAM allows for Action and Resource.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        Value::Null => vec![],
        other => panic!("expected a string or a list of strings, got {other}"),
    }
}

fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.iter().filter(|s| !s.is_null()).cloned().collect(),
        Value::Object(_) => vec![doc["Statement"].clone()],
        other => panic!("Statement must be a list or an object, got {other}"),
    }
}

/// Action -> resources it is allowed on, over every statement of `doc`.
fn grants(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut grants: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for st in statements(doc) {
        assert_eq!(st["Effect"], "Allow", "only Allow statements: {st}");
        for action in strings(&st["Action"]) {
            grants
                .entry(action)
                .or_default()
                .extend(strings(&st["Resource"]));
        }
    }
    grants
}

/// The least-privilege rules every permission policy follows.
fn assert_least_privilege(name: &str, doc: &Value) {
    assert_eq!(doc["Version"], "2012-10-17", "{name}: Version");
    for st in statements(doc) {
        assert!(
            st.get("NotAction").is_none() && st.get("NotResource").is_none(),
            "{name}: {st}"
        );
        let actions = strings(&st["Action"]);
        assert!(
            !actions.is_empty(),
            "{name}: a statement without Action: {st}"
        );
        for action in &actions {
            assert!(
                action != "*" && !action.ends_with(":*") && action.contains(':'),
                "{name}: wildcard or malformed action {action:?}"
            );
        }
        let resources = strings(&st["Resource"]);
        assert!(
            !resources.is_empty(),
            "{name}: a statement without Resource: {st}"
        );
        if actions.iter().any(|a| a.starts_with("sts:")) {
            for r in &resources {
                let role = r.split_once(":role/").map(|(_, role)| role);
                assert!(
                    role.is_some_and(|role| !role.is_empty() && !role.contains(['*', '?'])),
                    "{name}: {actions:?} on {r:?}; name the role, no wildcard in its name"
                );
            }
        }
        if resources.iter().any(|r| r == "*") {
            assert!(
                actions.iter().all(|a| UNSCOPABLE.contains(&a.as_str())),
                "{name}: Resource \"*\" on {actions:?}; only {UNSCOPABLE:?} may have it"
            );
            assert_eq!(resources, ["*"], "{name}: {st}");
        }
    }
}

fn assert_irsa_trust(name: &str, doc: &Value, provider: &str, provider_arn: &str, sub: &str) {
    assert_eq!(doc["Version"], "2012-10-17", "{name}: Version");
    let sts = statements(doc);
    assert_eq!(sts.len(), 1, "{name}: one statement");
    let st = &sts[0];
    assert_eq!(st["Effect"], "Allow");
    assert_eq!(
        strings(&st["Action"]),
        ["sts:AssumeRoleWithWebIdentity"],
        "{name}"
    );
    assert_eq!(st["Principal"]["Federated"], provider_arn, "{name}");
    let eq = st["Condition"]["StringEquals"]
        .as_object()
        .unwrap_or_else(|| panic!("{name}: the IRSA trust needs Condition.StringEquals: {st}"));
    assert_eq!(
        eq.get(&format!("{provider}:aud")),
        Some(&json!("sts.amazonaws.com")),
        "{name}: aud condition"
    );
    assert_eq!(
        eq.get(&format!("{provider}:sub")),
        Some(&json!(sub)),
        "{name}: sub condition"
    );
    assert_eq!(eq.len(), 2, "{name}: exactly aud and sub: {eq:?}");
}

fn assert_pod_identity_trust(name: &str, doc: &Value, cluster_arn: &str) {
    assert_eq!(doc["Version"], "2012-10-17", "{name}: Version");
    let sts = statements(doc);
    assert_eq!(sts.len(), 1, "{name}: one statement");
    let st = &sts[0];
    assert_eq!(
        st["Principal"]["Service"], "pods.eks.amazonaws.com",
        "{name}"
    );
    let actions: BTreeSet<_> = strings(&st["Action"]).into_iter().collect();
    assert_eq!(
        actions,
        BTreeSet::from(["sts:AssumeRole".to_string(), "sts:TagSession".to_string()]),
        "{name}"
    );
    let eq = &st["Condition"]["StringEquals"];
    assert_eq!(
        eq["aws:RequestTag/kubernetes-namespace"], NAMESPACE,
        "{name}"
    );
    assert_eq!(
        eq["aws:RequestTag/kubernetes-service-account"], SERVICE_ACCOUNT,
        "{name}"
    );
    assert_eq!(eq["aws:RequestTag/eks-cluster-arn"], cluster_arn, "{name}");
}

fn substituted_iam_files() -> BTreeMap<String, Value> {
    iam_files()
        .into_keys()
        .map(|name| {
            let text = std::fs::read_to_string(iam_dir().join(&name)).unwrap();
            let doc = serde_json::from_str(&substitute(&name, &text)).unwrap();
            (name, doc)
        })
        .collect()
}

#[test]
fn iam_files_are_least_privilege_and_documented() {
    let files = iam_files();
    let names: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    for expected in [
        "agent-policy.json",
        "agent-policy-kms.json",
        "irsa-trust-policy.json",
        "pod-identity-trust-policy.json",
        "enricher-policy.json",
        "enricher-policy-kms.json",
        "enricher-trust-policy.json",
        "enricher-policy-cross-account.json",
        "member-read-policy.json",
        "member-read-trust-policy.json",
        "topic-key-policy-members.json",
        "queue-key-policy-sns.json",
    ] {
        assert!(names.contains(expected), "infra/iam/{expected} is missing");
    }
    let readme = std::fs::read_to_string(iam_dir().join("README.md")).unwrap();
    for name in &names {
        assert!(
            readme.contains(name),
            "infra/iam/README.md does not mention {name}"
        );
    }
    // Every placeholder is explained in the README and has an example value here.
    for name in &names {
        let text = std::fs::read_to_string(iam_dir().join(name)).unwrap();
        for part in text.split("${").skip(1) {
            let key = part.split('}').next().unwrap();
            assert!(
                readme.contains(&format!("${{{key}}}")),
                "infra/iam/README.md does not explain ${{{key}}} used in {name}"
            );
        }
    }

    let files = substituted_iam_files();
    for (name, doc) in &files {
        if name.contains("trust") || is_key_policy(name) {
            continue;
        }
        assert_least_privilege(name, doc);
    }

    let p = placeholder_values();
    // The agent: publish to its one topic, and read that topic's attributes (readiness, whoami).
    let agent = grants(&files["agent-policy.json"]);
    let topic = BTreeSet::from([p["TopicArn"].clone()]);
    assert_eq!(
        agent,
        BTreeMap::from([
            ("sns:Publish".to_string(), topic.clone()),
            ("sns:GetTopicAttributes".to_string(), topic),
        ])
    );
    let key = BTreeSet::from([p["TopicKmsKeyArn"].clone()]);
    assert_eq!(
        grants(&files["agent-policy-kms.json"]),
        BTreeMap::from([
            ("kms:GenerateDataKey*".to_string(), key.clone()),
            ("kms:Decrypt".to_string(), key),
        ])
    );

    // The enricher: exactly these actions, each on what it needs.
    let enricher = grants(&files["enricher-policy.json"]);
    let actions: BTreeSet<&str> = enricher.keys().map(String::as_str).collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "ec2:DescribeInstances",
            "cloudwatch:GetMetricData",
            "sns:Publish",
            "events:PutEvents",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
            "ssm:GetParameter",
            "secretsmanager:GetSecretValue",
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ])
    );
    assert_eq!(
        enricher["sns:Publish"],
        BTreeSet::from([p["EnrichedTopicArn"].clone()])
    );
    assert_eq!(
        enricher["events:PutEvents"],
        BTreeSet::from([p["EventBusArn"].clone()])
    );
    assert_eq!(
        enricher["sqs:ReceiveMessage"],
        BTreeSet::from([p["QueueArn"].clone()])
    );
    assert_eq!(
        enricher["secretsmanager:GetSecretValue"],
        BTreeSet::from([p["SecretArn"].clone()])
    );
    assert_eq!(
        enricher["ssm:GetParameter"],
        BTreeSet::from([format!(
            "arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/alert-manager/routes"
        )])
    );
    assert_eq!(
        enricher["logs:PutLogEvents"],
        BTreeSet::from([format!(
            "arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/alert-manager-enricher:*"
        )])
    );

    assert_irsa_trust(
        "irsa-trust-policy.json",
        &files["irsa-trust-policy.json"],
        OIDC,
        &oidc_provider_arn(),
        &format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"),
    );
    assert_pod_identity_trust(
        "pod-identity-trust-policy.json",
        &files["pod-identity-trust-policy.json"],
        &format!("arn:aws:eks:{REGION}:{ACCOUNT_ID}:cluster/prod"),
    );
    let lambda_trust = statements(&files["enricher-trust-policy.json"]);
    assert_eq!(lambda_trust.len(), 1);
    assert_eq!(
        lambda_trust[0]["Principal"]["Service"],
        "lambda.amazonaws.com"
    );
    assert_eq!(strings(&lambda_trust[0]["Action"]), ["sts:AssumeRole"]);

    // Member accounts: the read role may read instances and metrics, nothing else ...
    let unscopable = |a: &str| (a.to_string(), BTreeSet::from(["*".to_string()]));
    assert_eq!(
        grants(&files["member-read-policy.json"]),
        BTreeMap::from(UNSCOPABLE.map(unscopable))
    );
    // ... with the same Sids as the enricher's own two statements ...
    let enricher_sids = sids_by_action(&files["enricher-policy.json"]);
    for (action, sid) in sids_by_action(&files["member-read-policy.json"]) {
        assert_eq!(Some(&sid), enricher_sids.get(&action), "{action}");
    }
    // ... and the central enricher's role (only) assumes it, with the external id.
    assert_read_role_trust(
        "member-read-trust-policy.json",
        &files["member-read-trust-policy.json"],
        &p["EnricherRoleArn"],
        Some(EXTERNAL_ID),
    );
    let assume = &files["enricher-policy-cross-account.json"];
    assert_eq!(
        grants(assume),
        BTreeMap::from([(
            "sts:AssumeRole".to_string(),
            BTreeSet::from([format!("arn:aws:iam::*:role/{READ_ROLE_NAME}")])
        )])
    );
    assert_eq!(
        statements(assume)[0]["Condition"],
        json!({"StringEquals": {"sts:ExternalId": EXTERNAL_ID}})
    );
    assert_member_key_policy(
        "topic-key-policy-members.json",
        &files["topic-key-policy-members.json"],
    );
    // SNS encrypts what it delivers to the queues with their key (AWS's documented statement).
    let sns = statements(&files["queue-key-policy-sns.json"]);
    assert_eq!(sns.len(), 1);
    assert_eq!(sns[0]["Principal"], json!({"Service": "sns.amazonaws.com"}));
    assert_eq!(
        strings(&sns[0]["Action"]),
        ["kms:GenerateDataKey", "kms:Decrypt"]
    );
    assert_eq!(
        strings(&sns[0]["Resource"]),
        ["*"],
        "in a key policy: this key"
    );
}

/// The read role's trust: `sts:AssumeRole` by the central enricher role, nothing else, with the
/// external id condition exactly when one is given.
fn assert_read_role_trust(name: &str, doc: &Value, enricher_role: &str, external_id: Option<&str>) {
    assert_eq!(doc["Version"], "2012-10-17", "{name}: Version");
    let sts = statements(doc);
    assert_eq!(sts.len(), 1, "{name}: one statement: {doc}");
    let st = &sts[0];
    assert_eq!(st["Effect"], "Allow", "{name}");
    assert_eq!(strings(&st["Action"]), ["sts:AssumeRole"], "{name}");
    assert_eq!(
        st["Principal"],
        json!({"AWS": enricher_role}),
        "{name}: the enricher role only"
    );
    match external_id {
        Some(id) => assert_eq!(
            st["Condition"],
            json!({"StringEquals": {"sts:ExternalId": id}}),
            "{name}"
        ),
        None => assert!(
            st.get("Condition").is_none_or(Value::is_null),
            "{name}: no external id, no condition: {st}"
        ),
    }
}

/// The statements for the raw topic's KMS key policy: the two actions SNS needs from a
/// publisher, through SNS in the topic's region only, for the organisation or listed accounts.
fn assert_member_key_policy(name: &str, doc: &Value) {
    assert_eq!(doc["Version"], "2012-10-17", "{name}: Version");
    let sts = statements(doc);
    assert_eq!(sts.len(), 2, "{name}: organisation and account list");
    for st in &sts {
        assert_eq!(st["Effect"], "Allow", "{name}");
        let actions: BTreeSet<String> = strings(&st["Action"]).into_iter().collect();
        assert_eq!(
            actions,
            BTreeSet::from([
                "kms:GenerateDataKey*".to_string(),
                "kms:Decrypt".to_string()
            ]),
            "{name}"
        );
        // In a key policy, "*" is the key itself.
        assert_eq!(strings(&st["Resource"]), ["*"], "{name}");
        assert_eq!(
            st["Condition"]["StringEquals"]["kms:ViaService"],
            format!("sns.{REGION}.amazonaws.com"),
            "{name}: through SNS only"
        );
    }
    let org = &sts[0];
    assert_eq!(org["Principal"], json!({"AWS": "*"}), "{name}");
    assert_eq!(
        org["Condition"]["StringEquals"]["aws:PrincipalOrgID"], ORGANIZATION_ID,
        "{name}: any principal only with the organisation condition"
    );
    assert_eq!(
        sts[1]["Principal"],
        json!({"AWS": [format!("arn:aws:iam::{MEMBER_ACCOUNT}:root")]}),
        "{name}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_files_are_accepted_by_moto_iam() {
    let moto = MotoServer::start().await;
    let docs: Vec<Value> = substituted_iam_files()
        .into_iter()
        .map(|(name, doc)| {
            let kind = if name.contains("trust") {
                "trust"
            } else if is_key_policy(&name) {
                "key-policy"
            } else {
                "policy"
            };
            json!({"name": name, "kind": kind, "doc": doc})
        })
        .collect();
    let out = boto3(
        &moto,
        "iam-files",
        &json!({ "files": docs, "owner": ACCOUNT_ID }),
    )
    .await;
    assert_eq!(out["errors"], json!({}), "moto IAM refused a document");
    assert_eq!(out["created"].as_array().unwrap().len(), docs.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn cloudformation_template_passes_cfn_lint() {
    assert_cfn_lint_clean(template_path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn member_account_template_passes_cfn_lint() {
    assert_cfn_lint_clean(member_template_path()).await;
}

async fn assert_cfn_lint_clean(template: PathBuf) {
    let out = run(
        "cfn-lint",
        tokio::process::Command::new(venv_bin("cfn-lint")).arg(&template),
        Duration::from_secs(120),
    )
    .await;
    assert!(
        out.status.success(),
        "cfn-lint found problems in {}:\n{}{}",
        template.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn output(stack: &Value, key: &str) -> String {
    stack["outputs"][key]
        .as_str()
        .unwrap_or_else(|| panic!("stack output {key} missing: {}", stack["outputs"]))
        .to_string()
}

/// The stack's inline policy of `role` (logical id), as IAM grants.
fn role_grants(stack: &Value, role: &str) -> BTreeMap<String, BTreeSet<String>> {
    let policies = stack["roles"][role]["policies"].as_object().unwrap();
    assert_eq!(policies.len(), 1, "{role}: one inline policy");
    let doc = policies.values().next().unwrap();
    assert_least_privilege(role, doc);
    grants(doc)
}

/// Action -> Sid, over the statements of `doc`.
fn sids_by_action(doc: &Value) -> BTreeMap<String, String> {
    statements(doc)
        .iter()
        .flat_map(|st| {
            let sid = st["Sid"].as_str().unwrap().to_string();
            strings(&st["Action"])
                .into_iter()
                .map(move |a| (a, sid.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stack_creates_in_moto_and_the_enricher_deploys_with_its_outputs() {
    let moto = MotoServer::start().await;
    let team_topics = format!(
        "arn:aws:sns:{REGION}:{ACCOUNT_ID}:payments-alerts,arn:aws:sns:{REGION}:{ACCOUNT_ID}:search-alerts"
    );
    let secret =
        format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:alert-manager/slack-AbCdEf");
    let params = json!({
        "ClusterName": "prod",
        "OidcProviderArn": oidc_provider_arn(),
        "OidcProviderUrl": OIDC,
        "RoutesParameterName": "alert-manager/routes",
        "SecretArns": secret,
        "TeamTopicArns": team_topics,
    });
    let stack = boto3(
        &moto,
        "create",
        &json!({"stack": "alert-manager", "template": template_path(), "parameters": params}),
    )
    .await;
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");

    // Outputs: what the Helm values and `cargo lambda deploy` take.
    let raw = output(&stack, "RawTopicArn");
    let enriched = output(&stack, "EnrichedTopicArn");
    let queue_arn = output(&stack, "QueueArn");
    let dlq_arn = output(&stack, "DlqArn");
    assert_eq!(
        raw,
        format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:alert-manager-raw")
    );
    assert_eq!(
        enriched,
        format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:alert-manager-enriched")
    );
    assert_eq!(
        queue_arn,
        format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:alert-manager-enricher")
    );
    assert_eq!(
        dlq_arn,
        format!("arn:aws:sqs:{REGION}:{ACCOUNT_ID}:alert-manager-enricher-dlq")
    );
    for key in ["AgentRoleArn", "EnricherRoleArn"] {
        assert!(
            output(&stack, key).starts_with(&format!("arn:aws:iam::{ACCOUNT_ID}:role/")),
            "{key}"
        );
    }
    assert!(output(&stack, "QueueUrl").ends_with("/alert-manager-enricher"));
    assert!(output(&stack, "DlqUrl").ends_with("/alert-manager-enricher-dlq"));

    // Topics: no SSE by default.
    assert!(stack["topics"][&raw].is_object(), "{}", stack["topics"]);
    assert!(stack["topics"][&raw].get("KmsMasterKeyId").is_none());
    assert!(stack["topics"][&enriched].is_object());

    // The queue: 6 x the function timeout, redrive to the DLQ after MaxReceiveCount.
    let queue = &stack["queues"]["alert-manager-enricher"];
    assert_eq!(queue["VisibilityTimeout"], "360");
    let redrive: Value = serde_json::from_str(queue["RedrivePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], dlq_arn.as_str());
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "5"
    );
    let dlq = &stack["queues"]["alert-manager-enricher-dlq"];
    assert_eq!(dlq["MessageRetentionPeriod"], "1209600");
    // No customer managed key: SSE-SQS on both queues, no KMS key.
    for q in [queue, dlq] {
        assert_eq!(q["SqsManagedSseEnabled"], "true", "{q}");
        assert!(q.get("KmsMasterKeyId").is_none(), "{q}");
    }
    assert!(dlq.get("RedrivePolicy").is_none());

    // The agent role: IRSA trust on the one service account, the policy of infra/iam.
    let agent_trust = &stack["roles"]["AgentRole"]["trust"];
    assert_irsa_trust(
        "AgentRole",
        agent_trust,
        OIDC,
        &oidc_provider_arn(),
        &format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"),
    );
    let agent = role_grants(&stack, "AgentRole");
    assert_eq!(
        agent,
        BTreeMap::from([
            ("sns:Publish".to_string(), BTreeSet::from([raw.clone()])),
            (
                "sns:GetTopicAttributes".to_string(),
                BTreeSet::from([raw.clone()])
            ),
        ]),
        "no KMS grant without a customer managed key"
    );
    // Same statements (Sid per action) as the documented agent-policy.json.
    let files = iam_files();
    let agent_doc = stack["roles"]["AgentRole"]["policies"]["publish-alerts"].clone();
    assert_eq!(
        sids_by_action(&agent_doc),
        sids_by_action(&files["agent-policy.json"])
    );

    // The enricher role: Lambda trust, infra/iam/enricher-policy.json's actions on the stack's ARNs.
    let enricher_trust = statements(&stack["roles"]["EnricherRole"]["trust"]);
    assert_eq!(
        enricher_trust[0]["Principal"]["Service"],
        "lambda.amazonaws.com"
    );
    let enricher = role_grants(&stack, "EnricherRole");
    let mut documented: BTreeSet<String> =
        grants(&files["enricher-policy.json"]).into_keys().collect();
    // Only with EventBusArns, which this stack leaves empty (the Pod Identity stack sets it).
    assert!(documented.remove("events:PutEvents"));
    assert!(
        !enricher.contains_key("events:PutEvents"),
        "no bus, no grant"
    );
    let granted: BTreeSet<String> = enricher.keys().cloned().collect();
    assert_eq!(
        granted, documented,
        "the stack and infra/iam/enricher-policy.json differ"
    );
    for action in UNSCOPABLE {
        assert_eq!(enricher[action], BTreeSet::from(["*".to_string()]));
    }
    let mut publish = BTreeSet::from([enriched.clone()]);
    publish.extend(team_topics.split(',').map(String::from));
    assert_eq!(enricher["sns:Publish"], publish);
    for action in [
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    ] {
        assert_eq!(
            enricher[action],
            BTreeSet::from([queue_arn.clone()]),
            "{action}"
        );
    }
    assert_eq!(
        enricher["ssm:GetParameter"],
        BTreeSet::from([format!(
            "arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/alert-manager/routes"
        )])
    );
    assert_eq!(
        enricher["secretsmanager:GetSecretValue"],
        BTreeSet::from([secret])
    );
    assert_eq!(
        enricher["logs:CreateLogGroup"],
        BTreeSet::from([format!(
            "arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/lambda/alert-manager-enricher:*"
        )])
    );
    // The state store: read and write on the stack's one table, nothing else.
    let table = output(&stack, "StateTableName");
    for action in [
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:PutItem",
    ] {
        assert_eq!(
            enricher[action],
            BTreeSet::from([format!(
                "arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}"
            )]),
            "{action}"
        );
    }
    // The tick's one query: the sparse index of held alerts.
    assert_eq!(
        enricher["dynamodb:Query"],
        BTreeSet::from([format!(
            "arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{table}/index/held"
        )])
    );
    // Without FunctionName there is no event source mapping yet.
    assert!(
        !stack["resources"]
            .as_object()
            .unwrap()
            .contains_key("EventSourceMapping")
    );

    // Deploy the enricher the way `make deploy-lambda` does, into moto, with the binary
    // `cargo test --workspace` built (x86_64; the deploy reads the architecture from it).
    let role = output(&stack, "EnricherRoleArn");
    deploy_enricher(&moto, &role, &enriched).await;
    let function = boto3(
        &moto,
        "function",
        &json!({"name": "alert-manager-enricher"}),
    )
    .await;
    let config = &function["configuration"];
    assert_eq!(config["Role"], role.as_str());
    assert_eq!(config["Runtime"], "provided.al2023");
    assert_eq!(config["Handler"], "bootstrap");
    assert_eq!(config["MemorySize"], 256, "lambda/Cargo.toml memory");
    assert_eq!(
        config["Timeout"], 60,
        "lambda/Cargo.toml timeout = FunctionTimeoutSeconds"
    );
    assert_eq!(config["Architectures"], json!(["x86_64"]));
    assert_eq!(config["TracingConfig"]["Mode"], "PassThrough");
    assert_eq!(
        config["Environment"]["Variables"],
        json!({"ENRICHED_TOPIC_ARN": enriched, "RUST_LOG": "info"}),
        "the command line's ENRICHED_TOPIC_ARN merged with lambda/Cargo.toml's RUST_LOG"
    );
    assert_eq!(function["tags"]["application"], "alert-manager");

    // Second phase: FunctionName set -> the SQS event source mapping.
    let mut params = params;
    params["FunctionName"] = json!("alert-manager-enricher");
    let stack = boto3(
        &moto,
        "update",
        &json!({"stack": "alert-manager", "template": template_path(), "parameters": params}),
    )
    .await;
    assert_eq!(stack["status"], "UPDATE_COMPLETE", "{stack}");
    let mappings = stack["event_source_mappings"].as_array().unwrap();
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    let esm = &mappings[0];
    assert_eq!(esm["EventSourceArn"], queue_arn.as_str());
    assert_eq!(esm["BatchSize"], 10);
    assert_eq!(
        esm["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(esm["State"], "Enabled");
    // A storm fans out to at most MaximumConcurrency invocations (default 10).
    assert_eq!(esm["ScalingConfig"]["MaximumConcurrency"], 10, "{esm}");
    // ... and the tick's schedule (moto's stacks do not list the Lambda
    // permission beside it; cfn-lint checks that one).
    assert_eq!(
        stack["resources"]["TickRule"]["type"], "AWS::Events::Rule",
        "{:?}",
        stack["resources"]
    );
    assert!(
        esm["FunctionArn"]
            .as_str()
            .unwrap()
            .ends_with(":function:alert-manager-enricher")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stack_with_pod_identity_and_a_customer_key_in_moto() {
    let moto = MotoServer::start().await;
    let key = format!("arn:aws:kms:{REGION}:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let stack = boto3(
        &moto,
        "create",
        &json!({"stack": "am-pod-identity", "template": template_path(), "parameters": {
            "ClusterName": "prod",
            "UsePodIdentity": "true",
            "NamePrefix": "am",
            "TopicKmsKeyArn": key,
            "FunctionTimeoutSeconds": "30",
            "MaxReceiveCount": "3",
            // CloudWatch alarms' topic: its subscription and queue-policy
            // statement are conditional (moto builds neither; cfn-lint checks them).
            "CloudWatchAlarmsTopicArn": format!("arn:aws:sns:{REGION}:{ACCOUNT_ID}:alert-manager-alarms"),
            "EventBusArns": format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/alerts"),
        }}),
    )
    .await;
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");
    let raw = output(&stack, "RawTopicArn");
    let enriched = output(&stack, "EnrichedTopicArn");
    assert!(raw.ends_with(":am-raw") && enriched.ends_with(":am-enriched"));
    assert_eq!(stack["topics"][&raw]["KmsMasterKeyId"], key.as_str());
    assert_eq!(stack["topics"][&enriched]["KmsMasterKeyId"], key.as_str());

    let queue = &stack["queues"]["am-enricher"];
    assert_eq!(queue["VisibilityTimeout"], "180", "6 x 30 s");
    // The customer managed key encrypts the queues too.
    assert_eq!(queue["KmsMasterKeyId"], key.as_str());
    assert_eq!(
        stack["queues"]["am-enricher-dlq"]["KmsMasterKeyId"],
        key.as_str()
    );
    let redrive: Value = serde_json::from_str(queue["RedrivePolicy"].as_str().unwrap()).unwrap();
    assert_eq!(
        redrive["maxReceiveCount"].to_string().trim_matches('"'),
        "3"
    );

    assert_pod_identity_trust(
        "AgentRole",
        &stack["roles"]["AgentRole"]["trust"],
        &format!("arn:aws:eks:{REGION}:{ACCOUNT_ID}:cluster/prod"),
    );
    let agent = role_grants(&stack, "AgentRole");
    let keys = BTreeSet::from([key.clone()]);
    assert_eq!(agent["kms:GenerateDataKey*"], keys);
    assert_eq!(agent["kms:Decrypt"], keys);
    assert_eq!(agent["sns:Publish"], BTreeSet::from([raw]));
    let enricher = role_grants(&stack, "EnricherRole");
    assert_eq!(enricher["kms:GenerateDataKey*"], keys);
    assert_eq!(
        enricher["events:PutEvents"],
        BTreeSet::from([format!(
            "arn:aws:events:{REGION}:{ACCOUNT_ID}:event-bus/alerts"
        )]),
        "the named bus only"
    );
    assert!(
        !enricher.contains_key("ssm:GetParameter"),
        "no routes parameter, no SSM grant"
    );
    assert!(!enricher.contains_key("secretsmanager:GetSecretValue"));

    // The AWS managed key needs no IAM grant: its key policy covers SNS users of the account.
    let stack = boto3(
        &moto,
        "create",
        &json!({"stack": "am-managed-key", "template": template_path(), "parameters": {
            "ClusterName": "prod",
            "UsePodIdentity": "true",
            "NamePrefix": "am2",
            "TopicKmsKeyArn": "alias/aws/sns",
        }}),
    )
    .await;
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");
    assert_eq!(
        stack["topics"][&output(&stack, "RawTopicArn")]["KmsMasterKeyId"],
        "alias/aws/sns"
    );
    assert!(!role_grants(&stack, "AgentRole").contains_key("kms:Decrypt"));
    // SNS cannot use the AWS managed SNS key for a queue: the queues keep SSE-SQS.
    for q in ["am2-enricher", "am2-enricher-dlq"] {
        assert!(
            stack["queues"][q].get("KmsMasterKeyId").is_none(),
            "{q}: {}",
            stack["queues"][q]
        );
    }
}

/// Both queues are encrypted at rest, in the form checkov 3.3's `CKV_AWS_27` reads from a
/// template: it passes only a queue with a `KmsMasterKeyId` property. That is the topics'
/// customer managed key when there is one, and otherwise nothing, with SSE-SQS instead. (moto's
/// queues report SSE-SQS whatever the template says; the resolved key is checked in moto by
/// `stack_with_pod_identity_and_a_customer_key_in_moto`.)
#[test]
fn both_queues_are_encrypted_at_rest_as_checkov_ckv_aws_27_reads_them() {
    let text = std::fs::read_to_string(template_path()).unwrap();
    let template: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let yaml = |v: &serde_yaml::Value| serde_yaml::to_string(v).unwrap();
    let mut queues = BTreeSet::new();
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::SQS::Queue") {
            continue;
        }
        let id = id.as_str().unwrap().to_string();
        let properties = &resource["Properties"];
        assert_eq!(
            properties.get("KmsMasterKeyId").map(yaml).as_deref(),
            Some("!If\n- HasCustomerTopicKey\n- !Ref TopicKmsKeyArn\n- !Ref AWS::NoValue\n"),
            "{id}: KmsMasterKeyId"
        );
        assert_eq!(
            properties.get("SqsManagedSseEnabled").map(yaml).as_deref(),
            Some("!If\n- HasCustomerTopicKey\n- !Ref AWS::NoValue\n- true\n"),
            "{id}: SSE-SQS without the customer managed key"
        );
        queues.insert(id);
    }
    assert_eq!(
        queues,
        BTreeSet::from(["Queue".to_string(), "DeadLetterQueue".to_string()])
    );
}

/// Resolves `resources` of `template` with `parameters` through moto's template evaluator
/// (for the types moto's CreateStack does not build): logical id -> {created, properties}.
async fn resolve(
    moto: &MotoServer,
    template: PathBuf,
    parameters: &Value,
    resources: &[&str],
) -> Value {
    boto3(
        moto,
        "resolve",
        &json!({"stack": "resolved", "template": template, "parameters": parameters,
                "resources": resources}),
    )
    .await
}

/// Step (1) of "One pipeline for an organisation" (docs/aws-integration.md): the central stack
/// with the organisation, member accounts and the enricher's allow-list.
#[tokio::test(flavor = "multi_thread")]
async fn central_stack_for_an_organisation_creates_in_moto_with_the_topic_policy_and_assume_role() {
    let moto = MotoServer::start().await;
    let members = format!("{MEMBER_ACCOUNT},{OTHER_MEMBER_ACCOUNT}");
    let params = json!({
        "ClusterName": "prod",
        "UsePodIdentity": "true",
        "OrganizationId": ORGANIZATION_ID,
        "MemberAccountIds": members,
        "AllowedAccounts": members,
        "ExternalId": EXTERNAL_ID,
    });
    let stack = boto3(
        &moto,
        "create",
        &json!({"stack": "alert-manager", "template": template_path(), "parameters": params}),
    )
    .await;
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");
    // Every output of the single-account stack is still there, and the enricher's environment.
    for key in [
        "AgentRoleArn",
        "EnricherRoleArn",
        "RawTopicArn",
        "EnrichedTopicArn",
        "StateTableName",
        "QueueArn",
        "QueueUrl",
        "DlqArn",
        "DlqUrl",
        "QueueVisibilityTimeoutSeconds",
    ] {
        assert!(!output(&stack, key).is_empty(), "{key}");
    }
    assert_eq!(output(&stack, "CrossAccountRoleName"), READ_ROLE_NAME);
    assert_eq!(output(&stack, "AllowedAccounts"), members);
    let raw = output(&stack, "RawTopicArn");

    // The enricher may assume the read role, by name, in any account (ALLOWED_ACCOUNTS decides
    // which), only with the external id: the statement of enricher-policy-cross-account.json.
    let enricher = role_grants(&stack, "EnricherRole");
    assert_eq!(
        enricher["sts:AssumeRole"],
        BTreeSet::from([format!("arn:aws:iam::*:role/{READ_ROLE_NAME}")])
    );
    let files = substituted_iam_files();
    let is_assume = |st: &Value| strings(&st["Action"]) == ["sts:AssumeRole"];
    let doc = &stack["roles"]["EnricherRole"]["policies"]["enrich-route-deliver"];
    let assume: Vec<Value> = statements(doc).into_iter().filter(is_assume).collect();
    assert_eq!(
        assume,
        statements(&files["enricher-policy-cross-account.json"]),
        "the stack and infra/iam/enricher-policy-cross-account.json differ"
    );
    // Besides it, the enricher's policy is the single-account one.
    let mut documented: BTreeSet<String> =
        grants(&files["enricher-policy.json"]).into_keys().collect();
    // (No buses, routes parameter or secrets in this stack.)
    for conditional in [
        "events:PutEvents",
        "ssm:GetParameter",
        "secretsmanager:GetSecretValue",
    ] {
        assert!(documented.remove(conditional), "{conditional}");
    }
    documented.insert("sts:AssumeRole".to_string());
    assert_eq!(
        enricher.keys().cloned().collect::<BTreeSet<_>>(),
        documented
    );

    // The topic policy (moto builds none): the owner's default access, the organisation's
    // agents and the listed accounts' agents may publish and check the topic.
    let resolved = resolve(&moto, template_path(), &params, &["RawTopicPolicy"]).await;
    let policy = &resolved["RawTopicPolicy"];
    assert_eq!(policy["type"], "AWS::SNS::TopicPolicy");
    assert_eq!(policy["created"], true, "{policy}");
    assert_eq!(
        policy["properties"]["Topics"],
        json!([raw]),
        "the raw topic only"
    );
    let doc = &policy["properties"]["PolicyDocument"];
    assert_eq!(doc["Version"], "2012-10-17");
    let agents = json!(["sns:Publish", "sns:GetTopicAttributes"]);
    let owner = json!({
        "Sid": "OwnerAccountKeepsTheDefaultAccess",
        "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT_ID}:root")},
        "Action": ["sns:GetTopicAttributes", "sns:SetTopicAttributes", "sns:AddPermission",
                   "sns:RemovePermission", "sns:DeleteTopic", "sns:Subscribe",
                   "sns:ListSubscriptionsByTopic", "sns:Publish"],
        "Resource": raw,
    });
    let organisation = json!({
        "Sid": "OrganizationAgentsPublish",
        "Effect": "Allow",
        "Principal": {"AWS": "*"},
        "Action": agents,
        "Resource": raw,
        "Condition": {"StringEquals": {"aws:PrincipalOrgID": ORGANIZATION_ID}},
    });
    let accounts = json!({
        "Sid": "MemberAccountAgentsPublish",
        "Effect": "Allow",
        "Principal": {"AWS": [MEMBER_ACCOUNT, OTHER_MEMBER_ACCOUNT]},
        "Action": agents,
        "Resource": raw,
    });
    assert_eq!(
        statements(doc),
        [owner.clone(), organisation.clone(), accounts.clone()]
    );

    // The organisation only, or the account list only: that statement beside the owner's.
    // Without the external id, the enricher's AssumeRole has no condition.
    let mut org_only = params.clone();
    org_only["MemberAccountIds"] = json!("");
    org_only["ExternalId"] = json!("");
    let resolved = resolve(
        &moto,
        template_path(),
        &org_only,
        &["RawTopicPolicy", "EnricherRole"],
    )
    .await;
    assert_eq!(
        statements(&resolved["RawTopicPolicy"]["properties"]["PolicyDocument"]),
        [owner.clone(), organisation]
    );
    let enricher_doc = &resolved["EnricherRole"]["properties"]["Policies"][0]["PolicyDocument"];
    let assume: Vec<Value> = statements(enricher_doc)
        .into_iter()
        .filter(is_assume)
        .collect();
    assert_eq!(
        assume,
        [json!({
            "Sid": "AssumeTheMemberAccountsReadRole",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": format!("arn:aws:iam::*:role/{READ_ROLE_NAME}"),
        })]
    );
    let mut accounts_only = params.clone();
    accounts_only["OrganizationId"] = json!("");
    let resolved = resolve(&moto, template_path(), &accounts_only, &["RawTopicPolicy"]).await;
    assert_eq!(
        statements(&resolved["RawTopicPolicy"]["properties"]["PolicyDocument"]),
        [owner, accounts]
    );

    // Neither: no topic policy (SNS's default, the own account only) and no AssumeRole.
    let single = json!({"ClusterName": "prod", "UsePodIdentity": "true"});
    let resolved = resolve(
        &moto,
        template_path(),
        &single,
        &["RawTopicPolicy", "EnricherRole"],
    )
    .await;
    assert_eq!(resolved["RawTopicPolicy"]["created"], false, "{resolved}");
    let enricher_doc = &resolved["EnricherRole"]["properties"]["Policies"][0]["PolicyDocument"];
    assert!(
        !statements(enricher_doc).iter().any(is_assume),
        "{enricher_doc}"
    );
}

/// Step (2): the member stack, created in a member account with an assumed role's credentials
/// (as a StackSet instance is): the read role for the central enricher and the agent role on the
/// central topic, in another account and region.
#[tokio::test(flavor = "multi_thread")]
async fn member_account_stack_creates_in_moto_in_another_account() {
    let moto = MotoServer::start().await;
    let p = placeholder_values();
    let enricher_role = p["EnricherRoleArn"].clone();
    let central_topic = format!("arn:aws:sns:eu-west-1:{ACCOUNT_ID}:alert-manager-raw");
    let key =
        format!("arn:aws:kms:eu-west-1:{ACCOUNT_ID}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let member_oidc = "oidc.eks.us-east-1.amazonaws.com/id/MEMBERD539D4633E53DE1B71EXAMPLE";
    let member_provider = format!("arn:aws:iam::{MEMBER_ACCOUNT}:oidc-provider/{member_oidc}");
    let stack = boto3(
        &moto,
        "create",
        &json!({"stack": "alert-manager-member", "template": member_template_path(),
                "account": MEMBER_ACCOUNT, "parameters": {
            "EnricherRoleArn": enricher_role,
            "ExternalId": EXTERNAL_ID,
            "CentralTopicArn": central_topic,
            "CentralTopicKmsKeyArn": key,
            "ClusterName": "payments",
            "OidcProviderArn": member_provider,
            "OidcProviderUrl": member_oidc,
        }}),
    )
    .await;
    assert_eq!(stack["status"], "CREATE_COMPLETE", "{stack}");
    assert_eq!(stack["account"], MEMBER_ACCOUNT);

    // The read role: the name the enricher assumes, trusted by the enricher role only, with the
    // external id; exactly the two read actions. The same documents as infra/iam.
    let files = substituted_iam_files();
    let read = &stack["roles"]["ReadRole"];
    let read_arn = output(&stack, "ReadRoleArn");
    assert_eq!(
        read_arn,
        format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/{READ_ROLE_NAME}")
    );
    assert_eq!(read["arn"], read_arn.as_str());
    assert_read_role_trust(
        "ReadRole",
        &read["trust"],
        &enricher_role,
        Some(EXTERNAL_ID),
    );
    assert_eq!(
        statements(&read["trust"]),
        statements(&files["member-read-trust-policy.json"])
    );
    let unscopable = |a: &str| (a.to_string(), BTreeSet::from(["*".to_string()]));
    assert_eq!(
        role_grants(&stack, "ReadRole"),
        BTreeMap::from(UNSCOPABLE.map(unscopable))
    );
    assert_eq!(
        statements(&read["policies"]["read-instances-and-metrics"]),
        statements(&files["member-read-policy.json"])
    );

    // The agent role: the IRSA trust of this account's cluster, publish to the central topic
    // (and its key), with the Sids of agent-policy.json and agent-policy-kms.json.
    let agent_arn = output(&stack, "AgentRoleArn");
    assert!(
        agent_arn.starts_with(&format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/")),
        "{agent_arn}"
    );
    assert_irsa_trust(
        "AgentRole",
        &stack["roles"]["AgentRole"]["trust"],
        member_oidc,
        &member_provider,
        &format!("system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"),
    );
    let topic = BTreeSet::from([central_topic.clone()]);
    let keys = BTreeSet::from([key]);
    assert_eq!(
        role_grants(&stack, "AgentRole"),
        BTreeMap::from([
            ("sns:Publish".to_string(), topic.clone()),
            ("sns:GetTopicAttributes".to_string(), topic),
            ("kms:GenerateDataKey*".to_string(), keys.clone()),
            ("kms:Decrypt".to_string(), keys),
        ])
    );
    let mut documented = sids_by_action(&files["agent-policy.json"]);
    documented.extend(sids_by_action(&files["agent-policy-kms.json"]));
    assert_eq!(
        sids_by_action(&stack["roles"]["AgentRole"]["policies"]["publish-alerts"]),
        documented
    );

    // A second cluster of the same account (Pod Identity): IAM is global, so no second read role.
    let second = boto3(
        &moto,
        "create",
        &json!({"stack": "alert-manager-member-search", "template": member_template_path(),
                "account": MEMBER_ACCOUNT, "parameters": {
            "CreateReadRole": "false",
            "CentralTopicArn": central_topic,
            "ClusterName": "search",
            "UsePodIdentity": "true",
        }}),
    )
    .await;
    assert_eq!(second["status"], "CREATE_COMPLETE", "{second}");
    assert!(
        second["roles"].get("ReadRole").is_none(),
        "{}",
        second["roles"]
    );
    assert!(second["outputs"].get("ReadRoleArn").is_none());
    assert_pod_identity_trust(
        "AgentRole",
        &second["roles"]["AgentRole"]["trust"],
        &format!("arn:aws:eks:{REGION}:{MEMBER_ACCOUNT}:cluster/search"),
    );
    let agent = role_grants(&second, "AgentRole");
    assert_eq!(
        agent.keys().map(String::as_str).collect::<Vec<_>>(),
        ["sns:GetTopicAttributes", "sns:Publish"],
        "no key, no KMS grant"
    );
    assert!(!output(&second, "AgentRoleArn").is_empty());

    // An account without a cluster, without an external id: the read role only, no condition.
    let read_only = boto3(
        &moto,
        "create",
        &json!({"stack": "alert-manager-member", "template": member_template_path(),
                "account": OTHER_MEMBER_ACCOUNT, "parameters": {"EnricherRoleArn": enricher_role}}),
    )
    .await;
    assert_eq!(read_only["status"], "CREATE_COMPLETE", "{read_only}");
    assert_eq!(read_only["account"], OTHER_MEMBER_ACCOUNT);
    assert_eq!(
        output(&read_only, "ReadRoleArn"),
        format!("arn:aws:iam::{OTHER_MEMBER_ACCOUNT}:role/{READ_ROLE_NAME}")
    );
    assert_read_role_trust(
        "ReadRole",
        &read_only["roles"]["ReadRole"]["trust"],
        &enricher_role,
        None,
    );
    assert!(read_only["roles"].get("AgentRole").is_none());
    assert!(read_only["outputs"].get("AgentRoleArn").is_none());
}

/// `cargo lambda deploy` of the already built enricher into moto, as `make deploy-lambda`
/// does against AWS (same flags, plus the endpoint and the binary path).
async fn deploy_enricher(moto: &MotoServer, role: &str, enriched_topic: &str) {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("bootstrap");
    std::fs::copy(workspace_binary("alert-manager-enricher"), &bootstrap).unwrap();
    let mut cmd = tokio::process::Command::new(venv_bin("cargo-lambda"));
    cmd.args(["lambda", "deploy", "--admerge", "--endpoint-url"])
        .arg(moto.endpoint())
        .args(["--region", REGION, "--manifest-path"])
        .arg(workspace_root().join("lambda/Cargo.toml"))
        .arg("--binary-path")
        .arg(&bootstrap)
        .args(["--iam-role", role, "--env-var"])
        .arg(format!("ENRICHED_TOPIC_ARN={enriched_topic}"))
        .args(["--output-format", "json", "alert-manager-enricher"])
        .current_dir(workspace_root().join("lambda"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL");
    let out = run("cargo lambda deploy", &mut cmd, Duration::from_secs(300)).await;
    assert!(
        out.status.success(),
        "cargo lambda deploy failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The JSON result follows progress lines ("loading binary data", "deploying function").
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json_start = stdout.find('{').unwrap_or(0);
    let result: Value = serde_json::from_str(&stdout[json_start..]).unwrap_or_else(|e| {
        panic!(
            "deploy output is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(
        result["function_arn"],
        format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:alert-manager-enricher")
    );
}

/// Runs `cmd` to completion within `timeout` (killed otherwise, and on drop).
async fn run(
    what: &str,
    cmd: &mut tokio::process::Command,
    timeout: Duration,
) -> std::process::Output {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    tokio::time::timeout(timeout, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {timeout:?}"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}; run infra/local/bootstrap.sh"))
}

/// Runs one operation of `tests/src/boto3_helper.py` against `moto` and returns its JSON answer.
async fn boto3(moto: &MotoServer, op: &str, request: &Value) -> Value {
    moto.boto3(op, request).await
}

#[test]
fn agent_dockerfile_keeps_the_runtime_contract() {
    // No docker engine here: the image is not built (infra/docker/README.md says so). This keeps
    // the parts the Helm chart and the docs rely on from drifting.
    let dockerfile =
        std::fs::read_to_string(workspace_root().join("infra/docker/Dockerfile")).unwrap();
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has(
        "cargo build --profile agent --locked --workspace --bin alert-manager-agent"
    ));
    assert!(has("FROM gcr.io/distroless/cc-debian12:nonroot"));
    assert!(has(
        "cp target/agent/alert-manager-agent /alert-manager-agent"
    ));
    assert!(has(
        "COPY --from=builder /alert-manager-agent /alert-manager-agent"
    ));
    assert!(lines.contains(&"USER 65532:65532"));
    assert!(lines.contains(&"EXPOSE 8080 9090"));
    assert_eq!(
        lines.last(),
        Some(&r#"ENTRYPOINT ["/alert-manager-agent"]"#)
    );
    let ignore =
        std::fs::read_to_string(workspace_root().join("infra/docker/Dockerfile.dockerignore"))
            .unwrap();
    assert!(
        ignore.lines().any(|l| l == "target/"),
        "target/ stays out of the build context"
    );
}
