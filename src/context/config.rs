//! The TOML config file (`--config FILE`, or /etc/vnetprobe/config.toml when present).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::Cloud;
use crate::input::line_of;

/// The default config file, read when present and no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/vnetprobe/config.toml";

/// Every key is optional; flags and `VNETPROBE_*` variables override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub cloud: Option<Cloud>,
    pub profiles: Option<Vec<String>>,
    pub catalog: Option<Vec<PathBuf>>,
    pub dns_server: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<u64>>,
    pub ca_file: Option<PathBuf>,
    pub allow_intercept: Option<bool>,
    pub strict: Option<bool>,
    pub proxy: Option<Spanned<String>>,
    pub no_proxy: Option<bool>,
    pub only: Option<String>,
    pub discover: Option<bool>,
    pub imds_endpoint: Option<Spanned<String>>,
    pub node_root: Option<PathBuf>,
    #[serde(default)]
    pub set: BTreeMap<String, Spanned<String>>,
    pub serve: Option<ServeSection>,
    pub listen: Option<ListenSection>,
    /// Where this was read from, and its text, for errors that name a line.
    #[serde(skip)]
    pub origin: Option<(PathBuf, String)>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServeSection {
    pub listen: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub web_config_file: Option<PathBuf>,
}

/// `vnetprobe listen`, the responder of peer checks; `key-file` is also the key of `check --peer`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenSection {
    pub tcp: Option<Spanned<String>>,
    pub udp: Option<Spanned<String>>,
    pub key_file: Option<PathBuf>,
    #[serde(rename = "for")]
    pub for_: Option<Spanned<String>>,
    pub forever: Option<bool>,
    pub rate: Option<Spanned<u32>>,
    pub address: Option<Spanned<String>>,
}

/// A config error: file, line and field.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigFile {
    /// Reads `explicit`, or the default path when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(ConfigFile::default()),
        };
        let text = crate::input::read_text(&path, crate::input::SMALL)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        ConfigFile::parse(&path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
        let mut cfg: ConfigFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| format!(":{}", line_of(text, s.start)))
                .unwrap_or_default();
            ConfigError(format!("{}{line}: {}", path.display(), e.message().trim()))
        })?;
        cfg.origin = Some((path.to_path_buf(), text.to_string()));
        for (key, value) in &cfg.set {
            if let Err(e) = super::check_setting(key, value.get_ref()) {
                return Err(cfg.error_at(value, &format!("set.{key}"), &e));
            }
        }
        Ok(cfg)
    }

    /// An error message naming this file, the line of `at`, and the field.
    pub fn error_at<T>(&self, at: &Spanned<T>, field: &str, message: &str) -> ConfigError {
        match &self.origin {
            Some((path, text)) => ConfigError(format!(
                "{}:{}: field `{field}`: {message}",
                path.display(),
                line_of(text, at.span().start)
            )),
            None => ConfigError(format!("config: field `{field}`: {message}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_section() {
        let text = "cloud = \"usgov\"\ntimeout = \"3s\"\n[set]\nregion = \"usgovvirginia\"\n[serve]\nlisten = \"127.0.0.1:1\"\n";
        let cfg = ConfigFile::parse(Path::new("c.toml"), text).unwrap();
        assert_eq!(cfg.cloud, Some(Cloud::Usgov));
        assert_eq!(cfg.set["region"].get_ref(), "usgovvirginia");
        assert_eq!(
            cfg.serve.unwrap().listen.unwrap().into_inner(),
            "127.0.0.1:1"
        );
    }

    #[test]
    fn typo_names_file_and_line() {
        let err = ConfigFile::parse(
            Path::new("/etc/v.toml"),
            "cloud = \"public\"\ntimeuot = \"3s\"\n",
        )
        .unwrap_err();
        assert!(err.0.starts_with("/etc/v.toml:2:"), "{err}");
        assert!(err.0.contains("timeuot"), "{err}");
    }

    #[test]
    fn unknown_variable_in_set_names_line_and_field() {
        let err = ConfigFile::parse(
            Path::new("v.toml"),
            "[set]\nregion = \"westeurope\"\nworkspace = \"y\"\n",
        )
        .unwrap_err();
        assert!(
            err.0.starts_with("v.toml:3: field `set.workspace`"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_value_names_line_and_field_like_a_flag_would() {
        let err = ConfigFile::parse(Path::new("v.toml"), "[set]\nregion = \"West Europe\"\n")
            .unwrap_err();
        assert!(err.0.starts_with("v.toml:2: field `set.region`"), "{err}");
        assert!(err.0.contains("did you mean \"westeurope\""), "{err}");
    }

    #[test]
    fn bad_cloud_is_rejected_with_line() {
        let err = ConfigFile::parse(Path::new("v.toml"), "\ncloud = \"mars\"\n").unwrap_err();
        assert!(err.0.starts_with("v.toml:2:"), "{err}");
    }
}
