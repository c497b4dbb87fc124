//! Hosts, endpoints and URLs as users write them (`HOST:PORT`, `[v6]:port`, `https://...`),
//! checked and split once, with any password masked in every message. Below every layer that
//! reads them (context values, catalog expansion, ad hoc targets).

/// A host as a URL or `host:port` writes it: an IPv6 literal in brackets, anything else as is.
/// The one place brackets are added (see `bare` for the one place they are removed).
pub fn bracketed(host: &str) -> std::borrow::Cow<'_, str> {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]").into()
    } else {
        host.into()
    }
}

/// A host without the brackets of an IPv6 literal: what DNS, SNI and NO_PROXY compare.
pub fn bare(host: &str) -> &str {
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `host:port`, with an IPv6 literal in brackets: CONNECT targets, Host headers, endpoints.
pub fn authority(host: &str, port: u16) -> String {
    format!("{}:{port}", bracketed(host))
}

/// `host:port`, or the host alone when there is no port (a DNS target).
pub fn endpoint(host: &str, port: Option<u16>) -> String {
    match port {
        Some(p) => authority(host, p),
        None => host.to_string(),
    }
}

/// A DNS server, `IP[:PORT]` (IPv6 as `[addr]:port`, port 53 by default); the caller names the
/// flag or field in the error.
pub fn parse_server(raw: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(sa) = raw.parse::<std::net::SocketAddr>() {
        return Ok(sa);
    }
    raw.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| format!("{raw:?}: expected IP or IP:PORT (IPv6 as [addr]:port)"))
}

/// Splits `host:port` (`[v6]:port` for IPv6); the error names the argument.
pub fn parse_endpoint(raw: &str) -> Result<(String, u16), String> {
    let shown = masked(raw);
    let bad = || format!("{shown:?}: expected HOST:PORT (IPv6 as [addr]:port)");
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(bad)?;
        (h, p)
    } else {
        let (h, p) = raw.rsplit_once(':').ok_or_else(bad)?;
        if h.contains(':') {
            return Err(bad());
        }
        (h, p)
    };
    let port: u16 =
        port.parse()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| match port.contains('@') {
                true => bad(),
                false => format!("{shown:?}: bad port {port:?} (1-65535)"),
            })?;
    check_host(host).map_err(|e| format!("{shown:?}: {e}"))?;
    Ok((host.to_ascii_lowercase(), port))
}

pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty host".into());
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{host:?} is not a host name or IP address"))
    }
}

/// A URL split into what the probes need.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
}

/// A URL as a message may show it: credentials before the host are masked (`user:***@`, or
/// `***@` for a lone token), with or without a scheme.
pub fn masked(raw: &str) -> String {
    let (scheme, rest) = match raw.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('@') => (format!("{scheme}://"), rest),
        _ => (String::new(), raw),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((userinfo, host)) => {
            // A user without a password is a token: masked whole.
            let user = match userinfo.split_once(':') {
                Some((user, password)) if !password.is_empty() => format!("{user}:***"),
                _ => "***".to_string(),
            };
            format!("{scheme}{user}@{host}{}", &rest[end..])
        }
        None => raw.to_string(),
    }
}

/// Parses `http://`, `https://`, `ws://` and `wss://` URLs (with the `url` crate: WHATWG
/// parsing, IDNA, IPv6); `ws` says which pair is wanted. Errors show the URL with any password
/// masked.
pub fn parse_url(raw: &str, ws: bool) -> Result<Url, String> {
    let shown = masked(raw);
    let want = if ws { "ws or wss" } else { "http or https" };
    let scheme = match raw.split_once("://") {
        Some((scheme, _)) if !scheme.contains('@') => scheme,
        _ => {
            return Err(format!(
                "{shown:?}: expected a URL like {}://host/path",
                if ws { "wss" } else { "https" }
            ));
        }
    };
    let tls = match (scheme.to_ascii_lowercase().as_str(), ws) {
        ("http", false) | ("ws", true) => false,
        ("https", false) | ("wss", true) => true,
        _ => return Err(format!("{shown:?}: scheme {scheme:?} (use {want})")),
    };
    let url = url::Url::parse(raw).map_err(|e| format!("{shown:?}: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{shown:?}: credentials in the URL are not supported"
        ));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => {
            check_host(d).map_err(|e| format!("{shown:?}: {e}"))?;
            d.to_string()
        }
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(format!("{shown:?}: empty host")),
    };
    let port = url
        .port_or_known_default()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{shown:?}: bad port (1-65535)"))?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    Ok(Url {
        tls,
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_flag_parsing() {
        assert_eq!(
            parse_server("127.0.0.1:5353").unwrap(),
            "127.0.0.1:5353".parse().unwrap()
        );
        assert_eq!(
            parse_server("10.0.0.4").unwrap(),
            "10.0.0.4:53".parse().unwrap()
        );
        assert_eq!(
            parse_server("[::1]:53").unwrap(),
            "[::1]:53".parse().unwrap()
        );
        assert!(
            parse_server("dns.local")
                .unwrap_err()
                .contains("expected IP or IP:PORT")
        );
    }

    #[test]
    fn passwords_never_appear_in_errors() {
        assert_eq!(masked("https://u:secret@h/p?q"), "https://u:***@h/p?q");
        assert_eq!(masked("wss://token@h"), "wss://***@h");
        assert_eq!(masked("https://a@b:p@ss@h/x@y"), "https://a@b:***@h/x@y");
        assert_eq!(masked("https://h/u:p@x"), "https://h/u:p@x");
        for raw in [
            "https://user:secret@host/",
            "ftp://user:secret@host/",
            "user:secret@host://x",
            "user:secret@host",
            "https://user:secret@bad host/",
        ] {
            let e = parse_url(raw, false).unwrap_err();
            assert!(!e.contains("secret"), "{raw}: {e}");
            assert!(e.contains("user:***@"), "{raw}: {e}");
        }
        for raw in ["user:secret@host", "user:secret@host:1", "u:secret@:1"] {
            let e = parse_endpoint(raw).unwrap_err();
            assert!(!e.contains("secret"), "{raw}: {e}");
        }
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("example.org:443").unwrap(),
            ("example.org".into(), 443)
        );
        assert_eq!(parse_endpoint("[::1]:8080").unwrap(), ("::1".into(), 8080));
        assert_eq!(
            parse_endpoint("10.0.0.4:445").unwrap(),
            ("10.0.0.4".into(), 445)
        );
        for bad in [
            "example.org",
            "example.org:0",
            "example.org:70000",
            ":443",
            "a b:1",
            "::1:80",
            "host:http",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn brackets_are_written_and_removed_in_one_place() {
        assert_eq!(bracketed("fd00::1"), "[fd00::1]");
        assert_eq!(bracketed("[fd00::1]"), "[fd00::1]");
        assert_eq!(bracketed("example.org"), "example.org");
        assert_eq!(bare("[fd00::1]"), "fd00::1");
        assert_eq!(authority("fd00::1", 443), "[fd00::1]:443");
        assert_eq!(authority("10.0.0.4", 445), "10.0.0.4:445");
        assert_eq!(endpoint("example.org", None), "example.org");
        assert_eq!(endpoint("::1", Some(53)), "[::1]:53");
    }

    #[test]
    fn urls() {
        let u = parse_url("https://pypi.org/simple/pip/", false).unwrap();
        assert_eq!(
            u,
            Url {
                tls: true,
                host: "pypi.org".into(),
                port: 443,
                path: "/simple/pip/".into()
            }
        );
        let u = parse_url("ws://127.0.0.1:8080", true).unwrap();
        assert_eq!((u.tls, u.port, u.path.as_str()), (false, 8080, "/"));
        assert_eq!(parse_url("http://[::1]:81/x", false).unwrap().host, "::1");
        assert!(parse_url("ftp://x/", false).is_err());
        assert!(parse_url("wss://x/", false).is_err());
        assert!(
            parse_url("https://u:p@x/", false)
                .unwrap_err()
                .contains("credentials")
        );
        assert!(parse_url("pypi.org", false).is_err());
    }
}
