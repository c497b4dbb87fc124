//! Logs to stderr: journald priority prefixes under systemd (JOURNAL_STREAM set), then a line in
//! the chosen format: text (time, level, message), logfmt or JSON (as Prometheus exporters
//! write them). Never stdout, which belongs to reports.

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

static LEVEL: AtomicU8 = AtomicU8::new(Level::Warn as u8);
static FORMAT: AtomicU8 = AtomicU8::new(Format::Text as u8);

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
    if level as u8 > LEVEL.load(Ordering::Relaxed) {
        return;
    }
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

/// A line worth seeing at the default level (the daemon's start), as info with fields; only
/// `--log-level error` hides it.
pub fn notice(msg: &str, fields: &[(&str, &str)]) {
    if LEVEL.load(Ordering::Relaxed) >= Level::Warn as u8 {
        write(5, "info", msg, fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
