//! The `ratewatch` command: parses flags, sets up logging and runs the chosen subcommand.

use std::process::ExitCode;

use clap::Parser;
use ratewatch::cli::{Cli, Command, LogArgs, LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn init_logging(args: &LogArgs) {
    let level = match args.level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    // Dependencies log at warn and above only; their debug output can quote URLs.
    let filter = EnvFilter::new(format!("warn,ratewatch={level}"));
    let registry = tracing_subscriber::registry().with(filter);
    match args.format {
        LogFormat::Logfmt => registry
            .with(
                tracing_logfmt::builder()
                    .layer()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        None => runtime.block_on(ratewatch::commands::daemon(cli.daemon)),
        Some(Command::Check {
            config_file,
            web_config_file,
        }) => ratewatch::commands::check(&config_file, web_config_file.as_deref()),
        Some(Command::Simulate {
            listen_address,
            scenario,
        }) => runtime.block_on(ratewatch::commands::simulate(
            listen_address,
            scenario.as_deref(),
        )),
        Some(Command::Demo {
            listen_address,
            simulator_address,
            scenario,
        }) => runtime.block_on(ratewatch::commands::demo(
            listen_address,
            simulator_address,
            scenario.as_deref(),
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
