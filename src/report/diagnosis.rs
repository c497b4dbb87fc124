//! Diagnosis: the fix under each failure follows the layer that failed (DNS, the connection, the
//! TLS trust, the service's own answer, the proxy), and failures that share one cause are named
//! once, as a cause, before the per-target list.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::ResultEntry;
use crate::catalog::{Protocol, Target};
use crate::outcome::{ErrorKind, Evidence, Layer, ProbeError, Status, Trace, TraceEnd};

/// The hint for one failure: the kind's remedy, made specific with the evidence, then the
/// catalog's fix for the path where the path is still in question; with a path trace, what it
/// says about where the packets stopped.
pub fn hint(t: &Target, e: &ProbeError, ev: &Evidence) -> String {
    let base = layer_hint(t, e, ev);
    match ev.trace.as_deref() {
        Some(trace) => format!("{base} {}", traced(trace)),
        None => base,
    }
}

/// What a path trace adds to a failure's hint: where to look, never more than it showed.
fn traced(t: &Trace) -> String {
    match (t.ended, t.at.as_ref()) {
        (TraceEnd::SilentAfterHop, Some(h)) => format!(
            "The path trace went silent after hop {} {}: what drops the packets is at or after that \
             hop (a firewall or network virtual appliance, or a rule further on), not before it.",
            h.ttl, h.address
        ),
        (TraceEnd::Rejected, Some(h)) => format!(
            "The path trace was rejected by {} ({}): a firewall there rejects the path; allow it in \
             that firewall's rules.",
            h.address, h.meaning
        ),
        (TraceEnd::Destination, Some(h)) => format!(
            "The path trace reached the destination {} ({}): the path answered when traced, so \
             the drop is intermittent or above TCP.",
            h.address, h.meaning
        ),
        (TraceEnd::LocalFirewall, _) => {
            "The path trace's packets were refused by this host's own firewall before they left."
                .to_string()
        }
        _ => format!(
            "No TTL of the path trace (1-{}) was answered: the packets stop before any hop that \
             answers: the subnet's NSG, this host's firewall, or devices that answer no TTL \
             (Azure's own network answers none).",
            t.probed_ttl
        ),
    }
}

fn layer_hint(t: &Target, e: &ProbeError, ev: &Evidence) -> String {
    let remedy = e.kind.remedy();
    match e.kind.layer() {
        // A name that does not resolve says nothing about the path: resolver and zone fixes
        // only, and the catalog's fix only for DNS targets (whose fix is about the zone).
        Layer::Dns => {
            let resolver = ev
                .resolver
                .as_deref()
                .map(|r| format!(" The resolver asked was {r}."))
                .unwrap_or_default();
            if t.protocol() == Protocol::Dns {
                format!("{remedy}{resolver} {}", t.fix)
            } else {
                format!(
                    "{remedy}{resolver} The {} path itself was not tried: fix name resolution first.",
                    t.protocol().as_str().to_ascii_uppercase()
                )
            }
        }
        Layer::Connection => format!("{remedy} {} {}", rule(t), t.fix),
        Layer::Trust => remedy.to_string(),
        Layer::Answer if e.kind == ErrorKind::TlsHandshake && !e.message.contains("alert") => {
            // Closed mid-handshake: most often a firewall deciding by SNI, so the path is in question.
            format!("{remedy} {} {}", rule(t), t.fix)
        }
        Layer::Answer => answered(e.kind, ev),
        Layer::Proxy => proxied(t, e, ev),
        Layer::AppRule => app_rule(t, e.kind, ev),
        Layer::Verdict | Layer::Local => format!("{remedy} {}", t.fix),
    }
}

/// The rule a connection-level failure asks for: protocol, port and destination.
fn rule(t: &Target) -> String {
    let proto = match t.protocol() {
        Protocol::Udp => "UDP",
        _ => "TCP",
    };
    let port = t.port().map(|p| format!(" {p}")).unwrap_or_default();
    let dest = match &t.service_tag {
        Some(tag) => format!("the {tag} service tag"),
        None => t.host.to_string(),
    };
    // An FQDN in a network rule (any port but an application rule's) is resolved by the
    // firewall itself: Azure Firewall needs its DNS proxy for that, and the node must resolve
    // through it, or the two see different addresses ("Azure Firewall DNS settings").
    let dns_proxy = match (&t.service_tag, t.port()) {
        (None, Some(p)) if !matches!(p, 80 | 443) && t.protocol() != Protocol::Dns => {
            " If the firewall's rule is a network rule naming the FQDN, it needs the firewall's DNS proxy \
             enabled and this VNet's DNS server set to the firewall, so both resolve the name alike."
        }
        _ => "",
    };
    format!(
        "Rule needed: outbound {proto}{port} to {dest} (NSG outbound rule, and firewall rule if one is in the path).{dns_proxy}"
    )
}

/// An application-rule firewall decided by SNI or Host: the fix is an application rule for the
/// FQDN on the target's protocol and port, never an NSG rule (the firewall completed the TCP
/// handshake itself, so the network layer is open).
fn app_rule(t: &Target, kind: ErrorKind, ev: &Evidence) -> String {
    let said = ev
        .firewall
        .as_ref()
        .map(|f| format!(" The firewall answered {} with: {}.", f.seen_on, f.deny))
        .unwrap_or_default();
    format!(
        "An application-rule firewall (Azure Firewall) on the path denies {host}: add an application rule \
         allowing {host} with protocol {proto} to the firewall policy (vnetprobe check --output fix writes \
         it). An NSG rule does not help: the firewall completed the TCP handshake itself.{said}",
        host = t.host,
        proto = app_protocol(kind, ev.tls.is_some(), t.port().unwrap_or(443)),
    )
}

/// Azure Firewall's application-rule protocol (`Http:80`, `Https:443`, `Mssql:1433`) for an
/// application-layer deny on `port`: a reset after the ClientHello is a TLS flow; a 470 is a
/// plain HTTP one unless a TLS handshake came first (a TLS-inspecting firewall).
pub fn app_protocol(kind: ErrorKind, tls_seen: bool, port: u16) -> String {
    let name = match kind {
        ErrorKind::FirewallDenied if !tls_seen => "Http",
        _ if port == 1433 => "Mssql",
        _ => "Https",
    };
    format!("{name}:{port}")
}

/// The genuine service answered: the network works; say what the answer usually means.
fn answered(kind: ErrorKind, ev: &Evidence) -> String {
    let remedy = kind.remedy();
    let Some(code) = ev.http_status else {
        return format!("{remedy} No network rule is missing.");
    };
    let meaning = match code {
        401 | 403 => {
            "the service reached refused the request itself: its own network rules (a storage account, key \
             vault or registry firewall that does not allow this VNet) or missing credentials"
        }
        404 => "the host has no such path: the path works, the probe's path may be out of date",
        400 => "the service rejected the request's form: the path works",
        407 => "a proxy on the path wants credentials",
        300..=399 => "the service redirects: follow where it points (a sign-in page, another host)",
        500..=599 => "the service itself failed: retry later; the network path works",
        _ => "the service answered: the network path works",
    };
    format!("{remedy} It answered HTTP {code}: {meaning}. No network rule is missing.")
}

/// The proxy's failure: name the proxy (credentials masked) and the NO_PROXY entry that would
/// route the host directly.
fn proxied(t: &Target, e: &ProbeError, ev: &Evidence) -> String {
    let kind = e.kind;
    let proxy = match &ev.via_proxy {
        Some(p) => format!("The proxy {p}"),
        None => "The proxy".to_string(),
    };
    match kind {
        ErrorKind::ProxyDenied => format!(
            "{proxy} refused the tunnel to {host}. If {host} is a private endpoint or an internal \
             name, add {entry} to NO_PROXY and no_proxy where pip, conda and curl run, so it goes direct; \
             otherwise allow {host} in the proxy's ACL. Path: {fix}",
            host = t.host,
            entry = no_proxy_entry(t.host.shown()),
            fix = t.fix
        ),
        ErrorKind::ProxyAuthRequired if e.message.contains("they speak Basic only") => format!(
            "{proxy} asks for Windows authentication (NTLM or Negotiate), which curl can answer and pip \
             and conda cannot: run a local relay such as cntlm or px that authenticates for them and \
             point HTTPS_PROXY at it, or ask for a proxy exception for {}.",
            t.host
        ),
        ErrorKind::ProxyAuthRequired => format!(
            "{proxy} asks for credentials (407): put them in the proxy URL \
             (http://user:password@host:port), as pip and curl read HTTPS_PROXY."
        ),
        _ => format!(
            "{proxy} does not answer: check its address and port in https_proxy/HTTPS_PROXY (or \
             --proxy), and the rule that lets this subnet reach it."
        ),
    }
}

/// Domains whose names are private endpoints or workspace-internal, as the docs list them for
/// custom DNS and NO_PROXY; the entry for a host under one is the domain, else the host.
const PRIVATE_DOMAINS: &[&str] = &[
    "api.azureml.ms",
    "instances.azureml.ms",
    "instances.azureml.net",
    "instances.ml.azure.ms",
    "notebooks.azure.net",
    "blob.core.windows.net",
    "file.core.windows.net",
    "queue.core.windows.net",
    "table.core.windows.net",
    "dfs.core.windows.net",
    "vault.azure.net",
    "azurecr.io",
    "api.ml.azure.us",
    "instances.azureml.us",
    "notebooks.usgovcloudapi.net",
    "api.ml.azure.cn",
    "instances.azureml.cn",
    "notebooks.chinacloudapi.cn",
];

/// The NO_PROXY entry that routes `host` directly: `.domain` for a private-endpoint domain.
pub fn no_proxy_entry(host: &str) -> String {
    PRIVATE_DOMAINS
        .iter()
        .find(|d| host.ends_with(&format!(".{d}")))
        .map(|d| format!(".{d}"))
        .unwrap_or_else(|| host.to_string())
}

/// Many failures, one cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// The shared error kind.
    pub kind: ErrorKind,
    pub message: String,
    pub fix: String,
    /// The ids of the failing targets (a target with several ports once).
    pub targets: Vec<String>,
}

/// What groups failures, and how a group is told.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// Every name failing the same way through one resolver.
    Resolver(String, ErrorKind),
    /// Every target behind one proxy failing the same way.
    Proxy(String, ErrorKind),
    /// Every direct path to one service tag dropped or rejected the same way.
    ServiceTag(String, ErrorKind),
    /// Every chain ending at one inspecting or untrusted issuer.
    Issuer(String, ErrorKind),
    /// Every FQDN an application-rule firewall denied (a 470, or a reset after the ClientHello).
    AppFirewall,
    /// Every direct path whose trace went silent after, or was rejected by, one hop: where
    /// the trail ends says more than the service tag does.
    PathStop(IpAddr, TraceEnd, ErrorKind),
}

/// Where a failing direct path's trace stopped, as a key.
fn stop_key(r: &ResultEntry) -> Option<Key> {
    let t = r.trace.as_deref().filter(|_| r.via_proxy.is_none())?;
    Some(Key::PathStop(
        t.stopped_after()?,
        t.ended,
        r.error.as_ref()?.kind,
    ))
}

fn key(r: &ResultEntry) -> Option<Key> {
    let e = r.error.as_ref()?;
    let kind = e.kind;
    match kind.layer() {
        Layer::Dns => Some(Key::Resolver(r.resolver.clone()?, kind)),
        // Before the proxy: a 470 or a reset after the ClientHello through a tunnel is still the
        // firewall's (a proxy refuses a tunnel with its own status, not this way).
        Layer::AppRule => Some(Key::AppFirewall),
        Layer::Proxy => Some(Key::Proxy(r.via_proxy.clone()?, kind)),
        Layer::Trust => {
            let issuer = r.tls.as_ref()?.chain.last()?.issuer.clone();
            Some(Key::Issuer(issuer, kind))
        }
        _ if r.via_proxy.is_some() => Some(Key::Proxy(r.via_proxy.clone()?, kind)),
        Layer::Connection => Some(Key::ServiceTag(r.service_tag.clone()?, kind)),
        _ => None,
    }
}

/// The causes that two or more failing targets share, largest first. A single failure is not a
/// common cause: it keeps its own hint.
pub fn causes(results: &[ResultEntry]) -> Vec<Cause> {
    let failed = || results.iter().filter(|r| r.status == Status::Fail);
    // A hop that two or more paths stop at is their cause; a path alone at its hop keeps its
    // other grouping (the service tag).
    let mut stops: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    for r in failed() {
        if let Some(k) = stop_key(r) {
            stops.entry(k).or_default().push(r.endpoint());
        }
    }
    for endpoints in stops.values_mut() {
        endpoints.sort();
        endpoints.dedup();
    }
    let mut groups: BTreeMap<Key, Vec<&ResultEntry>> = BTreeMap::new();
    for r in failed() {
        let shared = stop_key(r).filter(|k| stops.get(k).is_some_and(|e| e.len() >= 2));
        if let Some(k) = shared.or_else(|| key(r)) {
            groups.entry(k).or_default().push(r);
        }
    }
    let mut out: Vec<Cause> = groups
        .into_iter()
        .filter_map(|(key, members)| {
            let mut targets: Vec<String> = Vec::new();
            for r in &members {
                if !targets.contains(&r.id) {
                    targets.push(r.id.clone());
                }
            }
            let endpoints: Vec<String> = {
                let mut e: Vec<String> = members.iter().map(|r| r.endpoint()).collect();
                e.sort();
                e.dedup();
                e
            };
            let distinct = match key {
                // One firewall, several FQDNs: the hosts count, not the ports.
                Key::AppFirewall => {
                    let mut hosts: Vec<&str> = members.iter().map(|r| r.host.as_str()).collect();
                    hosts.sort();
                    hosts.dedup();
                    hosts.len()
                }
                _ => endpoints.len(),
            };
            (distinct >= 2).then(|| tell(&key, &members, &endpoints, targets))
        })
        .collect();
    out.sort_by(|a, b| {
        b.targets
            .len()
            .cmp(&a.targets.len())
            .then(a.kind.cmp(&b.kind))
    });
    out
}

fn tell(key: &Key, members: &[&ResultEntry], endpoints: &[String], targets: Vec<String>) -> Cause {
    let n = endpoints.len();
    let (kind, message, fix) = match key {
        Key::Resolver(resolver, kind) => {
            let mut names: Vec<&str> = members.iter().map(|r| r.host.as_str()).collect();
            names.sort();
            names.dedup();
            (
                *kind,
                format!(
                    "{} names fail with {kind} through one resolver, {resolver}: the resolver, not the \
                     paths, is the cause",
                    names.len()
                ),
                kind.remedy().to_string(),
            )
        }
        Key::Proxy(proxy, kind) => (
            *kind,
            format!("{n} endpoints behind the proxy {proxy} fail with {kind}"),
            match kind {
                ErrorKind::ProxyDenied => {
                    let mut entries: Vec<String> =
                        members.iter().map(|r| no_proxy_entry(&r.host)).collect();
                    entries.sort();
                    entries.dedup();
                    format!(
                        "The proxy refuses them all: add {} to NO_PROXY and no_proxy for the private and internal \
                         names, and allow the public ones in the proxy's ACL.",
                        entries.join(",")
                    )
                }
                other => other.remedy().to_string(),
            },
        ),
        Key::ServiceTag(tag, kind) => {
            let ports = ports(members);
            let how = match kind {
                ErrorKind::TcpTimeout => "time out (a silent drop)",
                ErrorKind::TcpRefused | ErrorKind::UdpRejected => "are rejected",
                ErrorKind::LocalFirewall => "are refused by this host's own firewall",
                _ => "fail the same way",
            };
            (
                *kind,
                format!(
                    "{n} direct paths to the {tag} service tag {how}: {}",
                    ports.join(", ")
                ),
                format!(
                    "One rule covers them: allow outbound {} to the {tag} service tag (NSG outbound rule, and the \
                     firewall's network rule if one is in the path).",
                    ports.join(", ")
                ),
            )
        }
        Key::PathStop(hop, ended, kind) => {
            let ports = ports(members);
            // A firewall dropping everything stops every path at it: name a few.
            let ports = match ports.len() {
                0..=8 => ports.join(", "),
                n => format!("{}, and {} more", ports[..6].join(", "), n - 6),
            };
            let named = route_to(members, *hop);
            match ended {
                TraceEnd::Rejected => (
                    *kind,
                    format!("{n} paths are rejected by {hop}{named}: {ports}"),
                    format!(
                        "{hop} answers them all with ICMP unreachable: a firewall that rejects. Allow {ports} to \
                         their destinations in its rules, or route them past it if they should not go through it."
                    ),
                ),
                _ => (
                    *kind,
                    format!(
                        "{n} paths go silent after {hop}{named}, the last hop that answered: {ports}"
                    ),
                    format!(
                        "What drops them is at or after {hop}: a firewall or network virtual appliance there (the \
                         next hop of a forced-tunnel route), or a rule further on. Allow {ports} to their \
                         destinations there."
                    ),
                ),
            }
        }
        Key::Issuer(issuer, kind) => (
            *kind,
            format!("{n} TLS endpoints present chains issued by '{issuer}' ({kind})"),
            kind.remedy().to_string(),
        ),
        Key::AppFirewall => app_firewall(members),
    };
    Cause {
        kind,
        message,
        fix,
        targets,
    }
}

/// One application-rule firewall denying several FQDNs: named once, with the rules to add.
fn app_firewall(members: &[&ResultEntry]) -> (ErrorKind, String, String) {
    let mut rules: Vec<String> = members
        .iter()
        .filter_map(|r| {
            let kind = r.error.as_ref()?.kind;
            let proto = app_protocol(kind, r.tls.is_some(), r.port.unwrap_or(443));
            Some(format!("{} ({proto})", r.host))
        })
        .collect();
    rules.sort();
    rules.dedup();
    let mut hosts: Vec<&str> = members.iter().map(|r| r.host.as_str()).collect();
    hosts.sort();
    hosts.dedup();
    let confirmed = members.iter().filter(|r| r.firewall.is_some()).count();
    let seen = match confirmed {
        0 => String::new(),
        n => format!(
            "; Azure Firewall's own 470 \"Action: Deny\" answer confirms it for {n} of them"
        ),
    };
    // The kind of the cause: the confirmed one when any was confirmed.
    let kind = if members.iter().any(|r| {
        r.error
            .as_ref()
            .is_some_and(|e| e.kind == ErrorKind::FirewallDenied)
    }) {
        ErrorKind::FirewallDenied
    } else {
        ErrorKind::TlsResetAfterHello
    };
    (
        kind,
        format!(
            "{} FQDNs denied by an application-rule firewall: no application rule allows them{seen}",
            hosts.len()
        ),
        format!(
            "Add application rules to the firewall policy for {} (vnetprobe check --output fix writes \
             them); NSG rules do not help, the firewall completes the TCP handshake itself.",
            rules.join(", ")
        ),
    )
}

/// "TCP 443", "UDP 5831": the distinct protocol and port of each member, sorted.
fn ports(members: &[&ResultEntry]) -> Vec<String> {
    let mut ports: Vec<String> = members
        .iter()
        .filter_map(|r| r.port.map(|p| format!("{} {p}", proto(r))))
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// " (the next hop of route 0.0.0.0/0 'to-firewall', VirtualAppliance)" when a member's
/// route (`--routes`) points at `hop`: the route file names the device.
fn route_to(members: &[&ResultEntry], hop: IpAddr) -> String {
    members
        .iter()
        .filter_map(|r| r.route.as_ref())
        .find(|route| {
            route
                .next_hop
                .as_deref()
                .and_then(|h| h.parse::<IpAddr>().ok())
                == Some(hop)
        })
        .map(|route| {
            let name = route
                .name
                .as_deref()
                .map(|n| format!(" '{n}'"))
                .unwrap_or_default();
            format!(
                " (the next hop of route {}{name}, {})",
                route.prefix, route.next_hop_type
            )
        })
        .unwrap_or_default()
}

fn proto(r: &ResultEntry) -> &'static str {
    if r.protocol == Protocol::Udp {
        "UDP"
    } else {
        "TCP"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, Check, Expect, Host, adhoc};

    fn tcp_target() -> Target {
        let check = Check::Tcp {
            port: 8787,
            responder: false,
        };
        let mut t = adhoc::target(
            "ci1.westeurope.instances.azureml.ms".into(),
            check,
            Expect::Reachable,
        );
        t.service_tag = Some("AzureMachineLearning".into());
        t.fix = "PATH FIX".into();
        t
    }

    fn hint_for(kind: ErrorKind, ev: Evidence) -> String {
        hint(&tcp_target(), &ProbeError::new(kind, "m"), &ev)
    }

    #[test]
    fn every_kind_has_a_remedy_and_dns_never_names_a_network_rule() {
        for kind in ErrorKind::ALL {
            assert!(kind.remedy().len() > 40, "{kind}: {}", kind.remedy());
            if kind.layer() == Layer::Dns {
                let h = hint_for(*kind, Evidence::default());
                assert!(!h.contains("NSG") && !h.contains("PATH FIX"), "{kind}: {h}");
                assert!(h.contains("not tried"), "{kind}: {h}");
            }
        }
        // The catalog's own fixes of DNS rows, shown under DNS failures, name no NSG either.
        let catalog = Catalog::embedded().unwrap();
        let ctx = crate::context::Context::default();
        for t in catalog.expand(&ctx, &[], None) {
            if t.protocol() == Protocol::Dns {
                let fix = t.fix.to_ascii_lowercase();
                assert!(
                    !fix.contains("nsg") && !fix.contains("allow outbound"),
                    "{}: {}",
                    t.id,
                    t.fix
                );
            }
        }
    }

    #[test]
    fn an_application_layer_deny_gets_an_application_rule_never_an_nsg_rule() {
        let mut t = tcp_target();
        t.check = Check::Tls { port: 443 };
        let reset = hint(
            &t,
            &ProbeError::new(ErrorKind::TlsResetAfterHello, "m"),
            &Evidence::default(),
        );
        assert!(reset.contains("application rule allowing ci1.westeurope.instances.azureml.ms with protocol Https:443"), "{reset}");
        assert!(
            !reset.contains("PATH FIX") && !reset.contains("Rule needed"),
            "{reset}"
        );
        let ev = Evidence {
            firewall: Some(crate::outcome::FirewallEvidence {
                deny: "Action: Deny; Reason: No rule matched".into(),
                seen_on: "GET http://ci1.westeurope.instances.azureml.ms/".into(),
                no_rule_matched: true,
            }),
            ..Default::default()
        };
        t.check = Check::Http {
            port: 80,
            web: crate::catalog::Web {
                tls: false,
                path: "/".into(),
            },
            method: Default::default(),
            accept: crate::catalog::DEFAULT_ACCEPT.to_vec(),
        };
        let denied = hint(&t, &ProbeError::new(ErrorKind::FirewallDenied, "m"), &ev);
        assert!(
            denied.contains("protocol Http:80") && denied.contains("Reason: No rule matched"),
            "{denied}"
        );
        // A silent drop on a network-rule port keeps the NSG-or-network-rule wording; an FQDN
        // there (no tag) also says what an FQDN network rule needs.
        let drop = hint_for(ErrorKind::TcpTimeout, Evidence::default());
        assert!(
            drop.contains("NSG outbound rule") && !drop.contains("DNS proxy"),
            "{drop}"
        );
        let mut fqdn = tcp_target();
        fqdn.service_tag = None;
        let drop = hint(
            &fqdn,
            &ProbeError::new(ErrorKind::TcpTimeout, "m"),
            &Evidence::default(),
        );
        assert!(drop.contains("firewall's DNS proxy"), "{drop}");
    }

    #[test]
    fn hints_follow_the_layer() {
        let with_status = |code| Evidence {
            http_status: Some(code),
            ..Default::default()
        };
        // (kind, evidence, must contain, must not contain)
        let cases: Vec<(ErrorKind, Evidence, &[&str], &[&str])> = vec![
            (
                ErrorKind::TcpTimeout,
                Evidence::default(),
                &[
                    "silent drop",
                    "outbound TCP 8787 to the AzureMachineLearning service tag",
                    "PATH FIX",
                ],
                &[],
            ),
            (
                ErrorKind::TcpRefused,
                Evidence::default(),
                &["reset", "PATH FIX"],
                &[],
            ),
            (
                ErrorKind::LocalFirewall,
                Evidence::default(),
                &["own packet filter", "PATH FIX"],
                &[],
            ),
            (
                ErrorKind::HttpStatus,
                with_status(403),
                &[
                    "HTTP 403",
                    "firewall that does not allow this VNet",
                    "No network rule is missing",
                ],
                &["PATH FIX", "Rule needed"],
            ),
            (
                ErrorKind::TlsIntercepted,
                Evidence::default(),
                &["inspect"],
                &["PATH FIX", "Rule needed"],
            ),
            (
                ErrorKind::ProxyDenied,
                Evidence {
                    via_proxy: Some("http://u:***@proxy:3128".into()),
                    ..Default::default()
                },
                &[
                    "http://u:***@proxy:3128",
                    "add .instances.azureml.ms to NO_PROXY",
                    "PATH FIX",
                ],
                &[],
            ),
        ];
        for (kind, ev, want, never) in cases {
            let h = hint_for(kind, ev);
            for w in want {
                assert!(h.contains(w), "{kind}: want {w:?} in {h}");
            }
            for n in never {
                assert!(!h.contains(n), "{kind}: {n:?} in {h}");
            }
        }
    }

    #[test]
    fn no_proxy_entries_name_the_private_domain() {
        assert_eq!(
            no_proxy_entry("6f0c.workspace.westeurope.api.azureml.ms"),
            ".api.azureml.ms"
        );
        assert_eq!(no_proxy_entry("kv1.vault.azure.net"), ".vault.azure.net");
        assert_eq!(no_proxy_entry("pypi.org"), "pypi.org");
    }

    fn failed(id: &str, host: &str, kind: ErrorKind, ev: Evidence) -> ResultEntry {
        let mut t = tcp_target();
        t.id = id.into();
        t.host = Host::Ready(host.into());
        let finished = crate::runner::Finished {
            target: t.into(),
            outcome: crate::outcome::Outcome {
                status: Status::Fail,
                error: Some(ProbeError::new(kind, "m")),
                skip_reason: None,
                evidence: Box::new(ev),
            },
            duration: std::time::Duration::ZERO,
        };
        ResultEntry::from_finished(finished)
    }

    /// A trace of `to` that ended `ended` at `at` (a hop address), one hop answered.
    fn traced_to(to: &str, ended: TraceEnd, at: &str) -> Evidence {
        use crate::outcome::{Hop, HopKind};
        let hop = Hop {
            ttl: 1,
            address: at.parse().unwrap(),
            rtt_ms: 0.4,
            kind: match ended {
                TraceEnd::Rejected => HopKind::Unreachable,
                _ => HopKind::TimeExceeded,
            },
            icmp_type: Some(11),
            icmp_code: Some(0),
            meaning: "time exceeded (ICMP type 11 code 0)".into(),
        };
        Evidence {
            trace: Some(Box::new(Trace {
                protocol: "tcp".into(),
                to: to.parse().unwrap(),
                probed_ttl: 16,
                hops: vec![hop.clone()],
                ended,
                at: Some(hop),
                duration_ms: 2000.0,
                summary: "s".into(),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn paths_whose_traces_stop_after_one_hop_are_one_cause() {
        let silent = |to| traced_to(to, TraceEnd::SilentAfterHop, "10.77.1.1");
        let mut results = vec![
            failed(
                "a",
                "a.example",
                ErrorKind::TcpTimeout,
                silent("10.0.2.4:8787"),
            ),
            failed(
                "b",
                "b.example",
                ErrorKind::TcpTimeout,
                silent("10.0.2.5:8787"),
            ),
            failed(
                "c",
                "c.example",
                ErrorKind::TcpTimeout,
                silent("10.0.2.6:8787"),
            ),
            // A path alone at its last hop, and a trace that says nothing about where: they keep
            // their grouping by the service tag.
            failed(
                "d",
                "d.example",
                ErrorKind::TcpTimeout,
                traced_to("10.0.2.7:8787", TraceEnd::SilentAfterHop, "10.9.0.1"),
            ),
            failed(
                "e",
                "e.example",
                ErrorKind::TcpTimeout,
                traced_to("10.0.2.8:8787", TraceEnd::NoHopAnswered, "10.9.0.1"),
            ),
        ];
        results[1].route = Some(crate::azure::RouteVerdict {
            prefix: "0.0.0.0/0".into(),
            next_hop_type: "VirtualAppliance".into(),
            next_hop: Some("10.77.1.1".into()),
            source: "User".into(),
            name: Some("to-firewall".into()),
        });
        let causes = causes(&results);
        let stop = causes
            .iter()
            .find(|c| c.message.contains("silent after"))
            .unwrap_or_else(|| panic!("{causes:#?}"));
        assert_eq!(stop.targets, ["a", "b", "c"]);
        assert_eq!(stop.kind, ErrorKind::TcpTimeout);
        assert_eq!(
            stop.message,
            "3 paths go silent after 10.77.1.1 (the next hop of route 0.0.0.0/0 'to-firewall', \
             VirtualAppliance), the last hop that answered: TCP 8787"
        );
        assert!(stop.fix.contains("at or after 10.77.1.1"), "{}", stop.fix);
        // The two others share the service tag, and stay grouped by it.
        assert!(
            causes
                .iter()
                .any(|c| c.targets == ["d", "e"] && c.message.contains("service tag")),
            "{causes:#?}"
        );
        let rejected = |to| traced_to(to, TraceEnd::Rejected, "10.0.9.9");
        let results = vec![
            failed(
                "r",
                "r.example",
                ErrorKind::NetUnreachable,
                rejected("10.0.3.4:8787"),
            ),
            failed(
                "s",
                "s.example",
                ErrorKind::NetUnreachable,
                rejected("10.0.3.5:8787"),
            ),
        ];
        let causes = super::causes(&results);
        assert_eq!(causes.len(), 1, "{causes:#?}");
        assert_eq!(
            causes[0].message,
            "2 paths are rejected by 10.0.9.9: TCP 8787"
        );
    }

    #[test]
    fn a_trace_says_in_the_hint_where_the_packets_stopped() {
        let h = |ended, at| hint_for(ErrorKind::TcpTimeout, traced_to("10.0.2.4:8787", ended, at));
        let silent = h(TraceEnd::SilentAfterHop, "10.0.1.4");
        assert!(
            silent.contains("silent after hop 1 10.0.1.4: what drops the packets is at or after"),
            "{silent}"
        );
        assert!(silent.contains("PATH FIX"), "{silent}");
        let none = h(TraceEnd::NoHopAnswered, "10.0.1.4");
        assert!(none.contains("No TTL of the path trace (1-16)"), "{none}");
        assert!(!none.contains("10.0.1.4"), "no hop answered: {none}");
        assert!(
            !hint_for(ErrorKind::TcpTimeout, Evidence::default()).contains("trace"),
            "no trace, no trace sentence"
        );
    }

    #[test]
    fn shared_causes_lead_and_a_single_failure_is_not_one() {
        let via = |r: &str| Evidence {
            resolver: Some(r.into()),
            ..Default::default()
        };
        let results = vec![
            failed("a", "a.example", ErrorKind::DnsTimeout, via("10.0.0.4")),
            failed("b", "b.example", ErrorKind::DnsTimeout, via("10.0.0.4")),
            failed("c", "c.example", ErrorKind::DnsTimeout, via("10.9.9.9")),
            failed("d", "d.example", ErrorKind::TcpTimeout, Evidence::default()),
            failed("e", "e.example", ErrorKind::TcpTimeout, Evidence::default()),
        ];
        let causes = causes(&results);
        assert_eq!(causes.len(), 2, "{causes:#?}");
        let dns = causes
            .iter()
            .find(|c| c.kind == ErrorKind::DnsTimeout)
            .unwrap();
        assert_eq!(dns.targets, ["a", "b"]);
        assert!(dns.message.contains("10.0.0.4"), "{}", dns.message);
        assert!(!dns.fix.contains("NSG"), "{}", dns.fix);
        let tag = causes
            .iter()
            .find(|c| c.kind == ErrorKind::TcpTimeout)
            .unwrap();
        assert!(
            tag.message.contains("AzureMachineLearning"),
            "{}",
            tag.message
        );
        assert!(tag.fix.contains("TCP 8787"), "{}", tag.fix);
        assert!(super::causes(&results[2..3]).is_empty());
    }
}
