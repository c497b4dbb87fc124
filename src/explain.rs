//! `vnetprobe explain`: what each error kind means, how vnetprobe detects it and how to fix it.
//! The fix is the kind's remedy (the text a failing row's hint leads with) where the cause lies
//! on the node or its proxy, and the general rule otherwise (the catalog's fix names the exact
//! rule for each target).

use crate::outcome::ErrorKind;

/// One kind's entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub kind: ErrorKind,
    /// One line: what happened.
    pub meaning: &'static str,
    /// How vnetprobe tells this kind apart from the others.
    pub detection: &'static str,
    /// What to change.
    pub fix: &'static str,
}

/// The entry of `kind`. Every kind has one (a test walks `ErrorKind::ALL`).
pub fn entry(kind: ErrorKind) -> Entry {
    let (meaning, detection, _) = text(kind);
    Entry {
        kind,
        meaning,
        detection,
        fix: kind.remedy(),
    }
}

/// The entry whose label is `label`, or the error for `explain` (with the closest labels).
pub fn lookup(label: &str) -> Result<Entry, String> {
    let wanted = label.trim().to_ascii_lowercase().replace('-', "_");
    if let Some(k) = ErrorKind::from_label(&wanted) {
        return Ok(entry(k));
    }
    let close: Vec<&str> = ErrorKind::ALL
        .iter()
        .map(|k| k.as_str())
        .filter(|k| {
            k.contains(&wanted) || (wanted.len() >= 3 && wanted.contains(k)) || {
                let prefix = wanted.split('_').next().unwrap_or_default();
                !prefix.is_empty() && k.starts_with(&format!("{prefix}_"))
            }
        })
        .collect();
    let hint = if close.is_empty() {
        "`vnetprobe explain` lists them".to_string()
    } else {
        format!("did you mean {}?", close.join(", "))
    };
    Err(format!("explain: unknown error kind {label:?}: {hint}"))
}

/// `explain KIND`: the meaning, the detection and the fix, wrapped at `width`.
pub fn render(e: &Entry, width: usize) -> String {
    let mut out = format!("{}\n", e.kind);
    for (label, text) in [
        ("Meaning", e.meaning),
        ("Detected", e.detection),
        ("Fix", e.fix),
    ] {
        out.push_str(&format!("\n{label}:\n"));
        for line in wrap(text, width.saturating_sub(2).max(20)) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// `explain` alone: every kind with its one-line meaning.
pub fn render_list(width: usize) -> String {
    let w = ErrorKind::ALL
        .iter()
        .map(|k| k.as_str().len())
        .max()
        .unwrap_or(0);
    let mut out =
        String::from("Error kinds (`vnetprobe explain KIND` for the detection and the fix):\n\n");
    for k in ErrorKind::ALL {
        let lines = wrap(entry(*k).meaning, width.saturating_sub(w + 4).max(20));
        for (i, line) in lines.iter().enumerate() {
            let label = if i == 0 { k.as_str() } else { "" };
            out.push_str(&format!("  {label:<w$}  {line}\n"));
        }
    }
    out
}

/// Greedy word wrap; a word longer than the width stands on its own line.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let (l, w) = (line.chars().count(), word.chars().count());
        if l > 0 && l + 1 + w > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// (meaning, detection, general fix) of each kind.
fn text(kind: ErrorKind) -> (&'static str, &'static str, &'static str) {
    use ErrorKind::*;
    match kind {
        DnsNxdomain => (
            "The DNS server says the name does not exist (NXDOMAIN).",
            "The resolver's answer carries response code NXDOMAIN. With custom DNS this is the usual sign that the server does not forward to Azure DNS (168.63.129.16), or that a privatelink.* zone exists but holds no record for this name.",
            "Make the VNet's DNS server forward the zone to 168.63.129.16 (conditional forwarder), or add the missing record to the private DNS zone and link the zone to the VNet.",
        ),
        DnsServfail => (
            "The DNS server failed to answer the question (SERVFAIL or REFUSED).",
            "The resolver's answer carries response code SERVFAIL or REFUSED: the server is up but could not or would not resolve the name (a broken forwarder, DNSSEC failure, or a server that refuses recursion for this client).",
            "Check the forwarders and the access rules of the VNet's DNS server; custom DNS must forward to 168.63.129.16 and allow queries from the node's subnet.",
        ),
        DnsTimeout => (
            "No DNS server answered within the timeout.",
            "The lookup (with its retry) ran into --timeout without any answer.",
            "Check the VNet's DNS servers, and that custom DNS forwards to 168.63.129.16.",
        ),
        DnsNoRecords => (
            "The name exists but has no address record (NODATA).",
            "The answer is NOERROR with no A or AAAA record for the name (nor at the end of its CNAME chain).",
            "Add the A record for the name to its (private) DNS zone, or fix the CNAME the name points to.",
        ),
        DnsNotPrivate => (
            "A name that must resolve to a private endpoint resolves to a public address.",
            "The target expects private addresses (a private endpoint) and at least one resolved address is public; the CNAME chain shows whether the name passed through its privatelink.* zone.",
            "Link the privatelink.* private DNS zone to this VNet (or forward it from custom DNS to 168.63.129.16), and check that the private endpoint has its DNS zone group.",
        ),
        DnsNotPublic => (
            "A name that must resolve publicly resolves to a private address.",
            "The target expects public addresses and at least one resolved address is private (RFC 1918, CGNAT, link-local or unique local).",
            "Remove the private DNS zone or record that shadows this public name, or point the name at its public endpoint.",
        ),
        TcpRefused => (
            "The TCP connection was refused (a reset came back).",
            "connect() failed with ECONNREFUSED: something on the path answered with a TCP reset, so the address is reachable but nothing accepts on that port, or a firewall rejects it.",
            "Allow the port outbound (NSG outbound rule, Azure Firewall network rule) to the target's service tag, and check that the service listens there.",
        ),
        TcpTimeout => (
            "The TCP connection got no answer: the SYN was dropped somewhere.",
            "connect() did not complete within --timeout and no rejection came back: the silent drop of an NSG deny rule, a firewall or a missing route. `check --trace` (or `probe trace tcp`) then says which hop answered last.",
            "Allow the port outbound to the target's service tag (NSG outbound rule, Azure Firewall rule) and check the route table (a UDR sending 0.0.0.0/0 to an appliance that drops it).",
        ),
        NetUnreachable => (
            "The network or host is unreachable from this node.",
            "connect() or send() failed with ENETUNREACH or EHOSTUNREACH, or an ICMP unreachable came back: no route to the address.",
            "Check the subnet's route table (UDRs), the NAT gateway or firewall that carries outbound traffic, and the peering to the target's network.",
        ),
        LocalFirewall => (
            "This host's own packet filter refused the traffic.",
            "connect() or send() failed with EPERM or EACCES: only a filter on this host (nftables/iptables output rules, a cgroup or systemd IPAddressDeny) says that.",
            "Allow the traffic on the node before looking at the NSG.",
        ),
        UdpRejected => (
            "The UDP datagram was rejected: an ICMP port unreachable came back.",
            "A connected UDP socket saw ECONNREFUSED after the send: nothing listens on that UDP port there, or a firewall rejects it. Silence, in contrast, is a pass marked unconfirmed (open|filtered).",
            "Allow the UDP port outbound to the target's service tag (NSG outbound rule and firewall network rule); a TCP-only rule is not enough.",
        ),
        TlsHandshake => (
            "The TLS handshake failed before any certificate could be judged.",
            "The TCP connection opened but the TLS exchange broke off (a reset, a closed connection or a protocol alert), as a firewall that filters by SNI does.",
            "Allow the host name (SNI) in the firewall's application rules or TLS policy, and check that the endpoint speaks TLS on that port.",
        ),
        TlsResetAfterHello => (
            "TCP connected, then the connection ended right after the TLS ClientHello: no ServerHello, no alert.",
            "The TLS probe counts the bytes the server sent: none before the reset or close. Azure Firewall completes the TCP handshake itself on 80, 443 and 1433, reads the SNI, and ends the flow this way when no application rule allows the FQDN. vnetprobe then asks http://FQDN/ once: Azure Firewall's 470 there names it for certain.",
            "Add an application rule for the FQDN with protocol Https=443 to the firewall policy (vnetprobe check --output fix writes it); an NSG rule does not help.",
        ),
        FirewallDenied => (
            "Azure Firewall denied the HTTP request: status 470 with \"Action: Deny\".",
            "The HTTP answer's status is 470 and its text/plain body holds \"Action: Deny\"; the reason, and the policy, rule collection and rule of an explicit deny rule, are quoted from the body.",
            "Add an application rule for the FQDN (Http=80, Https=443) to the firewall policy; for a threat-intelligence deny, review the firewall's threat-intelligence allow list.",
        ),
        TlsUntrusted => (
            "The certificate chain is trusted neither by the public web PKI nor by this host's store.",
            "The chain fails verification against the public roots and against the system store plus --ca-file.",
            "Find who answers: usually a TLS-inspecting firewall whose CA is not installed (pass it with --ca-file to confirm).",
        ),
        TlsIntercepted => (
            "A TLS-inspecting firewall or proxy re-signs this connection.",
            "The chain fails against the public web PKI roots but verifies against the system store or --ca-file: it ends at a private CA, which is named in the message.",
            "Exempt the host from TLS inspection, or install the inspecting CA for the clients and accept it with --allow-intercept.",
        ),
        TlsNameMismatch => (
            "The certificate does not name the host that was asked for.",
            "The chain is trusted but none of its subject alternative names matches the host: a wrong endpoint, a DNS record pointing elsewhere, or a proxy answering for it.",
            "Check which address the name resolves to (see the CNAME chain) and that it is the right service.",
        ),
        TlsExpired => (
            "A certificate in the peer's chain has expired (or is not yet valid).",
            "Verification fails on the validity period; the earliest not-after date is in the report.",
            "Renew the certificate on the endpoint, or on the inspecting firewall that issued it; check the node's clock too.",
        ),
        HttpStatus => (
            "The HTTP request got a status that the target does not accept.",
            "The connection, TLS and request worked, and the status code (in the message) is not one of the expected ones: usually a proxy or firewall error page, or an authentication wall.",
            "Read the status in the message: 403 or 407 from a proxy means an ACL, 502/503 a proxy that cannot reach the host.",
        ),
        WsRejected => (
            "The WebSocket upgrade was refused.",
            "The HTTP exchange worked but the server did not answer 101 Switching Protocols: a proxy or firewall that strips the Upgrade header, or an endpoint that is not a WebSocket server.",
            "Allow WebSocket upgrades through the proxy or firewall (no TLS inspection on the instance's *.instances.azureml.ms names).",
        ),
        ProxyUnreachable => (
            "The proxy itself does not answer.",
            "The TCP connection to the proxy's address (from --proxy or the proxy variables) failed or timed out.",
            "Check the proxy address and port, and the NSG rule to it.",
        ),
        ProxyDenied => (
            "The proxy refused to open the tunnel (CONNECT answered non-2xx).",
            "The proxy answered the CONNECT request with an error status other than 407.",
            "Let private endpoints and internal names bypass the proxy (NO_PROXY), or allow the host in the proxy's ACL.",
        ),
        ProxyAuthRequired => (
            "The proxy asks for credentials (407 Proxy Authentication Required).",
            "The proxy answered the CONNECT request with 407.",
            "Give the credentials in the proxy URL.",
        ),
        UnexpectedlyReachable => (
            "A path that must be blocked is open.",
            "The target expects to be blocked (for example the data exfiltration check against a storage account outside the workspace) and it answered.",
            "Close the path: a service endpoint policy on the subnet that allows only the workspace's storage accounts, or a firewall rule that denies the host.",
        ),
        Timeout => (
            "The probe ran out of time without a more precise cause.",
            "The probe's cap (twice --timeout) or the run's overall deadline passed before the probe finished, or an exchange after the connection (a proxy reply, an HTTP answer) never came.",
            "Look for a device that accepts connections and then stalls (a proxy, an inspecting firewall); raise --timeout or the target's `timeout` in the catalog only for a path that is known to be slow.",
        ),
        Io => (
            "A local operating system error that names no network cause.",
            "A socket call failed with an errno outside the network vocabulary (for example out of file descriptors or memory).",
            "Read the message: it carries the OS error. Check the host's limits (ulimit -n) and resources, then run again.",
        ),
        Unverified => (
            "With --strict: a pass that the node could not confirm.",
            "The probe passed on evidence that does not prove the path (UDP silence looks the same as an NSG drop; a sign-in wall answered instead of a WebSocket upgrade), and --strict turns that into a failure.",
            "Confirm the rule from Azure's side (Network Watcher IP flow verify or the effective security rules of the node's NIC), or run without --strict to accept an unconfirmed pass.",
        ),
        NotChecked => (
            "With --strict: a required target that was not checked.",
            "The target's host needs a variable that is not set, so it was skipped, and --strict turns a required skip into a failure.",
            "Give the variable the skip reason names (a flag, a VNETPROBE_* variable or the config file), or select profiles without this target.",
        ),
        PeerNoEcho => (
            "A peer's port answered, but not with the echo of `vnetprobe listen`.",
            "The TCP connection (or a UDP reply) came, but the bytes were not the responder's signed echo of this probe's nonce: another service holds the port, or a device on the path accepts connections in the peer's place.",
            "Start `vnetprobe listen` on the peer for this port (or pick a free port for the check), and look for a transparent proxy or NVA between the subnets.",
        ),
        PeerNotAuthenticated => (
            "A reply came that the shared key does not vouch for.",
            "The echo's HMAC-SHA256 does not verify under --key-file: the two sides hold different keys, one has none, or something forged the reply.",
            "Give the responder and the check the same --key-file; if they already share it, a device on the path answers in the peer's place.",
        ),
        Internal => (
            "The probe failed inside vnetprobe, not on the network.",
            "The probe's task panicked (a bug); the runner records it on that target instead of letting it pass for a timeout.",
            "Nothing was proven about this path: run the probe again with --log-level debug and report the message.",
        ),
        NsgDenied => (
            "The exported NSG rules (--nsg) deny this flow; for an inbound row, the rules prove it fails.",
            "The flow (protocol, port, the tag's or the address's prefixes, this node) is evaluated against the files as Azure does: rules by priority, first match wins; outbound through the NIC's NSG then the subnet's, inbound the reverse; an ASG or an unresolvable tag is unknown, never a match.",
            ErrorKind::NsgDenied.remedy(),
        ),
        RouteNotInternet => (
            "The exported routes (--routes) send AzureMachineLearning or BatchNodeManagement prefixes elsewhere than the Internet.",
            "Every prefix of the two tags (from --service-tags) is looked up by longest-prefix match in the route file, tag routes expanded; the prefixes that go to an appliance, a gateway or nowhere are listed, aggregated.",
            ErrorKind::RouteNotInternet.remedy(),
        ),
        ForcedTunnel => (
            "A cause: the default route goes to a virtual appliance or gateway, and failing targets passed it.",
            "The route file's 0.0.0.0/0 has next hop VirtualAppliance or VirtualNetworkGateway, and a failing target's address takes that route.",
            ErrorKind::ForcedTunnel.remedy(),
        ),
        // A kind added later without an entry fails `every_kind_has_an_entry`.
        #[allow(unreachable_patterns)]
        _ => ("", "", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_entry() {
        for k in ErrorKind::ALL {
            let e = entry(*k);
            for (what, text) in [
                ("meaning", e.meaning),
                ("detection", e.detection),
                ("fix", e.fix),
            ] {
                assert!(text.len() > 20, "{k}: no {what}");
            }
            assert_eq!(e.fix, k.remedy(), "{k}: the fix is the remedy");
            let page = render(&e, 80);
            assert!(page.starts_with(k.as_str()), "{page}");
            assert!(
                page.lines()
                    .all(|l| l.chars().count() <= 80 || !l.contains(' '))
            );
            assert!(render_list(100).contains(k.as_str()));
        }
    }

    #[test]
    fn lookup_takes_labels_and_suggests_close_ones() {
        assert_eq!(lookup("tcp_timeout").unwrap().kind, ErrorKind::TcpTimeout);
        assert_eq!(
            lookup("TLS-Intercepted").unwrap().kind,
            ErrorKind::TlsIntercepted
        );
        let e = lookup("dns_nx").unwrap_err();
        assert!(e.contains("dns_nxdomain"), "{e}");
        let e = lookup("nonsense").unwrap_err();
        assert!(e.contains("vnetprobe explain"), "{e}");
    }

    #[test]
    fn wrap_keeps_words_whole() {
        assert_eq!(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
        assert_eq!(wrap("", 10), [""]);
    }
}
