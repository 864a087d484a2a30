use std::process::ExitCode;

use alert_manager_enricher::app::{self, Mode};
use alert_manager_enricher::config::EnricherArgs;
use clap::Parser;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

fn main() -> ExitCode {
    let args = match app::mode(EnricherArgs::parse()) {
        Mode::Tool(result) => return app::print_report(result),
        Mode::Lambda(args) => *args,
    };
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime
            .block_on(run(args))
            .map_or_else(|e| app::fail(&e.to_string(), 1), |()| ExitCode::SUCCESS),
        Err(e) => app::fail(&format!("cannot start the async runtime: {e}"), 1),
    }
}

async fn run(args: EnricherArgs) -> Result<(), lambda_runtime::Error> {
    let enricher = &app::init(args).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The one deadline of the invocation, taken before anything else.
        let deadline = enricher.deadline(event.context.deadline);
        Ok::<_, lambda_runtime::Error>(enricher.handle(&event.payload, deadline).await?)
    }))
    .await
}
