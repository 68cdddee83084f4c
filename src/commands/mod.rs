//! Subcommands: `serve` (default), `validate`, `mount`. Each is a thin adapter
//! over the library.

pub mod mount;
pub mod serve;
pub mod validate;

use std::process::ExitCode;

use crate::config::{Cli, Command};

/// Runs the selected subcommand and returns the process exit code.
pub fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve::main(cli.serve),
        Some(Command::Serve(args)) => serve::main(args),
        Some(Command::Validate(args)) => validate::main(&args),
        Some(Command::Mount(args)) => mount::main(&args),
    }
}
