//! The commands about vnetprobe itself: shell completions, man pages, and `explain`.

use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::Shell;

use super::emit;
use crate::cli::Cli;
use crate::plan::Result;

pub fn completions(shell: Shell) -> Result<u8> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "vnetprobe", &mut buf);
    emit(&String::from_utf8_lossy(&buf), 0)
}

pub fn man(page: Option<String>, dir: Option<PathBuf>) -> Result<u8> {
    match dir {
        Some(dir) => {
            let written = crate::manpage::write_all(&dir)?;
            emit(&format!("{}\n", written.join("\n")), 0)
        }
        None => emit(&crate::manpage::render(page.as_deref())?, 0),
    }
}

pub fn explain(kind: Option<String>) -> Result<u8> {
    let width = crate::terminal::stdout_width();
    let out = match kind {
        None => crate::explain::render_list(width),
        Some(k) => crate::explain::render(&crate::explain::lookup(&k)?, width),
    };
    emit(&out, 0)
}
