//! The accept loop of both listeners (webhook and metrics).
//!
//! Served with hyper directly rather than `axum::serve`: that builds hyper
//! without a timer, so hyper silently drops its header-read timeout, and a
//! client trickling an endless header holds its connection (and up to
//! ~400 KiB of buffer) forever, before any token is checked. Here every
//! connection has a header-read timeout (which also closes idle keep-alive
//! connections), a bounded read buffer, and counts against a total and a
//! per-client-address cap ([`super::admission`]). With TLS, the handshake
//! must also finish within the header-read timeout.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::Layer;
use tower::util::MapResponseLayer;

use super::admission::{Admission, Admitted, Refused, Slot, Waiters};
use super::tls::ServerTls;
use crate::metrics::Metrics;

/// The smallest read buffer hyper accepts, so the smallest header cap.
pub const MIN_HEADER_BYTES: usize = 8 * 1024;
/// The largest header cap the agent allows.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time to send a request head; also the keep-alive idle timeout.
    pub header_read_timeout: Duration,
    /// Largest request head, and the read buffer of one connection.
    pub max_header_bytes: usize,
    /// Open connections in total.
    pub max_connections: usize,
    /// Open connections from one client address; more wait for a place.
    pub max_connections_per_client: usize,
}

/// Resolves once `stop` turns true; never, if its sender is gone without that.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// One listener: its socket, what it serves, and how.
pub struct Listener {
    /// The bound socket.
    pub socket: TcpListener,
    /// `webhook` or `metrics`, in logs and metric labels.
    pub name: &'static str,
    /// What each client may take.
    pub limits: Limits,
    /// TLS, when configured.
    pub tls: Option<ServerTls>,
}

/// What one connection task needs.
#[derive(Clone)]
struct Served {
    app: Router,
    builder: Arc<http1::Builder>,
    tls: Option<ServerTls>,
    header_read_timeout: Duration,
    name: &'static str,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
}

/// Serves `app` on the listener until `stop` turns true, then stops accepting
/// at once, closes idle connections, lets requests in flight finish, and
/// returns when the last connection has closed (the caller bounds the wait).
pub async fn serve(
    listener: Listener,
    app: Router,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let Listener {
        socket,
        name,
        limits,
        tls,
    } = listener;
    let admission = Admission::new(limits.max_connections, limits.max_connections_per_client);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .max_header_size(limits.max_header_bytes);
    let served = Served {
        app,
        builder: Arc::new(builder),
        tls,
        header_read_timeout: limits.header_read_timeout,
        name,
        metrics: metrics.clone(),
        stop: stop.clone(),
    };
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopped(&mut stop) => break,
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => match admission.admit(peer.ip()) {
                    Ok(admitted) => {
                        connections.spawn(connection(stream, peer.ip(), served.clone(), admitted));
                    }
                    Err(refused) => count_refusal(&metrics, name, peer.ip(), refused),
                },
                Err(e) => {
                    // Out of file descriptors, mostly: back off instead of spinning.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(socket);
    while connections.join_next().await.is_some() {}
}

async fn connection(stream: TcpStream, client: IpAddr, mut served: Served, admitted: Admitted) {
    let slot = match admitted {
        Admitted::Now(slot) => slot,
        Admitted::Wait(waiting) => {
            served.metrics.webhook().connection_waited(served.name);
            let placed = tokio::select! {
                placed = waiting.place(served.header_read_timeout) => placed,
                () = stopped(&mut served.stop) => return,
            };
            match placed {
                Ok(slot) => slot,
                Err(refused) => {
                    return count_refusal(&served.metrics, served.name, client, refused);
                }
            }
        }
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = served.tls.clone() else {
        return http(stream, served, slot).await;
    };
    // Bounded like the request head: a client that never finishes its
    // handshake must not hold its place.
    match tokio::time::timeout(served.header_read_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => http(stream, served, slot).await,
        Ok(Err(e)) => {
            served
                .metrics
                .webhook()
                .tls_handshake_failed(served.name, "error");
            tracing::debug!(listener = served.name, error = %e, "TLS handshake failed");
        }
        Err(_) => {
            served
                .metrics
                .webhook()
                .tls_handshake_failed(served.name, "timeout");
            tracing::debug!(listener = served.name, "TLS handshake timed out");
        }
    }
}

/// Serves one connection; its place goes back when `slot` drops, with it.
async fn http<S>(stream: S, served: Served, slot: Slot)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Served {
        app,
        builder,
        mut stop,
        ..
    } = served;
    let waiters = slot.waiters();
    let app = MapResponseLayer::new(move |response| close_if(&waiters, response)).layer(app);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection closed");
            }
            return;
        }
        () = stopped(&mut stop) => {}
    }
    // Closes the connection now if it is idle, else after the answer in flight.
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// A connection closed unserved (it drops with the caller's stream).
fn count_refusal(metrics: &Metrics, listener: &'static str, client: IpAddr, refused: Refused) {
    metrics
        .webhook()
        .connection_refused(listener, refused.as_str());
    tracing::debug!(listener, %client, reason = refused.as_str(), "connection refused");
}

/// Ends the connection after this answer while others of its client wait
/// for a place (see [`super::admission`]).
fn close_if(waiters: &Waiters, mut response: Response) -> Response {
    if waiters.any() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
