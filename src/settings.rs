//! Every setting resolved once: flag > `VNETPROBE_*` environment > config file > default, each
//! value checked by its one rule whatever its source and remembered with where it came from, so
//! an error names the flag, variable or file line, and `vnetprobe context` can show the origin.
//! Also the one range of every numeric setting, so no source can hand the runner a value it
//! cannot honour.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag, named as typed (`--timeout`).
    Flag(String),
    /// An environment variable (`VNETPROBE_DISCOVER`, `https_proxy`).
    Env(String),
    /// A key of the config file, at its line; `field` is the dotted key (`serve.interval`).
    File {
        path: PathBuf,
        line: usize,
        field: String,
    },
    /// Something the node said, in words (`~/.bashrc`).
    Discovery(String),
    Default,
}

impl Origin {
    pub fn flag(name: &str) -> Origin {
        Origin::Flag(name.into())
    }

    pub fn env(var: &str) -> Origin {
        Origin::Env(var.into())
    }

    /// The kind of source: a closed vocabulary for JSON and tables.
    pub fn label(&self) -> &'static str {
        match self {
            Origin::Flag(_) => "flag",
            Origin::Env(_) => "env",
            Origin::File { .. } => "file",
            Origin::Discovery(_) => "discovery",
            Origin::Default => "default",
        }
    }

    /// Which flag, variable, file line or discovery source; nothing for a default.
    pub fn place(&self) -> Option<String> {
        match self {
            Origin::Flag(name) | Origin::Env(name) | Origin::Discovery(name) => Some(name.clone()),
            Origin::File { path, line, .. } => Some(format!("{}:{line}", path.display())),
            Origin::Default => None,
        }
    }
}

/// A bad setting: where it came from, the value as given and why it is refused. Its message
/// reads as the operator would find it: `--imds-endpoint "x": ...`, `VNETPROBE_DISCOVER="maybe":
/// ...`, `config.toml:7: field `proxy`: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub origin: Origin,
    /// The value as given, quoted (`"5 s"`); None for a secret. A file line is named instead.
    pub raw: Option<String>,
    pub why: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = &self.why;
        match (&self.origin, &self.raw) {
            (Origin::Flag(name), Some(raw)) => write!(f, "{name} {raw}: {why}"),
            (Origin::Env(var), Some(raw)) => write!(f, "{var}={raw}: {why}"),
            (Origin::Env(var), None) => write!(f, "environment variable {var}: {why}"),
            (Origin::File { path, line, field }, _) => {
                write!(f, "{}:{line}: field `{field}`: {why}", path.display())
            }
            (Origin::Default, _) => write!(f, "the default: {why}"),
            (Origin::Flag(name) | Origin::Discovery(name), _) => {
                write!(f, "{name}: {why}")
            }
        }
    }
}

impl std::error::Error for SettingError {}

/// A setting's value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Setting<T> {
    /// Uses the value (reads the file it names, ...): a failure is an error of this setting.
    pub fn load<U>(&self, use_: impl FnOnce(&T) -> Result<U, String>) -> Result<U, SettingError>
    where
        T: fmt::Debug,
    {
        use_(&self.value).map_err(|why| SettingError {
            origin: self.origin.clone(),
            raw: Some(format!("{:?}", self.value)),
            why,
        })
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Setting<U> {
        Setting {
            value: f(self.value),
            origin: self.origin,
        }
    }

    /// As `vnetprobe context` shows it; `show` words the value (and masks a secret).
    pub fn shown(&self, show: impl FnOnce(&T) -> String) -> Shown {
        Shown {
            value: Some(show(&self.value)),
            origin: self.origin.clone(),
        }
    }
}

/// One source's offer: where it came from and the value as it gave it.
pub type Offer<R> = Option<(Origin, R)>;

/// A flag's value, when given.
pub fn flag<T>(name: &str, value: Option<T>) -> Offer<T> {
    value.map(|v| (Origin::flag(name), v))
}

/// An environment variable's value, when set and not blank (blank is unset, as for curl).
pub fn env(vars: &BTreeMap<String, String>, var: &str) -> Offer<String> {
    let raw = vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())?;
    Some((Origin::env(var), raw.to_string()))
}

/// One setting's sources, highest first: the first that gives a value wins and is checked by
/// the setting's one rule; lower sources are not read (a flag overrides a bad variable).
pub struct Layers<R, T, C> {
    check: C,
    found: Option<Result<Setting<T>, SettingError>>,
    /// Whether an error shows the value as given.
    quote: bool,
    raw: PhantomData<fn(R)>,
}

impl<R: fmt::Debug, T, C: Fn(R) -> Result<T, String>> Layers<R, T, C> {
    /// `check` is the setting's rule: the same function clap's value parser calls.
    pub fn new(check: C) -> Self {
        Layers {
            check,
            found: None,
            quote: true,
            raw: PhantomData,
        }
    }

    /// Errors do not repeat the value: the rule's message quotes it already, or it is a secret.
    pub fn unquoted(mut self) -> Self {
        self.quote = false;
        self
    }

    /// A value as given (text of a flag, a variable or a file key), checked by the rule.
    pub fn given(mut self, offer: Offer<R>) -> Self {
        if self.found.is_none()
            && let Some((origin, raw)) = offer
        {
            let shown = self.quote.then(|| format!("{raw:?}"));
            self.found = Some(match (self.check)(raw) {
                Ok(value) => Ok(Setting { value, origin }),
                Err(why) => Err(SettingError {
                    origin,
                    raw: shown,
                    why,
                }),
            });
        }
        self
    }

    /// A value its parser already checked by the same rule: a flag clap parsed with it, or a
    /// file key TOML typed (`true`, `"china"`).
    pub fn checked(mut self, offer: Offer<T>) -> Self {
        if self.found.is_none()
            && let Some((origin, value)) = offer
        {
            self.found = Some(Ok(Setting { value, origin }));
        }
        self
    }

    /// The winner, or `default` when no source gave a value.
    pub fn or(self, default: T) -> Result<Setting<T>, SettingError> {
        Ok(self.optional()?.unwrap_or(Setting {
            value: default,
            origin: Origin::Default,
        }))
    }

    /// The winner, if any source gave a value.
    pub fn optional(self) -> Result<Option<Setting<T>>, SettingError> {
        self.found.transpose()
    }
}

/// A setting as `vnetprobe context` shows it. JSON: `{"value": "5s", "origin": "file",
/// "from": "/etc/vnetprobe/config.toml:3"}`; `value` is null for an unset optional setting,
/// `from` is absent for a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub value: Option<String>,
    pub origin: Origin,
}

impl Shown {
    /// An optional setting that no source set.
    pub fn unset() -> Shown {
        Shown {
            value: None,
            origin: Origin::Default,
        }
    }

    pub fn of<T>(setting: Option<&Setting<T>>, show: impl FnOnce(&T) -> String) -> Shown {
        setting.map_or_else(Shown::unset, |s| s.shown(show))
    }
}

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let from = self.origin.place();
        let mut map = s.serialize_map(Some(2 + usize::from(from.is_some())))?;
        map.serialize_entry("value", &self.value)?;
        map.serialize_entry("origin", self.origin.label())?;
        if let Some(from) = from {
            map.serialize_entry("from", &from)?;
        }
        map.end()
    }
}

/// The settings table of `vnetprobe context`: name, value (`-` when unset) and origin.
pub fn table(shown: &BTreeMap<&str, Shown>) -> String {
    let rows: Vec<[String; 3]> = shown
        .iter()
        .map(|(name, v)| {
            let origin = match v.origin.place() {
                Some(place) => format!("{} {place}", v.origin.label()),
                None => v.origin.label().to_string(),
            };
            let value = v.value.clone().unwrap_or_else(|| "-".into());
            [name.to_string(), value, origin]
        })
        .chain([["SETTING".into(), "VALUE".into(), "ORIGIN".into()]])
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (name_w, value_w) = (width(0), width(1));
    let (head, body) = rows.split_last().expect("the header row");
    [head]
        .into_iter()
        .chain(body)
        .map(|[name, value, origin]| format!("{name:<name_w$} {value:<value_w$} {origin}\n"))
        .collect()
}

/// `--timeout` / `timeout`: each network wait. Longer than a few minutes is no probe at all.
pub const TIMEOUT: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(600);
/// `--interval` / `serve.interval`: time between the starts of two runs of `serve`.
pub const INTERVAL: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3600);
/// `--concurrency` / `concurrency`: probes in flight at once.
pub const CONCURRENCY: RangeInclusive<usize> = 1..=4096;

/// Parses a duration (`5s`, `800ms`, `1m`) and checks it against `range`.
pub fn duration(raw: &str, range: &RangeInclusive<Duration>) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw).map_err(|e| format!("{e} (examples: 5s, 800ms, 1m)"))?;
    if range.contains(&d) {
        return Ok(d);
    }
    let show = |d: &Duration| humantime::format_duration(*d).to_string();
    Err(format!(
        "{raw:?} is out of range: from {} to {}",
        show(range.start()),
        show(range.end())
    ))
}

/// Checks a count against `range`.
pub fn count(n: u64, range: &RangeInclusive<usize>) -> Result<usize, String> {
    match usize::try_from(n) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{n} is out of range: from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(line: usize) -> Origin {
        Origin::File {
            path: PathBuf::from("config.toml"),
            line,
            field: "timeout".into(),
        }
    }

    fn timeout(
        flag_: Option<Duration>,
        env_: &[(&str, &str)],
        file_: Option<&str>,
    ) -> Result<Setting<Duration>, SettingError> {
        let vars = env_
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Layers::new(|raw: String| duration(&raw, &TIMEOUT))
            .checked(flag("--timeout", flag_))
            .given(env(&vars, "VNETPROBE_TIMEOUT"))
            .given(file_.map(|raw| (file(7), raw.to_string())))
            .or(Duration::from_secs(5))
    }

    #[test]
    fn a_flag_beats_the_environment_beats_the_file_beats_the_default() {
        let secs = Duration::from_secs;
        let env3 = [("VNETPROBE_TIMEOUT", "3s")];
        let got = timeout(Some(secs(1)), &env3, Some("2s")).unwrap();
        assert_eq!(
            (got.value, got.origin),
            (secs(1), Origin::flag("--timeout"))
        );
        let got = timeout(None, &env3, Some("2s")).unwrap();
        assert_eq!(
            (got.value, got.origin),
            (secs(3), Origin::env("VNETPROBE_TIMEOUT"))
        );
        let got = timeout(None, &[("VNETPROBE_TIMEOUT", " ")], Some("2s")).unwrap();
        assert_eq!((got.value, got.origin), (secs(2), file(7)));
        let got = timeout(None, &[], None).unwrap();
        assert_eq!((got.value, got.origin), (secs(5), Origin::Default));
    }

    #[test]
    fn lower_sources_are_not_read() {
        let bad = [("VNETPROBE_TIMEOUT", "soon")];
        let got = timeout(Some(Duration::from_secs(1)), &bad, Some("never")).unwrap();
        assert_eq!(got.origin, Origin::flag("--timeout"));
    }

    #[test]
    fn each_source_is_checked_by_the_same_rule_and_named_its_own_way() {
        let from_env = timeout(None, &[("VNETPROBE_TIMEOUT", "11m")], None).unwrap_err();
        let from_file = timeout(None, &[], Some("11m")).unwrap_err();
        assert_eq!(from_env.why, from_file.why);
        assert_eq!(from_env.why, duration("11m", &TIMEOUT).unwrap_err());
        assert!(
            from_env
                .to_string()
                .starts_with("VNETPROBE_TIMEOUT=\"11m\": \"11m\" is out of range"),
            "{from_env}"
        );
        assert!(
            from_file
                .to_string()
                .starts_with("config.toml:7: field `timeout`: \"11m\" is out of range"),
            "{from_file}"
        );
        let from_flag = Layers::new(|raw: String| duration(&raw, &TIMEOUT))
            .given(flag("--timeout", Some("11m".to_string())))
            .optional()
            .unwrap_err();
        assert_eq!(from_flag.why, from_file.why);
        assert!(
            from_flag.to_string().starts_with("--timeout \"11m\": "),
            "{from_flag}"
        );
    }

    #[test]
    fn every_origin_has_its_message_and_a_secret_is_never_repeated() {
        let error = |origin: Origin, raw: Option<&str>| {
            SettingError {
                origin,
                raw: raw.map(|r| format!("{r:?}")),
                why: "bad".into(),
            }
            .to_string()
        };
        assert_eq!(error(Origin::flag("--proxy"), None), "--proxy: bad");
        assert_eq!(error(Origin::flag("--tcp"), Some("0")), "--tcp \"0\": bad");
        assert_eq!(
            error(Origin::env("VNETPROBE_X"), Some("y")),
            "VNETPROBE_X=\"y\": bad"
        );
        assert_eq!(
            error(Origin::env("https_proxy"), None),
            "environment variable https_proxy: bad"
        );
        assert_eq!(
            error(file(7), Some("ignored")),
            "config.toml:7: field `timeout`: bad"
        );
        assert_eq!(
            error(Origin::Discovery("~/.bashrc".into()), None),
            "~/.bashrc: bad"
        );
        assert_eq!(error(Origin::Default, None), "the default: bad");
        let secret = Layers::new(|raw: String| Err::<String, _>(format!("{} chars", raw.len())))
            .unquoted()
            .given(flag("--proxy", Some("http://u:hunter2@p".to_string())))
            .optional()
            .unwrap_err();
        assert_eq!(secret.to_string(), "--proxy: 18 chars");
    }

    #[test]
    fn shown_settings_name_their_origin() {
        let shown = BTreeMap::from([
            (
                "timeout",
                Setting {
                    value: 3,
                    origin: file(2),
                }
                .shown(|s| format!("{s}s")),
            ),
            ("dns-server", Shown::unset()),
        ]);
        let json = serde_json::to_value(&shown).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "timeout": {"value": "3s", "origin": "file", "from": "config.toml:2"},
                "dns-server": {"value": null, "origin": "default"},
            })
        );
        let text = table(&shown);
        assert!(
            text.lines().any(|l| l.split_whitespace().eq([
                "timeout",
                "3s",
                "file",
                "config.toml:2"
            ])),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(["dns-server", "-", "default"])),
            "{text}"
        );
    }

    #[test]
    fn durations_outside_their_range_are_refused() {
        assert_eq!(duration("5s", &TIMEOUT), Ok(Duration::from_secs(5)));
        for raw in ["0s", "11m", "18446744073709551615s", "584942417355y"] {
            let e = duration(raw, &TIMEOUT).unwrap_err();
            assert!(
                e.contains("out of range") || e.contains("examples"),
                "{raw}: {e}"
            );
        }
        assert!(duration("soon", &TIMEOUT).unwrap_err().contains("examples"));
        let e = duration("500ms", &INTERVAL).unwrap_err();
        assert!(e.contains("from 1s to 1day"), "{e}");
        assert!(duration("2days", &INTERVAL).is_err());
    }

    #[test]
    fn counts_outside_their_range_are_refused() {
        assert_eq!(count(32, &CONCURRENCY), Ok(32));
        for n in [0, 4097, 3_000_000_000_000_000_000, u64::MAX] {
            assert!(
                count(n, &CONCURRENCY)
                    .unwrap_err()
                    .contains("from 1 to 4096")
            );
        }
    }
}
