//! Shared network plumbing: dialing with deadlines, and the settings that decide how probes
//! reach their targets (proxy, trust).

pub mod dial;
pub mod echo;
pub mod firewall;
pub mod noproxy;
pub mod proxy;
pub mod proxy_files;
pub mod tls;
pub mod trace;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The User-Agent of every HTTP request and CONNECT a probe sends.
pub const USER_AGENT: &str = concat!("vnetprobe/", env!("CARGO_PKG_VERSION"));

/// How probes reach targets, beyond plain sockets. `Debug` masks proxy credentials.
#[derive(Clone, Default)]
pub struct NetConfig {
    /// Extra trust anchors (PEM): with the system store they form the "local" trust.
    pub ca_file: Option<PathBuf>,
    /// Replace the built-in public roots (labs and tests): `VNETPROBE_PUBLIC_ROOTS`.
    pub public_roots: Option<PathBuf>,
    /// A chain valid only through the local trust passes with a warning instead of failing.
    pub allow_intercept: bool,
    /// `--proxy URL`: overrides the environment.
    pub proxy: Option<String>,
    /// `--no-proxy`: ignore the environment, connect directly.
    pub no_proxy: bool,
    /// The proxy variables in force (`proxy::process_env()` for the CLI; tests pass their own).
    pub proxy_env: BTreeMap<String, String>,
    /// Where `proxy_env` came from when not the process environment (the shell profile).
    pub proxy_env_source: Option<String>,
    /// pip's and conda's own proxy settings.
    pub proxy_files: proxy_files::ProxyFiles,
    /// The key shared with `vnetprobe listen` responders (`--key-file`), for peer checks.
    pub peer_key: Option<echo::Key>,
    /// Ports beyond 80, 443 and 1433 on which an application-rule firewall answers TCP itself
    /// (`--app-rule-port`, config `app-rule-ports`).
    pub app_rule_ports: Vec<u16>,
}

/// The ports on which Azure Firewall completes the TCP handshake itself before its application
/// rules read the Host header or SNI (Azure Firewall FAQ, "Why can a TCP ping ... succeed"):
/// HTTP, HTTPS and MSSQL. An application rule naming another port adds that port.
pub const APP_RULE_PORTS: [u16; 3] = [80, 443, 1433];

impl NetConfig {
    /// Whether a firewall's application rule may answer a TCP handshake on `port` itself, so a
    /// connect there proves nothing about the path beyond it.
    pub fn app_rule_port(&self, port: u16) -> bool {
        APP_RULE_PORTS.contains(&port) || self.app_rule_ports.contains(&port)
    }
}

impl std::fmt::Debug for NetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: BTreeMap<&str, String> = self
            .proxy_env
            .iter()
            .map(|(k, v)| (k.as_str(), proxy::mask(v)))
            .collect();
        f.debug_struct("NetConfig")
            .field("ca_file", &self.ca_file)
            .field("public_roots", &self.public_roots)
            .field("allow_intercept", &self.allow_intercept)
            .field("proxy", &self.proxy.as_deref().map(proxy::mask))
            .field("no_proxy", &self.no_proxy)
            .field("proxy_env", &env)
            .field("proxy_env_source", &self.proxy_env_source)
            .field("peer_key", &self.peer_key.as_ref().map(|_| "<redacted>"))
            .field("app_rule_ports", &self.app_rule_ports)
            .finish()
    }
}
