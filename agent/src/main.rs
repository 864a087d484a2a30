use std::process::ExitCode;

use alert_manager_agent::{Cli, Command, aws_config, serve, telemetry, whoami};
use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.serve.log_format);
    let result = match cli.command {
        Some(Command::Whoami) => {
            let sdk = aws_config().await;
            whoami::whoami(&sdk, cli.serve.topic_arn.as_deref())
                .await
                .map(|report| print!("{report}"))
        }
        None => match cli.serve.validate() {
            Ok(config) => serve(config, &aws_config().await).await,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("alert-manager-agent: {e}");
            ExitCode::FAILURE
        }
    }
}
