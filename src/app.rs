//! The application edge: turns a parsed command line into a run and the run into an exit code.
//! Usage, config and catalog errors end here as exit code 2 with a message naming the culprit.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::cmd;
use crate::plan::{Result, UsageError, runtime};
use crate::printable::printable_lines;

pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    crate::logging::set_level(cli.log_level);
    crate::logging::set_format(cli.log_format);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(UsageError(msg)) => {
            eprintln!("vnetprobe: error: {}", printable_lines(&msg));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Probe(args) => cmd::probe::run(args),
        Command::Serve(args) => crate::serve::run(args),
        Command::Listen(args) => {
            let level = crate::logging::level().max(crate::logging::Level::Info);
            crate::logging::set_level(level);
            let settings = crate::listen::Settings::resolve(&args)?;
            runtime()?.block_on(crate::listen::run(settings))?;
            Ok(0)
        }
        Command::Catalog(args) => cmd::lists::catalog(args),
        Command::Context(args) => cmd::lists::context(args),
        Command::Merge(args) => cmd::lists::merge(args),
        Command::Completions { shell } => cmd::docs::completions(shell),
        Command::Man { page, dir } => cmd::docs::man(page, dir),
        Command::Explain { kind } => cmd::docs::explain(kind),
    }
}
