//! Proxy settings the node's users configure outside the process environment, where the Azure
//! ML documents send them: exports in the shell profile (`~/.bashrc`, which the compute
//! instance's terminals, jobs and setup scripts source), pip's configuration (`PIP_PROXY`,
//! `pip.conf` `proxy`) and conda's (`.condarc` `proxy_servers`). Each keeps the file it came
//! from, for the report. Files are read bounded (64 KiB) and only when they are regular files;
//! what cannot be read is left out: these are hints of the users' setup, not configuration of
//! vnetprobe.
//!
//! pip and conda hand their configured proxy to Python requests as an explicit proxy, which
//! requests uses even for hosts NO_PROXY names: probes of their targets do the same.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most read of any one file.
const FILE_CAP: u64 = 64 * 1024;

/// What the files say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyFiles {
    /// Proxy variables the shell profile exports, and the profile's path.
    pub shell: Option<(String, BTreeMap<String, String>)>,
    /// pip's proxy URL and where it is set.
    pub pip: Option<(String, String)>,
    /// conda's proxy URLs by scheme (`http`, `https`) and the file.
    pub conda: Option<(String, BTreeMap<String, String>)>,
}

/// Where users keep them on a compute instance: this user's home and azureuser's.
pub fn homes(root: &Path, env_home: Option<&str>) -> Vec<PathBuf> {
    let mut homes: Vec<PathBuf> = Vec::new();
    for home in env_home.into_iter().chain(["/home/azureuser"]) {
        let dir = root.join(home.trim_start_matches('/'));
        if !homes.contains(&dir) {
            homes.push(dir);
        }
    }
    homes
}

impl ProxyFiles {
    /// Reads the files under `root` (`/`, or `--node-root`) for `homes`; `pip_proxy` is the
    /// process's `PIP_PROXY`, which pip puts before its files.
    pub fn read(root: &Path, homes: &[PathBuf], pip_proxy: Option<&str>) -> ProxyFiles {
        let shell = homes.iter().find_map(|h| {
            let path = h.join(".bashrc");
            let vars = shell_exports(&read_capped(&path)?);
            (!vars.is_empty()).then(|| (path.display().to_string(), vars))
        });
        let mut pip = pip_proxy
            .filter(|p| !p.trim().is_empty())
            .map(|p| ("environment PIP_PROXY".to_string(), p.trim().to_string()));
        if pip.is_none() {
            // pip reads these in order; a later file overrides an earlier one.
            let mut files = vec![root.join("etc/pip.conf"), root.join("etc/xdg/pip/pip.conf")];
            for h in homes.iter().rev() {
                files.push(h.join(".pip/pip.conf"));
                files.push(h.join(".config/pip/pip.conf"));
            }
            for path in files {
                if let Some(url) = read_capped(&path).and_then(|t| pip_conf_proxy(&t)) {
                    pip = Some((path.display().to_string(), url));
                }
            }
        }
        let conda = homes
            .iter()
            .map(|h| h.join(".condarc"))
            .chain([
                root.join("anaconda/.condarc"),
                root.join("etc/conda/.condarc"),
            ])
            .find_map(|path| {
                let servers = condarc_proxies(&read_capped(&path)?);
                (!servers.is_empty()).then(|| (path.display().to_string(), servers))
            });
        ProxyFiles { shell, pip, conda }
    }
}

fn read_capped(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(FILE_CAP).read_to_string(&mut text).ok()?;
    Some(text)
}

/// `export https_proxy=http://...` and `NO_PROXY="..."` lines with a literal value; values that
/// need the shell to expand (`$`, backquotes) are left out.
fn shell_exports(text: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim();
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let lower = name.to_ascii_lowercase();
        if !(lower.ends_with("_proxy"))
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        if value.contains(['$', '`']) {
            continue;
        }
        vars.insert(name.to_string(), value.to_string());
    }
    vars
}

/// `proxy = URL` in pip.conf's `[global]` or `[install]` section.
fn pip_conf_proxy(text: &str) -> Option<String> {
    let mut section = String::new();
    let mut found = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_ascii_lowercase();
        } else if let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("proxy")
            && (section == "global" || section == "install")
            && !value.trim().is_empty()
        {
            found = Some(value.trim().to_string());
        }
    }
    found
}

/// `proxy_servers:` with indented `http: URL` / `https: URL` in a .condarc.
fn condarc_proxies(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if !indented {
            inside = line.trim_end() == "proxy_servers:";
            continue;
        }
        if inside && let Some((scheme, url)) = line.trim().split_once(':') {
            let scheme = scheme.trim().trim_matches(['"', '\'']);
            let url = url.trim().trim_matches(['"', '\'']);
            if matches!(scheme, "http" | "https") && !url.is_empty() {
                out.insert(scheme.to_string(), url.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_exports_keep_literal_proxy_variables() {
        let vars = shell_exports(
            "# proxy\nexport HTTPS_PROXY=\"http://proxy:3128\"\nexport no_proxy='.api.azureml.ms,10.0.0.0/8'\n\
             http_proxy=http://p:1\nexport PATH=$PATH:/x\nexport ALL_PROXY=$CORP_PROXY\n",
        );
        assert_eq!(
            vars,
            BTreeMap::from([
                ("HTTPS_PROXY".to_string(), "http://proxy:3128".to_string()),
                ("http_proxy".to_string(), "http://p:1".to_string()),
                (
                    "no_proxy".to_string(),
                    ".api.azureml.ms,10.0.0.0/8".to_string()
                ),
            ])
        );
    }

    #[test]
    fn pip_and_conda_files() {
        assert_eq!(
            pip_conf_proxy(
                "[global]\ntimeout = 60\nproxy = http://u:p@proxy:3128\n[list]\nproxy = x\n"
            ),
            Some("http://u:p@proxy:3128".into())
        );
        assert_eq!(pip_conf_proxy("[list]\nproxy = x\n"), None);
        let conda = condarc_proxies(
            "channels:\n  - defaults\nproxy_servers:\n  http: http://proxy:3128\n  https: 'http://proxy:3128'\nssl_verify: true\n",
        );
        assert_eq!(conda.len(), 2);
        assert_eq!(conda["https"], "http://proxy:3128");
    }

    #[test]
    fn files_under_a_node_root() {
        let root = std::env::temp_dir().join(format!("vnp-proxyfiles-{}", std::process::id()));
        let home = root.join("home/azureuser");
        std::fs::create_dir_all(home.join(".config/pip")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(home.join(".bashrc"), "export https_proxy=http://p:3128\n").unwrap();
        std::fs::write(
            root.join("etc/pip.conf"),
            "[global]\nproxy = http://etc:1\n",
        )
        .unwrap();
        std::fs::write(
            home.join(".config/pip/pip.conf"),
            "[global]\nproxy = http://user:2\n",
        )
        .unwrap();
        let homes = homes(&root, Some("/root"));
        let files = ProxyFiles::read(&root, &homes, None);
        let (src, vars) = files.shell.unwrap();
        assert!(src.ends_with("home/azureuser/.bashrc"), "{src}");
        assert_eq!(vars["https_proxy"], "http://p:3128");
        assert_eq!(
            files.pip.unwrap().1,
            "http://user:2",
            "the user's file wins"
        );
        let env = ProxyFiles::read(&root, &homes, Some("http://env:3"));
        assert_eq!(env.pip.unwrap().0, "environment PIP_PROXY");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
