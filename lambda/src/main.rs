use std::process::ExitCode;
use std::time::Duration;

use alert_manager_enricher::config::{EnricherArgs, EnricherCommand};
use alert_manager_enricher::routes_source::Routes;
use alert_manager_enricher::secrets::SecretStore;
use alert_manager_enricher::{Enricher, route_dry_run};
use clap::Parser;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> ExitCode {
    let args = EnricherArgs::parse();
    if let Some(EnricherCommand::Route { config, envelope }) = &args.command {
        return match route_dry_run(config, envelope) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("alert-manager-enricher route: {e}");
                ExitCode::from(2)
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("alert-manager-enricher: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alert-manager-enricher: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: EnricherArgs) -> Result<(), lambda_runtime::Error> {
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = args.validate()?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        // Enrichment degrades instead of retrying; delivery retries in one place.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(5))
                .build(),
        )
        .load()
        .await;
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let routes = Routes::load(config.routes.clone(), ssm.clone()).await?;
    let secrets = SecretStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        ssm,
        config.secrets_ttl,
    );
    let enricher = Enricher::new(
        config,
        aws_sdk_ec2::Client::new(&sdk),
        aws_sdk_cloudwatch::Client::new(&sdk),
        aws_sdk_sns::Client::new(&sdk),
        region,
    )
    .with_delivery(routes, secrets);
    let enricher = &enricher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline_ms = event.context.deadline as i64;
        let now_ms = jiff::Timestamp::now().as_millisecond();
        let remaining = Duration::from_millis(deadline_ms.saturating_sub(now_ms).max(1000) as u64);
        enricher
            .handle(&event.payload, remaining)
            .await
            .map_err(lambda_runtime::Error::from)
    }))
    .await
}
