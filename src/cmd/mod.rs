//! The commands: each turns its parsed arguments into a run and the run into an exit code and
//! output on stdout. `app` dispatches to them; `serve` and `listen` have modules of their own.

pub mod check;
pub mod docs;
pub mod lists;
pub mod probe;

use std::io::Write;

use crate::cli::Output;
use crate::plan::{Result, UsageError};
use crate::report::{self, Report};

/// Writes to stdout; a closed pipe (`vnetprobe check | head`) ends quietly.
pub fn emit(text: &str, code: u8) -> Result<u8> {
    write_stdout(|out| out.write_all(text.as_bytes()), code)
}

/// `value` as pretty JSON on stdout, written as it is serialised (a 10,000-target report is
/// 8 MB: it is never held whole in memory).
pub fn emit_json<T: serde::Serialize + ?Sized>(value: &T, code: u8) -> Result<u8> {
    write_stdout(
        |out| {
            crate::printable::write_json(&mut *out, value)?;
            out.write_all(b"\n")
        },
        code,
    )
}

/// A report in the asked-for format, with `code` as the exit code.
pub fn emit_report(report: &Report, output: Output, code: u8) -> Result<u8> {
    let text = match output {
        Output::Json => return emit_json(report, code),
        Output::Table => report::table::render(
            report,
            crate::terminal::stdout_colour(),
            crate::terminal::stdout_width(),
        ),
        Output::Junit => report::junit::render(report),
        Output::Prometheus => report::prometheus::render(report),
        Output::Fix => report::fix::render(report),
    };
    emit(&text, code)
}

fn write_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>, code: u8) -> Result<u8> {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    match write(&mut out).and_then(|_| out.flush()) {
        Ok(()) => Ok(code),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(UsageError(format!("writing the report: {e}"))),
    }
}
