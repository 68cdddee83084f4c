//! Subcommands: `serve` (default). Each is a thin adapter over the library.

pub mod serve;

use std::process::ExitCode;

use crate::config::{Cli, Command};

/// Runs the selected subcommand and returns the process exit code.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve::main(cli.serve),
        Some(Command::Serve(args)) => serve::main(args),
    }
}
