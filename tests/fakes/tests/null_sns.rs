//! The benchmarks trust null-sns's counts to prove that nothing was lost, and
//! the agent trusts its answers to be SNS's: both are checked here against the
//! binary itself.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct NullSns {
    child: Child,
    url: String,
}

impl Drop for NullSns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> NullSns {
    let mut child = Command::new(env!("CARGO_BIN_EXE_null-sns"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("null-sns starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .expect("null-sns prints its address");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    NullSns { child, url }
}

async fn post(url: &str, form: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .await
        .expect("null-sns answers");
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn counts(url: &str) -> serde_json::Value {
    reqwest::get(format!("{url}/counts"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn null_sns_answers_every_batch_entry_by_id_and_counts_it() {
    let null = start();
    let form = "Action=PublishBatch&Version=2010-03-31&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A1%3At\
        &PublishBatchRequestEntries.member.1.Id=a%3C1&PublishBatchRequestEntries.member.1.Message=x\
        &PublishBatchRequestEntries.member.2.Id=b2&PublishBatchRequestEntries.member.2.Message=y";
    let (status, xml) = post(&null.url, form).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.contains("<Id>a&lt;1</Id>"),
        "decoded and escaped id: {xml}"
    );
    assert!(xml.contains("<Id>b2</Id>"), "{xml}");
    assert!(xml.contains("<Failed/>"), "{xml}");
    let (status, xml) = post(&null.url, "Action=Publish&Message=z").await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.contains("<MessageId>"), "{xml}");
    assert_eq!(
        counts(&null.url).await,
        serde_json::json!({"requests": 2, "publish": 1, "batch_entries": 2})
    );
}

#[tokio::test]
async fn null_sns_refuses_other_actions_and_resets_its_counts() {
    let null = start();
    let (status, xml) = post(&null.url, "Action=CreateTopic&Name=t").await;
    assert_eq!(status, 400);
    assert!(xml.contains("<Code>InvalidAction</Code>"), "{xml}");
    assert_eq!(counts(&null.url).await["requests"], 1);
    let reset = reqwest::Client::new()
        .post(format!("{}/counts/reset", null.url))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status().as_u16(), 204);
    assert_eq!(
        counts(&null.url).await,
        serde_json::json!({"requests": 0, "publish": 0, "batch_entries": 0})
    );
}
