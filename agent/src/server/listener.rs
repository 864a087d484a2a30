//! The accept loop of both listeners (webhook and metrics).
//!
//! Served with hyper directly rather than `axum::serve`: that builds hyper
//! without a timer, so hyper silently drops its header-read timeout, and a
//! client trickling an endless header holds its connection (and up to
//! ~400 KiB of buffer) forever, before any token is checked. Here every
//! connection has a header-read timeout (which also closes idle keep-alive
//! connections), a bounded read buffer, and counts against a total and a
//! per-client-address cap; a connection beyond a cap is closed at once.
//! With TLS, the handshake must also finish within the header-read timeout.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

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
    /// Open connections from one client address.
    pub max_connections_per_client: usize,
}

/// Why a connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Total,
    PerClient,
}

impl Refused {
    fn as_str(self) -> &'static str {
        match self {
            Refused::Total => "max_connections",
            Refused::PerClient => "max_connections_per_client",
        }
    }
}

/// Open connections, in total and by client address.
#[derive(Debug)]
struct Admission {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// Held for the life of one admitted connection; gives its place back on drop.
#[derive(Debug)]
struct Slot {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Admission {
    fn new(max_total: usize, max_per_client: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_total,
            max_per_client,
            open: Mutex::new(Open::default()),
        })
    }

    fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Slot, Refused> {
        // A poisoned lock only means a panic elsewhere mid-update; the counts
        // are still the best we have.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(Refused::Total);
        }
        let from_client = open.by_client.entry(client).or_insert(0);
        if *from_client >= self.max_per_client {
            return Err(Refused::PerClient);
        }
        *from_client += 1;
        open.total += 1;
        Ok(Slot {
            admission: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Keeps the map as small as the set of clients connected now.
                open.by_client.remove(&self.client);
            }
        }
    }
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
    handshake_timeout: Duration,
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
        handshake_timeout: limits.header_read_timeout,
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
                    Ok(slot) => {
                        connections.spawn(connection(stream, served.clone(), slot));
                    }
                    Err(refused) => {
                        metrics.webhook().connection_refused(name, refused.as_str());
                        tracing::debug!(listener = name, client = %peer.ip(), reason = refused.as_str(), "connection refused");
                        drop(stream);
                    }
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

async fn connection(stream: TcpStream, served: Served, _slot: Slot) {
    let _ = stream.set_nodelay(true);
    let Some(tls) = served.tls.clone() else {
        return http(stream, served).await;
    };
    // Bounded like the request head: a client that never finishes its
    // handshake must not hold its place.
    match tokio::time::timeout(served.handshake_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(stream)) => http(stream, served).await,
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

async fn http<S>(stream: S, served: Served)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Served {
        app,
        builder,
        mut stop,
        ..
    } = served;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn one_client_cannot_take_the_places_of_another() {
        let admission = Admission::new(3, 2);
        let _a1 = admission.admit(A).unwrap();
        let a2 = admission.admit(A).unwrap();
        assert_eq!(admission.admit(A).unwrap_err(), Refused::PerClient);
        let _b1 = admission.admit(B).unwrap();
        assert_eq!(admission.admit(B).unwrap_err(), Refused::Total);
        drop(a2);
        let _b2 = admission.admit(B).unwrap();
    }

    #[test]
    fn a_closed_connection_gives_its_place_back_and_forgets_the_client() {
        let admission = Admission::new(10, 1);
        let slot = admission.admit(A).unwrap();
        drop(slot);
        let open = admission.open.lock().unwrap();
        assert_eq!(open.total, 0);
        assert!(open.by_client.is_empty());
    }
}
