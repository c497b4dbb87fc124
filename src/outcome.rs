//! The bottom vocabulary: what one probe found (status, a closed vocabulary of error kinds,
//! timings and evidence). It imports nothing of the crate, so every layer may speak it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// An enum of labels: each variant has one spelling, which `as_str`, `from_label`, `Display`
/// and serde (both ways) all use, so JSON, metrics, tables and docs cannot disagree.
macro_rules! labelled {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling of this value.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            /// The value spelt `label`.
            pub fn from_label(label: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == label)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let label = <String as serde::Deserialize>::deserialize(d)?;
                Self::from_label(&label).ok_or_else(|| {
                    serde::de::Error::unknown_variant(&label, &[$($label),+])
                })
            }
        }
    };
}
pub(crate) use labelled;

labelled! {
    /// The verdict on one target after its expectation was applied.
    pub enum Status {
        Pass => "pass",
        Fail => "fail",
        Skip => "skip",
    }
}

labelled! {
    /// Why a probe failed. The labels are a contract shared by JSON, metrics and docs: extend
    /// the list, never rename a label.
    #[non_exhaustive]
    pub enum ErrorKind {
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
        Unverified => "unverified",
        NotChecked => "not_checked",
        PeerNoEcho => "peer_no_echo",
        PeerNotAuthenticated => "peer_not_authenticated",
        Internal => "internal_error",
        NsgDenied => "nsg_denied",
        RouteNotInternet => "route_not_internet",
        ForcedTunnel => "forced_tunnel",
        FirewallDenied => "firewall_denied",
        TlsResetAfterHello => "tls_reset_after_hello",
    }
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
                | TlsHandshake
                | TlsResetAfterHello
                | FirewallDenied
                | Timeout
        )
    }
}

/// Where on the path an error kind puts the cause: the remedy follows the layer that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Name resolution: resolver and zone fixes, never a network rule.
    Dns,
    /// The connection itself: a rule on the path (NSG, firewall, route) or this host's filter.
    Connection,
    /// The TLS chain's trust: an inspecting device or a wrong endpoint.
    Trust,
    /// The genuine service answered (an HTTP status, a TLS alert, a refused upgrade): the path
    /// works, the service said no.
    Answer,
    /// The proxy in the route.
    Proxy,
    /// An application-layer firewall (Azure Firewall's application rules) decided by the TLS
    /// SNI or the HTTP Host header: the fix is an application rule for the FQDN, never an NSG
    /// rule.
    AppRule,
    /// A judgement on a path that worked or was not tried (blocked paths that answered,
    /// `--strict` verdicts).
    Verdict,
    /// Nothing on the network: a deadline or a local error.
    Local,
}

impl ErrorKind {
    /// The layer this kind of failure belongs to.
    pub fn layer(self) -> Layer {
        use ErrorKind::*;
        match self {
            DnsNxdomain | DnsServfail | DnsTimeout | DnsNoRecords | DnsNotPrivate
            | DnsNotPublic => Layer::Dns,
            TcpRefused | TcpTimeout | NetUnreachable | LocalFirewall | UdpRejected => {
                Layer::Connection
            }
            NsgDenied | RouteNotInternet | ForcedTunnel => Layer::Connection,
            TlsUntrusted | TlsIntercepted => Layer::Trust,
            TlsHandshake | TlsNameMismatch | TlsExpired | HttpStatus | WsRejected => Layer::Answer,
            ProxyUnreachable | ProxyDenied | ProxyAuthRequired => Layer::Proxy,
            FirewallDenied | TlsResetAfterHello => Layer::AppRule,
            UnexpectedlyReachable | Unverified | NotChecked | PeerNoEcho | PeerNotAuthenticated => {
                Layer::Verdict
            }
            Timeout | Io | Internal => Layer::Local,
        }
    }

    /// What this kind means and what usually fixes it, for people: the first sentence of every
    /// hint of this kind, and `vnetprobe explain`'s text. DNS kinds never advise a network rule.
    pub fn remedy(self) -> &'static str {
        use ErrorKind::*;
        match self {
            DnsNxdomain => {
                "The DNS server answered that the name does not exist (NXDOMAIN). A private-endpoint name needs \
                 its privatelink zone linked to this VNet, or custom DNS that conditionally forwards the zone to \
                 Azure DNS (168.63.129.16); a public name needs custom DNS that forwards to 168.63.129.16."
            }
            DnsServfail => {
                "The DNS server failed to answer (SERVFAIL or REFUSED): usually custom DNS whose forwarder is \
                 unreachable or refuses; forward to Azure DNS (168.63.129.16) and check the server's own upstream."
            }
            DnsTimeout => {
                "The DNS server did not answer: check the VNet's DNS server setting and that the server is up and \
                 answers this subnet on port 53; custom DNS must forward to 168.63.129.16."
            }
            DnsNoRecords => {
                "The name exists but has no address record: a private DNS zone that holds the name without an A \
                 record (a private endpoint whose DNS zone group was removed), or the wrong zone answering."
            }
            DnsNotPrivate => {
                "The name resolves to a public address, so traffic would leave the VNet instead of reaching the \
                 private endpoint: link the private DNS zone (privatelink.*) to this VNet, or make custom DNS \
                 forward the zone to 168.63.129.16."
            }
            DnsNotPublic => {
                "The name resolves to a private address where a public one is expected: a private DNS zone linked \
                 to this VNet overrides the public name; remove the record or the link if the service is reached \
                 publicly."
            }
            TcpRefused => {
                "The connection was refused (a TCP reset): a firewall rule that rejects, or nothing listening at \
                 the address that answered."
            }
            TcpTimeout => {
                "Nothing answered before the deadline: a silent drop, as an NSG deny rule, Azure Firewall or a \
                 missing route does."
            }
            NetUnreachable => {
                "No route to the address (network or host unreachable): a user-defined route, this node's own \
                 routes, or a router on the path answering unreachable."
            }
            LocalFirewall => {
                "This host's own packet filter (nftables/iptables, or a cgroup/systemd IPAddressDeny) refused the \
                 traffic before it left: allow it on the node first."
            }
            UdpRejected => {
                "An ICMP port unreachable came back: a firewall rejects UDP to this port, or nothing listens there."
            }
            TlsHandshake => {
                "The TLS handshake failed. A TLS alert means the server refused (protocol, cipher, or a name it \
                 does not serve); a connection closed during the handshake usually means a firewall filtering by \
                 SNI (an Azure Firewall application rule without this FQDN)."
            }
            TlsUntrusted => {
                "The certificate chain is not trusted: usually a TLS-inspecting firewall whose CA is not installed \
                 (pass that CA with --ca-file to confirm), or a wrong endpoint answering."
            }
            TlsIntercepted => {
                "A TLS-inspecting firewall or proxy re-signs this connection (see the issuer): exempt the host from TLS \
                 inspection, or install the inspecting CA for pip and conda (REQUESTS_CA_BUNDLE, conda ssl_verify) and \
                 accept it with --allow-intercept."
            }
            TlsNameMismatch => {
                "The certificate does not name this host: the address that answered is not the service (a stale \
                 DNS record, a private endpoint address reused, or a device answering in its place)."
            }
            TlsExpired => {
                "A certificate in the chain is expired or not yet valid: check this node's clock (NTP) first, then \
                 the device or service that presented it."
            }
            HttpStatus => {
                "The server answered with a status outside the accepted list: the network path works, and the \
                 status says what the service refused."
            }
            WsRejected => {
                "The WebSocket upgrade was refused: a firewall or proxy that strips the Upgrade header, or a \
                 server that serves no WebSocket at this path."
            }
            ProxyUnreachable => {
                "The proxy in https_proxy/HTTPS_PROXY, http_proxy or ALL_PROXY (or --proxy) does not answer: check its \
                 address and port, and the rule that lets this subnet reach it."
            }
            ProxyDenied => {
                "The proxy refused the tunnel. Private endpoints and internal names must bypass it: add them to \
                 NO_PROXY/no_proxy (e.g. .api.azureml.ms,.instances.azureml.ms,.notebooks.azure.net,.core.windows.net); \
                 otherwise allow the host in the proxy's ACL."
            }
            ProxyAuthRequired => {
                "The proxy asks for credentials (407): give them in the proxy URL, http://user:password@proxy:port, as \
                 pip and curl read HTTPS_PROXY."
            }
            UnexpectedlyReachable => {
                "A path that should be blocked answered: the rule meant to block it (an NSG or firewall rule, a \
                 service endpoint policy) is missing or too broad."
            }
            Timeout => {
                "The exchange began but did not finish before the deadline: a slow or overloaded service, a proxy \
                 holding the connection, or a device dropping traffic after the handshake."
            }
            Io => {
                "A local error that names no network cause (socket limits, permissions): see the message."
            }
            Internal => {
                "The probe failed inside vnetprobe (a bug), not on the network: nothing was proven about this \
                 path; please report it with the message."
            }
            Unverified => {
                "--strict: the pass could not be confirmed from the node; confirm the rule from Azure's side \
                 (Network Watcher IP flow verify, or the effective security rules of the node's NIC)."
            }
            NotChecked => {
                "--strict: a required target was not checked because a variable is missing; set it (a flag, a \
                 VNETPROBE_* variable or the config file)."
            }
            PeerNotAuthenticated => {
                "A reply came that the shared key does not vouch for: give the responder (vnetprobe listen) and \
                 this check the same --key-file; if they already share it, a device on the path (a transparent \
                 proxy, an NVA) answers in the peer's place."
            }
            NsgDenied => {
                "The exported NSG rules (--nsg) deny this flow: the result names the rule, its priority and its \
                 NSG; add an allow rule with a lower priority number, or remove the deny."
            }
            RouteNotInternet => {
                "The exported routes (--routes) send Azure ML's management traffic (AzureMachineLearning, \
                 BatchNodeManagement) to an appliance or nowhere: public-IP compute needs user-defined routes with \
                 next hop Internet for these service tags, or the replies are dropped as asymmetric."
            }
            ForcedTunnel => {
                "The default route 0.0.0.0/0 goes to a virtual appliance or gateway (forced tunnelling): every \
                 outbound flow without a more specific route passes it; allow the paths there, or route the service \
                 tags around it."
            }
            FirewallDenied => {
                "An application-rule firewall (Azure Firewall) answered the HTTP request itself with status 470 \
                 and \"Action: Deny\": no application rule allows this FQDN on this protocol and port. Add one (the \
                 FQDN, Http=80 or Https=443) to the firewall policy's application rule collection; an NSG rule \
                 does not help."
            }
            TlsResetAfterHello => {
                "TCP connected, then the connection was reset or closed right after the TLS ClientHello, with no \
                 ServerHello and no alert: what an application-rule firewall (Azure Firewall) does to an FQDN no \
                 application rule allows. Add an application rule for the FQDN (Https=443) to the firewall policy; \
                 the TCP handshake was the firewall's own, so an NSG rule does not help."
            }
            PeerNoEcho => {
                "The port answered, but not with vnetprobe's echo: start `vnetprobe listen` on the peer for this \
                 port (another service holds it, or a device on the path accepts connections in the peer's place)."
            }
        }
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

labelled! {
    /// The phases a probe can time. Their names are metric label values.
    pub enum Phase {
        Dns => "dns",
        Connect => "connect",
        ProxyConnect => "proxy_connect",
        Tls => "tls",
        Upgrade => "upgrade",
        FirstByte => "first_byte",
        Wait => "wait",
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
    /// The DNS server that answered (or failed to) for this target's name.
    pub resolver: Option<String>,
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
    /// Set on a pass the node could not confirm: what the evidence does not prove (UDP silence,
    /// a sign-in wall instead of a WebSocket upgrade). `--strict` fails such passes.
    pub unverified: Option<String>,
    pub warnings: Vec<String>,
    /// The `vnetprobe listen` responder that echoed a peer check.
    pub responder: Option<ResponderEvidence>,
    /// The path trace of a failing target (`check --trace`, `probe trace`).
    pub trace: Option<Box<Trace>>,
    /// An application-rule firewall's deny, as it answered (HTTP 470 on the probe itself, or on
    /// the one HTTP request that confirms a reset after the ClientHello).
    pub firewall: Option<FirewallEvidence>,
}

/// What named an application-rule firewall (Azure Firewall) as the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallEvidence {
    /// The deny as the firewall worded it (cleaned, capped), e.g.
    /// "Action: Deny; Reason: No rule matched".
    pub deny: String,
    /// The request that got the 470, e.g. "GET http://sa1.queue.core.windows.net/".
    pub seen_on: String,
    /// True when the firewall's default rule denied (no application rule matched), false for
    /// an explicit deny rule or threat intelligence.
    pub no_rule_matched: bool,
}

/// What a peer's echo proved: who answered, and whether the shared key vouches for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponderEvidence {
    /// The responder's host name, as its echo carried it.
    pub node: String,
    /// The echo's MAC verified with `--key-file`; false when no key was given.
    pub authenticated: bool,
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
    /// On the heap: an outcome is moved from its probe to the report half a dozen times, and
    /// the evidence is most of it (350 bytes).
    pub evidence: Box<Evidence>,
}

impl Outcome {
    pub fn skip(reason: impl Into<String>) -> Self {
        Outcome {
            status: Status::Skip,
            error: None,
            skip_reason: Some(reason.into()),
            evidence: Default::default(),
        }
    }
}

labelled! {
    /// What answered one probe of a path trace.
    pub enum HopKind {
        /// A router on the path: ICMP time exceeded (the TTL ran out there).
        TimeExceeded => "time_exceeded",
        /// ICMP destination unreachable: a router or the host said no (the code says why).
        Unreachable => "unreachable",
        /// The destination itself: a SYN-ACK, a TCP reset, or a UDP reply.
        Reply => "reply",
    }
}

labelled! {
    /// Where a path trace ended. Silence after hop N is "after hop N", never "at hop N+1".
    pub enum TraceEnd {
        /// The destination address answered: the block, if any, is above TCP (TLS or HTTP).
        Destination => "destination",
        /// A hop (or the host) answered ICMP unreachable: something on the path rejects.
        Rejected => "rejected",
        /// Hops answered up to `at`, then nothing did.
        SilentAfterHop => "silent_after_hop",
        /// No probe of any TTL was answered: dropped before the first hop that answers.
        NoHopAnswered => "no_hop_answered",
        /// This host's own packet filter refused the probes (EPERM) before they left.
        LocalFirewall => "local_firewall",
    }
}

/// One answered probe of a path trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    pub ttl: u8,
    pub address: IpAddr,
    pub rtt_ms: f64,
    pub kind: HopKind,
    /// The ICMP type and code, for ICMP answers.
    #[serde(default)]
    pub icmp_type: Option<u8>,
    #[serde(default)]
    pub icmp_code: Option<u8>,
    /// What the answer means, for people ("time exceeded", "communication administratively
    /// prohibited", "SYN-ACK: connection accepted").
    pub meaning: String,
}

/// A path trace: the protocol's own first packet sent with TTL 1, 2, ... and who answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The address and port traced.
    pub to: SocketAddr,
    /// The highest TTL sent (the bound, or less when the trace ended or ran out of time).
    pub probed_ttl: u8,
    /// The probes that were answered, by TTL; a TTL missing here was silent.
    pub hops: Vec<Hop>,
    pub ended: TraceEnd,
    /// The hop the trace ended at: the destination or the rejecting hop, or the last hop that
    /// answered before silence. None when no hop answered.
    pub at: Option<Hop>,
    pub duration_ms: f64,
    /// The one-line summary the table shows.
    pub summary: String,
}

impl Trace {
    /// The address the path stops after (silence) or at (a rejection): where to look for the
    /// firewall or appliance. None when the destination answered or no hop did.
    pub fn stopped_after(&self) -> Option<IpAddr> {
        match self.ended {
            TraceEnd::SilentAfterHop | TraceEnd::Rejected => self.at.as_ref().map(|h| h.address),
            _ => None,
        }
    }
}
