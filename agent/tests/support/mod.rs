//! A mock Kubernetes API server in the style of kube-rs controller-rs
//! `fixtures.rs`: `tower_test::mock::pair` stands in for the HTTP client, and
//! the test plays the API server, asserting each request's method, path,
//! query and body before answering with real-shaped JSON.

#![allow(dead_code)]

use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// A client whose requests arrive at the returned handle.
pub fn mock_client() -> (Client, ApiServerVerifier) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        Client::new(service, "alert-manager-system"),
        ApiServerVerifier { handle },
    )
}

/// A fixture from agent/fixtures/kube.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/kube/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A fixture deserialized into its k8s-openapi type.
pub fn object<K: serde::de::DeserializeOwned>(name: &str) -> K {
    serde_json::from_value(fixture(name)).unwrap()
}

/// A Kubernetes `Status` error body.
pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

/// One request the test expects, and what the "API server" answers.
pub struct ApiServerVerifier {
    handle: Handle,
}

/// What a request looked like.
#[derive(Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Value,
}

impl ApiServerVerifier {
    /// Waits (≤ 5 s) for the next request, asserts method and path (and that
    /// the query contains `query`), answers `code` with `reply`.
    pub async fn expect(
        &mut self,
        method: &str,
        path: &str,
        query: Option<&str>,
        code: u16,
        reply: Value,
    ) -> Seen {
        let (request, send) =
            tokio::time::timeout(Duration::from_secs(5), self.handle.next_request())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
                .unwrap_or_else(|| panic!("client gone before {method} {path}"));
        let seen = Seen {
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            query: request.uri().query().unwrap_or("").to_string(),
            body: {
                let bytes = request.into_body().collect_bytes().await.unwrap();
                if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                }
            },
        };
        assert_eq!(seen.method, method, "method of {seen:?}");
        assert_eq!(seen.path, path, "path of {seen:?}");
        if let Some(q) = query {
            assert!(seen.query.contains(q), "query of {seen:?} lacks {q}");
        }
        let response = Response::builder()
            .status(StatusCode::from_u16(code).unwrap())
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap();
        send.send_response(response);
        seen
    }

    /// The next request's method and path, if one arrives within `within`
    /// (left unanswered).
    pub async fn next_or_silence(&mut self, within: Duration) -> Option<String> {
        match tokio::time::timeout(within, self.handle.next_request()).await {
            Ok(Some((request, _))) => Some(format!("{} {}", request.method(), request.uri())),
            _ => None,
        }
    }

    /// Asserts that no request arrives within `within`.
    pub async fn expect_silence(&mut self, within: Duration) {
        if let Ok(Some((request, _))) =
            tokio::time::timeout(within, self.handle.next_request()).await
        {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}
