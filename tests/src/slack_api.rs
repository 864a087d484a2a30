//! A stand-in for the Slack Web API (`chat.postMessage`, `chat.update`)
//! that refuses what Slack refuses, with Slack's answers: HTTP 200 and
//! `ok:false` with an `error` for most problems, HTTP 429 with
//! `Retry-After` and `ratelimited` when told to throttle.
//!
//! Checks, as Slack does: `Authorization: Bearer xoxb-…` equal to the bot
//! token (`not_authed` without one, `invalid_auth` when wrong); a JSON body
//! (`invalid_json`); a known channel, by id or name (`channel_not_found`);
//! an archived one (`is_archived`); some content (`no_text`); at most 40,000
//! characters of `text` (`msg_too_long`); `thread_ts` an existing message
//! of that channel (`thread_not_found`); `chat.update` only of an existing
//! `ts` in that channel (`message_not_found`).

#![allow(clippy::expect_used)] // test support: a panic is the test's failure

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One message as Slack now shows it.
#[derive(Debug, Clone)]
pub struct SlackApiMessage {
    /// Channel id.
    pub channel: String,
    /// Its `ts`.
    pub ts: String,
    /// The thread it replies to, if any.
    pub thread_ts: Option<String>,
    /// The body of the last post or update.
    pub body: Value,
    /// How many times `chat.update` rewrote it.
    pub updates: usize,
}

/// One call as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct SlackApiCall {
    /// `chat.postMessage` or `chat.update`.
    pub method: String,
    /// The JSON body.
    pub body: Value,
    /// HTTP status answered.
    pub status: u16,
    /// `error` when `ok:false`.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    token: String,
    /// id → name.
    channels: BTreeMap<String, String>,
    archived: Vec<String>,
    messages: Vec<SlackApiMessage>,
    calls: Vec<SlackApiCall>,
    /// Answers to give next, before validating: `Err(retry_after)` is a 429.
    next: VecDeque<Result<String, u64>>,
    seq: u64,
}

/// The stand-in, on 127.0.0.1; stopped on drop.
#[derive(Debug)]
pub struct SlackApi {
    base: String,
    inner: Arc<Mutex<Inner>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for SlackApi {
    fn drop(&mut self) {
        self._task.abort();
    }
}

impl SlackApi {
    /// Serves a workspace with bot token `token` and `channels` (id, name).
    pub async fn start(token: &str, channels: &[(&str, &str)]) -> SlackApi {
        let inner = Arc::new(Mutex::new(Inner {
            token: token.to_string(),
            channels: channels
                .iter()
                .map(|(id, name)| (id.to_string(), name.to_string()))
                .collect(),
            ..Inner::default()
        }));
        let app = axum::Router::new()
            .route("/api/{method}", axum::routing::post(call))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Slack API stand-in");
        let base = format!("http://{}/api", listener.local_addr().expect("its address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        SlackApi {
            base,
            inner,
            _task: task,
        }
    }

    /// The `SLACK_API_URL` to give the enricher.
    pub fn url(&self) -> String {
        self.base.clone()
    }

    /// Archives channel `id`.
    pub fn archive(&self, id: &str) {
        self.lock().archived.push(id.to_string());
    }

    /// The next call answers HTTP 200 `ok:false` with `error`.
    pub fn fail_next(&self, error: &str) {
        self.lock().next.push_back(Ok(error.to_string()));
    }

    /// The next call answers HTTP 429 `ratelimited` with `Retry-After`.
    pub fn rate_limit_next(&self, retry_after_secs: u64) {
        self.lock().next.push_back(Err(retry_after_secs));
    }

    /// Every message, top-level and replies, in the order posted.
    pub fn messages(&self) -> Vec<SlackApiMessage> {
        self.lock().messages.clone()
    }

    /// Every call, in arrival order.
    pub fn calls(&self) -> Vec<SlackApiCall> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn ok_false(error: &str) -> Value {
    json!({"ok": false, "error": error})
}

async fn call(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut s = inner.lock().unwrap_or_else(|e| e.into_inner());
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let (status, answer, retry_after) = match s.next.pop_front() {
        Some(Err(secs)) => (429, ok_false("ratelimited"), Some(secs)),
        Some(Ok(error)) => (200, ok_false(&error), None),
        None => match validate(&mut s, &method, &headers, parsed.as_ref()) {
            Ok(v) => (200, v, None),
            Err(e) => (
                if e == "unknown_method" { 404 } else { 200 },
                ok_false(e),
                None,
            ),
        },
    };
    s.calls.push(SlackApiCall {
        method: method.clone(),
        body: parsed.unwrap_or(Value::Null),
        status,
        error: answer["error"].as_str().map(String::from),
    });
    let mut response = (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        axum::Json(answer),
    )
        .into_response();
    if let Some(secs) = retry_after
        && let Ok(v) = secs.to_string().parse()
    {
        response.headers_mut().insert("retry-after", v);
    }
    response
}

fn validate(
    s: &mut Inner,
    method: &str,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<Value, &'static str> {
    if !matches!(method, "chat.postMessage" | "chat.update") {
        return Err("unknown_method");
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or("not_authed")?;
    let token = auth.strip_prefix("Bearer ").ok_or("invalid_auth")?;
    if token != s.token || !token.starts_with("xoxb-") {
        return Err("invalid_auth");
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = body.filter(|_| json_type).ok_or("invalid_json")?;
    let wanted = body["channel"].as_str().ok_or("channel_not_found")?;
    let channel = s
        .channels
        .iter()
        .find(|(id, name)| *id == wanted || *name == wanted.trim_start_matches('#'))
        .map(|(id, _)| id.clone())
        .ok_or("channel_not_found")?;
    if s.archived.contains(&channel) {
        return Err("is_archived");
    }
    let has_content = ["text", "blocks", "attachments"]
        .iter()
        .any(|k| !body[*k].is_null());
    if !has_content {
        return Err("no_text");
    }
    if body["text"]
        .as_str()
        .is_some_and(|t| t.chars().count() > 40_000)
    {
        return Err("msg_too_long");
    }
    if method == "chat.update" {
        let ts = body["ts"].as_str().ok_or("message_not_found")?;
        let message = s
            .messages
            .iter_mut()
            .find(|m| m.channel == channel && m.ts == ts)
            .ok_or("message_not_found")?;
        message.body = body.clone();
        message.updates += 1;
        return Ok(json!({"ok": true, "channel": channel, "ts": ts}));
    }
    let thread_ts = match body["thread_ts"].as_str() {
        None => None,
        Some(t) => {
            let exists = s
                .messages
                .iter()
                .any(|m| m.channel == channel && m.ts == t && m.thread_ts.is_none());
            if !exists {
                return Err("thread_not_found");
            }
            Some(t.to_string())
        }
    };
    s.seq += 1;
    let ts = format!("1764670000.{:06}", s.seq);
    s.messages.push(SlackApiMessage {
        channel: channel.clone(),
        ts: ts.clone(),
        thread_ts,
        body: body.clone(),
        updates: 0,
    });
    Ok(json!({"ok": true, "channel": channel, "ts": ts, "message": body}))
}
