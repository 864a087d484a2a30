//! Local stand-ins for the enricher's HTTP sinks: a Slack incoming webhook, the
//! PagerDuty Events API v2 and our signed generic webhook, each on its own free
//! 127.0.0.1 port and stopped on drop.
//!
//! They validate like the real services so that a test catches a payload the
//! real service would reject, and each can be told to misbehave (a status, a
//! rate limit with `Retry-After`, a request held open) to exercise the sinks'
//! retry stage. Every request is recorded with the status it was answered.
//!
//! Sources for the shapes (read through the project's public-reference search):
//! - Slack incoming webhooks: <https://api.slack.com/messaging/webhooks>; the
//!   error strings and their statuses (`invalid_payload` 400, `no_service`
//!   404, `channel_not_found` 404, `action_prohibited` 403,
//!   `channel_is_archived` 410, `rollup_error` 500) from
//!   <https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks>;
//!   429 with `Retry-After` (seconds) for incoming webhooks from
//!   <https://api.slack.com/docs/rate-limits>.
//! - Block Kit limits, from <https://docs.slack.dev/reference/block-kit/blocks>
//!   and its per-block pages: up to 50 blocks per message; header text is a
//!   `plain_text` object of at most 150 characters; section text 1..=3000
//!   characters, `fields` at most 10 items of at most 2000 characters each,
//!   section needs `text` or `fields`; context `elements` at most 10; actions
//!   `elements` at most 25; `block_id` at most 255 characters; image
//!   `alt_text` at most 2000 characters. A text object's text is at least 1
//!   character.
//! - Attachment colours (`good`, `warning`, `danger` or a hex code such as
//!   `#36a64f`): <https://api.slack.com/reference/messaging/attachments>.
//! - PagerDuty Events API v2: the OpenAPI document
//!   `PagerDuty/api-schema/reference/events-v2/openapiv3.json` (request
//!   fields, required `routing_key`/`event_action`, payload
//!   `summary`/`severity`/`source`, severity enum, links/images, the 202
//!   `{"status":"success","message":"Event processed","dedup_key":...}`, the
//!   `Unrecognized object`/`JSON parse error` shape), the 400 example
//!   `{"status":"invalid event","message":"Event object is invalid","errors":
//!   ["Length of 'routing_key' is incorrect (should be 32 characters)"]}` from
//!   <https://v2.developer.pagerduty.com/docs/send-an-event-events-api-v2>,
//!   the `'event_action' is missing or blank` wording from go-pagerduty's
//!   tests, the 1024-character summary and 255-character dedup_key limits
//!   from <https://developer.pagerduty.com/docs/events-api-v2/trigger-events/>,
//!   and the 429 body `{"status":"throttle exceeded","message":"Requests for
//!   this service are arriving too quickly.  Please retry later."}` as logged
//!   from the real service (Cumulus NetQ notifier docs; go-pagerduty tests).
//! - The signed webhook is ours: see `docs/sinks.md` and
//!   [`verify_signature`], the reference verifier.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use hmac::{KeyInit, Mac};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

/// How long a [`Behavior::Hang`] holds a request at most before answering 503.
pub const HANG_CAP: Duration = Duration::from_secs(60);

/// Largest body read (PagerDuty documents 512 KB per event; Slack less).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Response header carrying why a stand-in rejected a request (the body stays
/// exactly what the real service sends).
pub const DETAIL_HEADER: &str = "x-stand-in-detail";

/// How a receiver answers the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behavior {
    /// Like the real service: validate, then accept or reject.
    Ok,
    /// Answer this status (with the service's error body) without validating.
    /// A number that is not an HTTP status is answered 500.
    Status(u16),
    /// Answer 429 with `Retry-After: <secs>` and the service's throttle body.
    RateLimited {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// Like [`Behavior::Ok`], answered after this pause: a healthy but slow
    /// receiver.
    Slow {
        /// The pause before the answer, in milliseconds.
        millis: u64,
    },
    /// Hold the request open without answering until the client gives up, the
    /// receiver is dropped, or [`HANG_CAP`] passes (then 503). Recorded at
    /// arrival with `answered: 0`.
    Hang,
}

/// One request as a receiver saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, normally.
    pub method: String,
    /// The request path, e.g. `/v2/enqueue`.
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Bytes,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    /// The status answered; 0 while held open by [`Behavior::Hang`].
    pub answered: u16,
    /// Why the stand-in answered as it did, when it rejected (e.g.
    /// `blocks[0].text.text: 151 characters, at most 150`).
    pub detail: Option<String>,
}

impl Recorded {
    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as (lossy) UTF-8 text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Display for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = self.text();
        let shown: String = body.chars().take(300).collect();
        let more = if body.chars().count() > 300 {
            "…"
        } else {
            ""
        };
        write!(f, "{} {} → {}", self.method, self.path, self.answered)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        write!(f, " body: {shown}{more}")
    }
}

// ---------------------------------------------------------------------------
// The shared server machinery.
// ---------------------------------------------------------------------------

/// A request being answered.
struct Incoming {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    json: Option<Value>,
}

/// An answer.
struct Reply {
    status: u16,
    content_type: &'static str,
    body: String,
    retry_after: Option<u64>,
    detail: Option<String>,
}

impl Reply {
    fn text(status: u16, body: &str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
            retry_after: None,
            detail: None,
        }
    }

    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.to_string(),
            retry_after: None,
            detail: None,
        }
    }

    fn detail(mut self, detail: impl Into<String>) -> Reply {
        self.detail = Some(detail.into());
        self
    }

    fn retry_after(mut self, secs: u64) -> Reply {
        self.retry_after = Some(secs);
        self
    }

    fn into_response(self) -> Response {
        let mut resp = Response::new(Body::from(self.body));
        *resp.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(v) = self
            .detail
            .as_deref()
            .and_then(|d| HeaderValue::from_str(d).ok())
        {
            headers.insert(DETAIL_HEADER, v);
        }
        resp
    }
}

/// What differs between the receivers.
trait Api: Send + Sync + 'static {
    /// The one path the service answers.
    fn path(&self) -> &'static str;
    /// The answer for any other path or method.
    fn not_found(&self) -> Reply;
    /// [`Behavior::Ok`]: validate like the real service.
    fn accept(&self, req: &Incoming) -> Reply;
    /// [`Behavior::Status`].
    fn status(&self, code: u16) -> Reply;
    /// [`Behavior::RateLimited`] (the `Retry-After` header is added by the caller).
    fn rate_limited(&self) -> Reply;
}

/// Behaviour for the next requests.
struct Plan {
    default: Behavior,
    next: VecDeque<Behavior>,
}

struct Shared<A> {
    api: A,
    plan: Mutex<Plan>,
    log: watch::Sender<Vec<Recorded>>,
    stop: watch::Sender<bool>,
}

impl<A: Api> Shared<A> {
    fn next_behavior(&self) -> Behavior {
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        match plan.next.pop_front() {
            Some(b) => b,
            None => plan.default.clone(),
        }
    }

    fn record(&self, req: &Incoming, answered: u16, detail: Option<String>) {
        let rec = Recorded {
            method: req.method.to_string(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body: req.body.clone(),
            json: req.json.clone(),
            answered,
            detail,
        };
        self.log.send_modify(|log| log.push(rec));
    }
}

/// One stand-in server; the receivers wrap it.
struct Server<A> {
    addr: SocketAddr,
    shared: Arc<Shared<A>>,
}

impl<A: Api> Server<A> {
    async fn start(api: A) -> Server<A> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind a stand-in receiver on 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("stand-in receiver address: {e}"));
        let (stop, _) = watch::channel(false);
        let (log, _) = watch::channel(Vec::new());
        let shared = Arc::new(Shared {
            api,
            plan: Mutex::new(Plan {
                default: Behavior::Ok,
                next: VecDeque::new(),
            }),
            log,
            stop,
        });
        let app = Router::new()
            .fallback(handle::<A>)
            .with_state(shared.clone());
        let mut stopped = shared.stop.subscribe();
        tokio::spawn(async move {
            // Graceful: on drop the listener closes, held (Hang) requests are
            // released and idle keep-alive connections are closed.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
        Server { addr, shared }
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn url(&self) -> String {
        format!("{}{}", self.base(), self.shared.api.path())
    }

    fn set_behavior(&self, behavior: Behavior) {
        let mut plan = self
            .shared
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plan.default = behavior;
        plan.next.clear();
    }

    fn fail_next(&self, n: usize, behavior: Behavior) {
        let mut plan = self
            .shared
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        plan.default = Behavior::Ok;
        plan.next = std::iter::repeat_n(behavior, n).collect();
    }

    fn requests(&self) -> Vec<Recorded> {
        self.shared.log.borrow().clone()
    }

    async fn wait_for(&self, what: &str, n: usize, timeout: Duration) -> Vec<Recorded> {
        let mut rx = self.shared.log.subscribe();
        let arrived = tokio::time::timeout(timeout, async {
            match rx.wait_for(|log| log.len() >= n).await {
                Ok(log) => Some(log.clone()),
                Err(_) => None,
            }
        })
        .await;
        if let Ok(Some(log)) = arrived {
            return log;
        }
        let got = self.requests();
        let list: Vec<String> = got.iter().map(|r| format!("  - {r}")).collect();
        panic!(
            "{what} at {}: expected {n} request(s) within {timeout:?}, {} arrived{}{}",
            self.url(),
            got.len(),
            if list.is_empty() { "" } else { ":\n" },
            list.join("\n")
        );
    }
}

impl<A> Drop for Server<A> {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
    }
}

async fn handle<A: Api>(State(shared): State<Arc<Shared<A>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return Reply::text(413, "request body too large or unreadable")
                .detail(e.to_string())
                .into_response();
        }
    };
    let json = serde_json::from_slice::<Value>(&body).ok();
    let incoming = Incoming {
        method: parts.method,
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
        json,
    };
    let reply = if incoming.method != Method::POST || incoming.path != shared.api.path() {
        shared
            .api
            .not_found()
            .detail(format!("only POST {} is served here", shared.api.path()))
    } else {
        match shared.next_behavior() {
            Behavior::Ok => shared.api.accept(&incoming),
            Behavior::Slow { millis } => {
                tokio::time::sleep(Duration::from_millis(millis)).await;
                shared.api.accept(&incoming)
            }
            Behavior::Status(code) => shared
                .api
                .status(code)
                .detail(format!("Behavior::Status({code})")),
            Behavior::RateLimited { retry_after_secs } => shared
                .api
                .rate_limited()
                .retry_after(retry_after_secs)
                .detail("Behavior::RateLimited"),
            Behavior::Hang => {
                shared.record(&incoming, 0, Some("held open (Behavior::Hang)".into()));
                let mut stop = shared.stop.subscribe();
                tokio::select! {
                    _ = tokio::time::sleep(HANG_CAP) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
                return Reply::text(503, "held open, then released").into_response();
            }
        }
    };
    shared.record(&incoming, reply.status, reply.detail.clone());
    reply.into_response()
}

fn reason(code: u16) -> String {
    StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .to_string()
}

/// The methods every receiver has, delegated to its [`Server`].
macro_rules! common_methods {
    ($what:literal) => {
        /// The full URL to configure in the sink.
        pub fn url(&self) -> String {
            self.server.url()
        }

        /// `http://127.0.0.1:PORT`, without the path.
        pub fn base_url(&self) -> String {
            self.server.base()
        }

        /// Applies `behavior` to every following request (and forgets a
        /// pending [`fail_next`](Self::fail_next)).
        pub fn set_behavior(&self, behavior: Behavior) {
            self.server.set_behavior(behavior)
        }

        /// Applies `behavior` to the next `n` requests, then behaves like the
        /// real service again ([`Behavior::Ok`]).
        pub fn fail_next(&self, n: usize, behavior: Behavior) {
            self.server.fail_next(n, behavior)
        }

        /// Every request so far, in arrival order (also those to a wrong path).
        pub fn requests(&self) -> Vec<Recorded> {
            self.server.requests()
        }

        /// Waits until at least `n` requests arrived and returns all of them;
        /// panics after `timeout`, listing what did arrive.
        pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
            self.server.wait_for($what, n, timeout).await
        }
    };
}

// ---------------------------------------------------------------------------
// Slack incoming webhook.
// ---------------------------------------------------------------------------

/// The path of the Slack stand-in's incoming webhook (the shape of
/// `https://hooks.slack.com/services/T…/B…/<24 characters>`).
pub const SLACK_WEBHOOK_PATH: &str = "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX";

/// Block types a message may carry (Block Kit layout blocks valid in messages
/// that a webhook may post).
const SLACK_BLOCK_TYPES: &[&str] = &[
    "section",
    "header",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
];

/// A Slack incoming webhook: answers `200 ok`, or the real error strings.
pub struct SlackReceiver {
    server: Server<SlackApi>,
}

struct SlackApi;

impl SlackReceiver {
    /// Starts on a free 127.0.0.1 port.
    pub async fn start() -> SlackReceiver {
        SlackReceiver {
            server: Server::start(SlackApi).await,
        }
    }

    common_methods!("Slack stand-in");

    /// The parsed bodies of the messages Slack accepted (answered 200).
    pub fn messages(&self) -> Vec<Value> {
        accepted(&self.requests(), 200)
    }
}

impl Api for SlackApi {
    fn path(&self) -> &'static str {
        SLACK_WEBHOOK_PATH
    }

    fn not_found(&self) -> Reply {
        Reply::text(404, "no_service")
    }

    fn accept(&self, req: &Incoming) -> Reply {
        match validate_slack(req.json.as_ref()) {
            Ok(()) => Reply::text(200, "ok"),
            Err((error, detail)) => Reply::text(400, error).detail(detail),
        }
    }

    fn status(&self, code: u16) -> Reply {
        // The strings Slack documents for these statuses.
        let body = match code {
            400 => "invalid_payload".to_string(),
            403 => "action_prohibited".to_string(),
            404 => "channel_not_found".to_string(),
            410 => "channel_is_archived".to_string(),
            429 => "rate_limited".to_string(),
            500 => "rollup_error".to_string(),
            other => reason(other).to_lowercase().replace(' ', "_"),
        };
        Reply::text(code, &body)
    }

    fn rate_limited(&self) -> Reply {
        Reply::text(429, "rate_limited")
    }
}

type SlackRejection = (&'static str, String);

fn validate_slack(json: Option<&Value>) -> Result<(), SlackRejection> {
    let bad_payload = |d: &str| ("invalid_payload", d.to_string());
    let Some(Value::Object(msg)) = json else {
        return Err(bad_payload("the body is not a JSON object"));
    };
    let text = msg.get("text").filter(|v| !v.is_null());
    let blocks = msg.get("blocks").filter(|v| !v.is_null());
    let attachments = msg.get("attachments").filter(|v| !v.is_null());
    if text.is_none() && blocks.is_none() && attachments.is_none() {
        return Err(bad_payload(
            "the message has neither text nor blocks nor attachments",
        ));
    }
    let text = match text {
        None => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(bad_payload("text is not a string")),
    };
    let blocks = match blocks {
        None => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(bad_payload("blocks is not an array")),
    };
    let attachments = match attachments {
        None => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(bad_payload("attachments is not an array")),
    };
    if text.trim().is_empty() && blocks.is_empty() && attachments.is_empty() {
        return Err((
            "no_text",
            "text, blocks and attachments are all empty".into(),
        ));
    }
    validate_blocks("blocks", blocks).map_err(|d| ("invalid_blocks", d))?;
    for (i, a) in attachments.iter().enumerate() {
        let at = format!("attachments[{i}]");
        let Value::Object(a) = a else {
            return Err(("invalid_attachments", format!("{at} is not an object")));
        };
        if let Some(color) = a.get("color").filter(|v| !v.is_null()) {
            let ok = color.as_str().is_some_and(|c| {
                matches!(c, "good" | "warning" | "danger")
                    || c.strip_prefix('#').is_some_and(|hex| {
                        hex.len() == 6 && hex.chars().all(|h| h.is_ascii_hexdigit())
                    })
            });
            if !ok {
                return Err((
                    "invalid_attachments",
                    format!("{at}.color: {color} is neither #RRGGBB nor good/warning/danger"),
                ));
            }
        }
        match a.get("blocks").filter(|v| !v.is_null()) {
            None => {}
            Some(Value::Array(b)) => {
                validate_blocks(&format!("{at}.blocks"), b).map_err(|d| ("invalid_blocks", d))?
            }
            Some(_) => {
                return Err(("invalid_blocks", format!("{at}.blocks is not an array")));
            }
        }
    }
    Ok(())
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Checks a `{type: plain_text|mrkdwn, text}` object; `plain_only` for header.
fn text_object(at: &str, v: Option<&Value>, max: usize, plain_only: bool) -> Result<(), String> {
    let Some(Value::Object(obj)) = v else {
        return Err(format!("{at}: a text object is required"));
    };
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or("");
    let allowed = if plain_only {
        kind == "plain_text"
    } else {
        matches!(kind, "plain_text" | "mrkdwn")
    };
    if !allowed {
        let want = if plain_only {
            "plain_text"
        } else {
            "plain_text or mrkdwn"
        };
        return Err(format!("{at}.type: {kind:?}, must be {want}"));
    }
    let Some(text) = obj.get("text").and_then(Value::as_str) else {
        return Err(format!("{at}.text: missing or not a string"));
    };
    let n = chars(text);
    if n == 0 {
        return Err(format!("{at}.text: empty, at least 1 character"));
    }
    if n > max {
        return Err(format!("{at}.text: {n} characters, at most {max}"));
    }
    Ok(())
}

fn array<'a>(
    at: &str,
    v: Option<&'a Value>,
    min: usize,
    max: usize,
) -> Result<&'a [Value], String> {
    let Some(Value::Array(items)) = v else {
        return Err(format!("{at}: an array is required"));
    };
    if items.len() < min || items.len() > max {
        return Err(format!(
            "{at}: {} items, must be {min} to {max}",
            items.len()
        ));
    }
    Ok(items)
}

fn validate_blocks(at: &str, blocks: &[Value]) -> Result<(), String> {
    if blocks.len() > 50 {
        return Err(format!("{at}: {} blocks, at most 50", blocks.len()));
    }
    for (i, block) in blocks.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let Value::Object(b) = block else {
            return Err(format!("{at}: not an object"));
        };
        validate_block(&at, b)?;
    }
    Ok(())
}

fn validate_block(at: &str, b: &Map<String, Value>) -> Result<(), String> {
    let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
    if !SLACK_BLOCK_TYPES.contains(&kind) {
        return Err(format!("{at}.type: unknown block type {kind:?}"));
    }
    if let Some(id) = b.get("block_id").filter(|v| !v.is_null()) {
        let n = id.as_str().map(chars);
        if !n.is_some_and(|n| (1..=255).contains(&n)) {
            return Err(format!("{at}.block_id: a string of 1 to 255 characters"));
        }
    }
    match kind {
        "header" => text_object(&format!("{at}.text"), b.get("text"), 150, true),
        "section" => {
            let text = b.get("text").filter(|v| !v.is_null());
            let fields = b.get("fields").filter(|v| !v.is_null());
            if text.is_none() && fields.is_none() {
                return Err(format!("{at}: a section needs text or fields"));
            }
            if text.is_some() {
                text_object(&format!("{at}.text"), text, 3000, false)?;
            }
            if fields.is_some() {
                let items = array(&format!("{at}.fields"), fields, 1, 10)?;
                for (j, f) in items.iter().enumerate() {
                    text_object(&format!("{at}.fields[{j}]"), Some(f), 2000, false)?;
                }
            }
            Ok(())
        }
        "context" => {
            let items = array(&format!("{at}.elements"), b.get("elements"), 1, 10)?;
            for (j, e) in items.iter().enumerate() {
                let eat = format!("{at}.elements[{j}]");
                match e.get("type").and_then(Value::as_str) {
                    Some("image") => image_element(&eat, e)?,
                    _ => text_object(&eat, Some(e), 3000, false)?,
                }
            }
            Ok(())
        }
        "actions" => array(&format!("{at}.elements"), b.get("elements"), 1, 25).map(|_| ()),
        "image" => image_element(at, &Value::Object(b.clone())),
        "rich_text" => {
            array(&format!("{at}.elements"), b.get("elements"), 1, usize::MAX).map(|_| ())
        }
        _ => Ok(()), // divider
    }
}

fn image_element(at: &str, e: &Value) -> Result<(), String> {
    let url = e.get("image_url").and_then(Value::as_str);
    if url.is_none() && e.get("slack_file").is_none() {
        return Err(format!("{at}: image_url or slack_file is required"));
    }
    if let Some(u) = url
        && !(1..=3000).contains(&chars(u))
    {
        return Err(format!("{at}.image_url: 1 to 3000 characters"));
    }
    match e.get("alt_text").and_then(Value::as_str) {
        Some(alt) if (1..=2000).contains(&chars(alt)) => Ok(()),
        _ => Err(format!("{at}.alt_text: a string of 1 to 2000 characters")),
    }
}

// ---------------------------------------------------------------------------
// PagerDuty Events API v2.
// ---------------------------------------------------------------------------

/// The PagerDuty stand-in's path.
pub const PAGERDUTY_PATH: &str = "/v2/enqueue";

/// PagerDuty's Events API v2 `enqueue` endpoint.
pub struct PagerDutyReceiver {
    server: Server<PagerDutyApi>,
}

struct PagerDutyApi {
    generated: AtomicU64,
}

impl PagerDutyReceiver {
    /// Starts on a free 127.0.0.1 port.
    pub async fn start() -> PagerDutyReceiver {
        PagerDutyReceiver {
            server: Server::start(PagerDutyApi {
                generated: AtomicU64::new(0),
            })
            .await,
        }
    }

    common_methods!("PagerDuty stand-in");

    /// The accepted events (answered 202), in arrival order.
    pub fn events(&self) -> Vec<Value> {
        accepted(&self.requests(), 202)
    }
}

fn accepted(requests: &[Recorded], status: u16) -> Vec<Value> {
    requests
        .iter()
        .filter(|r| r.answered == status)
        .filter_map(|r| r.json.clone())
        .collect()
}

impl Api for PagerDutyApi {
    fn path(&self) -> &'static str {
        PAGERDUTY_PATH
    }

    fn not_found(&self) -> Reply {
        Reply::json(
            404,
            json!({"status": "Not Found", "message": "Not Found", "errors": ["Not Found"]}),
        )
    }

    fn accept(&self, req: &Incoming) -> Reply {
        let Some(Value::Object(event)) = &req.json else {
            return Reply::json(
                400,
                json!({
                    "status": "Unrecognized object",
                    "message": "Event object format is unrecognized",
                    "errors": ["JSON parse error"],
                }),
            )
            .detail("the body is not a JSON object");
        };
        let errors = validate_pagerduty(event);
        if !errors.is_empty() {
            let detail = errors.join("; ");
            return Reply::json(
                400,
                json!({
                    "status": "invalid event",
                    "message": "Event object is invalid",
                    "errors": errors,
                }),
            )
            .detail(detail);
        }
        let dedup_key = match event.get("dedup_key").and_then(Value::as_str) {
            Some(k) if !k.is_empty() => k.to_string(),
            _ => {
                // PagerDuty generates a 32-hex key when none is given.
                let n = self.generated.fetch_add(1, Ordering::Relaxed);
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or_default();
                format!("{nanos:016x}{n:016x}")
            }
        };
        Reply::json(
            202,
            json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key}),
        )
    }

    fn status(&self, code: u16) -> Reply {
        let name = reason(code);
        Reply::json(
            code,
            json!({"status": name, "message": format!("{name} (stand-in)"), "errors": [name]}),
        )
    }

    fn rate_limited(&self) -> Reply {
        Reply::json(
            429,
            json!({
                "status": "throttle exceeded",
                "message": "Requests for this service are arriving too quickly.  Please retry later.",
                "errors": ["Enhance Your Calm."],
            }),
        )
    }
}

/// PagerDuty's validation; an empty list means valid. Messages follow the real
/// API's wording (`'<field>' is missing or blank`, `Length of '<field>' ...`).
fn validate_pagerduty(event: &Map<String, Value>) -> Vec<String> {
    let mut errors = Vec::new();
    let present = |obj: &Map<String, Value>, k: &str| obj.get(k).cloned().filter(|v| !v.is_null());
    let blank = |v: &Option<Value>| match v {
        None => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(_) => false,
    };

    let routing_key = present(event, "routing_key");
    if blank(&routing_key) {
        errors.push("'routing_key' is missing or blank".to_string());
    } else if routing_key
        .as_ref()
        .and_then(Value::as_str)
        .is_none_or(|k| k.chars().count() != 32)
    {
        errors.push("Length of 'routing_key' is incorrect (should be 32 characters)".to_string());
    }

    let action = present(event, "event_action");
    let action_str = action.as_ref().and_then(Value::as_str).unwrap_or("");
    if blank(&action) {
        errors.push("'event_action' is missing or blank".to_string());
    } else if !matches!(action_str, "trigger" | "acknowledge" | "resolve") {
        errors.push(
            "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)".to_string(),
        );
    }

    let dedup = present(event, "dedup_key");
    match &dedup {
        Some(Value::String(k)) if k.chars().count() > 255 => errors
            .push("Length of 'dedup_key' is too long (should be at most 255 characters)".into()),
        Some(Value::String(_)) | None => {}
        Some(_) => errors.push("'dedup_key' must be a string".into()),
    }
    if matches!(action_str, "acknowledge" | "resolve") && blank(&dedup) {
        errors.push(format!(
            "'dedup_key' is missing or blank (required for {action_str})"
        ));
    }

    for k in ["client", "client_url"] {
        if present(event, k).is_some_and(|v| !v.is_string()) {
            errors.push(format!("'{k}' must be a string"));
        }
    }
    check_list(event, "links", "href", &["text"], &mut errors);
    check_list(event, "images", "src", &["href", "alt"], &mut errors);

    if action_str == "trigger" {
        match present(event, "payload") {
            Some(Value::Object(p)) => {
                let summary = present(&p, "summary");
                if blank(&summary) || !summary.as_ref().is_some_and(Value::is_string) {
                    errors.push("'payload.summary' is missing or blank".into());
                } else if summary
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.chars().count() > 1024)
                {
                    errors.push(
                        "Length of 'payload.summary' is too long (should be at most 1024 characters)"
                            .into(),
                    );
                }
                let source = present(&p, "source");
                if blank(&source) || !source.as_ref().is_some_and(Value::is_string) {
                    errors.push("'payload.source' is missing or blank".into());
                }
                let severity = present(&p, "severity");
                if blank(&severity) {
                    errors.push("'payload.severity' is missing or blank".into());
                } else if !severity
                    .as_ref()
                    .and_then(Value::as_str)
                    .is_some_and(|s| matches!(s, "critical" | "error" | "warning" | "info"))
                {
                    errors.push(
                        "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
                            .into(),
                    );
                }
                if let Some(ts) = present(&p, "timestamp")
                    && !ts.as_str().is_some_and(is_iso8601)
                {
                    errors.push(format!(
                        "'payload.timestamp' is invalid (must be an ISO 8601 date-time): {ts}"
                    ));
                }
                for k in ["component", "group", "class"] {
                    if present(&p, k).is_some_and(|v| !v.is_string()) {
                        errors.push(format!("'payload.{k}' must be a string"));
                    }
                }
            }
            None => errors.push("'payload' is missing or blank".into()),
            Some(_) => errors.push("'payload' must be an object".into()),
        }
    }
    errors
}

/// `links` / `images`: arrays of objects with a required string field and
/// optional string fields.
fn check_list(
    event: &Map<String, Value>,
    name: &str,
    required: &str,
    optional: &[&str],
    errors: &mut Vec<String>,
) {
    let Some(list) = event.get(name).filter(|v| !v.is_null()) else {
        return;
    };
    let Value::Array(items) = list else {
        errors.push(format!("'{name}' must be an array"));
        return;
    };
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            errors.push(format!("'{name}[{i}]' must be an object"));
            continue;
        };
        if obj
            .get(required)
            .and_then(Value::as_str)
            .is_none_or(|s| s.trim().is_empty())
        {
            errors.push(format!("'{name}[{i}].{required}' is missing or blank"));
        }
        for k in optional {
            if obj.get(*k).is_some_and(|v| !v.is_null() && !v.is_string()) {
                errors.push(format!("'{name}[{i}].{k}' must be a string"));
            }
        }
    }
}

/// An ISO 8601 date-time with an offset (`2015-07-17T08:42:58.315+0000`,
/// `2026-11-28T04:41:59.471468798Z`, `...+02:00`).
fn is_iso8601(s: &str) -> bool {
    s.parse::<jiff::Timestamp>().is_ok()
        || jiff::fmt::strtime::parse("%Y-%m-%dT%H:%M:%S%.f%z", s)
            .and_then(|t| t.to_timestamp())
            .is_ok()
}

// ---------------------------------------------------------------------------
// Our signed webhook.
// ---------------------------------------------------------------------------

/// The webhook stand-in's path.
pub const WEBHOOK_PATH: &str = "/hooks/alerts";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Alert-Manager-Signature";
/// Header carrying the envelope id.
pub const ALERT_ID_HEADER: &str = "X-Alert-Id";
/// The tolerance the webhook stand-in allows between `t` and its clock.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// An element of the header is not `key=value`.
    #[error("malformed signature header: element {0:?} is not key=value")]
    Malformed(String),
    /// No `t=` element.
    #[error("signature header has no t= element")]
    MissingTimestamp,
    /// More than one `t=` element.
    #[error("signature header has more than one t= element")]
    DuplicateTimestamp,
    /// `t` is not an integer number of seconds.
    #[error("signature timestamp {0:?} is not an integer")]
    BadTimestamp(String),
    /// No `v1=` element.
    #[error("signature header has no v1= element")]
    MissingSignature,
    /// A `v1` value is not 64 lowercase hex digits.
    #[error("signature v1={0:?} is not 64 lowercase hex digits")]
    BadHex(String),
    /// No `v1` matches the HMAC of `"<t>.<body>"` under this key.
    #[error("signature does not match the body and key")]
    Mismatch,
    /// `t` is older than the tolerance: a replay or a delayed request.
    #[error("signature timestamp {t} is {age} s old, more than the {tolerance} s allowed")]
    TooOld {
        /// The signed timestamp.
        t: i64,
        /// `now - t`.
        age: i64,
        /// The tolerance.
        tolerance: i64,
    },
    /// `t` is ahead of the receiver's clock by more than the tolerance.
    #[error(
        "signature timestamp {t} is {ahead} s in the future, more than the {tolerance} s allowed"
    )]
    InFuture {
        /// The signed timestamp.
        t: i64,
        /// `t - now`.
        ahead: i64,
        /// The tolerance.
        tolerance: i64,
    },
}

/// The `X-Alert-Manager-Signature` value for `body` signed at `t`:
/// `t=<t>,v1=<lowercase hex HMAC-SHA256(key, "<t>.<body>")>`.
pub fn signature_header(key: &[u8], t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(signed_mac(key, t, body).finalize().into_bytes())
    )
}

fn signed_mac(key: &[u8], t: i64, body: &[u8]) -> hmac::Hmac<sha2::Sha256> {
    // HMAC takes keys of any length, so new_from_slice cannot fail.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(e) => panic!("HMAC-SHA256 rejected a key: {e}"),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Verifies an `X-Alert-Manager-Signature` header; the reference verifier.
///
/// `header` is `t=<unix seconds>,v1=<hex>` (elements in any order, spaces
/// around them ignored; several `v1` are allowed, e.g. while a key is rotated,
/// and one matching is enough; unknown elements such as a future `v2` are
/// ignored). The signature is checked first, with a constant-time comparison
/// of the HMAC-SHA256 of `"<t>.<raw body>"`, then `|now - t| <= tolerance`.
/// Returns `t`.
pub fn verify_signature(
    key: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let (t, signatures) = parse_signature_header(header)?;
    let mut decoded = Vec::with_capacity(signatures.len());
    for v1 in &signatures {
        let is_lower_hex = v1.len() == 64
            && v1
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match hex::decode(v1) {
            Ok(bytes) if is_lower_hex => decoded.push(bytes),
            _ => return Err(SignatureError::BadHex(v1.clone())),
        }
    }
    let mac = signed_mac(key, t, body);
    // verify_slice compares in constant time (subtle's ct_eq).
    let matched = decoded.iter().fold(false, |any, sig| {
        mac.clone().verify_slice(sig).is_ok() | any
    });
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    let age = now_unix.saturating_sub(t);
    if age > tolerance_secs {
        return Err(SignatureError::TooOld {
            t,
            age,
            tolerance: tolerance_secs,
        });
    }
    if -age > tolerance_secs {
        return Err(SignatureError::InFuture {
            t,
            ahead: -age,
            tolerance: tolerance_secs,
        });
    }
    Ok(t)
}

/// `t` and the `v1` values of a signature header.
fn parse_signature_header(header: &str) -> Result<(i64, Vec<String>), SignatureError> {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((k, v)) = part.split_once('=') else {
            return Err(SignatureError::Malformed(part.to_string()));
        };
        match k.trim() {
            "t" => {
                if t.is_some() {
                    return Err(SignatureError::DuplicateTimestamp);
                }
                let v = v.trim();
                let secs = v
                    .parse::<i64>()
                    .map_err(|_| SignatureError::BadTimestamp(v.to_string()))?;
                t = Some(secs);
            }
            "v1" => v1.push(v.trim().to_string()),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::MissingTimestamp)?;
    if v1.is_empty() {
        return Err(SignatureError::MissingSignature);
    }
    Ok((t, v1))
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// A receiver of our signed webhook: verifies the signature (when given a
/// key), rejects replays, and answers `200 {"ok":true}`.
pub struct WebhookReceiver {
    server: Server<WebhookApi>,
}

struct WebhookApi {
    key: Option<Vec<u8>>,
    /// (t, v1 values) of accepted requests.
    seen: Mutex<HashSet<(i64, Vec<String>)>>,
}

impl WebhookReceiver {
    /// Starts on a free 127.0.0.1 port. With a key, requests whose signature
    /// fails [`verify_signature`] (tolerance [`SIGNATURE_TOLERANCE_SECS`]) are
    /// answered 401 and a request repeating an accepted (t, signature) 409.
    pub async fn start(key: Option<Vec<u8>>) -> WebhookReceiver {
        WebhookReceiver {
            server: Server::start(WebhookApi {
                key,
                seen: Mutex::new(HashSet::new()),
            })
            .await,
        }
    }

    common_methods!("webhook stand-in");

    /// The parsed bodies of the accepted deliveries (answered 200).
    pub fn deliveries(&self) -> Vec<Value> {
        accepted(&self.requests(), 200)
    }
}

fn webhook_error(status: u16, error: &str) -> Reply {
    Reply::json(status, json!({"ok": false, "error": error})).detail(error)
}

impl Api for WebhookApi {
    fn path(&self) -> &'static str {
        WEBHOOK_PATH
    }

    fn not_found(&self) -> Reply {
        Reply::json(404, json!({"ok": false, "error": "not found"}))
    }

    fn accept(&self, req: &Incoming) -> Reply {
        let mut replay_key = None;
        if let Some(key) = &self.key {
            let Some(header) = req.headers.get(SIGNATURE_HEADER) else {
                return webhook_error(401, &format!("missing {SIGNATURE_HEADER}"));
            };
            let Ok(header) = header.to_str() else {
                return webhook_error(401, &format!("{SIGNATURE_HEADER} is not text"));
            };
            match verify_signature(key, header, &req.body, now_unix(), SIGNATURE_TOLERANCE_SECS) {
                Ok(t) => {
                    let mut sigs = parse_signature_header(header)
                        .map(|(_, v)| v)
                        .unwrap_or_default();
                    sigs.sort();
                    replay_key = Some((t, sigs));
                }
                Err(e) => return webhook_error(401, &e.to_string()),
            }
        }
        let content_type = req
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type
            .split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        {
            return webhook_error(
                415,
                &format!("Content-Type is {content_type:?}, not application/json"),
            );
        }
        if req.json.is_none() {
            return webhook_error(400, "the body is not JSON");
        }
        let id = req
            .headers
            .get(ALERT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if id.trim().is_empty() {
            return webhook_error(400, &format!("missing {ALERT_ID_HEADER}"));
        }
        if let Some((t, sigs)) = replay_key {
            // Checked and remembered under one lock: of two identical
            // concurrent deliveries exactly one is accepted.
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if !seen.insert((t, sigs)) {
                return webhook_error(
                    409,
                    &format!("replay: this t={t} and signature were already accepted"),
                );
            }
        }
        Reply::json(200, json!({"ok": true}))
    }

    fn status(&self, code: u16) -> Reply {
        Reply::json(code, json!({"ok": false, "error": reason(code)}))
    }

    fn rate_limited(&self) -> Reply {
        Reply::json(429, json!({"ok": false, "error": "rate_limited"}))
    }
}
