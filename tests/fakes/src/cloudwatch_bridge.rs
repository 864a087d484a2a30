//! A loopback translator between the CloudWatch protocol the current SDK
//! speaks (Smithy RPC v2 CBOR) and the one moto speaks (AWS JSON 1.0).
//!
//! `aws-sdk-cloudwatch` ≥ 1.100 sends `POST /service/GraniteServiceVersion20100801/operation/<Op>`
//! with a CBOR body; moto only answers `POST /` with
//! `X-Amz-Target: GraniteServiceVersion20100801.<Op>` and a JSON body
//! (getmoto/moto#9195). The bridge converts the body both ways and forwards
//! the signature headers untouched (moto does not verify signatures).
//!
//! Timestamps are CBOR tag 1 (epoch seconds) on the CBOR side and epoch-second
//! numbers on the JSON side. Moto answers with JSON numbers or ISO strings; the
//! response fields that are timestamps in the CloudWatch model are turned back
//! into tag 1, everything else maps structurally.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ciborium::value::Value as Cbor;
use serde_json::Value as Json;

const TARGET_PREFIX: &str = "GraniteServiceVersion20100801";

/// Fields of CloudWatch responses that hold timestamps.
const TIMESTAMP_FIELDS: &[&str] = &[
    "Timestamp",
    "Timestamps",
    "StartTime",
    "EndTime",
    "StateUpdatedTimestamp",
    "StateTransitionedTimestamp",
    "AlarmConfigurationUpdatedTimestamp",
    "LastModified",
    "LastUpdateDate",
    "CreationDate",
];

/// The bridge, listening on 127.0.0.1; stopped on drop.
#[derive(Debug)]
pub struct CloudWatchBridge {
    addr: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl CloudWatchBridge {
    /// Starts a bridge that forwards to the moto endpoint `upstream`
    /// (`http://127.0.0.1:PORT`). It runs on its own thread and runtime, so it
    /// works from any test.
    pub fn start(upstream: &str) -> CloudWatchBridge {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("bind cloudwatch bridge: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("bridge address: {e}"));
        let _ = listener.set_nonblocking(true);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = Upstream {
            url: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
        };
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = Router::new()
                    .route(
                        "/service/{service}/operation/{operation}",
                        axum::routing::post(forward),
                    )
                    .with_state(state);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        CloudWatchBridge {
            addr,
            _shutdown: tx,
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_CLOUDWATCH`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[derive(Clone)]
struct Upstream {
    url: String,
    client: reqwest::Client,
}

async fn forward(
    State(upstream): State<Upstream>,
    Path((service, operation)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if service != TARGET_PREFIX {
        return cbor_error(StatusCode::BAD_REQUEST, "UnknownService", &service);
    }
    let input: Cbor = if body.is_empty() {
        Cbor::Map(vec![])
    } else {
        match ciborium::de::from_reader(body.as_ref()) {
            Ok(v) => v,
            Err(e) => {
                return cbor_error(
                    StatusCode::BAD_REQUEST,
                    "SerializationException",
                    &e.to_string(),
                );
            }
        }
    };
    let json_body = cbor_to_json(input).to_string();
    let mut req = upstream
        .client
        .post(format!("{}/", upstream.url))
        .header("X-Amz-Target", format!("{TARGET_PREFIX}.{operation}"))
        .header("Content-Type", "application/x-amz-json-1.0")
        .timeout(Duration::from_secs(30))
        .body(json_body);
    for name in [
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "user-agent",
    ] {
        if let Some(v) = headers.get(name) {
            req = req.header(name, v.as_bytes());
        }
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            return cbor_error(
                StatusCode::BAD_GATEWAY,
                "BridgeUpstreamError",
                &e.to_string(),
            );
        }
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let text = resp.text().await.unwrap_or_default();
    let json: Json = if text.trim().is_empty() {
        Json::Object(Default::default())
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|_| serde_json::json!({"__type": "InternalFailure", "message": text}))
    };
    cbor_response(status, &json_to_cbor(json, false))
}

fn cbor_response(status: StatusCode, value: &Cbor) -> Response {
    let mut bytes = Vec::new();
    if ciborium::ser::into_writer(value, &mut bytes).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "cbor encode").into_response();
    }
    let mut resp = (status, bytes).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/cbor"));
    h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    resp
}

fn cbor_error(status: StatusCode, kind: &str, message: &str) -> Response {
    cbor_response(
        status,
        &Cbor::Map(vec![
            (Cbor::Text("__type".into()), Cbor::Text(kind.into())),
            (Cbor::Text("message".into()), Cbor::Text(message.into())),
        ]),
    )
}

/// CBOR request → JSON 1.0: tag 1 timestamps become epoch-second numbers,
/// byte strings become base64 (none in CloudWatch inputs we use, kept for completeness).
fn cbor_to_json(v: Cbor) -> Json {
    match v {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Integer(i) => {
            let i: i128 = i.into();
            serde_json::Number::from_i128(i)
                .map(Json::Number)
                .unwrap_or(Json::Null)
        }
        Cbor::Float(f) => serde_json::Number::from_f64(f)
            .map(Json::Number)
            .unwrap_or(Json::Null),
        Cbor::Text(s) => Json::String(s),
        Cbor::Bytes(b) => Json::String(base64(&b)),
        Cbor::Array(items) => Json::Array(items.into_iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => Json::Object(
            entries
                .into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k, cbor_to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Cbor::Tag(_, inner) => cbor_to_json(*inner),
        _ => Json::Null,
    }
}

/// JSON response → CBOR. `timestamp` is true inside a field that holds timestamps.
fn json_to_cbor(v: Json, timestamp: bool) -> Cbor {
    match v {
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(b),
        Json::Number(n) if timestamp => {
            Cbor::Tag(1, Box::new(Cbor::Float(n.as_f64().unwrap_or(0.0))))
        }
        Json::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) if timestamp => match s.parse::<jiff::Timestamp>() {
            Ok(t) => Cbor::Tag(1, Box::new(Cbor::Float(t.as_millisecond() as f64 / 1000.0))),
            Err(_) => Cbor::Text(s),
        },
        Json::String(s) => Cbor::Text(s),
        Json::Array(items) => Cbor::Array(
            items
                .into_iter()
                .map(|i| json_to_cbor(i, timestamp))
                .collect(),
        ),
        Json::Object(map) => Cbor::Map(
            map.into_iter()
                .map(|(k, v)| {
                    let ts = TIMESTAMP_FIELDS.contains(&k.as_str());
                    (Cbor::Text(k), json_to_cbor(v, ts))
                })
                .collect(),
        ),
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
