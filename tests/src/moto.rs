//! The moto AWS emulator as a child process.

use std::process::{Command, Stdio};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

use crate::process::{ChildGuard, free_port, venv_bin, wait_until_http_ok};

/// Region every test uses.
pub const REGION: &str = "us-east-1";
/// Account id moto reports.
pub const ACCOUNT_ID: &str = "123456789012";

/// A running moto server on 127.0.0.1, killed on drop. It runs through
/// `infra/local/moto_server.py`: moto with its SQS queue bookkeeping made
/// O(1) in the clock (see that file), so a backlog does not stall it.
#[derive(Debug)]
pub struct MotoServer {
    port: u16,
    child: Option<ChildGuard>,
}

impl MotoServer {
    /// Starts moto on a free port and waits until it answers.
    pub async fn start() -> MotoServer {
        let mut moto = MotoServer {
            port: free_port(),
            child: None,
        };
        moto.restart().await;
        moto
    }

    /// Starts moto again on the same port, after [`MotoServer::stop`]. State is lost.
    pub async fn restart(&mut self) {
        let python = venv_bin("python3");
        let mut cmd = Command::new(python);
        // The recorder writes its file into the working directory unless told
        // otherwise; keep it out of the source tree, one file per server.
        let recording = std::env::temp_dir().join(format!("moto-recording-{}", self.port));
        cmd.arg(crate::workspace_root().join("infra/local/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .env("MOTO_RECORDER_FILEPATH", recording)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(ChildGuard::spawn("moto", cmd));
        wait_until_http_ok(
            "moto",
            &format!("{}/moto-api/data.json", self.endpoint()),
            Duration::from_secs(30),
        )
        .await;
    }

    /// Stops moto: its port refuses connections until [`MotoServer::restart`].
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Forgets every resource (`POST /moto-api/reset`).
    pub async fn reset(&self) {
        self.post("/moto-api/reset").await;
    }

    /// Starts recording requests (`/moto-api/recorder/start-recording`).
    pub async fn start_recording(&self) {
        self.post("/moto-api/recorder/reset-recording").await;
        self.post("/moto-api/recorder/start-recording").await;
    }

    /// The recorded requests, one JSON value each.
    pub async fn recording(&self) -> Vec<serde_json::Value> {
        let text = reqwest::get(format!(
            "{}/moto-api/recorder/download-recording",
            self.endpoint()
        ))
        .await
        .and_then(|r| r.error_for_status())
        .unwrap_or_else(|e| panic!("moto recording: {e}"));
        let text = text.text().await.unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The API actions of the recorded requests, in order: `Action=` of Query
    /// requests (body or URL), the operation of `X-Amz-Target` JSON requests.
    pub async fn recorded_actions(&self) -> Vec<String> {
        use base64::Engine;
        self.recording()
            .await
            .iter()
            .filter_map(|r| {
                if let Some(target) = r["headers"]["X-Amz-Target"].as_str() {
                    return target.rsplit('.').next().map(String::from);
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
                let url = r["url"].as_str().unwrap_or_default();
                let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
                body.split('&')
                    .chain(query.split('&'))
                    .find_map(|kv| kv.strip_prefix("Action="))
                    .map(String::from)
            })
            .collect()
    }

    /// Runs one operation of `tests/src/boto3_helper.py` (CloudFormation,
    /// IAM and Lambda through boto3, for which the workspace has no SDK
    /// crate) against this server; returns the JSON it prints. A request
    /// with `"account"` acts in that account, through
    /// `OrganizationAccountAccessRole`.
    pub async fn boto3(&self, op: &str, request: &serde_json::Value) -> serde_json::Value {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let request_file = dir.path().join("request.json");
        std::fs::write(&request_file, request.to_string())
            .unwrap_or_else(|e| panic!("write {}: {e}", request_file.display()));
        let mut cmd = tokio::process::Command::new(venv_bin("python3"));
        cmd.arg(crate::workspace_root().join("tests/src/boto3_helper.py"))
            .arg(op)
            .arg(&request_file)
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", REGION)
            .kill_on_drop(true)
            .stdin(Stdio::null());
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .unwrap_or_else(|_| panic!("boto3 {op} did not finish within 120 s"))
            .unwrap_or_else(|e| panic!("cannot run boto3 {op}: {e}; run infra/local/bootstrap.sh"));
        assert!(
            out.status.success(),
            "boto3 {op} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "boto3 {op} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    async fn post(&self, path: &str) {
        reqwest::Client::new()
            .post(format!("{}{path}", self.endpoint()))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("moto {path}: {e}"));
    }

    /// Creates SNS topic `name`; returns its ARN.
    pub async fn create_topic(&self, name: &str) -> String {
        aws_sdk_sns::Client::new(&self.sdk_config().await)
            .create_topic()
            .name(name)
            .send()
            .await
            .ok()
            .and_then(|o| o.topic_arn().map(String::from))
            .unwrap_or_else(|| panic!("create topic {name} in moto"))
    }

    /// Creates SQS queue `queue` and subscribes it to `topic_arn` with raw
    /// delivery and an optional filter policy; returns the queue URL.
    pub async fn subscribe_queue(
        &self,
        topic_arn: &str,
        queue: &str,
        filter_policy: Option<&str>,
    ) -> String {
        let config = self.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&config);
        let url = sqs
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .ok()
            .and_then(|o| o.queue_url().map(String::from))
            .unwrap_or_else(|| panic!("create queue {queue} in moto"));
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .ok()
            .and_then(|o| {
                o.attributes().and_then(|a| {
                    a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                        .cloned()
                })
            })
            .unwrap_or_else(|| panic!("queue ARN of {queue}"));
        let mut sub = aws_sdk_sns::Client::new(&config)
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", "true");
        if let Some(policy) = filter_policy {
            sub = sub.attributes("FilterPolicy", policy);
        }
        sub.send()
            .await
            .unwrap_or_else(|e| panic!("subscribe {queue}: {e}"));
        url
    }

    /// Creates the alert state table `name` with the key schema, billing
    /// mode and TTL attribute of the CloudFormation stack's `StateTable`
    /// (read from the template, so the tests and the stack cannot drift).
    #[allow(clippy::expect_used)] // test support: a panic is the test's failure
    pub async fn create_state_table(&self, name: &str) -> String {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
            Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
        };
        let template = std::fs::read_to_string(
            crate::workspace_root().join("infra/cloudformation/alert-manager.yaml"),
        )
        .expect("read the CloudFormation template");
        let doc: serde_yaml::Value = serde_yaml::from_str(&template).expect("template YAML");
        let props = &doc["Resources"]["StateTable"]["Properties"];
        let text = |v: &serde_yaml::Value| v.as_str().expect("a string in StateTable").to_string();
        let client = aws_sdk_dynamodb::Client::new(&self.sdk_config().await);
        let mut create = client
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::from(text(&props["BillingMode"]).as_str()));
        for a in props["AttributeDefinitions"]
            .as_sequence()
            .expect("AttributeDefinitions")
        {
            create = create.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(text(&a["AttributeName"]))
                    .attribute_type(ScalarAttributeType::from(
                        text(&a["AttributeType"]).as_str(),
                    ))
                    .build()
                    .expect("attribute definition"),
            );
        }
        let key_schema = |keys: &serde_yaml::Value| -> Vec<KeySchemaElement> {
            keys.as_sequence()
                .expect("a KeySchema")
                .iter()
                .map(|k| {
                    KeySchemaElement::builder()
                        .attribute_name(text(&k["AttributeName"]))
                        .key_type(KeyType::from(text(&k["KeyType"]).as_str()))
                        .build()
                        .expect("key schema element")
                })
                .collect()
        };
        create = create.set_key_schema(Some(key_schema(&props["KeySchema"])));
        for index in props["GlobalSecondaryIndexes"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            let projection = &index["Projection"];
            let gsi = GlobalSecondaryIndex::builder()
                .index_name(text(&index["IndexName"]))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(
                            text(&projection["ProjectionType"]).as_str(),
                        ))
                        .set_non_key_attributes(
                            projection["NonKeyAttributes"]
                                .as_sequence()
                                .map(|names| names.iter().map(text).collect()),
                        )
                        .build(),
                )
                .set_key_schema(Some(key_schema(&index["KeySchema"])));
            create = create.global_secondary_indexes(gsi.build().expect("index"));
        }
        create
            .send()
            .await
            .unwrap_or_else(|e| panic!("create table {name}: {e:?}"));
        let ttl = &props["TimeToLiveSpecification"];
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(text(&ttl["AttributeName"]))
                    .enabled(ttl["Enabled"].as_bool().unwrap_or(false))
                    .build()
                    .expect("ttl specification"),
            )
            .send()
            .await
            .unwrap_or_else(|e| panic!("TTL of {name}: {e:?}"));
        name.to_string()
    }

    /// SDK config pointing at moto with static test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new("testing", "testing", None, None, "moto"))
            .load()
            .await
    }
}
