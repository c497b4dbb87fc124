//! The logger behind the `log` facade: every `log::warn!` of ours, and the events of rustls and
//! hickory (through `tracing`'s `log` feature) at `--log-level debug`, go to stderr with journald
//! priority prefixes under systemd (JOURNAL_STREAM set), as a line in the chosen format: text
//! (time, level, message), logfmt or JSON (as Prometheus exporters write them). Never stdout,
//! which belongs to reports. A message is formatted only when its level is on.

use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text = 0,
    Logfmt = 1,
    Json = 2,
}

static FORMAT: AtomicU8 = AtomicU8::new(Format::Text as u8);

/// Installs the logger (once; later calls change only the level, which is the facade's own
/// maximum level).
pub fn set_level(level: Level) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match level {
        Level::Error => log::LevelFilter::Error,
        Level::Warn => log::LevelFilter::Warn,
        Level::Info => log::LevelFilter::Info,
        Level::Debug => log::LevelFilter::Debug,
    });
}

struct Logger;

static LOGGER: Logger = Logger;

/// Ours: this crate's records. The libraries' own records show only at `--log-level debug`.
fn ours(target: &str) -> bool {
    target == "vnetprobe" || target.starts_with("vnetprobe::")
}

/// Our level of a record's; trace is never shown.
fn of(level: log::Level) -> Option<Level> {
    match level {
        log::Level::Error => Some(Level::Error),
        log::Level::Warn => Some(Level::Warn),
        log::Level::Info => Some(Level::Info),
        log::Level::Debug => Some(Level::Debug),
        log::Level::Trace => None,
    }
}

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        of(m.level()).is_some_and(|l| l <= level()) && (ours(m.target()) || level() == Level::Debug)
    }

    fn log(&self, record: &log::Record) {
        let Some(level) = of(record.level()).filter(|_| self.enabled(record.metadata())) else {
            return;
        };
        let msg = match ours(record.target()) {
            true => record.args().to_string(),
            false => format!("{}: {}", record.target(), record.args()),
        };
        emit(level, &msg);
    }

    fn flush(&self) {}
}

pub fn level() -> Level {
    match log::max_level() {
        log::LevelFilter::Off | log::LevelFilter::Error => Level::Error,
        log::LevelFilter::Warn => Level::Warn,
        log::LevelFilter::Info => Level::Info,
        log::LevelFilter::Debug | log::LevelFilter::Trace => Level::Debug,
    }
}

pub fn set_format(format: Format) {
    FORMAT.store(format as u8, Ordering::Relaxed);
}

fn format() -> Format {
    match FORMAT.load(Ordering::Relaxed) {
        1 => Format::Logfmt,
        2 => Format::Json,
        _ => Format::Text,
    }
}

/// A logfmt value: bare when it needs no quoting, else quoted with escapes.
fn logfmt_value(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c == ' ' || c == '"' || c == '=' || c.is_control())
    {
        return v.to_string();
    }
    serde_json::to_string(v).expect("a string serialises")
}

/// One line in the chosen format, without the journald prefix.
pub fn line(format: Format, ts: &str, level: &str, msg: &str, fields: &[(&str, &str)]) -> String {
    match format {
        Format::Text => {
            let mut s = format!("{ts} {} {msg}", level.to_ascii_uppercase());
            for (k, v) in fields {
                s.push_str(&format!(" {k}={}", logfmt_value(v)));
            }
            s
        }
        Format::Logfmt => {
            let mut s = format!("ts={ts} level={level} msg={}", logfmt_value(msg));
            for (k, v) in fields {
                s.push_str(&format!(" {k}={}", logfmt_value(v)));
            }
            s
        }
        Format::Json => {
            let mut m = serde_json::Map::new();
            m.insert("ts".into(), ts.into());
            m.insert("level".into(), level.into());
            m.insert("msg".into(), msg.into());
            for (k, v) in fields {
                m.insert((*k).into(), (*v).into());
            }
            serde_json::Value::Object(m).to_string()
        }
    }
}

fn write(prio: u8, name: &str, msg: &str, fields: &[(&str, &str)]) {
    let ts = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    let text = line(format(), &ts, name, msg, fields);
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        eprintln!("<{prio}>{text}");
    } else {
        eprintln!("{text}");
    }
}

fn emit(level: Level, msg: &str) {
    // Messages quote peers (certificates, proxies, servers): one line each, no escapes.
    let msg = crate::printable::printable(msg);
    let (prio, name) = match level {
        Level::Error => (3, "error"),
        Level::Warn => (4, "warn"),
        Level::Info => (6, "info"),
        Level::Debug => (7, "debug"),
    };
    write(prio, name, &msg, &[])
}

/// A line worth seeing at the default level (the daemon's start), as info with fields; only
/// `--log-level error` hides it.
pub fn notice(msg: &str, fields: &[(&str, &str)]) {
    if level() >= Level::Warn {
        write(5, "info", msg, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libraries_speak_only_at_debug() {
        use log::Log;
        let meta = |level, target| log::Metadata::builder().level(level).target(target).build();
        set_level(Level::Info);
        assert!(LOGGER.enabled(&meta(log::Level::Info, "vnetprobe::serve")));
        assert!(!LOGGER.enabled(&meta(log::Level::Debug, "vnetprobe::serve")));
        assert!(!LOGGER.enabled(&meta(log::Level::Warn, "rustls::conn")));
        set_level(Level::Debug);
        assert!(LOGGER.enabled(&meta(log::Level::Debug, "hickory_proto::udp")));
        assert!(!LOGGER.enabled(&meta(log::Level::Trace, "vnetprobe")));
        assert_eq!(log::max_level(), log::LevelFilter::Debug);
        set_level(Level::Warn);
    }

    #[test]
    fn the_three_formats() {
        let f = [("address", "127.0.0.1:9834"), ("web_config", "off")];
        assert_eq!(
            line(Format::Text, "T", "info", "listening", &f),
            "T INFO listening address=127.0.0.1:9834 web_config=off"
        );
        assert_eq!(
            line(Format::Logfmt, "T", "info", "a \"b\"", &f),
            r#"ts=T level=info msg="a \"b\"" address=127.0.0.1:9834 web_config=off"#
        );
        let j: serde_json::Value =
            serde_json::from_str(&line(Format::Json, "T", "warn", "m", &f)).unwrap();
        assert_eq!(j["level"], "warn");
        assert_eq!(j["address"], "127.0.0.1:9834");
    }
}
