//! Logs to stderr: journald priority prefixes under systemd (JOURNAL_STREAM set), a timestamp
//! and level otherwise. Never stdout, which belongs to reports.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Level::Error,
        1 => Level::Warn,
        2 => Level::Info,
        _ => Level::Debug,
    }
}

fn emit(level: Level, msg: &str) {
    if level as u8 > LEVEL.load(Ordering::Relaxed) {
        return;
    }
    // Messages quote peers (certificates, proxies, servers): one line each, no escapes.
    let msg = crate::printable::printable(msg);
    let (prio, name) = match level {
        Level::Error => (3, "ERROR"),
        Level::Warn => (4, "WARN"),
        Level::Info => (6, "INFO"),
        Level::Debug => (7, "DEBUG"),
    };
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        eprintln!("<{prio}>{msg}");
    } else {
        eprintln!(
            "{} {name} {msg}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        );
    }
}

pub fn error(msg: &str) {
    emit(Level::Error, msg)
}
pub fn warn(msg: &str) {
    emit(Level::Warn, msg)
}
pub fn info(msg: &str) {
    emit(Level::Info, msg)
}
pub fn debug(msg: &str) {
    emit(Level::Debug, msg)
}
