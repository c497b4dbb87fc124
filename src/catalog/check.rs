//! What a target checks, one variant per protocol with that protocol's settings only, and its
//! host after expansion: ready to probe, or unset with the variables it needs. A tcp target
//! cannot lack a port or carry a path, and a probe never meets a host with a hole in it.

use std::fmt;

use serde::Serialize;

use super::{Protocol, StatusMatch};
use crate::context::template::Template;

/// One check of one target, at one port.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Name resolution; the answer is held to the target's `expect`.
    Dns,
    Tcp {
        port: u16,
        /// The host runs `vnetprobe listen`: the probe asks for its echo (see `net::echo`).
        responder: bool,
    },
    Udp {
        port: u16,
        /// The datagram sent (empty unless the catalog names one).
        payload: Vec<u8>,
        responder: bool,
    },
    /// A TLS handshake, nothing sent after it.
    Tls { port: u16 },
    /// One request; the status must match `accept`.
    Http {
        port: u16,
        web: Web,
        method: Method,
        accept: Vec<StatusMatch>,
    },
    /// A WebSocket upgrade.
    Ws { port: u16, web: Web },
}

/// The scheme and path of an HTTP or WebSocket check.
#[derive(Debug, Clone, PartialEq)]
pub struct Web {
    /// `https` / `wss` (the default) or `http` / `ws`.
    pub tls: bool,
    /// Starts with '/'.
    pub path: String,
}

crate::outcome::labelled! {
    /// The request of an HTTP check: the catalog allows the two that change nothing.
    #[derive(Default)]
    pub enum Method {
        #[default]
        Get => "GET",
        Head => "HEAD",
    }
}

/// What proves an HTTP path when the catalog does not say: any success or redirect.
pub const DEFAULT_ACCEPT: [StatusMatch; 2] = [StatusMatch::Class(2), StatusMatch::Class(3)];

impl Check {
    pub fn protocol(&self) -> Protocol {
        match self {
            Check::Dns => Protocol::Dns,
            Check::Tcp { .. } => Protocol::Tcp,
            Check::Udp { .. } => Protocol::Udp,
            Check::Tls { .. } => Protocol::Tls,
            Check::Http { .. } => Protocol::Http,
            Check::Ws { .. } => Protocol::Ws,
        }
    }

    /// The port connected to; DNS has none.
    pub fn port(&self) -> Option<u16> {
        match self {
            Check::Dns => None,
            Check::Tcp { port, .. }
            | Check::Udp { port, .. }
            | Check::Tls { port }
            | Check::Http { port, .. }
            | Check::Ws { port, .. } => Some(*port),
        }
    }

    /// Whether a `vnetprobe listen` responder answers there (tcp and udp only).
    pub fn responder(&self) -> bool {
        matches!(
            self,
            Check::Tcp {
                responder: true,
                ..
            } | Check::Udp {
                responder: true,
                ..
            }
        )
    }
}

/// A target's host after expansion.
#[derive(Debug, Clone, PartialEq)]
pub enum Host {
    /// A name or an IP literal (IPv6 without brackets), ready to probe.
    Ready(String),
    /// Some variable of the host's template (or its path's) has no value: the target is skipped.
    Unset {
        /// The variables no source set, in the order the template names them.
        missing: Vec<String>,
        /// The host for people, each missing variable written `<name>`.
        shown: String,
    },
}

impl Host {
    /// The host to probe; `None` when it is unset.
    pub fn ready(&self) -> Option<&str> {
        match self {
            Host::Ready(h) => Some(h),
            Host::Unset { .. } => None,
        }
    }

    /// The host as people read it.
    pub fn shown(&self) -> &str {
        match self {
            Host::Ready(h) => h,
            Host::Unset { shown, .. } => shown,
        }
    }

    /// The variables a skipped host needs (none when ready).
    pub fn missing(&self) -> &[String] {
        match self {
            Host::Ready(_) => &[],
            Host::Unset { missing, .. } => missing,
        }
    }
}

/// Why a target with an unset host is skipped: for each variable, the flag that sets it.
pub fn unset_reason(missing: &[String]) -> String {
    missing
        .iter()
        .map(|v| crate::context::missing_variable_hint(v))
        .collect::<Vec<_>>()
        .join("; ")
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

impl Serialize for Host {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

/// A target's check as the catalog writes it: its protocol's settings, the path a template
/// until a run's context expands it.
#[derive(Debug, Clone)]
pub(super) enum Written {
    Dns,
    Tcp {
        responder: bool,
    },
    Udp {
        payload: Vec<u8>,
        responder: bool,
    },
    Tls,
    Http {
        tls: bool,
        path: Template,
        method: Method,
        accept: Vec<StatusMatch>,
    },
    Ws {
        tls: bool,
        path: Template,
    },
}

impl Written {
    pub(super) fn path(&self) -> Option<&Template> {
        match self {
            Written::Http { path, .. } | Written::Ws { path, .. } => Some(path),
            _ => None,
        }
    }

    /// The check at `port` (DNS has none), with `path` as expanded for the run.
    pub(super) fn at(&self, port: u16, path: &str) -> Check {
        let web = |tls: bool| Web {
            tls,
            path: path.to_string(),
        };
        match self {
            Written::Dns => Check::Dns,
            Written::Tcp { responder } => Check::Tcp {
                port,
                responder: *responder,
            },
            Written::Udp { payload, responder } => Check::Udp {
                port,
                payload: payload.clone(),
                responder: *responder,
            },
            Written::Tls => Check::Tls { port },
            Written::Http {
                tls,
                method,
                accept,
                ..
            } => Check::Http {
                port,
                web: web(*tls),
                method: *method,
                accept: accept.clone(),
            },
            Written::Ws { tls, .. } => Check::Ws {
                port,
                web: web(*tls),
            },
        }
    }
}
