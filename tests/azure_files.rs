//! `vnetprobe check` with Azure's own view as files (`--service-tags`, `--nsg`, `--routes`),
//! against loopback servers: every result carries the tags of its addresses, the NSG rule that
//! decides its flow and its route; the inbound rows are judged from the files; a file of the
//! wrong shape is a usage error naming it. The files are built from the documented shapes: the
//! weekly service-tag download, "Network Security Groups - Get" (`az network nsg show`), the
//! effective rules of `az network nic list-effective-nsg` and the effective route table of
//! `az network nic show-effective-route-table`.

use crate::support::*;

/// The download's shape (numeric change numbers, `regionId`, `platform`), with entries cut
/// from ServiceTags_Public_20251106.json (shared with the unit tests of src/azure).
pub const TAGS: &str = include_str!("fixtures/azure/service-tags-download.json");

/// The six default rules, as "Network Security Groups - Get" lists them.
const DEFAULTS: &str = include_str!("fixtures/azure/default-security-rules.json");

/// The subnet's NSG as `az network nsg show` (REST nesting under `properties`): the open port
/// allowed, the closed one denied, inbound 44224 and 22 from AzureMachineLearning allowed.
fn subnet_nsg(open: u16, closed: u16) -> String {
    format!(
        r#"{{"name": "aml-subnet-nsg", "id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/aml-subnet-nsg",
  "type": "Microsoft.Network/networkSecurityGroups", "location": "westeurope",
  "properties": {{"provisioningState": "Succeeded", "securityRules": [
    {{"name": "AllowOpen", "properties": {{"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "{open}", "sourceAddressPrefix": "*", "destinationAddressPrefix": "127.0.0.0/8", "access": "Allow", "priority": 100, "direction": "Outbound"}}}},
    {{"name": "DenyClosed", "properties": {{"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRanges": ["{closed}"], "sourceAddressPrefix": "*", "destinationAddressPrefix": "127.0.0.0/8", "access": "Deny", "priority": 110, "direction": "Outbound"}}}},
    {{"name": "AllowAMLInbound", "properties": {{"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "44224", "sourceAddressPrefix": "AzureMachineLearning", "destinationAddressPrefix": "*", "access": "Allow", "priority": 200, "direction": "Inbound"}}}},
    {{"name": "AllowSshInbound", "properties": {{"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "AzureMachineLearning", "destinationAddressPrefix": "*", "access": "Allow", "priority": 210, "direction": "Inbound"}}}}
  ], "defaultSecurityRules": {DEFAULTS},
    "subnets": [{{"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet/subnets/training"}}]}}}}"#
    )
}

/// The NIC's effective rules as `az network nic list-effective-nsg` prints them: loopback and
/// 44224 allowed, SSH from AzureMachineLearning denied.
const NIC_EFFECTIVE: &str = r#"{"value": [{
  "networkSecurityGroup": {"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkSecurityGroups/ci-nic-nsg"},
  "association": {"networkInterface": {"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/networkInterfaces/ci-nic"}},
  "effectiveSecurityRules": [
    {"name": "securityRules/DenySsh", "protocol": "Tcp", "sourcePortRange": "0-65535", "destinationPortRange": "22-22", "sourceAddressPrefix": "AzureMachineLearning",
     "expandedSourceAddressPrefix": ["20.61.0.0/24"], "destinationAddressPrefix": "0.0.0.0/0", "expandedDestinationAddressPrefix": [], "access": "Deny", "priority": 100, "direction": "Inbound"},
    {"name": "securityRules/AllowAml44224", "protocol": "Tcp", "sourcePortRange": "0-65535", "destinationPortRange": "44224-44224", "sourceAddressPrefix": "AzureMachineLearning",
     "expandedSourceAddressPrefix": ["20.61.0.0/24"], "destinationAddressPrefix": "0.0.0.0/0", "expandedDestinationAddressPrefix": [], "access": "Allow", "priority": 110, "direction": "Inbound"},
    {"name": "securityRules/AllowLoopback", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "0.0.0.0/0",
     "destinationAddressPrefix": "127.0.0.0/8", "access": "Allow", "priority": 100, "direction": "Outbound"},
    {"name": "defaultSecurityRules/AllowVnetOutBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "VirtualNetwork",
     "expandedSourceAddressPrefix": ["10.0.0.0/16", "168.63.129.16/32"], "destinationAddressPrefix": "VirtualNetwork", "expandedDestinationAddressPrefix": ["10.0.0.0/16", "168.63.129.16/32"], "access": "Allow", "priority": 65000, "direction": "Outbound"},
    {"name": "defaultSecurityRules/DenyAllOutBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "0.0.0.0/0", "access": "Deny", "priority": 65500, "direction": "Outbound"},
    {"name": "defaultSecurityRules/DenyAllInBound", "protocol": "All", "sourcePortRange": "0-65535", "destinationPortRange": "0-65535", "sourceAddressPrefix": "0.0.0.0/0", "destinationAddressPrefix": "0.0.0.0/0", "access": "Deny", "priority": 65500, "direction": "Inbound"}
  ],
  "tagMap": {"VirtualNetwork": ["10.0.0.0/16"]}
}]}"#;

/// The effective route table (`az network nic show-effective-route-table`): a forced tunnel to
/// the firewall at 10.0.9.4, AzureMachineLearning sent straight to the Internet, but not
/// BatchNodeManagement.
pub const ROUTES: &str = r#"{"value": [
  {"source": "Default", "state": "Active", "addressPrefix": ["10.0.0.0/16"], "nextHopIpAddress": [], "nextHopType": "VnetLocal", "name": null, "disableBgpRoutePropagation": false},
  {"source": "Default", "state": "Invalid", "addressPrefix": ["0.0.0.0/0"], "nextHopIpAddress": [], "nextHopType": "Internet"},
  {"source": "User", "state": "Active", "addressPrefix": ["0.0.0.0/0"], "nextHopIpAddress": ["10.0.9.4"], "nextHopType": "VirtualAppliance", "name": "to-firewall"},
  {"source": "User", "state": "Active", "addressPrefix": ["AzureMachineLearning"], "nextHopIpAddress": [], "nextHopType": "Internet", "name": "aml-direct"}
]}"#;

fn target(id: &str, protocol: &str, host: &str, port: Option<u16>, extra: &str) -> String {
    let ports = port.map(|p| format!("ports = [{p}]\n")).unwrap_or_default();
    format!(
        "[[target]]\nid = \"{id}\"\nname = \"{id}\"\nprotocol = \"{protocol}\"\nhost = \"{host}\"\n{ports}\
         profiles = [\"internet\"]\nwhy = \"test\"\nfix = \"FIX-{id}\"\n{extra}\n"
    )
}

struct Files {
    _dns: Dnsmasq,
    _listener: Listener,
    dir: std::path::PathBuf,
    dns: String,
    catalog: String,
    tags: String,
    subnet: String,
    nic: String,
    routes: String,
}

fn files() -> Files {
    let dns = Dnsmasq::start(
        "local=/test/\nhost-record=open.test,127.0.0.1\nhost-record=acct.blob.test,20.60.17.1\n",
    );
    let listener = Listener::start();
    let closed = free_port();
    let inbound = |id: &str, port: u16| {
        target(
            id,
            "tcp",
            "{node}",
            Some(port),
            "direction = \"inbound\"\nservice_tag = \"AzureMachineLearning\"",
        )
    };
    let catalog = [
        target("tcp-open", "tcp", "open.test", Some(listener.port), ""),
        target("tcp-closed", "tcp", "open.test", Some(closed), ""),
        target(
            "storage-name",
            "dns",
            "acct.blob.test",
            None,
            "service_tag = \"Storage.westeurope\"",
        ),
        inbound("inbound-aml-44224", 44224),
        inbound("inbound-ssh-22", 22),
        inbound("inbound-aml-route", 44224),
    ]
    .concat();
    let dir = temp_dir("azure-files");
    let p = |name: &str, text: &str| write(&dir, name, text).to_string_lossy().to_string();
    Files {
        dns: dns.addr.to_string(),
        catalog: p("catalog.toml", &catalog),
        tags: p("ServiceTags_Public_20251106.json", TAGS),
        subnet: p("subnet-nsg.json", &subnet_nsg(listener.port, closed)),
        nic: p("nic-effective-nsg.json", NIC_EFFECTIVE),
        routes: p("effective-routes.json", ROUTES),
        dir,
        _dns: dns,
        _listener: listener,
    }
}

impl Files {
    fn check(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec![
            "check",
            "--catalog",
            &self.catalog,
            "--dns-server",
            &self.dns,
            "--timeout",
            "1s",
        ];
        args.extend_from_slice(extra);
        run(&args)
    }

    fn with_files(&self, output: &str) -> std::process::Output {
        self.check(&[
            "--output",
            output,
            "--service-tags",
            &self.tags,
            "--nsg",
            &self.subnet,
            "--nsg",
            &self.nic,
            "--routes",
            &self.routes,
        ])
    }
}

#[test]
fn each_result_carries_the_rule_the_route_and_the_tags() {
    let f = files();
    let out = f.with_files("json");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);

    // The inputs, in the context.
    let ctx = &report["context"];
    assert_eq!(ctx["service_tags_file"], f.tags.as_str());
    assert_eq!(ctx["service_tags_change_number"], "375");
    assert_eq!(ctx["nsg_files"], format!("{},{}", f.subnet, f.nic).as_str());
    assert_eq!(ctx["routes_file"], f.routes.as_str());

    // A pass: both NSGs allow it (NIC first, then the subnet's), the forced tunnel carries it.
    let open = result(&report, "tcp-open");
    assert_eq!(open["status"], "pass");
    assert_eq!(open["rules"]["nsg"], "aml-subnet-nsg");
    assert_eq!(open["rules"]["rule"], "AllowOpen");
    assert_eq!(open["rules"]["priority"], 100);
    assert_eq!(open["rules"]["access"], "Allow");
    let order: Vec<&str> = open["rules"]["evaluated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["nsg"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["ci-nic-nsg", "aml-subnet-nsg"]);
    assert_eq!(
        open["route"],
        serde_json::json!({"prefix": "0.0.0.0/0", "next_hop_type": "VirtualAppliance",
            "next_hop": "10.0.9.4", "source": "User", "name": "to-firewall"})
    );

    // A failure the rules explain: the hint names the deny rule and the appliance.
    let closed = result(&report, "tcp-closed");
    assert_eq!(closed["status"], "fail");
    assert_eq!(closed["rules"]["rule"], "DenyClosed");
    assert_eq!(closed["rules"]["access"], "Deny");
    let hint = closed["hint"].as_str().unwrap();
    assert!(
        hint.contains("The NSG denies it: rule DenyClosed (110) of NSG aml-subnet-nsg."),
        "{hint}"
    );
    assert!(hint.contains("VirtualAppliance 10.0.9.4"), "{hint}");
    assert!(
        hint.ends_with("FIX-tcp-closed"),
        "the catalog's fix stays: {hint}"
    );
    let causes = report["causes"].as_array().unwrap();
    assert!(
        causes
            .iter()
            .any(|c| c["kind"] == "forced_tunnel"
                && c["message"].as_str().unwrap().contains("10.0.9.4")),
        "{causes:?}"
    );

    // The tags of a public address; the declared tag does not hold it: a warning naming the
    // tag that does, the DNS probe's pass kept.
    let storage = result(&report, "storage-name");
    assert_eq!(storage["status"], "pass");
    assert_eq!(
        storage["address_tags"],
        serde_json::json!({"20.60.17.1": ["Storage.NorthEurope", "Storage"]})
    );
    let warnings = storage["warnings"].to_string();
    assert!(
        warnings.contains("20.60.17.1 is outside the Storage.westeurope service tag; it is in Storage.NorthEurope, Storage"),
        "{warnings}"
    );

    // The inbound rows, judged from the files.
    let aml = result(&report, "inbound-aml-44224");
    assert_eq!(aml["status"], "pass", "{aml}");
    assert_eq!(aml["unverified"], true);
    assert_eq!(aml["rules"]["rule"], "securityRules/AllowAml44224");
    assert!(
        aml["note"].as_str().unwrap().contains("not observed"),
        "{aml}"
    );
    let ssh = result(&report, "inbound-ssh-22");
    assert_eq!(ssh["status"], "fail");
    assert_eq!(error_kind(ssh), "nsg_denied");
    assert_eq!(
        (ssh["rules"]["nsg"].as_str(), ssh["rules"]["rule"].as_str()),
        (Some("ci-nic-nsg"), Some("securityRules/DenySsh")),
        "inbound: the subnet allows, then the NIC denies"
    );
    let route = result(&report, "inbound-aml-route");
    assert_eq!(route["status"], "fail");
    assert_eq!(error_kind(route), "route_not_internet");
    let msg = route["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("20.62.0.0/23"),
        "BatchNodeManagement, aggregated: {msg}"
    );
    assert!(
        !msg.contains("20.61.0.0"),
        "AzureMachineLearning goes to the Internet: {msg}"
    );

    // The table: the failing target's detail line names the rule and the route.
    let table = f.with_files("table");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("NSG aml-subnet-nsg rule DenyClosed (110): Deny"),
        "{text}"
    );
    assert!(
        text.contains("route 0.0.0.0/0 -> VirtualAppliance 10.0.9.4 (User)"),
        "{text}"
    );
}

#[test]
fn without_the_files_nothing_changes() {
    let f = files();
    let report = json(&f.check(&["--output", "json"]));
    for id in ["inbound-aml-44224", "inbound-ssh-22", "inbound-aml-route"] {
        assert_eq!(result(&report, id)["status"], "skip", "{id}");
    }
    let open = result(&report, "tcp-open");
    assert!(open.get("rules").is_none_or(|r| r.is_null()), "{open}");
    assert!(open.get("address_tags").is_none(), "{open}");
    assert!(report["context"].get("service_tags_file").is_none());
}

#[test]
fn a_file_of_the_wrong_shape_is_a_usage_error_naming_it() {
    let f = files();
    let truncated = write(&f.dir, "truncated.json", &TAGS[..TAGS.len() / 2]);
    let truncated = truncated.to_string_lossy().to_string();
    let nsg_as_tags = f.subnet.clone();
    let routes_as_nsg = f.routes.clone();
    let tags_as_routes = f.tags.clone();
    let base = [
        "check",
        "--catalog",
        f.catalog.as_str(),
        "--dns-server",
        f.dns.as_str(),
        "--output",
        "json",
    ];
    for (flag, file, words) in [
        (
            "--service-tags",
            truncated.as_str(),
            "not a service-tag file (JSON error",
        ),
        ("--service-tags", nsg_as_tags.as_str(), "no `values` array"),
        ("--nsg", routes_as_nsg.as_str(), "effectiveSecurityRules"),
        ("--routes", tags_as_routes.as_str(), "neither `value`"),
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(&[flag, file]);
        assert_usage_error(&args, &[&format!("{flag} {file}"), words]);
    }
}

/// A subnet NSG with the default rules only (`az network nsg show`): its `VirtualNetwork` tag
/// is what `--vnet-prefix` says, else the route file's `VnetLocal` routes.
fn defaults_only() -> String {
    format!(
        r#"{{"name": "plain-nsg", "properties": {{"securityRules": [], "defaultSecurityRules": {DEFAULTS},
  "subnets": [{{"id": "/subscriptions/subid/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet/subnets/training"}}]}}}}"#
    )
}

#[test]
fn the_virtual_network_tag_comes_from_vnet_prefix_or_the_vnet_local_routes() {
    let f = files();
    let nsg = write(&f.dir, "plain-nsg.json", &defaults_only());
    let nsg = nsg.to_string_lossy().to_string();
    let rule_of = |extra: &[&str]| {
        let mut args = vec!["--output", "json", "--nsg", nsg.as_str()];
        args.extend_from_slice(extra);
        let report = json(&f.check(&args));
        let r = result(&report, "tcp-open");
        (
            r["rules"]["rule"].as_str().unwrap_or("").to_string(),
            r["rules"]["access"].as_str().unwrap_or("").to_string(),
            report["context"]["vnet_prefixes"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        )
    };
    let s = |rule: &str, access: &str, vnet: &str| (rule.into(), access.into(), vnet.into());
    // Without the VNet's prefixes, AllowVnetOutBound may or may not hold 127.0.0.1, and would
    // decide otherwise than DenyAllOutBound below it.
    assert_eq!(rule_of(&[]), s("AllowVnetOutBound", "unknown", ""));
    // Inside the VNet as given: the default rule allows it.
    assert_eq!(
        rule_of(&[
            "--vnet-prefix",
            "127.0.0.0/8",
            "--vnet-prefix",
            "10.0.0.0/16"
        ]),
        s("AllowVnetOutBound", "Allow", "10.0.0.0/16,127.0.0.0/8")
    );
    // Outside it: neither AllowVnetOutBound nor AllowInternetOutBound (127/8 is not the
    // Internet): DenyAllOutBound.
    assert_eq!(
        rule_of(&["--vnet-prefix", "10.0.0.0/16"]),
        s("DenyAllOutBound", "Deny", "10.0.0.0/16")
    );
    // From the route file's VnetLocal routes (10.0.0.0/16 in ROUTES).
    assert_eq!(
        rule_of(&["--routes", f.routes.as_str()]),
        s("DenyAllOutBound", "Deny", "10.0.0.0/16")
    );
    // The setting wins over the route file, and the config key works as the flag does.
    let config = write(&f.dir, "vnet.toml", "vnet-prefix = [\"127.0.0.0/8\"]\n");
    let config = config.to_string_lossy().to_string();
    assert_eq!(
        rule_of(&["--routes", f.routes.as_str(), "--config", config.as_str()]),
        s("AllowVnetOutBound", "Allow", "127.0.0.0/8")
    );
    assert_usage_error(
        &[
            "check",
            "--catalog",
            &f.catalog,
            "--nsg",
            &nsg,
            "--vnet-prefix",
            "10.0.0.0/99",
        ],
        &["--vnet-prefix", "10.0.0.0/99", "prefix length"],
    );
}
