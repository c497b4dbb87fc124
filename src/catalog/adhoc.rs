//! Targets made from a command line (`vnetprobe probe tcp HOST:PORT`), not from a catalog.

use super::{Check, Expect, Host, Protocol, Target};

/// An ad hoc target: required, expecting `expect`, with a generic fix naming the path.
pub fn target(host: String, check: Check, expect: Expect) -> Target {
    let protocol = check.protocol();
    let what = match check.port() {
        Some(p) => format!("{} {p} to {host}", protocol.as_str().to_ascii_uppercase()),
        None => format!("name resolution of {host}"),
    };
    let fix = match protocol {
        Protocol::Dns => format!(
            "Check the DNS path for {host}: the VNet's DNS servers, private DNS zone links, and conditional forwarding to 168.63.129.16."
        ),
        Protocol::Udp => format!("Allow outbound {what} in the NSG and any firewall on the path."),
        _ => format!(
            "Allow outbound {what} in the NSG and any firewall on the path, and check the proxy settings."
        ),
    };
    Target {
        id: format!("adhoc-{}", protocol.as_str()),
        name: format!("ad hoc {} probe", protocol.as_str()),
        host: Host::Ready(host),
        check,
        profiles: vec!["adhoc".into()],
        service_tag: None,
        required: true,
        expect,
        why: "asked for on the command line".into(),
        fix,
        section: None,
        direction: Default::default(),
        client: Default::default(),
        timeout: None,
    }
}
