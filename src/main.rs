use std::process::ExitCode;

use clap::Parser;
use webhook_mcp::cli::{self, Cli, Command, ServeArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let long_running = matches!(
        cli.command,
        None | Some(Command::Serve(_)) | Some(Command::Connect(_))
    );
    cli::logging::init(long_running);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("webhook-mcp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::Serve(args)) => runtime.block_on(cli::serve::run(*args)),
        Some(Command::Connect(args)) => runtime.block_on(cli::connect::run(args)),
        Some(Command::Prune(args)) => runtime.block_on(cli::prune::run(args)),
        Some(Command::Webhooks(cmd)) => runtime.block_on(cli::webhooks::run(cmd)),
        Some(Command::Events(cmd)) => runtime.block_on(cli::events::run(cmd)),
        Some(Command::Deliveries(cmd)) => runtime.block_on(cli::deliveries::run(cmd)),
        Some(Command::Redeliver(args)) => runtime.block_on(cli::deliveries::redeliver(args)),
        Some(Command::Send(args)) => runtime.block_on(cli::deliveries::send(args)),
        Some(Command::Doctor(args)) => runtime.block_on(cli::doctor::run(args)),
        Some(Command::Secrets(cmd)) => runtime.block_on(cli::secrets::run(cmd)),
        None => runtime.block_on(cli::serve::run(ServeArgs::default())),
    };
    // The stdin reader sits in a blocking read that only EOF ends: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if long_running {
                tracing::error!("{e}");
            }
            eprintln!("webhook-mcp: {e}");
            ExitCode::FAILURE
        }
    }
}
