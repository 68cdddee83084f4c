//! Thin binary: parse configuration, initialise telemetry, hand over to the library.

use clap::Parser;
use rust_azure_provider::config::Cli;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    rust_azure_provider::commands::dispatch(cli)
}
