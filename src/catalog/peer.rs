//! Peer targets from the command line (`check --peer HOST:tcp/PORT,udp/PORT`) and the port
//! lists of `vnetprobe listen` (`--tcp 445,44224 --udp 5831`, ranges `5000-5010`).

use super::{Check, Expect, Host, Target};
use crate::net::echo::Transport;

/// The most ports one `--peer` or one `listen` may name: every port is a socket and a probe.
pub const PORTS_CAP: usize = 64;

/// What to do when a path between two nodes fails: the catalog's `peer` profile says the same.
pub const PEER_FIX: &str = "Between two nodes, look at three places. VNet peering: when the nodes are in \
    different VNets, the peering must be Connected in both directions, with traffic to the remote virtual \
    network allowed on each side. NSG rules between the subnets: outbound from this node's subnet and inbound \
    on the peer's subnet for this protocol and port (a deny above the default AllowVnetInBound, or an \
    application security group that leaves one side out, blocks it). Route tables: a user-defined route that \
    sends the peer's prefix to a firewall or NVA that drops it or does not forward it (compare the effective \
    routes of both NICs, and allow the path on the firewall).";

/// Parses a port list: `445,44224`, `5000-5010`; the error quotes the list, the caller names
/// the flag or field.
pub fn parse_ports(raw: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for item in raw.split(',').map(str::trim) {
        if item.is_empty() {
            return Err("an empty item (write 445,44224 or 5000-5010)".to_string());
        }
        let one = |s: &str| {
            s.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port {s:?} (1-65535)"))
        };
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => (one(item)?, one(item)?),
        };
        if lo > hi {
            return Err(format!("the range {item} runs backwards"));
        }
        if usize::from(hi - lo) >= PORTS_CAP || ports.len() + usize::from(hi - lo) >= PORTS_CAP {
            return Err(format!("more than {PORTS_CAP} ports"));
        }
        for p in lo..=hi {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    Ok(ports)
}

/// One `--peer HOST:tcp/PORT,udp/PORT`: the host and its (protocol, port) pairs. A bare port
/// takes the protocol before it: `HOST:tcp/445,44224,udp/5831`.
pub fn parse_peer(raw: &str) -> Result<(String, Vec<(Transport, u16)>), String> {
    let bad = |why: &str| {
        format!(
            "--peer {raw:?}: {why} (expected HOST:tcp/PORT,udp/PORT, e.g. 10.0.1.5:tcp/445,udp/5831)"
        )
    };
    let (host, spec) = if let Some(rest) = raw.strip_prefix('[') {
        rest.split_once("]:")
            .ok_or_else(|| bad("no ']:' after an IPv6 address"))?
    } else {
        let (h, s) = raw.split_once(':').ok_or_else(|| bad("no ':'"))?;
        (h, s)
    };
    if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(bad("write an IPv6 address in brackets"));
    }
    // The same host rules as `probe tcp HOST:PORT`.
    crate::address::check_host(host).map_err(|e| bad(&format!("{host:?}: {e}")))?;
    let mut out: Vec<(Transport, u16)> = Vec::new();
    let mut current: Option<(Transport, &str)> = None;
    for item in spec.split(',').map(str::trim) {
        let ports = match item.split_once('/') {
            Some((proto, ports)) => {
                let p = match proto.to_ascii_lowercase().as_str() {
                    "tcp" => Transport::Tcp,
                    "udp" => Transport::Udp,
                    other => return Err(bad(&format!("unknown protocol {other:?}: tcp or udp"))),
                };
                current = Some((p, proto));
                ports
            }
            None => item,
        };
        let Some((proto, _)) = current else {
            return Err(bad(&format!(
                "{item:?} needs a protocol: tcp/{item} or udp/{item}"
            )));
        };
        for port in parse_ports(ports).map_err(|e| bad(&e))? {
            if !out.contains(&(proto, port)) {
                out.push((proto, port));
            }
        }
        if out.len() > PORTS_CAP {
            return Err(bad(&format!("more than {PORTS_CAP} ports")));
        }
    }
    Ok((host.to_ascii_lowercase(), out))
}

/// The targets of every `--peer`: one per host, protocol and port, profile `peer`, required.
pub fn targets(raw: &[String]) -> Result<Vec<Target>, String> {
    let mut out: Vec<Target> = Vec::new();
    for r in raw {
        let (host, paths) = parse_peer(r)?;
        let slug: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        for (transport, port) in paths {
            let check = match transport {
                Transport::Udp => Check::Udp {
                    port,
                    payload: Vec::new(),
                    responder: true,
                },
                Transport::Tcp => Check::Tcp {
                    port,
                    responder: true,
                },
            };
            if out
                .iter()
                .any(|t| t.host.ready() == Some(&host) && t.check == check)
            {
                continue;
            }
            let protocol = check.protocol();
            out.push(Target {
                id: format!("peer-{slug}-{protocol}"),
                name: format!("Peer {host} (vnetprobe listen)"),
                host: Host::Ready(host.clone()),
                check,
                profiles: vec!["peer".into()],
                service_tag: None,
                required: true,
                expect: Expect::Reachable,
                why: format!(
                    "A path between nodes: this node reaching {host} over {} {port}, confirmed by the \
                     echo of the `vnetprobe listen` responder there",
                    protocol.as_str().to_uppercase()
                ),
                fix: PEER_FIX.to_string(),
                section: None,
                direction: Default::default(),
                client: Default::default(),
                timeout: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Protocol;

    #[test]
    fn port_lists_take_ranges_and_name_the_list() {
        assert_eq!(parse_ports("445,44224").unwrap(), vec![445, 44224]);
        assert_eq!(
            parse_ports("5000-5002,5001").unwrap(),
            vec![5000, 5001, 5002]
        );
        for (bad, why) in [
            ("", "empty item"),
            ("0", "bad port \"0\""),
            ("70000", "bad port \"70000\""),
            ("5-3", "5-3 runs backwards"),
            ("a", "bad port \"a\""),
            ("1,,2", "empty item"),
            ("1-100", "more than"),
        ] {
            let e = parse_ports(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn peers_expand_to_one_target_per_path() {
        let t = targets(&["10.0.1.5:tcp/445,44224,udp/5831".into()]).unwrap();
        let paths: Vec<(String, Protocol, Option<u16>)> = t
            .iter()
            .map(|t| (t.id.clone(), t.protocol(), t.port()))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("peer-10-0-1-5-tcp".into(), Protocol::Tcp, Some(445)),
                ("peer-10-0-1-5-tcp".into(), Protocol::Tcp, Some(44224)),
                ("peer-10-0-1-5-udp".into(), Protocol::Udp, Some(5831)),
            ]
        );
        assert!(
            t.iter()
                .all(|t| t.check.responder() && t.profiles == ["peer"])
        );
        assert!(
            t[0].fix.contains("peering") && t[0].fix.contains("NSG") && t[0].fix.contains("route")
        );
        let v6 = targets(&["[fd00::5]:udp/9".into()]).unwrap();
        assert_eq!(
            (v6[0].host.shown(), v6[0].id.as_str()),
            ("fd00::5", "peer-fd00--5-udp")
        );
    }

    #[test]
    fn bad_peers_name_the_flag() {
        for bad in [
            "10.0.1.5",
            "10.0.1.5:445",
            "10.0.1.5:sctp/9",
            "10.0.1.5:tcp/0",
            "fd00::5:tcp/9",
            "bad host:tcp/9",
            ":tcp/9",
        ] {
            let e = parse_peer(bad).unwrap_err();
            assert!(e.starts_with("--peer "), "{bad}: {e}");
        }
    }

    #[test]
    fn the_catalog_marks_responder_targets_on_tcp_and_udp_only() {
        let target = |protocol: &str, extra: &str| {
            format!(
                "[[target]]\nid = \"p\"\nname = \"p\"\nprotocol = \"{protocol}\"\nhost = \"{{peer}}\"\n\
                 ports = [445]\nprofiles = [\"peer\"]\nwhy = \"w\"\nfix = \"f\"\n{extra}\n"
            )
        };
        let load =
            |text: String| super::super::Catalog::from_sources([("t.toml".to_string(), text)]);
        assert!(load(target("udp", "responder = true")).is_ok());
        let e = load(target("http", "responder = true")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("responder"), "{e}");
        let e = load(target("tcp", "responder = true\nexpect = \"blocked\"")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("responder"), "{e}");
        let embedded = super::super::Catalog::embedded().unwrap();
        assert!(embedded.profile_names().contains(&"peer".to_string()));
    }
}
