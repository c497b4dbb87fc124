//! Table tests of the evaluator, on fixtures built from the documented shapes: the REST API's
//! "Network Security Groups - Get" example (NetworkSecurityGroupGet.json: `properties.securityRules`
//! and `defaultSecurityRules` with the six default rules), the effective rules as
//! `az network nic list-effective-nsg` prints them (`value[].association`, `effectiveSecurityRules`
//! with `expanded*AddressPrefix`, `tagMap`), "Route Tables - Get" (RouteTableGet.json) and the
//! effective route list (`source`, `state`, `addressPrefix` [], `nextHopType`, `nextHopIpAddress` []).

use super::*;
use nsg::Direction::{Inbound, Outbound};

/// The six default rules as "Network Security Groups - Get" lists them (shared with
/// tests/azure_files.rs).
const DEFAULTS: &str = include_str!("../../tests/fixtures/azure/default-security-rules.json");

/// A subnet NSG as "Network Security Groups - Get" returns it (REST nesting).
fn subnet_nsg(rules: &str) -> String {
    format!(
        r#"{{"name": "aml-subnet-nsg", "id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/aml-subnet-nsg",
  "type": "Microsoft.Network/networkSecurityGroups", "location": "westeurope",
  "properties": {{"provisioningState": "Succeeded", "securityRules": {rules}, "defaultSecurityRules": {DEFAULTS},
    "subnets": [{{"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet/subnets/training"}}]}}}}"#
    )
}

const SUBNET_RULES: &str = r#"[
  {"name": "AllowAMLInbound", "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "44224", "sourceAddressPrefix": "AzureMachineLearning", "destinationAddressPrefix": "*", "access": "Allow", "priority": 200, "direction": "Inbound"}},
  {"name": "DenyTundra", "properties": {"protocol": "Udp", "sourcePortRange": "*", "destinationPortRanges": ["5800-5900"], "sourceAddressPrefix": "*", "destinationAddressPrefix": "AzureMachineLearning", "access": "Deny", "priority": 300, "direction": "Outbound"}},
  {"name": "AllowStorage", "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRanges": ["443", "445"], "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": "Storage.WestEurope", "access": "Allow", "priority": 400, "direction": "Outbound"}},
  {"name": "AppServers", "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "8787", "sourceAddressPrefix": "*", "destinationApplicationSecurityGroups": [{"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/applicationSecurityGroups/asg-ci"}], "access": "Deny", "priority": 500, "direction": "Outbound"}},
  {"name": "DenyInternet", "properties": {"protocol": "*", "sourcePortRange": "*", "destinationPortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "Internet", "access": "Deny", "priority": 4000, "direction": "Outbound"}}
]"#;

/// The NIC's effective rules as `az network nic list-effective-nsg` prints them.
const EFFECTIVE: &str = r#"{"value": [{
  "networkSecurityGroup": {"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/ci-nic-nsg"},
  "association": {"networkInterface": {"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/ci-nic"}},
  "effectiveSecurityRules": [
    {"name": "securityRules/DenySsh", "protocol": "Tcp", "sourcePortRange": "0-65535", "destinationPortRange": "22-22", "sourceAddressPrefix": "AzureMachineLearning",
     "expandedSourceAddressPrefix": ["20.61.0.0/24"], "destinationAddressPrefix": "0.0.0.0/0", "expandedDestinationAddressPrefix": [], "access": "Deny", "priority": 100, "direction": "Inbound"},
    {"name": "securityRules/AllowPartOfAml", "protocol": "Tcp", "sourcePortRange": "0-65535", "destinationPortRange": "2222-2222", "sourceAddressPrefix": "20.61.0.0/25",
     "expandedSourceAddressPrefix": null, "destinationAddressPrefix": "0.0.0.0/0", "access": "Allow", "priority": 110, "direction": "Inbound"},
    {"name": "defaultSecurityRules/AllowVnetOutBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "VirtualNetwork",
     "expandedSourceAddressPrefix": ["10.0.0.0/16", "168.63.129.16/32"], "destinationAddressPrefix": "VirtualNetwork", "expandedDestinationAddressPrefix": ["10.0.0.0/16", "168.63.129.16/32"], "access": "Allow", "priority": 65000, "direction": "Outbound"},
    {"name": "defaultSecurityRules/AllowInternetOutBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "Internet",
     "expandedDestinationAddressPrefix": ["1.0.0.0/8", "20.0.0.0/8", "40.0.0.0/8"], "access": "Allow", "priority": 65001, "direction": "Outbound"},
    {"name": "defaultSecurityRules/DenyAllOutBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "0.0.0.0/0", "access": "Deny", "priority": 65500, "direction": "Outbound"},
    {"name": "defaultSecurityRules/AllowVnetInBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "VirtualNetwork", "expandedSourceAddressPrefix": ["10.0.0.0/16"], "destinationAddressPrefix": "VirtualNetwork", "expandedDestinationAddressPrefix": ["10.0.0.0/16"], "access": "Allow", "priority": 65000, "direction": "Inbound"},
    {"name": "defaultSecurityRules/DenyAllInBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "0.0.0.0/0", "access": "Deny", "priority": 65500, "direction": "Inbound"}
  ],
  "tagMap": {"VirtualNetwork": ["10.0.0.0/16"]}
}]}"#;

fn data(nsg_files: &[String], routes: Option<&str>) -> AzureData {
    let dir = std::env::temp_dir().join(format!(
        "vnetprobe-azure-{}-{}",
        std::process::id(),
        rand_name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let tags = dir.join("tags.json");
    std::fs::write(&tags, service_tags::tests_fixture()).unwrap();
    let mut files = Vec::new();
    for (i, n) in nsg_files.iter().enumerate() {
        let p = dir.join(format!("nsg{i}.json"));
        std::fs::write(&p, n).unwrap();
        files.push(p);
    }
    let rp = routes.map(|r| {
        let p = dir.join("routes.json");
        std::fs::write(&p, r).unwrap();
        p
    });
    let d = AzureData::load(Some(&tags), &files, rp.as_deref(), &[]).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    d
}

fn rand_name() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn out(proto: &'static str, port: u16, ip: &str) -> Flow {
    Flow {
        direction: Outbound,
        protocol: proto,
        port,
        remote: Remote::Ip(ip.parse().unwrap()),
        local: Some("10.0.1.4".parse().unwrap()),
    }
}

fn inbound(d: &AzureData, port: u16, tag: &str) -> Flow {
    Flow {
        direction: Inbound,
        protocol: "tcp",
        port,
        remote: Remote::Tag {
            name: tag.into(),
            prefixes: d.resolve(tag),
        },
        local: Some("10.0.1.4".parse().unwrap()),
    }
}

fn said(v: Option<Verdict>) -> (String, String, String) {
    let v = v.expect("a verdict");
    (v.nsg, v.rule, v.access)
}

#[test]
fn subnet_nsg_rules_by_priority_protocol_ports_and_tags() {
    let d = data(&[subnet_nsg(SUBNET_RULES)], None);
    let s = |n: &str, a: &str| ("aml-subnet-nsg".to_string(), n.to_string(), a.to_string());
    for (flow, want) in [
        // UDP 5831 to an AzureMachineLearning address: the port range of the Udp deny.
        (out("udp", 5831, "20.61.0.9"), s("DenyTundra", "Deny")),
        // The same port over TCP: the Udp rule does not apply; the Internet deny does.
        (out("tcp", 5831, "20.61.0.9"), s("DenyInternet", "Deny")),
        // 445 is in destinationPortRanges, the address in Storage.WestEurope.
        (out("tcp", 445, "20.60.1.1"), s("AllowStorage", "Allow")),
        // Storage.NorthEurope is not Storage.WestEurope: the Internet deny decides.
        (out("tcp", 443, "20.60.17.1"), s("DenyInternet", "Deny")),
        // Inside the VNet, but the files give no VNet prefixes: the VirtualNetwork rule may or
        // may not hold it, and it would decide otherwise than the deny below it.
        (
            out("tcp", 443, "10.0.2.5"),
            s("AllowVnetOutBound", "unknown"),
        ),
        // An ASG rule before a deny of the same access cannot change the verdict.
        (out("tcp", 8787, "20.61.0.9"), s("DenyInternet", "Deny")),
    ] {
        assert_eq!(said(d.rules(&flow)), want, "{flow:?}");
    }
    // The inbound 44224 rule names the tag itself.
    assert_eq!(
        said(d.rules(&inbound(&d, 44224, "AzureMachineLearning"))),
        s("AllowAMLInbound", "Allow")
    );
    assert_eq!(
        said(d.rules(&inbound(&d, 22, "AzureMachineLearning"))),
        s("AllowVnetInBound", "unknown")
    );
    // With the routes' VnetLocal prefixes, VirtualNetwork resolves.
    let d = data(&[subnet_nsg(SUBNET_RULES)], Some(EFFECTIVE_ROUTES));
    assert_eq!(
        said(d.rules(&inbound(&d, 22, "AzureMachineLearning"))),
        s("DenyAllInBound", "Deny")
    );
    assert_eq!(
        said(d.rules(&out("tcp", 443, "10.0.2.5"))),
        s("AllowVnetOutBound", "Allow")
    );
}

#[test]
fn an_asg_rule_that_would_decide_otherwise_is_unknown() {
    let allow_asg = SUBNET_RULES.replace(
        r#""access": "Deny", "priority": 500"#,
        r#""access": "Allow", "priority": 500"#,
    );
    let d = data(&[subnet_nsg(&allow_asg)], None);
    let v = d.rules(&out("tcp", 8787, "20.61.0.9")).unwrap();
    assert_eq!(
        (v.rule.as_str(), v.access.as_str()),
        ("AppServers", "unknown")
    );
    assert!(v.reason.as_deref().unwrap().contains("asg-ci"), "{v:?}");
}

#[test]
fn nic_then_subnet_outbound_and_the_reverse_inbound() {
    let d = data(&[subnet_nsg(SUBNET_RULES), EFFECTIVE.to_string()], None);
    // Outbound: the NIC allows storage, the subnet allows it too: both steps, in order.
    let v = d.rules(&out("tcp", 443, "20.60.1.1")).unwrap();
    let order: Vec<&str> = v.evaluated.iter().map(|s| s.nsg.as_str()).collect();
    assert_eq!(order, ["ci-nic-nsg", "aml-subnet-nsg"]);
    assert_eq!(
        (v.nsg.as_str(), v.access.as_str()),
        ("aml-subnet-nsg", "Allow")
    );
    // Outbound: the NIC allows the Internet, the subnet denies: the deny decides.
    assert_eq!(
        said(d.rules(&out("tcp", 443, "20.61.0.9"))).1,
        "DenyInternet"
    );
    // Inbound: subnet first (allows 44224), then the NIC (which denies everything else).
    let v = d
        .rules(&inbound(&d, 44224, "AzureMachineLearning"))
        .unwrap();
    assert_eq!(
        v.evaluated
            .iter()
            .map(|s| s.nsg.as_str())
            .collect::<Vec<_>>(),
        ["aml-subnet-nsg", "ci-nic-nsg"]
    );
    assert_eq!(
        (v.nsg.as_str(), v.rule.as_str()),
        ("ci-nic-nsg", "defaultSecurityRules/DenyAllInBound")
    );
}

#[test]
fn effective_rules_use_their_expanded_prefixes() {
    let d = data(&[EFFECTIVE.to_string()], None);
    assert_eq!(
        said(d.rules(&inbound(&d, 22, "AzureMachineLearning"))).1,
        "securityRules/DenySsh"
    );
    // A rule covering half the tag's prefixes may or may not match: unknown, naming it.
    let v = d.rules(&inbound(&d, 2222, "AzureMachineLearning")).unwrap();
    assert_eq!(
        (v.rule.as_str(), v.access.as_str()),
        ("securityRules/AllowPartOfAml", "unknown")
    );
    assert_eq!(
        said(d.rules(&out("udp", 5831, "20.61.0.9"))).1,
        "defaultSecurityRules/AllowInternetOutBound"
    );
    assert_eq!(
        said(d.rules(&out("tcp", 443, "10.0.9.9"))).1,
        "defaultSecurityRules/AllowVnetOutBound"
    );
    assert_eq!(
        d.vnet.cidrs(),
        ["10.0.0.0/16"],
        "VirtualNetwork from the tagMap"
    );
}

#[test]
fn bad_nsg_files_name_the_field() {
    for (text, words) in [
        ("{}", "neither"),
        (
            r#"{"value": [{"association": {}}]}"#,
            "effectiveSecurityRules",
        ),
        (r#"{"securityRules": []}"#, "defaultSecurityRules"),
        (
            r#"{"securityRules": [{"name": "x", "priority": 1, "direction": "Up", "access": "Allow", "protocol": "*"}], "defaultSecurityRules": []}"#,
            "securityRules[0] (x): `direction`",
        ),
        (
            r#"{"securityRules": [{"name": "x", "priority": 1, "direction": "Inbound", "access": "Allow", "protocol": "Tcp", "destinationPortRange": "9-1"}], "defaultSecurityRules": []}"#,
            "not a port",
        ),
    ] {
        let e = nsg::parse(text.as_bytes()).unwrap_err();
        assert!(e.contains(words), "{text}: {e}");
    }
}

const EFFECTIVE_ROUTES: &str = r#"{"value": [
  {"source": "Default", "state": "Active", "addressPrefix": ["10.0.0.0/16"], "nextHopIpAddress": [], "nextHopType": "VnetLocal", "name": null, "disableBgpRoutePropagation": false},
  {"source": "Default", "state": "Invalid", "addressPrefix": ["0.0.0.0/0"], "nextHopIpAddress": [], "nextHopType": "Internet"},
  {"source": "User", "state": "Active", "addressPrefix": ["0.0.0.0/0"], "nextHopIpAddress": ["10.0.9.4"], "nextHopType": "VirtualAppliance", "name": "to-firewall"},
  {"source": "User", "state": "Active", "addressPrefix": ["AzureMachineLearning"], "nextHopIpAddress": [], "nextHopType": "Internet", "name": "aml-direct"},
  {"source": "User", "state": "Active", "addressPrefix": ["20.61.0.128/25"], "nextHopIpAddress": [], "nextHopType": "None", "name": "blackhole"},
  {"source": "Default", "state": "Active", "addressPrefix": ["10.0.0.0/8"], "nextHopIpAddress": [], "nextHopType": "None"}
]}"#;

#[test]
fn longest_prefix_with_tag_prefixes() {
    let d = data(&[], Some(EFFECTIVE_ROUTES));
    let hop = |ip: &str| {
        d.route(ip.parse().unwrap())
            .map(|r| (r.prefix, r.next_hop_type, r.next_hop))
    };
    assert_eq!(
        hop("10.0.1.9"),
        Some(("10.0.0.0/16".into(), "VnetLocal".into(), None))
    );
    assert_eq!(
        hop("10.7.0.1"),
        Some(("10.0.0.0/8".into(), "None".into(), None))
    );
    assert_eq!(
        hop("20.61.0.9"),
        Some(("AzureMachineLearning".into(), "Internet".into(), None)),
        "the tag's /24"
    );
    assert_eq!(
        hop("20.61.0.200"),
        Some(("20.61.0.128/25".into(), "None".into(), None)),
        "longer than the tag's"
    );
    assert_eq!(
        hop("20.60.1.1"),
        Some((
            "0.0.0.0/0".into(),
            "VirtualAppliance".into(),
            Some("10.0.9.4".into())
        ))
    );
    let t = d.routes.as_ref().unwrap();
    assert_eq!(
        t.forced_tunnel().unwrap().next_hop.as_deref(),
        Some("10.0.9.4")
    );
    let (bad, hops) = t.not_internet(&d.resolve("AzureMachineLearning").unwrap());
    assert_eq!(bad.cidrs(), ["20.61.0.128/25"]);
    assert_eq!(hops[0].next_hop_type, "None");
    let (bad, _) = t.not_internet(&d.resolve("Storage.WestEurope").unwrap());
    assert_eq!(
        bad.cidrs(),
        ["20.60.0.0/20"],
        "storage goes to the appliance"
    );
}

#[test]
fn a_route_table_of_its_own_leaves_the_rest_to_the_system() {
    // "Route Tables - Get": user routes only, under `properties`.
    let rt = r#"{"name": "testrt", "properties": {"disableBgpRoutePropagation": false, "routes": [
      {"name": "route1", "properties": {"addressPrefix": "10.0.3.0/24", "nextHopType": "VirtualNetworkGateway"}},
      {"name": "aml", "properties": {"addressPrefix": "AzureMachineLearning", "nextHopType": "VirtualAppliance", "nextHopIpAddress": "10.0.9.4"}}]}}"#;
    let d = data(&[], Some(rt));
    assert_eq!(
        d.route("10.0.3.7".parse().unwrap()).unwrap().next_hop_type,
        "VirtualNetworkGateway"
    );
    assert_eq!(
        d.route("20.61.0.7".parse().unwrap())
            .unwrap()
            .next_hop
            .as_deref(),
        Some("10.0.9.4")
    );
    let public = d.route("20.60.1.1".parse().unwrap()).unwrap();
    assert_eq!(
        (
            public.prefix.as_str(),
            public.next_hop_type.as_str(),
            public.source.as_str()
        ),
        ("0.0.0.0/0", "Internet", "Default")
    );
    assert!(
        d.route("10.9.9.9".parse().unwrap()).is_none(),
        "a private address no route names: unknown"
    );
    let e = RouteTable::parse(
        br#"{"routes": [{"name": "r", "addressPrefix": "1.0.0.0/8", "nextHopType": "Moon"}]}"#,
        &|_| None,
    )
    .unwrap_err();
    assert!(e.contains("routes[0]: nextHopType"), "{e}");
}

#[test]
fn an_unknown_node_address_matches_all_of_ipv4_and_names_the_rule_it_cannot_decide() {
    let d = data(&[EFFECTIVE.to_string()], None);
    let mut flow = inbound(&d, 22, "AzureMachineLearning");
    flow.local = None;
    // 0.0.0.0/0 (the effective rules' `*`) holds the node whatever its address.
    assert_eq!(said(d.rules(&flow)).1, "securityRules/DenySsh");
    // A rule to the subnet's prefix cannot say without the node's address: it is named.
    let subnet_only = SUBNET_RULES.replace(
        r#""destinationPortRange": "44224", "sourceAddressPrefix": "AzureMachineLearning", "destinationAddressPrefix": "*""#,
        r#""destinationPortRange": "44224", "sourceAddressPrefix": "AzureMachineLearning", "destinationAddressPrefix": "10.0.1.0/24""#,
    );
    assert_ne!(subnet_only, SUBNET_RULES);
    let d = data(&[subnet_nsg(&subnet_only)], None);
    let mut flow = inbound(&d, 44224, "AzureMachineLearning");
    flow.local = None;
    let v = d.rules(&flow).unwrap();
    assert_eq!(
        (v.rule.as_str(), v.access.as_str()),
        ("AllowAMLInbound", "unknown")
    );
    assert!(v.reason.as_deref().unwrap().contains("private_ip"), "{v:?}");
}
