//! The TOML config file (`--config FILE`, or /etc/vnetprobe/config.toml when present).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::Cloud;
use crate::input::line_of;
use crate::settings::{Offer, Origin};

/// The default config file, read when present and no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/vnetprobe/config.toml";

/// Every key is optional; flags and `VNETPROBE_*` variables override them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigFile {
    pub cloud: Option<Spanned<Cloud>>,
    pub profiles: Option<Vec<String>>,
    pub catalog: Option<Vec<PathBuf>>,
    pub dns_server: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<u64>>,
    pub ca_file: Option<Spanned<PathBuf>>,
    pub allow_intercept: Option<Spanned<bool>>,
    pub strict: Option<Spanned<bool>>,
    pub proxy: Option<Spanned<String>>,
    pub no_proxy: Option<Spanned<bool>>,
    pub only: Option<String>,
    pub discover: Option<Spanned<bool>>,
    pub imds_endpoint: Option<Spanned<String>>,
    pub node_root: Option<Spanned<PathBuf>>,
    pub service_tags: Option<Spanned<PathBuf>>,
    pub nsg: Option<Spanned<Vec<PathBuf>>>,
    pub routes: Option<Spanned<PathBuf>>,
    pub app_rule_ports: Option<Spanned<Vec<u16>>>,
    pub vnet_prefix: Option<Spanned<Vec<String>>>,
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
    pub web_config_file: Option<Spanned<PathBuf>>,
}

/// `vnetprobe listen`, the responder of peer checks; `key-file` is also the key of `check --peer`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ListenSection {
    pub tcp: Option<Spanned<String>>,
    pub udp: Option<Spanned<String>>,
    pub key_file: Option<Spanned<PathBuf>>,
    #[serde(rename = "for")]
    pub for_: Option<Spanned<String>>,
    pub forever: Option<Spanned<bool>>,
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
        Ok(cfg)
    }

    /// The offer of the key `field` (dotted, as `serve.interval`) to a setting's layers: its
    /// value and its line in this file.
    pub fn at<T: Clone>(&self, field: &str, value: Option<&Spanned<T>>) -> Offer<T> {
        let value = value?;
        let (path, line) = match &self.origin {
            Some((path, text)) => (path.clone(), line_of(text, value.span().start)),
            None => (PathBuf::from("config"), 0),
        };
        let origin = Origin::File {
            path,
            line,
            field: field.to_string(),
        };
        Some((origin, value.get_ref().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_section() {
        let text = "cloud = \"usgov\"\ntimeout = \"3s\"\n[set]\nregion = \"usgovvirginia\"\n[serve]\nlisten = \"127.0.0.1:1\"\n";
        let cfg = ConfigFile::parse(Path::new("c.toml"), text).unwrap();
        assert_eq!(cfg.cloud.map(Spanned::into_inner), Some(Cloud::Usgov));
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
    fn bad_cloud_is_rejected_with_line() {
        let err = ConfigFile::parse(Path::new("v.toml"), "\ncloud = \"mars\"\n").unwrap_err();
        assert!(err.0.starts_with("v.toml:2:"), "{err}");
    }
}
