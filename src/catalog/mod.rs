//! Probe catalogs: load TOML files, validate them with file and line in every error, expand them
//! against a context into the targets of one run, and select profiles.

pub mod adhoc;
pub mod auto;
mod check;
mod expand;
mod load;
pub mod peer;
mod sections;
mod select;

pub use check::{Check, DEFAULT_ACCEPT, Host, Method, Web, unset_reason};
pub use select::glob_match;

use std::fmt;

use serde::Serialize;

use crate::context::Cloud;
use crate::context::template::Template;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"));
}

/// Profile names that need no declaration.
pub const BUILTIN_PROFILES: &[&str] = &[
    "no-public-ip",
    "public-ip",
    "internet",
    "private-endpoint",
    "packages",
    "vscode",
    "exfiltration",
    "peer",
];

crate::outcome::labelled! {
    pub enum Protocol {
        Dns => "dns",
        Tcp => "tcp",
        Udp => "udp",
        Tls => "tls",
        Http => "http",
        Ws => "ws",
    }
}

crate::outcome::labelled! {
    /// What a target must show to pass.
    #[derive(Default)]
    pub enum Expect {
        /// The path works (the default).
        #[default]
        Reachable => "reachable",
        /// A negative check: reaching the target is the failure (exfiltration paths).
        Blocked => "blocked",
        /// DNS must answer with private addresses only.
        Private => "private",
        /// DNS must answer with public addresses only.
        Public => "public",
    }
}

crate::outcome::labelled! {
    /// Which way a target's traffic flows. Inbound rows are requirements on traffic *to* this node
    /// (from a service tag): nothing the node sends can prove them, so they are reported as skipped
    /// with the rule to verify from Azure's side, and never claimed as checked.
    #[derive(Default)]
    pub enum Direction {
        #[default]
        Outbound => "outbound",
        Inbound => "inbound",
    }
}

/// An HTTP status, or a class of them ("2xx"), that proves a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StatusMatch {
    Code(u16),
    Class(u16),
}

impl StatusMatch {
    pub fn matches(self, status: u16) -> bool {
        match self {
            StatusMatch::Code(c) => c == status,
            StatusMatch::Class(c) => status / 100 == c,
        }
    }

    fn parse(raw: &toml::Value) -> Result<StatusMatch, String> {
        match raw {
            toml::Value::Integer(i) if (100..=599).contains(i) => Ok(StatusMatch::Code(*i as u16)),
            toml::Value::String(s) if s.len() == 3 && s.ends_with("xx") => match s.as_bytes()[0] {
                c @ b'1'..=b'5' => Ok(StatusMatch::Class(u16::from(c - b'0'))),
                _ => Err(format!("bad status class {s:?} (use 1xx to 5xx)")),
            },
            toml::Value::String(s) => s
                .parse::<u16>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(StatusMatch::Code)
                .ok_or_else(|| {
                    format!("bad status {s:?} (a code 100-599 or a class like \"2xx\")")
                }),
            other => Err(format!(
                "bad status {other:?} (a code 100-599 or a class like \"2xx\")"
            )),
        }
    }
}

/// One thing to probe, after expansion: one host, at most one port.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: String,
    pub name: String,
    pub host: Host,
    pub check: Check,
    pub profiles: Vec<String>,
    pub service_tag: Option<String>,
    pub required: bool,
    pub expect: Expect,
    pub why: String,
    pub fix: String,
    pub section: Option<String>,
    pub direction: Direction,
    /// Whose proxy route an HTTP or TLS probe takes (curl's by default; pip's for package
    /// indexes).
    pub client: crate::net::proxy::Client,
    /// The target's own wait for each network step (`timeout = "10s"`), instead of the run's
    /// `--timeout`; its probe cap and the run's deadline grow with it.
    pub timeout: Option<std::time::Duration>,
}

impl Target {
    pub fn protocol(&self) -> Protocol {
        self.check.protocol()
    }

    pub fn port(&self) -> Option<u16> {
        self.check.port()
    }

    /// `host:port`, or the host alone for DNS targets; IPv6 literals in brackets.
    pub fn endpoint(&self) -> String {
        crate::address::endpoint(self.host.shown(), self.port())
    }
}

/// `catalog --output json`: the target as people and scripts read it (the check's protocol and
/// port, the host with `<variable>` where one is unset).
impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Listed<'a> {
            id: &'a str,
            name: &'a str,
            protocol: Protocol,
            host: &'a Host,
            port: Option<u16>,
            profiles: &'a [String],
            service_tag: &'a Option<String>,
            required: bool,
            expect: Expect,
            why: &'a str,
            fix: &'a str,
            section: &'a Option<String>,
            direction: Direction,
            client: crate::net::proxy::Client,
        }
        Listed {
            id: &self.id,
            name: &self.name,
            protocol: self.protocol(),
            host: &self.host,
            port: self.port(),
            profiles: &self.profiles,
            service_tag: &self.service_tag,
            required: self.required,
            expect: self.expect,
            why: &self.why,
            fix: &self.fix,
            section: &self.section,
            direction: self.direction,
            client: self.client,
        }
        .serialize(s)
    }
}

/// A catalog error: names the file, the line and the field.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogError {
    pub file: String,
    pub line: Option<usize>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CatalogError {}

/// A profile as declared in a catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Profile {
    pub name: String,
    pub description: String,
    pub default: bool,
}

/// A target as written, before expansion.
#[derive(Debug, Clone)]
struct TargetSpec {
    id: String,
    name: String,
    host: Template,
    check: check::Written,
    /// Empty for DNS, at least one port for every other protocol.
    ports: Vec<u16>,
    profiles: Vec<String>,
    /// As written, and parsed: regional tags name `{region}`.
    service_tag: Option<(String, Template)>,
    /// The clouds in which the target is required.
    required: Vec<Cloud>,
    expect: Expect,
    /// For private-endpoint names: the service (`blob`, `workspace`, ...) whose listing in
    /// `private_endpoints` makes `expect = "private"` apply; otherwise any answer is reported.
    private_endpoint: Option<String>,
    /// Required only where `private_endpoints` lists this service (and the cloud requires it).
    required_with_private_endpoint: Option<String>,
    direction: Direction,
    client: crate::net::proxy::Client,
    clouds: Vec<Cloud>,
    section: Option<String>,
    why: String,
    fix: String,
    timeout: Option<std::time::Duration>,
}

/// A validated catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    profiles: Vec<Profile>,
    targets: Vec<TargetSpec>,
    /// SHA-256 of the files as read (names and text), so `merge` can tell reports made from
    /// different catalogs apart.
    digest: String,
}

/// The 1-based line of a byte offset, for errors that name a line of a TOML file.
/// The longest id, name and host (a DNS name's limit) a catalog may hold.
pub const MAX_ID: usize = 100;
pub const MAX_NAME: usize = 200;
pub const MAX_HOST: usize = 253;

impl Catalog {
    pub fn profiles(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn profile_names(&self) -> Vec<String> {
        self.profiles.iter().map(|p| p.name.clone()).collect()
    }

    /// The profiles run when none is asked for (empty: every target).
    pub fn default_profiles(&self) -> Vec<String> {
        self.profiles
            .iter()
            .filter(|p| p.default)
            .map(|p| p.name.clone())
            .collect()
    }

    /// Number of targets as written (before ports are split out).
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// `sha256:` and the first 16 hex digits of the digest of the files as read.
    pub fn digest(&self) -> &str {
        &self.digest
    }
}

#[cfg(test)]
mod tests;
