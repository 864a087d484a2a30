//! The CloudWatch bridge of the tests (`alert_manager_fakes::CloudWatchBridge`)
//! as a process, for scripts and benchmarks: the AWS SDK for Rust speaks CBOR
//! to CloudWatch, moto answers only the query protocol, and the bridge
//! translates `GetMetricData` and `PutMetricData` between them.
//!
//!   cloudwatch-bridge --moto http://127.0.0.1:PORT
//!
//! Prints `listening on http://127.0.0.1:PORT` (for
//! `AWS_ENDPOINT_URL_CLOUDWATCH`) and runs until SIGTERM or SIGINT.

use std::io::Write as _;

use alert_manager_fakes::CloudWatchBridge;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Debug, Parser)]
#[command(about = "Bridge the AWS SDK's CloudWatch CBOR protocol to moto's query protocol")]
struct Args {
    /// moto's endpoint, http://127.0.0.1:PORT.
    #[arg(long)]
    moto: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bridge = CloudWatchBridge::start(&args.moto);
    println!("listening on {}", bridge.endpoint());
    std::io::stdout().flush()?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    drop(bridge);
    Ok(())
}
