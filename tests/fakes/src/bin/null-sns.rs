//! A null SNS endpoint for benchmarks: it answers `Publish` and `PublishBatch`
//! (query protocol, as the AWS SDKs and Alertmanager's `sns_configs` send
//! them), and `GetTopicAttributes` and STS `GetCallerIdentity` (the agent's
//! readiness checks: its topic, and its account, 123456789012), with valid
//! XML, as fast as it can, and counts what it accepted. moto is far too slow
//! to stand behind a throughput benchmark; this is not.
//!
//!   null-sns [--port 0] [--delay-ms 0]
//!
//! Prints `listening on http://127.0.0.1:PORT`. `GET /counts` answers
//! `{"requests":N,"publish":N,"batch_entries":N}`; `POST /counts/reset` zeroes
//! them. Runs until SIGTERM or SIGINT.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(about = "A null SNS endpoint on 127.0.0.1 that accepts every Publish and PublishBatch")]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Latency added to every answer, in milliseconds (the endpoint's own latency).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
}

#[derive(Debug, Default)]
struct Counts {
    requests: AtomicU64,
    publish: AtomicU64,
    batch_entries: AtomicU64,
}

#[derive(Debug, Clone)]
struct Null {
    counts: Arc<Counts>,
    delay: Duration,
}

/// Decodes one `application/x-www-form-urlencoded` value.
fn decode(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(v.get(i + 1..i + 3).unwrap_or(""), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn sns(State(null): State<Null>, body: Bytes) -> impl IntoResponse {
    let body = String::from_utf8_lossy(&body);
    let mut action = "";
    let mut ids = Vec::new();
    let mut topic = String::new();
    for pair in body.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == "Action" {
            action = v;
        } else if k == "TopicArn" {
            topic = decode(v);
        } else if k.starts_with("PublishBatchRequestEntries.member.") && k.ends_with(".Id") {
            ids.push(decode(v));
        }
    }
    null.counts.requests.fetch_add(1, Ordering::Relaxed);
    if !null.delay.is_zero() {
        tokio::time::sleep(null.delay).await;
    }
    let n = null.counts.requests.load(Ordering::Relaxed);
    let xml = match action {
        "PublishBatch" => {
            null.counts
                .batch_entries
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
            let members: String = ids
                .iter()
                .enumerate()
                .map(|(i, id)| {
                    format!(
                        "<member><Id>{}</Id><MessageId>00000000-0000-4000-8000-{n:06}{i:06}</MessageId></member>",
                        xml_escape(id)
                    )
                })
                .collect();
            format!(
                r#"<PublishBatchResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishBatchResult><Successful>{members}</Successful><Failed/></PublishBatchResult><ResponseMetadata><RequestId>null-{n}</RequestId></ResponseMetadata></PublishBatchResponse>"#
            )
        }
        "Publish" => {
            null.counts.publish.fetch_add(1, Ordering::Relaxed);
            format!(
                r#"<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>00000000-0000-4000-8000-{n:012}</MessageId></PublishResult><ResponseMetadata><RequestId>null-{n}</RequestId></ResponseMetadata></PublishResponse>"#
            )
        }
        // The agent's readiness check.
        "GetTopicAttributes" => format!(
            r#"<GetTopicAttributesResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><GetTopicAttributesResult><Attributes><entry><key>TopicArn</key><value>{}</value></entry></Attributes></GetTopicAttributesResult><ResponseMetadata><RequestId>null-{n}</RequestId></ResponseMetadata></GetTopicAttributesResponse>"#,
            xml_escape(&topic)
        ),
        "GetCallerIdentity" => format!(
            r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/null-sns</Arn><UserId>AIDANULLSNS</UserId><Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>null-{n}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"#
        ),
        other => {
            return (
                axum::http::StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "text/xml")],
                format!(
                    r#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>null-sns answers Publish and PublishBatch, not {}</Message></Error><RequestId>null-{n}</RequestId></ErrorResponse>"#,
                    xml_escape(other)
                ),
            );
        }
    };
    (
        axum::http::StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        xml,
    )
}

async fn counts(State(null): State<Null>) -> impl IntoResponse {
    let c = &null.counts;
    axum::Json(serde_json::json!({
        "requests": c.requests.load(Ordering::Relaxed),
        "publish": c.publish.load(Ordering::Relaxed),
        "batch_entries": c.batch_entries.load(Ordering::Relaxed),
    }))
}

async fn reset(State(null): State<Null>) -> impl IntoResponse {
    let c = &null.counts;
    c.requests.store(0, Ordering::Relaxed);
    c.publish.store(0, Ordering::Relaxed);
    c.batch_entries.store(0, Ordering::Relaxed);
    axum::http::StatusCode::NO_CONTENT
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let null = Null {
        counts: Arc::default(),
        delay: Duration::from_millis(args.delay_ms),
    };
    let app = Router::new()
        .route("/counts", get(counts))
        .route("/counts/reset", post(reset))
        .fallback(post(sns))
        .with_state(null);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let mut term = signal(SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    Ok(())
}
