//! The `NO_PROXY` list, read the way the node's real clients read it: curl (lib/noproxy.c, the
//! curl on the node) and Python requests with urllib (what pip and conda use). They differ, and
//! vnetprobe invents no third reading: `tests/proxy_routes.rs` runs the real curl and Debian's
//! python3-requests against a recording proxy and holds both readings here to them.
//!
//! curl: the whole value `*` matches every host; entries are split on commas and blanks; a
//! name entry matches that name and its subdomains, with or without a leading (or trailing)
//! dot, case-insensitively, never `notexample.com` for `example.com`; an IPv4 host is compared
//! with IPv4 addresses and CIDR ranges (1 to 32 bits), an IPv6 host with IPv6 addresses only;
//! an entry with a port (`host:443`), brackets or a leading `*.` matches nothing.
//!
//! Python requests (utils.should_bypass_proxies, then urllib's proxy_bypass_environment):
//! blanks are removed and the list split on commas; an IPv4 host matches an equal address or
//! a CIDR range; any other host matches an entry it merely *ends with* (`example.com` also
//! matches `notexample.com`, case-sensitively), or, with the port when the URL names one,
//! `host:port`; then urllib matches `*` alone, and each entry with its leading dots removed,
//! lowercased, as the host itself or a dot-bounded suffix.

use std::net::IpAddr;

/// A `NO_PROXY` value, as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    raw: String,
}

impl NoProxy {
    pub fn parse(raw: &str) -> NoProxy {
        NoProxy {
            raw: raw.to_string(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self
            .raw
            .split([',', ' ', '\t'])
            .any(|t| !t.trim().is_empty())
    }

    /// curl's reading: whether `host` (a name or an IP literal, brackets allowed) skips the
    /// proxy. The port never matters to curl.
    pub fn matches(&self, host: &str, _port: u16) -> bool {
        if self.raw == "*" {
            return true;
        }
        let bare = crate::address::bare(host);
        let ip = bare.parse::<IpAddr>().ok();
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        self.raw
            .split([',', ' ', '\t'])
            .filter(|t| !t.is_empty())
            .any(|token| match ip {
                Some(ip) => ip_matches(token, ip),
                None => {
                    let entry = token.trim_start_matches('.').trim_end_matches('.');
                    let entry = entry.to_ascii_lowercase();
                    !entry.is_empty()
                        && !entry.contains([':', '[', '*', '/'])
                        && (name == entry || name.ends_with(&format!(".{entry}")))
                }
            })
    }

    /// Python requests' reading, for a URL with `host` and `explicit_port` (the port only when
    /// the URL writes one, as pip's index URLs do not for 443).
    pub fn matches_requests(&self, host: &str, explicit_port: Option<u16>) -> bool {
        let hostname = crate::address::bare(host).to_ascii_lowercase();
        let squeezed = self.raw.replace(' ', "");
        let tokens = squeezed.split(',').filter(|t| !t.is_empty());
        // requests' own pass
        let own = match hostname.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => tokens.clone().any(|t| match t.split_once('/') {
                Some((net, bits)) => match (net.parse::<IpAddr>(), bits.parse::<u8>()) {
                    (Ok(net), Ok(b @ 1..=32)) => in_network(IpAddr::V4(v4), net, b),
                    _ => false,
                },
                None => t == hostname,
            }),
            _ => {
                let with_port = match explicit_port {
                    Some(p) => format!("{hostname}:{p}"),
                    None => hostname.clone(),
                };
                tokens
                    .clone()
                    .any(|t| hostname.ends_with(t) || with_port.ends_with(t))
            }
        };
        own || urllib_bypass(&self.raw, &hostname)
    }
}

/// urllib.request.proxy_bypass_environment for a host without a port.
fn urllib_bypass(raw: &str, host: &str) -> bool {
    if raw == "*" {
        return true;
    }
    raw.split(',')
        .map(|n| n.trim().trim_start_matches('.').to_lowercase())
        .filter(|n| !n.is_empty())
        .any(|n| host == n || host.ends_with(&format!(".{n}")))
}

/// curl's comparison of an IP host with one entry: the same family, an equal address, or an
/// IPv4 CIDR range of 1 to 32 bits.
fn ip_matches(token: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match token.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (token, None),
    };
    let Ok(net) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (ip, bits.map(str::parse::<u8>)) {
        (_, None) => net == ip,
        (IpAddr::V4(_), Some(Ok(b @ 1..=32))) => in_network(ip, net, b),
        _ => false,
    }
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (NO_PROXY value, host, explicit port, curl skips the proxy?, requests skips it?), as
    /// curl 7.88 and Debian's python3-requests 2.28 behave (tests/proxy_routes.rs checks the
    /// same kind of rows against the real clients).
    const CASES: &[(&str, &str, Option<u16>, bool, bool)] = &[
        ("example.com", "example.com", None, true, true),
        ("example.com", "www.example.com", None, true, true),
        ("example.com", "notexample.com", None, false, true),
        ("ample.com", "www.example.com", None, false, true),
        ("example.com", "example.com.evil", None, false, false),
        (".example.com", "example.com", None, true, true),
        (".example.com", "a.b.example.com", None, true, true),
        ("example.com.", "www.example.com", None, true, false),
        ("example.com", "WWW.Example.COM", None, true, true),
        ("EXAMPLE.com", "www.example.com", None, true, true),
        ("www.example.com", "example.com", None, false, false),
        ("localhost", "localhost", None, true, true),
        ("localhost", "127.0.0.1", None, false, false),
        (
            "other.org, example.com",
            "www.example.com",
            None,
            true,
            true,
        ),
        ("other.org,,example.com", "example.com", None, true, true),
        ("other.org example.com", "example.com", None, true, false),
        ("", "example.com", None, false, false),
        (",", "example.com", None, false, false),
        ("*", "anything.example", None, true, true),
        ("*,example.com", "other.org", None, false, false),
        ("example.com,*", "example.com", None, true, true),
        ("*.example.com", "www.example.com", None, false, false),
        ("example.com:443", "www.example.com", None, false, false),
        (
            "example.com:8443",
            "www.example.com",
            Some(8443),
            false,
            true,
        ),
        ("10.1.2.3", "10.1.2.3", None, true, true),
        ("10.1.2.3", "10.1.2.4", None, false, false),
        ("10.0.0.0/8", "10.200.3.4", None, true, true),
        ("10.0.0.0/8", "11.0.0.1", None, false, false),
        ("172.16.0.0/12", "172.31.255.255", None, true, true),
        ("10.0.0.0/33", "10.0.0.0", None, false, false),
        ("10.0.0.0/0", "10.0.0.1", None, false, false),
        ("10.0.0.0/8", "ten.example", None, false, false),
        ("10.0.0.5:8080", "10.0.0.5", Some(8080), false, false),
        ("::1", "::1", None, true, true),
        ("::1", "[::1]", None, true, true),
        ("::1/128", "::1", None, false, false),
        ("[::1]", "::1", None, false, false),
        (
            ".azureml.ms,.blob.core.windows.net",
            "westeurope.api.azureml.ms",
            None,
            true,
            true,
        ),
        (
            "168.63.129.16,169.254.169.254",
            "169.254.169.254",
            None,
            true,
            true,
        ),
    ];

    #[test]
    fn both_readings_table() {
        for &(list, host, port, curl, requests) in CASES {
            let n = NoProxy::parse(list);
            let case = format!("NO_PROXY={list:?} host={host} port={port:?}");
            assert_eq!(n.matches(host, port.unwrap_or(443)), curl, "curl: {case}");
            assert_eq!(n.matches_requests(host, port), requests, "requests: {case}");
        }
    }

    #[test]
    fn empty_lists() {
        assert!(NoProxy::parse("").is_empty());
        assert!(NoProxy::parse(" , ").is_empty());
        assert!(!NoProxy::parse("*").is_empty());
    }
}
