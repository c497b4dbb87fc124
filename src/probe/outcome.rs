//! What one probe found: status, a closed vocabulary of error kinds, timings and evidence.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// The verdict on one target after its expectation was applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
        }
    }
}

macro_rules! error_kinds {
    ($($variant:ident => $label:literal),+ $(,)?) => {
        /// Why a probe failed. The labels are a contract shared by JSON, metrics and docs:
        /// extend the list, never rename a label.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[non_exhaustive]
        pub enum ErrorKind { $( #[serde(rename = $label)] $variant ),+ }

        impl ErrorKind {
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$variant),+];

            /// The stable label used in JSON, metrics and documentation.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorKind::$variant => $label),+ }
            }
        }
    };
}

error_kinds! {
    DnsNxdomain => "dns_nxdomain",
    DnsServfail => "dns_servfail",
    DnsTimeout => "dns_timeout",
    DnsNoRecords => "dns_no_records",
    DnsNotPrivate => "dns_not_private",
    DnsNotPublic => "dns_not_public",
    TcpRefused => "tcp_refused",
    TcpTimeout => "tcp_timeout",
    NetUnreachable => "net_unreachable",
    LocalFirewall => "local_firewall",
    UdpRejected => "udp_rejected",
    TlsHandshake => "tls_handshake",
    TlsUntrusted => "tls_untrusted",
    TlsIntercepted => "tls_intercepted",
    TlsNameMismatch => "tls_name_mismatch",
    TlsExpired => "tls_expired",
    HttpStatus => "http_status",
    WsRejected => "ws_rejected",
    ProxyUnreachable => "proxy_unreachable",
    ProxyDenied => "proxy_denied",
    ProxyAuthRequired => "proxy_auth_required",
    UnexpectedlyReachable => "unexpectedly_reachable",
    Timeout => "timeout",
    Io => "io_error",
    Internal => "internal_error",
}

impl ErrorKind {
    /// Kinds that prove a path is closed somewhere on the network: for a target that is
    /// expected to be blocked, these are the good outcome.
    pub fn is_blocking(self) -> bool {
        use ErrorKind::*;
        matches!(
            self,
            DnsNxdomain
                | DnsNoRecords
                | TcpRefused
                | TcpTimeout
                | NetUnreachable
                | LocalFirewall
                | UdpRejected
                | ProxyDenied
                | Timeout
        )
    }
}

impl ErrorKind {
    /// What to change when the remedy lies on this host or its proxy rather than in the
    /// target's own network rule; None where the catalog's fix says it all.
    pub fn remedy(self) -> Option<&'static str> {
        use ErrorKind::*;
        Some(match self {
            ProxyDenied => {
                "The proxy refused the tunnel. Private endpoints and internal names must bypass it: add them to \
                 NO_PROXY/no_proxy (e.g. .api.azureml.ms,.instances.azureml.ms,.notebooks.azure.net,.core.windows.net); \
                 otherwise allow the host in the proxy's ACL."
            }
            ProxyAuthRequired => {
                "The proxy asks for credentials (407): give them in the proxy URL, http://user:password@proxy:port, as \
                 pip and curl read HTTPS_PROXY."
            }
            ProxyUnreachable => {
                "The proxy in https_proxy/HTTPS_PROXY, http_proxy or ALL_PROXY (or --proxy) does not answer: check its address and port, and the \
                 NSG rule to it."
            }
            TlsIntercepted => {
                "A TLS-inspecting firewall or proxy re-signs this connection (see the issuer): exempt the host from TLS \
                 inspection, or install the inspecting CA for pip and conda (REQUESTS_CA_BUNDLE, conda ssl_verify) and \
                 accept it with --allow-intercept."
            }
            TlsUntrusted => {
                "The certificate chain is not trusted: usually a TLS-inspecting firewall whose CA is not installed \
                 (pass that CA with --ca-file to confirm), or a wrong endpoint answering."
            }
            LocalFirewall => {
                "This host's own packet filter (nftables/iptables, or a cgroup/systemd IPAddressDeny) refused the \
                 traffic: allow it on the node before looking at the NSG."
            }
            DnsTimeout => {
                "The DNS server did not answer: check the VNet's DNS servers, and that custom DNS forwards to \
                 168.63.129.16."
            }
            _ => return None,
        })
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as the probe saw it: the kind, and a message for people (never a secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ProbeError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProbeError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// The phases a probe can time. Their names are metric label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Dns,
    Connect,
    ProxyConnect,
    Tls,
    Upgrade,
    FirstByte,
    Wait,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::ProxyConnect => "proxy_connect",
            Phase::Tls => "tls",
            Phase::Upgrade => "upgrade",
            Phase::FirstByte => "first_byte",
            Phase::Wait => "wait",
        }
    }
}

/// One certificate of a peer chain, as recorded for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Seconds since the Unix epoch.
    pub not_after: i64,
    pub sans: Vec<String>,
}

/// What a TLS handshake showed, whether or not it was trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TlsEvidence {
    pub version: Option<String>,
    pub chain: Vec<CertInfo>,
    /// "public" (web PKI roots), "system" (system store or --ca-file only), or "none".
    pub trusted_by: String,
    /// Earliest not-after in the chain, seconds since the epoch.
    pub earliest_expiry: Option<i64>,
}

/// Everything a probe observed, success or not. Renderers show it; nothing here is a secret.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Evidence {
    /// Phase timings in milliseconds.
    pub phases_ms: BTreeMap<Phase, f64>,
    pub addresses: Vec<IpAddr>,
    /// Whether every resolved address is private (DNS targets and resolved hosts).
    pub private: Option<bool>,
    pub cname_chain: Vec<String>,
    /// The address that answered (TCP, TLS, HTTP, WebSocket) or was sent to (UDP).
    pub peer: Option<SocketAddr>,
    /// The proxy used, credentials removed; None for direct connections.
    pub via_proxy: Option<String>,
    pub tls: Option<TlsEvidence>,
    pub http_status: Option<u16>,
    /// A short observation such as "open|filtered", "answered" or "resolved by proxy".
    pub note: Option<String>,
    pub warnings: Vec<String>,
}

impl Evidence {
    pub fn phase(&mut self, phase: Phase, elapsed: std::time::Duration) {
        *self.phases_ms.entry(phase).or_insert(0.0) += elapsed.as_secs_f64() * 1000.0;
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(old) => format!("{old}; {note}"),
            None => note,
        });
    }
}

/// The judged result of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub status: Status,
    pub error: Option<ProbeError>,
    pub skip_reason: Option<String>,
    pub evidence: Evidence,
}

impl Outcome {
    pub fn skip(reason: impl Into<String>) -> Self {
        Outcome {
            status: Status::Skip,
            error: None,
            skip_reason: Some(reason.into()),
            evidence: Evidence::default(),
        }
    }
}
