//! The listeners against raw sockets: connection caps per client (and the
//! wait for a place beyond it) and in total, the header cap, and draining.
//! (The header timeout and the memory bound under 1,000 hostile connections
//! are tested against the real binary in tests/tests/agent.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use std::sync::Arc;
use std::time::Duration;

use alert_manager_agent::metrics::Metrics;
use alert_manager_agent::server::listener::{Limits, Listener, serve};
use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

struct Running {
    addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

async fn start(limits: Limits) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route("/fast", get(|| async { "fast" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "slow"
            }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "hang"
            }),
        );
    let metrics = Arc::new(Metrics::new());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(serve(
        Listener {
            socket: listener,
            name: "webhook",
            limits,
            tls: None,
        },
        app,
        metrics.clone(),
        stop_rx,
    ));
    Running {
        addr,
        stop,
        task,
        metrics,
    }
}

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_secs(10),
        max_header_bytes: 16 * 1024,
        max_connections: 512,
        max_connections_per_client: 64,
    }
}

async fn connect_from(source: [u8; 4], addr: std::net::SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Writes one GET on `stream` without reading the answer.
async fn send_get(stream: &mut TcpStream, path: &str) -> std::io::Result<()> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: agent\r\n\r\n");
    stream.write_all(request.as_bytes()).await
}

/// A connection from `source` whose request takes 3 s: its place stays
/// taken, and it cannot close to make way.
async fn busy_from(source: [u8; 4], addr: std::net::SocketAddr) -> TcpStream {
    let mut busy = connect_from(source, addr).await;
    send_get(&mut busy, "/hang").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    busy
}

/// Sends one GET on `stream` and returns the answer's first line ("" if the
/// server closed the connection instead).
async fn get_on(stream: &mut TcpStream, path: &str) -> String {
    if send_get(stream, path).await.is_err() {
        return String::new();
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string(),
        Ok(Err(_)) => String::new(),
        Err(_) => panic!("no answer and no close within 5 s"),
    }
}

/// True when the server closes `stream` within `within`, without answering.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// Reads one answer's head (status line and headers, lowercased).
async fn head_of_answer(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("no answer within 5 s")
        .unwrap_or(0);
    let text = String::from_utf8_lossy(&buf[..n]).to_lowercase();
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
}

#[tokio::test]
async fn a_client_beyond_its_cap_waits_for_a_place_and_is_served_when_one_closes() {
    let server = start(Limits {
        max_connections_per_client: 2,
        ..limits()
    })
    .await;
    let mut first = connect_from([127, 0, 0, 1], server.addr).await;
    let mut second = connect_from([127, 0, 0, 1], server.addr).await;
    for s in [&mut first, &mut second] {
        send_get(s, "/slow").await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = connect_from([127, 0, 0, 1], server.addr).await;
    send_get(&mut third, "/fast").await.unwrap();
    // Another address has places of its own meanwhile.
    let mut other = connect_from([127, 0, 0, 2], server.addr).await;
    assert_eq!(get_on(&mut other, "/fast").await, "HTTP/1.1 200 OK");

    // The answers in flight end their connections, since the third waits.
    let head = head_of_answer(&mut first).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(closed_within(&mut first, Duration::from_millis(500)).await);
    let head = head_of_answer(&mut third).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // Nobody waits now: the third is kept alive.
    assert!(!head.contains("connection: close"), "{head}");
    assert_eq!(get_on(&mut third, "/fast").await, "HTTP/1.1 200 OK");
    let m = server.metrics.encode();
    assert!(
        m.contains(r#"connections_waited_total{listener="webhook"} 1"#),
        "{m}"
    );
    assert!(!m.contains("connections_refused_total{"), "{m}");
}

#[tokio::test]
async fn a_connection_that_gets_no_place_within_the_header_timeout_is_closed() {
    let server = start(Limits {
        header_read_timeout: Duration::from_secs(1),
        max_connections_per_client: 1,
        ..limits()
    })
    .await;
    let _busy = busy_from([127, 0, 0, 1], server.addr).await;
    let mut second = connect_from([127, 0, 0, 1], server.addr).await;
    send_get(&mut second, "/fast").await.unwrap();
    let waited = std::time::Instant::now();
    assert!(
        closed_within(&mut second, Duration::from_millis(1800)).await,
        "a connection without a place was neither served nor closed"
    );
    assert!(
        waited.elapsed() >= Duration::from_millis(800),
        "closed after {:?}, before the header timeout",
        waited.elapsed()
    );
    assert!(server.metrics.encode().contains(
        r#"connections_refused_total{listener="webhook",reason="max_connections_per_client_wait"} 1"#
    ));
}

#[tokio::test]
async fn beyond_a_full_waiting_room_a_connection_is_closed_at_once_while_another_address_is_served()
{
    // Two may be served and two may wait.
    let server = start(Limits {
        max_connections: 2,
        max_connections_per_client: 1,
        ..limits()
    })
    .await;
    let _busy = busy_from([127, 0, 0, 1], server.addr).await;
    let _waiting = [
        connect_from([127, 0, 0, 1], server.addr).await,
        connect_from([127, 0, 0, 1], server.addr).await,
    ];
    let mut fourth = connect_from([127, 0, 0, 1], server.addr).await;
    assert!(
        closed_within(&mut fourth, Duration::from_millis(500)).await,
        "the fourth connection from one address was not closed at once"
    );
    let mut other = connect_from([127, 0, 0, 2], server.addr).await;
    assert_eq!(get_on(&mut other, "/fast").await, "HTTP/1.1 200 OK");
    assert!(server.metrics.encode().contains(
        r#"connections_refused_total{listener="webhook",reason="max_connections_per_client"} 1"#
    ));
}

#[tokio::test]
async fn connections_beyond_the_total_cap_are_closed_at_once() {
    let server = start(Limits {
        max_connections: 3,
        max_connections_per_client: 3,
        ..limits()
    })
    .await;
    let _a = connect_from([127, 0, 0, 1], server.addr).await;
    let _b = connect_from([127, 0, 0, 2], server.addr).await;
    let mut c = connect_from([127, 0, 0, 3], server.addr).await;
    assert_eq!(get_on(&mut c, "/fast").await, "HTTP/1.1 200 OK");
    let mut d = connect_from([127, 0, 0, 4], server.addr).await;
    assert!(closed_within(&mut d, Duration::from_millis(500)).await);
    assert!(
        server.metrics.encode().contains(
            r#"connections_refused_total{listener="webhook",reason="max_connections"} 1"#
        )
    );
}

#[tokio::test]
async fn a_head_over_the_header_cap_gets_431_and_one_under_it_is_served() {
    let server = start(Limits {
        max_header_bytes: 16 * 1024,
        ..limits()
    })
    .await;
    let mut small = TcpStream::connect(server.addr).await.unwrap();
    let pad = "a".repeat(12 * 1024);
    small
        .write_all(format!("GET /fast HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = small.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let mut big = TcpStream::connect(server.addr).await.unwrap();
    let pad = "a".repeat(20 * 1024);
    // The server may answer and close before the whole head is written.
    let _ = big
        .write_all(format!("GET /fast HTTP/1.1\r\nHost: a\r\nX-Pad: {pad}\r\n\r\n").as_bytes())
        .await;
    let n = big.read(&mut buf).await.unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "a 20 KiB head got {answer:?}"
    );
}

#[tokio::test]
async fn draining_stops_accepting_closes_idle_connections_and_finishes_requests_in_flight() {
    let server = start(limits()).await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get_on(&mut idle, "/fast").await, "HTTP/1.1 200 OK");
    let mut busy = TcpStream::connect(server.addr).await.unwrap();
    send_get(&mut busy, "/slow").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    server.stop.send_replace(true);
    assert!(
        closed_within(&mut idle, Duration::from_millis(300)).await,
        "an idle keep-alive connection stayed open while draining"
    );
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), busy.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "the request in flight was not answered: {}",
        String::from_utf8_lossy(&buf[..n])
    );
    tokio::time::timeout(Duration::from_secs(2), server.task)
        .await
        .expect("serve returns once the last connection closed")
        .unwrap();
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "a drained listener still accepts"
    );
}
