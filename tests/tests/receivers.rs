#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

//! The local Slack, PagerDuty and webhook stand-ins: each accepts what the real
//! service accepts (the public docs' own examples and what the enricher sends),
//! rejects what it rejects with the real status and body, honours every
//! `Behavior`, and stops on drop. Plus the reference signature verifier.

use std::time::Duration;

use alert_envelope::{Envelope, Status};
use alert_manager_enricher::sinks::{pagerduty, slack, webhook};
use alert_manager_tests::{
    Behavior, DETAIL_HEADER, PagerDutyReceiver, SignatureError, SlackReceiver, WebhookReceiver,
    signature_header, verify_signature,
};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);
/// A 32-character routing key, as PagerDuty requires.
const ROUTING_KEY: &str = "e93facc04764012d7bfb002500d5d1a6";

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.text().await.expect("body");
    Answer {
        status,
        headers,
        body,
    }
}

async fn post_json(url: &str, body: &Value) -> Answer {
    send(reqwest::Client::new().post(url).json(body)).await
}

async fn post_raw(url: &str, body: &'static str) -> Answer {
    send(
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

fn example_envelope() -> Envelope {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/enriched-envelope.json"
    ))
    .unwrap();
    Envelope::from_json(&text).unwrap()
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A POST that the client abandons after 300 ms must time out (the receiver
/// holds it open) and be recorded as unanswered.
async fn assert_hangs(url: &str, body: &Value) {
    let started = std::time::Instant::now();
    let err = reqwest::Client::new()
        .post(url)
        .json(body)
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("a held request must not be answered");
    assert!(err.is_timeout(), "client timeout expected, got {err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---------------------------------------------------------------------------
// Slack
// ---------------------------------------------------------------------------

fn slack_ok_message() -> Value {
    // Slack's own examples: the header block reference, a mrkdwn section with
    // fields, the secondary-attachment colour `#36a64f`.
    json!({
        "text": "Danny Torrence left a 1 star review for your property.",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "A Heartfelt Header"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "Danny Torrence left the following review for your property:"}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": "*Type:*\nComputer (laptop)"},
                {"type": "mrkdwn", "text": "*When:*\nSubmitted Aut 10"}
            ]},
            {"type": "divider"},
            {"type": "context", "elements": [
                {"type": "image", "image_url": "https://image.freepik.com/free-photo/red-drawing-pin_1156-445.jpg", "alt_text": "images"},
                {"type": "mrkdwn", "text": "Location: *Dogpatch*"}
            ]},
            {"type": "actions", "elements": [
                {"type": "button", "text": {"type": "plain_text", "text": "Approve"}, "action_id": "approve"}
            ]}
        ],
        "attachments": [{
            "color": "#36a64f",
            "fallback": "fallback",
            "blocks": [{"type": "section", "text": {"type": "plain_text", "text": "in an attachment"}}]
        }]
    })
}

#[tokio::test]
async fn slack_accepts_docs_block_kit_message_with_200_ok() {
    let slack = SlackReceiver::start().await;
    assert!(
        slack
            .url()
            .ends_with("/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
        "{}",
        slack.url()
    );
    let answer = post_json(&slack.url(), &slack_ok_message()).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let got = slack.wait_for(1, WAIT).await;
    assert_eq!(got[0].answered, 200);
    assert_eq!(got[0].json.as_ref().unwrap(), &slack_ok_message());
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(slack.messages(), vec![slack_ok_message()]);
}

#[tokio::test]
async fn slack_accepts_the_enricher_message_firing_and_resolved() {
    let slack = SlackReceiver::start().await;
    let mut env = example_envelope();
    env.annotations.insert(
        "summary".into(),
        "x".repeat(5000), // the sink must cut this to Slack's 3000
    );
    let firing = slack::message(&env, &["Name".into(), "team".into()]);
    let answer = post_json(&slack.url(), &firing).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "ok"),
        "{:?}",
        answer.header(DETAIL_HEADER)
    );
    env.status = Status::Resolved;
    let resolved = slack::message(&env, &[]);
    let answer = post_json(&slack.url(), &resolved).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "ok"),
        "{:?}",
        answer.header(DETAIL_HEADER)
    );
    assert_eq!(slack.messages().len(), 2);
}

#[tokio::test]
async fn slack_wrong_path_is_404_no_service() {
    let slack = SlackReceiver::start().await;
    let wrong = format!("{}/services/T00000000/B00000000/wrong", slack.base_url());
    let answer = post_json(&wrong, &json!({"text": "hi"})).await;
    assert_eq!((answer.status, answer.body.as_str()), (404, "no_service"));
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let answer = send(reqwest::Client::new().get(slack.url())).await;
    assert_eq!((answer.status, answer.body.as_str()), (404, "no_service"));
    assert_eq!(slack.wait_for(2, WAIT).await[0].answered, 404);
}

fn long(n: usize) -> String {
    "é".repeat(n) // multi-byte: limits are in characters, not bytes
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

fn field(text: &str) -> Value {
    json!({"type": "mrkdwn", "text": text})
}

#[tokio::test]
async fn slack_rejects_each_invalid_payload_with_the_real_status_and_string() {
    let slack = SlackReceiver::start().await;
    let url = slack.url();

    let answer = post_raw(&url, "{not json").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (400, "invalid_payload")
    );
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );

    let cases: Vec<(&str, Value, &str)> = vec![
        ("a JSON array", json!([1]), "invalid_payload"),
        (
            "no text/blocks/attachments",
            json!({"username": "x"}),
            "invalid_payload",
        ),
        ("text not a string", json!({"text": 5}), "invalid_payload"),
        (
            "blocks not an array",
            json!({"blocks": {}}),
            "invalid_payload",
        ),
        ("empty text", json!({"text": ""}), "no_text"),
        (
            "blank text, empty blocks",
            json!({"text": "  ", "blocks": [], "attachments": []}),
            "no_text",
        ),
        (
            "unknown block type",
            json!({"blocks": [{"type": "table2"}]}),
            "invalid_blocks",
        ),
        (
            "block without type",
            json!({"blocks": [{"text": "x"}]}),
            "invalid_blocks",
        ),
        (
            "header in mrkdwn",
            json!({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]}),
            "invalid_blocks",
        ),
        (
            "header of 151 characters",
            json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": long(151)}}]}),
            "invalid_blocks",
        ),
        (
            "section text of 3001",
            json!({"blocks": [section(&long(3001))]}),
            "invalid_blocks",
        ),
        (
            "section text empty",
            json!({"blocks": [section("")]}),
            "invalid_blocks",
        ),
        (
            "section without text or fields",
            json!({"blocks": [{"type": "section"}]}),
            "invalid_blocks",
        ),
        (
            "11 section fields",
            json!({"blocks": [{"type": "section", "fields": vec![field("f"); 11]}]}),
            "invalid_blocks",
        ),
        (
            "a field of 2001",
            json!({"blocks": [{"type": "section", "fields": [field(&long(2001))]}]}),
            "invalid_blocks",
        ),
        (
            "11 context elements",
            json!({"blocks": [{"type": "context", "elements": vec![field("c"); 11]}]}),
            "invalid_blocks",
        ),
        (
            "51 blocks",
            json!({"blocks": vec![json!({"type": "divider"}); 51]}),
            "invalid_blocks",
        ),
        (
            "attachment colour not hex",
            json!({"attachments": [{"color": "red", "text": "x"}]}),
            "invalid_attachments",
        ),
        (
            "attachment colour short hex",
            json!({"attachments": [{"color": "#fff", "text": "x"}]}),
            "invalid_attachments",
        ),
        (
            "attachment with a bad block",
            json!({"attachments": [{"color": "danger", "blocks": [section(&long(3001))]}]}),
            "invalid_blocks",
        ),
    ];
    for (what, payload, error) in &cases {
        let answer = post_json(&url, payload).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (400, *error),
            "{what}: {:?}",
            answer.header(DETAIL_HEADER)
        );
    }
    // Exactly at the limits is fine.
    let at_limits = json!({
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": long(150)}},
            section(&long(3000)),
            {"type": "section", "fields": vec![field(&long(2000)); 10]},
            {"type": "context", "elements": vec![field("c"); 10]},
        ],
        "attachments": [{"color": "warning", "blocks": vec![json!({"type": "divider"}); 50]}]
    });
    let answer = post_json(&url, &at_limits).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, "ok"),
        "{:?}",
        answer.header(DETAIL_HEADER)
    );
    let got = slack.wait_for(cases.len() + 2, WAIT).await;
    assert!(got[..cases.len() + 1].iter().all(|r| r.answered == 400));
    assert!(
        got[1].detail.is_some(),
        "a rejection says why in the record"
    );
    assert_eq!(slack.messages().len(), 1);
}

#[tokio::test]
async fn slack_status_behavior_answers_500_rollup_error_until_reset() {
    let slack = SlackReceiver::start().await;
    slack.set_behavior(Behavior::Status(500));
    for _ in 0..2 {
        let answer = post_json(&slack.url(), &json!({"text": "hi"})).await;
        assert_eq!((answer.status, answer.body.as_str()), (500, "rollup_error"));
    }
    slack.set_behavior(Behavior::Status(410));
    let answer = post_json(&slack.url(), &json!({"text": "hi"})).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (410, "channel_is_archived")
    );
    slack.set_behavior(Behavior::Ok);
    let answer = post_json(&slack.url(), &json!({"text": "hi"})).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    let answered: Vec<u16> = slack.requests().iter().map(|r| r.answered).collect();
    assert_eq!(answered, vec![500, 500, 410, 200]);
}

#[tokio::test]
async fn slack_rate_limited_answers_429_with_retry_after() {
    let slack = SlackReceiver::start().await;
    slack.set_behavior(Behavior::RateLimited {
        retry_after_secs: 7,
    });
    let answer = post_json(&slack.url(), &json!({"text": "hi"})).await;
    assert_eq!((answer.status, answer.body.as_str()), (429, "rate_limited"));
    assert_eq!(answer.header("retry-after"), Some("7"));
    assert_eq!(slack.wait_for(1, WAIT).await[0].answered, 429);
}

#[tokio::test]
async fn slack_hang_holds_the_request_until_the_client_times_out() {
    let slack = SlackReceiver::start().await;
    slack.set_behavior(Behavior::Hang);
    assert_hangs(&slack.url(), &json!({"text": "hi"})).await;
    let got = slack.wait_for(1, WAIT).await;
    assert_eq!(got[0].answered, 0, "held open: never answered");
}

#[tokio::test]
async fn slack_fail_next_fails_n_requests_then_answers_ok() {
    let slack = SlackReceiver::start().await;
    slack.fail_next(1, Behavior::Status(500));
    let first = post_json(&slack.url(), &json!({"text": "hi"})).await;
    let second = post_json(&slack.url(), &json!({"text": "hi"})).await;
    assert_eq!((first.status, second.status), (500, 200));

    slack.fail_next(
        2,
        Behavior::RateLimited {
            retry_after_secs: 1,
        },
    );
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post_json(&slack.url(), &json!({"text": "hi"})).await.status);
    }
    assert_eq!(statuses, vec![429, 429, 200]);
}

#[tokio::test]
async fn wait_for_panics_listing_what_arrived() {
    let slack = SlackReceiver::start().await;
    post_json(&slack.url(), &json!({"text": "the only one"})).await;
    let waited = tokio::spawn(async move {
        slack.wait_for(2, Duration::from_millis(200)).await;
    })
    .await;
    let panic = waited.expect_err("wait_for must panic").into_panic();
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("expected 2 request(s) within 200ms, 1 arrived"),
        "{message}"
    );
    assert!(
        message.contains("POST /services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX → 200"),
        "{message}"
    );
    assert!(message.contains("the only one"), "{message}");
}

#[tokio::test]
async fn receiver_stops_on_drop_and_releases_held_requests() {
    let slack = SlackReceiver::start().await;
    slack.set_behavior(Behavior::Hang);
    let url = slack.url();
    let held = tokio::spawn({
        let url = url.clone();
        async move {
            reqwest::Client::new()
                .post(&url)
                .json(&json!({"text": "hi"}))
                .timeout(Duration::from_secs(30))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    slack.wait_for(1, WAIT).await;
    let started = std::time::Instant::now();
    drop(slack);
    let held = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("a held request is released on drop")
        .unwrap();
    assert!(
        matches!(held, Ok(503) | Err(_)),
        "released with 503 or a closed connection: {held:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The port no longer answers.
    let mut refused = false;
    for _ in 0..50 {
        let r = reqwest::Client::new()
            .post(&url)
            .json(&json!({"text": "hi"}))
            .timeout(Duration::from_secs(1))
            .send()
            .await;
        if r.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the receiver still answers after drop");
}

// ---------------------------------------------------------------------------
// PagerDuty
// ---------------------------------------------------------------------------

/// The trigger example of PagerDuty's Events API v2 reference.
fn pd_docs_trigger() -> Value {
    json!({
        "payload": {
            "summary": "DISK at 99% on machine prod-datapipe03.example.com",
            "timestamp": "2015-07-17T08:42:58.315+0000",
            "severity": "critical",
            "source": "prod-datapipe03.example.com",
            "component": "mysql",
            "group": "prod-datapipe",
            "class": "disk",
            "custom_details": {"free space": "1%", "ping time": "1500ms", "load avg": 0.75}
        },
        "routing_key": ROUTING_KEY,
        "dedup_key": "srv01/mysql",
        "event_action": "trigger",
        "client": "Sample Monitoring Service",
        "client_url": "https://monitoring.service.com",
        "links": [{"href": "http://pagerduty.example.com", "text": "An example link."}],
        "images": [{
            "src": "https://chart.googleapis.com/chart?chs=600x400&chd=t:6,2,9,5,2,5,7,4,8,2,1&cht=lc&chds=a&chxt=y&chm=D,0033FF,0,0,5,1",
            "href": "https://google.com",
            "alt": "An example link with an image"
        }]
    })
}

#[tokio::test]
async fn pagerduty_accepts_the_docs_trigger_example_with_202() {
    let pd = PagerDutyReceiver::start().await;
    assert!(pd.url().ends_with("/v2/enqueue"), "{}", pd.url());
    let answer = post_json(&pd.url(), &pd_docs_trigger()).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(
        answer.json(),
        json!({"status": "success", "message": "Event processed", "dedup_key": "srv01/mysql"})
    );
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(pd.events(), vec![pd_docs_trigger()]);
    assert_eq!(pd.wait_for(1, WAIT).await[0].answered, 202);
}

#[tokio::test]
async fn pagerduty_generates_a_dedup_key_when_none_is_given() {
    let pd = PagerDutyReceiver::start().await;
    let mut event = pd_docs_trigger();
    event.as_object_mut().unwrap().remove("dedup_key");
    let a = post_json(&pd.url(), &event).await.json();
    let b = post_json(&pd.url(), &event).await.json();
    let (a, b) = (
        a["dedup_key"].as_str().unwrap().to_string(),
        b["dedup_key"].as_str().unwrap().to_string(),
    );
    assert_eq!(a.len(), 32, "{a}");
    assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    assert_ne!(a, b, "each generated key is new");
}

#[tokio::test]
async fn pagerduty_accepts_acknowledge_and_resolve_with_a_dedup_key() {
    let pd = PagerDutyReceiver::start().await;
    for action in ["acknowledge", "resolve"] {
        let event =
            json!({"routing_key": ROUTING_KEY, "event_action": action, "dedup_key": "srv01/mysql"});
        let answer = post_json(&pd.url(), &event).await;
        assert_eq!(answer.status, 202, "{action}: {}", answer.body);
        assert_eq!(answer.json()["dedup_key"], "srv01/mysql");
    }
    assert_eq!(pd.events().len(), 2);
}

#[tokio::test]
async fn pagerduty_accepts_the_enricher_trigger_and_resolve() {
    let pd = PagerDutyReceiver::start().await;
    let mut env = example_envelope();
    env.annotations.insert("summary".into(), "y".repeat(3000)); // cut to 1024 by the sink
    let trigger = pagerduty::event(&env, ROUTING_KEY);
    let answer = post_json(&pd.url(), &trigger).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.json()["dedup_key"], pagerduty::dedup_key(&env));
    env.status = Status::Resolved;
    let resolve = pagerduty::event(&env, ROUTING_KEY);
    let answer = post_json(&pd.url(), &resolve).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(pd.events(), vec![trigger, resolve]);
}

#[tokio::test]
async fn pagerduty_rejects_each_invalid_event_with_400_naming_the_field() {
    let pd = PagerDutyReceiver::start().await;
    let url = pd.url();

    let answer = post_raw(&url, "{not json").await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.json(),
        json!({"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": ["JSON parse error"]})
    );

    let with = |edit: &dyn Fn(&mut Value)| {
        let mut e = pd_docs_trigger();
        edit(&mut e);
        e
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "routing_key of 31",
            with(&|e| e["routing_key"] = json!(&ROUTING_KEY[1..])),
            "Length of 'routing_key' is incorrect (should be 32 characters)",
        ),
        (
            "no routing_key",
            with(&|e| {
                e.as_object_mut().unwrap().remove("routing_key");
            }),
            "'routing_key' is missing or blank",
        ),
        (
            "no event_action",
            with(&|e| {
                e.as_object_mut().unwrap().remove("event_action");
            }),
            "'event_action' is missing or blank",
        ),
        (
            "unknown event_action",
            with(&|e| e["event_action"] = json!("escalate")),
            "'event_action' is invalid",
        ),
        (
            "dedup_key of 256",
            with(&|e| e["dedup_key"] = json!("k".repeat(256))),
            "Length of 'dedup_key' is too long",
        ),
        (
            "resolve without dedup_key",
            json!({"routing_key": ROUTING_KEY, "event_action": "resolve"}),
            "'dedup_key' is missing or blank",
        ),
        (
            "trigger without payload",
            with(&|e| {
                e.as_object_mut().unwrap().remove("payload");
            }),
            "'payload' is missing or blank",
        ),
        (
            "empty summary",
            with(&|e| e["payload"]["summary"] = json!("")),
            "'payload.summary' is missing or blank",
        ),
        (
            "summary of 1025",
            with(&|e| e["payload"]["summary"] = json!("s".repeat(1025))),
            "Length of 'payload.summary' is too long",
        ),
        (
            "no source",
            with(&|e| {
                e["payload"].as_object_mut().unwrap().remove("source");
            }),
            "'payload.source' is missing or blank",
        ),
        (
            "severity none",
            with(&|e| e["payload"]["severity"] = json!("none")),
            "'payload.severity' is invalid",
        ),
        (
            "no severity",
            with(&|e| {
                e["payload"].as_object_mut().unwrap().remove("severity");
            }),
            "'payload.severity' is missing or blank",
        ),
        (
            "timestamp not ISO 8601",
            with(&|e| e["payload"]["timestamp"] = json!("yesterday")),
            "'payload.timestamp' is invalid",
        ),
        (
            "component not a string",
            with(&|e| e["payload"]["component"] = json!(5)),
            "'payload.component' must be a string",
        ),
        (
            "link without href",
            with(&|e| e["links"] = json!([{"text": "t"}])),
            "'links[0].href' is missing or blank",
        ),
        (
            "image without src",
            with(&|e| e["images"] = json!([{"alt": "a"}])),
            "'images[0].src' is missing or blank",
        ),
    ];
    for (what, event, error) in &cases {
        let answer = post_json(&url, event).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.body);
        let body = answer.json();
        assert_eq!(body["status"], "invalid event", "{what}");
        assert_eq!(body["message"], "Event object is invalid", "{what}");
        let errors: Vec<&str> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert!(
            errors.iter().any(|e| e.starts_with(error)),
            "{what}: {errors:?}"
        );
    }
    // Exactly at the limits, and a summary of 1024 multi-byte characters.
    let at_limits = with(&|e| {
        e["payload"]["summary"] = json!("é".repeat(1024));
        e["dedup_key"] = json!("k".repeat(255));
        e["payload"]["timestamp"] = json!("2026-11-28T04:41:59.471468798Z");
    });
    let answer = post_json(&url, &at_limits).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(pd.events(), vec![at_limits]);
}

#[tokio::test]
async fn pagerduty_status_500_answers_a_json_error() {
    let pd = PagerDutyReceiver::start().await;
    pd.set_behavior(Behavior::Status(500));
    let answer = post_json(&pd.url(), &pd_docs_trigger()).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.json()["status"], "Internal Server Error");
    assert!(pd.events().is_empty(), "a failed event is not accepted");
}

#[tokio::test]
async fn pagerduty_rate_limited_answers_429_throttle_with_retry_after() {
    let pd = PagerDutyReceiver::start().await;
    pd.set_behavior(Behavior::RateLimited {
        retry_after_secs: 3,
    });
    let answer = post_json(&pd.url(), &pd_docs_trigger()).await;
    assert_eq!(answer.status, 429);
    assert_eq!(answer.header("retry-after"), Some("3"));
    let body = answer.json();
    assert_eq!(body["status"], "throttle exceeded");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Requests for this service are arriving too quickly.")
    );
}

#[tokio::test]
async fn pagerduty_hang_holds_the_request_until_the_client_times_out() {
    let pd = PagerDutyReceiver::start().await;
    pd.set_behavior(Behavior::Hang);
    assert_hangs(&pd.url(), &pd_docs_trigger()).await;
    assert_eq!(pd.wait_for(1, WAIT).await[0].answered, 0);
    assert!(pd.events().is_empty());
}

#[tokio::test]
async fn pagerduty_fail_next_fails_once_then_accepts() {
    let pd = PagerDutyReceiver::start().await;
    pd.fail_next(1, Behavior::Status(502));
    let first = post_json(&pd.url(), &pd_docs_trigger()).await;
    let second = post_json(&pd.url(), &pd_docs_trigger()).await;
    assert_eq!((first.status, second.status), (502, 202));
    assert_eq!(pd.events().len(), 1);
}

#[tokio::test]
async fn pagerduty_wrong_path_is_404() {
    let pd = PagerDutyReceiver::start().await;
    let answer = post_json(&format!("{}/v1/enqueue", pd.base_url()), &pd_docs_trigger()).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["status"], "Not Found");
}

// ---------------------------------------------------------------------------
// Signature verification (the reference verifier)
// ---------------------------------------------------------------------------

const KEY: &[u8] = b"whsec_example";
const DOCS_BODY: &[u8] = br#"{"id":"8746a89cd49b4d4a480b22022a8ce31e"}"#;
const DOCS_T: i64 = 1_764_300_000;
const DOCS_HEADER: &str =
    "t=1764300000,v1=f23d2346d26fc8a38a7090ffdf392c176c86fab4d2567372f4824d6373aa5453";

#[test]
fn verify_signature_accepts_the_docs_example_and_the_sinks_signature() {
    assert_eq!(
        verify_signature(KEY, DOCS_HEADER, DOCS_BODY, DOCS_T, 300),
        Ok(DOCS_T)
    );
    assert_eq!(signature_header(KEY, DOCS_T, DOCS_BODY), DOCS_HEADER);
    let t = DOCS_T + 42;
    let from_sink = webhook::signature(b"another key", t, b"{\"a\":1}");
    assert_eq!(
        verify_signature(b"another key", &from_sink, b"{\"a\":1}", t, 300),
        Ok(t)
    );
    // Element order, spaces, an unknown scheme and a second (rotated-key) v1.
    let old = signature_header(b"old key", DOCS_T, DOCS_BODY);
    let old_v1 = old.split_once(",v1=").unwrap().1;
    let v1 = DOCS_HEADER.split_once(",v1=").unwrap().1;
    let header = format!(" v1={old_v1} , v0=ignored, v1={v1}, t={DOCS_T} ");
    assert_eq!(
        verify_signature(KEY, &header, DOCS_BODY, DOCS_T, 300),
        Ok(DOCS_T)
    );
}

#[test]
fn verify_signature_rejects_a_wrong_key() {
    assert_eq!(
        verify_signature(b"whsec_other", DOCS_HEADER, DOCS_BODY, DOCS_T, 300),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn verify_signature_rejects_a_tampered_body() {
    let tampered = br#"{"id":"8746a89cd49b4d4a480b22022a8ce31f"}"#;
    assert_eq!(
        verify_signature(KEY, DOCS_HEADER, tampered, DOCS_T, 300),
        Err(SignatureError::Mismatch)
    );
    // A re-signed t is also a different signed text.
    let moved = DOCS_HEADER.replace("t=1764300000", "t=1764300001");
    assert_eq!(
        verify_signature(KEY, &moved, DOCS_BODY, DOCS_T, 300),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn verify_signature_rejects_a_stale_t() {
    assert_eq!(
        verify_signature(KEY, DOCS_HEADER, DOCS_BODY, DOCS_T + 300, 300),
        Ok(DOCS_T),
        "exactly the tolerance is accepted"
    );
    assert_eq!(
        verify_signature(KEY, DOCS_HEADER, DOCS_BODY, DOCS_T + 301, 300),
        Err(SignatureError::TooOld {
            t: DOCS_T,
            age: 301,
            tolerance: 300
        })
    );
}

#[test]
fn verify_signature_rejects_a_future_t() {
    assert_eq!(
        verify_signature(KEY, DOCS_HEADER, DOCS_BODY, DOCS_T - 300, 300),
        Ok(DOCS_T)
    );
    assert_eq!(
        verify_signature(KEY, DOCS_HEADER, DOCS_BODY, DOCS_T - 301, 300),
        Err(SignatureError::InFuture {
            t: DOCS_T,
            ahead: 301,
            tolerance: 300
        })
    );
}

#[test]
fn verify_signature_rejects_malformed_headers() {
    let v1 = DOCS_HEADER.split_once(",v1=").unwrap().1;
    let cases: Vec<(String, SignatureError)> = vec![
        (String::new(), SignatureError::MissingTimestamp),
        (format!("v1={v1}"), SignatureError::MissingTimestamp),
        ("t=1764300000".into(), SignatureError::MissingSignature),
        (
            format!("t=soon,v1={v1}"),
            SignatureError::BadTimestamp("soon".into()),
        ),
        (
            format!("t=1,t=2,v1={v1}"),
            SignatureError::DuplicateTimestamp,
        ),
        (
            format!("t=1764300000;v1={v1}"),
            SignatureError::BadTimestamp(format!("1764300000;v1={v1}")),
        ),
        (
            format!("t=1764300000,{v1}"),
            SignatureError::Malformed(v1.to_string()),
        ),
        (
            "t=1764300000,v1=zz".into(),
            SignatureError::BadHex("zz".into()),
        ),
        (
            format!("t=1764300000,v1={}", &v1[2..]),
            SignatureError::BadHex(v1[2..].to_string()),
        ),
        (
            format!("t=1764300000,v1={}", v1.to_uppercase()),
            SignatureError::BadHex(v1.to_uppercase()),
        ),
    ];
    for (header, want) in cases {
        assert_eq!(
            verify_signature(KEY, &header, DOCS_BODY, DOCS_T, 300),
            Err(want),
            "{header:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// Webhook receiver
// ---------------------------------------------------------------------------

async fn post_signed(url: &str, key: &[u8], t: i64, body: &'static [u8]) -> Answer {
    send(
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .header("X-Alert-Id", "8746a89cd49b4d4a480b22022a8ce31e")
            .header("X-Alert-Manager-Signature", signature_header(key, t, body))
            .body(body),
    )
    .await
}

#[tokio::test]
async fn webhook_accepts_a_correctly_signed_delivery_with_200() {
    let hook = WebhookReceiver::start(Some(KEY.to_vec())).await;
    assert!(hook.url().ends_with("/hooks/alerts"), "{}", hook.url());
    let answer = post_signed(&hook.url(), KEY, now(), DOCS_BODY).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json(), json!({"ok": true}));
    let got = hook.wait_for(1, WAIT).await;
    assert_eq!(got[0].answered, 200);
    assert_eq!(
        got[0].header("x-alert-id"),
        Some("8746a89cd49b4d4a480b22022a8ce31e")
    );
    assert_eq!(
        hook.deliveries(),
        vec![serde_json::from_slice::<Value>(DOCS_BODY).unwrap()]
    );
}

#[tokio::test]
async fn webhook_answers_401_and_records_it_for_a_bad_signature() {
    let hook = WebhookReceiver::start(Some(KEY.to_vec())).await;
    let wrong_key = post_signed(&hook.url(), b"whsec_other", now(), DOCS_BODY).await;
    let stale = post_signed(&hook.url(), KEY, now() - 301, DOCS_BODY).await;
    let future = post_signed(&hook.url(), KEY, now() + 400, DOCS_BODY).await;
    let unsigned = post_raw(&hook.url(), r#"{"id":"x"}"#).await;
    for (what, a) in [
        ("wrong key", &wrong_key),
        ("stale", &stale),
        ("future", &future),
        ("unsigned", &unsigned),
    ] {
        assert_eq!(a.status, 401, "{what}: {}", a.body);
        assert_eq!(a.json()["ok"], false, "{what}");
    }
    assert!(
        wrong_key.json()["error"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    assert!(stale.json()["error"].as_str().unwrap().contains("old"));
    assert!(future.json()["error"].as_str().unwrap().contains("future"));
    let got = hook.wait_for(4, WAIT).await;
    assert!(got.iter().all(|r| r.answered == 401), "{got:?}");
    assert!(hook.deliveries().is_empty());
}

#[tokio::test]
async fn webhook_rejects_a_replayed_delivery_with_409() {
    let hook = WebhookReceiver::start(Some(KEY.to_vec())).await;
    let t = now();
    assert_eq!(
        post_signed(&hook.url(), KEY, t, DOCS_BODY).await.status,
        200
    );
    let replay = post_signed(&hook.url(), KEY, t, DOCS_BODY).await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    assert!(replay.json()["error"].as_str().unwrap().contains("replay"));
    // The same body signed at another second is a new delivery (the sink
    // re-signs every attempt; it dedupes by X-Alert-Id).
    assert_eq!(
        post_signed(&hook.url(), KEY, t - 1, DOCS_BODY).await.status,
        200
    );
    let answered: Vec<u16> = hook.requests().iter().map(|r| r.answered).collect();
    assert_eq!(answered, vec![200, 409, 200]);
}

#[tokio::test]
async fn webhook_a_failed_attempt_is_not_a_replay_of_its_retry() {
    let hook = WebhookReceiver::start(Some(KEY.to_vec())).await;
    hook.fail_next(1, Behavior::Status(503));
    let t = now();
    let first = post_signed(&hook.url(), KEY, t, DOCS_BODY).await;
    let retry = post_signed(&hook.url(), KEY, t, DOCS_BODY).await;
    assert_eq!((first.status, retry.status), (503, 200));
    assert_eq!(first.json()["ok"], false);
}

#[tokio::test]
async fn webhook_without_a_key_still_requires_json_and_an_alert_id() {
    let hook = WebhookReceiver::start(None).await;
    let no_id = post_raw(&hook.url(), r#"{"id":"x"}"#).await;
    assert_eq!(no_id.status, 400, "no X-Alert-Id: {}", no_id.body);
    let with_id = |ct: &'static str, body: &'static str| {
        reqwest::Client::new()
            .post(hook.url())
            .header("content-type", ct)
            .header("X-Alert-Id", "abc")
            .body(body)
    };
    assert_eq!(
        send(with_id("application/json", r#"{"id":"x"}"#))
            .await
            .status,
        200
    );
    assert_eq!(send(with_id("application/json", "{nope")).await.status, 400);
    assert_eq!(
        send(with_id("text/plain", r#"{"id":"x"}"#)).await.status,
        415
    );
    assert_eq!(hook.deliveries(), vec![json!({"id": "x"})]);
}

#[tokio::test]
async fn webhook_honours_status_rate_limit_hang_and_fail_next() {
    let hook = WebhookReceiver::start(None).await;
    let body = json!({"id": "x"});
    let post = || {
        send(
            reqwest::Client::new()
                .post(hook.url())
                .header("X-Alert-Id", "x")
                .json(&body),
        )
    };

    hook.set_behavior(Behavior::Status(500));
    let a = post().await;
    assert_eq!((a.status, a.json()["ok"].clone()), (500, json!(false)));

    hook.set_behavior(Behavior::RateLimited {
        retry_after_secs: 2,
    });
    let a = post().await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after"), Some("2"));

    hook.set_behavior(Behavior::Hang);
    assert_hangs(&hook.url(), &body).await;

    hook.fail_next(1, Behavior::Status(502));
    assert_eq!(post().await.status, 502);
    assert_eq!(post().await.status, 200);

    let answered: Vec<u16> = hook
        .wait_for(5, WAIT)
        .await
        .iter()
        .map(|r| r.answered)
        .collect();
    assert_eq!(answered, vec![500, 429, 0, 502, 200]);
}
