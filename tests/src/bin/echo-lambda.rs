//! A tiny function that answers with the event it got and one environment
//! variable: proves the `cargo lambda watch` test support end to end.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({
            "echo": event.payload,
            "request_id": event.context.request_id,
            "marker": std::env::var("ECHO_MARKER").ok(),
        }))
    }))
    .await
}
