//! What the terminal is: whether a stream is one, and how wide. Reports fit the width of
//! stdout when it is a terminal, else `COLUMNS` when set, else 100 columns.

use std::io::IsTerminal;
use std::os::fd::AsRawFd;

/// The width reports use when stdout is not a terminal and `COLUMNS` is not set.
pub const DEFAULT_WIDTH: usize = 100;
/// Narrower than this, nothing fits anyway: layouts assume at least this.
pub const MIN_WIDTH: usize = 40;
/// Wider than this, nothing reads better: the width is cut here, where it is read (Rust's
/// formatter refuses widths past 65,535, and a table pads columns to a share of the width).
pub const MAX_WIDTH: usize = 1000;

/// The number of columns of the terminal behind `fd`, if it is one.
fn columns_of(fd: &impl AsRawFd) -> Option<usize> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we own; a non-terminal fails.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
    (rc == 0 && size.ws_col > 0).then_some(size.ws_col as usize)
}

/// The width a report on stdout should fit.
pub fn stdout_width() -> usize {
    let stdout = std::io::stdout();
    let tty = if stdout.is_terminal() {
        columns_of(&stdout)
    } else {
        None
    };
    tty.or_else(|| {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse().ok())
    })
    .unwrap_or(DEFAULT_WIDTH)
    .clamp(MIN_WIDTH, MAX_WIDTH)
}

/// The width of stderr when it is a terminal (for the progress line).
pub fn stderr_width() -> Option<usize> {
    let stderr = std::io::stderr();
    if !stderr.is_terminal() {
        return None;
    }
    Some(
        columns_of(&stderr)
            .unwrap_or(80)
            .clamp(MIN_WIDTH, MAX_WIDTH),
    )
}

/// Colour on stdout: a terminal, and NO_COLOR unset or empty (https://no-color.org).
pub fn stdout_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
