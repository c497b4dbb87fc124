//! The `NO_PROXY` list: which hosts skip the proxy, by curl's rules plus two forms other
//! clients accept (`*.suffix` and `host:port`).
//!
//! curl's rules (lib/noproxy.c): the whole value `*` matches every host; a name entry matches
//! that name and its subdomains, with or without a leading dot (`example.com` and
//! `.example.com` both match `example.com` and `www.example.com`, never `notexample.com`);
//! case and trailing dots are ignored; an IP host is compared with IP and CIDR entries only,
//! never with names (no lookups). Beyond curl, because Python and Go clients accept them and
//! operators write them: `*.example.com` is read as `.example.com`, and `host:port` /
//! `[v6]:port` entries match that port only. A `*` inside a longer list matches nothing, as
//! in curl. Entries are separated by commas and blanks.

use std::net::IpAddr;

/// A parsed `NO_PROXY` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    pattern: Pattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// Lowercase, without leading or trailing dot.
    Domain(String),
    /// A network: the address and its prefix length.
    Net(IpAddr, u8),
    /// An entry that can match nothing (a bad prefix length, a lone `*` in a list).
    Never,
}

impl NoProxy {
    pub fn parse(raw: &str) -> NoProxy {
        let raw = raw.trim();
        if raw == "*" {
            return NoProxy {
                all: true,
                entries: Vec::new(),
            };
        }
        let entries = raw
            .split([',', ' ', '\t'])
            .filter(|t| !t.is_empty())
            .map(entry)
            .collect();
        NoProxy {
            all: false,
            entries,
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.entries.is_empty()
    }

    /// Whether `host` (a name or an IP literal, brackets allowed) on `port` skips the proxy.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = bare.parse::<IpAddr>().ok();
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        self.entries
            .iter()
            .filter(|e| e.port.is_none_or(|p| p == port))
            .any(|e| match (&e.pattern, ip) {
                (Pattern::Net(net, bits), Some(ip)) => in_network(ip, *net, *bits),
                (Pattern::Domain(d), None) => {
                    name == *d
                        || (name.len() > d.len()
                            && name.ends_with(d.as_str())
                            && name[..name.len() - d.len()].ends_with('.'))
                }
                _ => false,
            })
    }
}

fn entry(token: &str) -> Entry {
    let (host, port) = split_port(token);
    let pattern = if host == "*" {
        Pattern::Never
    } else if let Some(net) = network(host) {
        net
    } else {
        let host = host.strip_prefix('*').unwrap_or(host);
        let host = host.trim_end_matches('.');
        let host = host.strip_prefix('.').unwrap_or(host);
        if host.is_empty() {
            Pattern::Never
        } else {
            Pattern::Domain(host.to_ascii_lowercase())
        }
    };
    Entry { pattern, port }
}

/// `host:port`, `[v6]:port`, `[v6]`; a bare IPv6 address (several colons) has no port.
fn split_port(token: &str) -> (&str, Option<u16>) {
    if let Some(rest) = token.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        };
    }
    match token.split_once(':') {
        Some((h, p)) if !p.contains(':') => match p.parse::<u16>() {
            Ok(port) => (h, Some(port)),
            Err(_) => (token, None),
        },
        _ => (token, None),
    }
}

/// An IP or CIDR entry. Like curl, no prefix (or `/0`) means the address itself.
fn network(token: &str) -> Option<Pattern> {
    let (addr, bits) = match token.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (token, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = match bits.map(|b| b.parse::<u8>()) {
        None | Some(Ok(0)) => max,
        Some(Ok(b)) if b <= max => b,
        Some(_) => return Some(Pattern::Never),
    };
    Some(Pattern::Net(ip, bits))
}

fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (NO_PROXY value, host, port, skips the proxy?) The first block is curl's behaviour
    /// (its test 1614 and lib/noproxy.c); the second closes the gaps IMPLEMENTATION-NOTES lists
    /// for hyper-util's matcher.
    const CASES: &[(&str, &str, u16, bool)] = &[
        // curl: names
        ("example.com", "example.com", 443, true),
        ("example.com", "www.example.com", 443, true),
        ("example.com", "notexample.com", 443, false),
        ("example.com", "example.com.evil", 443, false),
        (".example.com", "example.com", 443, true),
        (".example.com", "a.b.example.com", 443, true),
        ("example.com.", "www.example.com", 443, true),
        ("example.com", "WWW.Example.COM.", 443, true),
        ("EXAMPLE.com", "www.example.com", 443, true),
        ("www.example.com", "example.com", 443, false),
        ("localhost", "localhost", 80, true),
        ("localhost", "127.0.0.1", 80, false),
        ("other.org, example.com", "www.example.com", 443, true),
        ("other.org,,example.com", "example.com", 443, true),
        ("other.org example.com", "example.com", 443, true),
        ("", "example.com", 443, false),
        (",", "example.com", 443, false),
        // curl: `*` alone is everything; inside a list it matches nothing
        ("*", "anything.example", 443, true),
        (" * ", "10.1.2.3", 443, true),
        ("*,example.com", "other.org", 443, false),
        ("example.com,*", "example.com", 443, true),
        // curl: IP and CIDR, compared only with IP hosts
        ("10.1.2.3", "10.1.2.3", 443, true),
        ("10.1.2.3", "10.1.2.4", 443, false),
        ("10.0.0.0/8", "10.200.3.4", 443, true),
        ("10.0.0.0/8", "11.0.0.1", 443, false),
        ("192.168.0.0/16", "192.168.99.1", 443, true),
        ("172.16.0.0/12", "172.31.255.255", 443, true),
        ("172.16.0.0/12", "172.32.0.1", 443, false),
        ("10.0.0.0/33", "10.0.0.0", 443, false),
        ("10.0.0.0/8", "ten.example", 443, false),
        ("::1", "::1", 443, true),
        ("::1", "[::1]", 443, true),
        ("fd00::/8", "fd12:3456::1", 443, true),
        ("fd00::/8", "fe80::1", 443, false),
        ("10.0.0.0/8", "::ffff:10.0.0.1", 443, false),
        ("[::1]", "::1", 443, true),
        // gaps of hyper-util's matcher, closed here
        ("*.example.com", "www.example.com", 443, true),
        ("*.example.com", "example.com", 443, true),
        ("*.example.com", "notexample.com", 443, false),
        ("example.com:8443", "example.com", 8443, true),
        ("example.com:8443", "www.example.com", 8443, true),
        ("example.com:8443", "example.com", 443, false),
        ("10.0.0.5:8080", "10.0.0.5", 8080, true),
        ("10.0.0.5:8080", "10.0.0.5", 80, false),
        ("[::1]:8080", "::1", 8080, true),
        ("[::1]:8080", "::1", 8081, false),
        // Azure ML shapes
        (
            ".azureml.ms,.blob.core.windows.net",
            "westeurope.api.azureml.ms",
            443,
            true,
        ),
        ("168.63.129.16,169.254.169.254", "169.254.169.254", 80, true),
    ];

    #[test]
    fn curl_rules_table() {
        for &(list, host, port, want) in CASES {
            assert_eq!(
                NoProxy::parse(list).matches(host, port),
                want,
                "NO_PROXY={list:?} host={host} port={port}"
            );
        }
    }

    #[test]
    fn empty_lists() {
        assert!(NoProxy::parse("").is_empty());
        assert!(NoProxy::parse(" , ").is_empty());
        assert!(!NoProxy::parse("*").is_empty());
    }
}
