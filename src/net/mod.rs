//! Shared network plumbing: dialing with deadlines, and the settings that decide how probes
//! reach their targets (proxy, trust).

pub mod dial;
pub mod tls;

use std::path::PathBuf;

/// How probes reach targets, beyond plain sockets.
#[derive(Debug, Clone, Default)]
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
}
