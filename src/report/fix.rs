//! The fix plan (`check --output fix`): the failures of one report turned into what an admin
//! pastes. NSG rules per service tag and protocol; Azure Firewall Policy network rules for the
//! same paths and application rules per FQDN for what an application-rule firewall denied
//! (`az network firewall policy rule-collection-group collection add-filter-collection`, the
//! form Azure CLI's azure-firewall extension documents); user-defined routes for public-IP
//! compute behind forced tunnelling; private DNS zone links, conditional forwarders, the
//! NO_PROXY value, a service endpoint policy. Deduplicated, grouped per resource, each naming
//! the failing targets it fixes. Values the node cannot know (the NSG's name, the VNet) are
//! `<PLACEHOLDERS>`; known context (subscription, resource group, region) is filled in.
//!
//! A tag goes only where Azure takes it (`azure::features`: the regional BatchNodeManagement
//! tag in NSG rules, the global one in firewall rules and routes), with a comment saying why.
//! The text is a shell script a careful admin can read and paste: every line that is not a
//! command is a comment, every interpolated value is POSIX single-quoted, and control
//! characters in comments are escaped (tested with `bash -n` and by running it against a
//! stand-in `az`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::{Report, ResultEntry, diagnosis};
use crate::azure::features::{self, Use};
use crate::catalog::Protocol;
use crate::outcome::{ErrorKind, Layer, Status};

/// Which failing targets a command fixes.
#[derive(Default)]
struct Fixes(BTreeSet<String>);

impl Fixes {
    fn add(&mut self, r: &ResultEntry) {
        self.0.insert(match r.port {
            Some(p) => format!("{}:{p}", r.id),
            None => r.id.clone(),
        });
    }

    fn line(&self) -> String {
        comment(&format!(
            "fixes: {}",
            self.0.iter().cloned().collect::<Vec<_>>().join(", ")
        ))
    }
}

/// Everything the plan collects from the failures, keyed so that each command appears once.
#[derive(Default)]
struct Plan {
    /// (service tag or destination prefix, protocol) -> ports, targets
    network: BTreeMap<(Dest, &'static str), (BTreeSet<u16>, Fixes)>,
    /// FQDNs an application rule must allow, per (collection: the target's profile, protocol
    /// as `az` spells it: `Https=443`)
    application: BTreeMap<(String, String), (BTreeSet<String>, Fixes)>,
    /// routes with next hop Internet the run shows are needed (public-IP compute behind a
    /// firewall): the targets that need them
    routes: Fixes,
    /// private DNS zones to link
    zones: BTreeMap<String, Fixes>,
    /// domains custom DNS must forward to 168.63.129.16
    forwarders: BTreeMap<String, Fixes>,
    /// NO_PROXY entries
    no_proxy: BTreeMap<String, Fixes>,
    /// hosts to allow in the proxy's ACL
    proxy_acl: BTreeMap<String, Fixes>,
    /// hosts to exempt from TLS inspection (or whose CA to install)
    inspection: BTreeMap<String, Fixes>,
    /// the storage accounts exfiltration reached
    exfiltration: Fixes,
    /// this node's own filter
    local: Fixes,
    /// failures no rule fixes: (target, kind, hint)
    other: Vec<(String, String, String)>,
}

/// The private DNS zone that holds a private-endpoint name, per Azure's DNS reference.
pub fn privatelink_zone(host: &str) -> Option<String> {
    const ZONES: &[(&str, &str)] = &[
        ("api.azureml.ms", "privatelink.api.azureml.ms"),
        ("instances.azureml.ms", "privatelink.api.azureml.ms"),
        ("notebooks.azure.net", "privatelink.notebooks.azure.net"),
        ("vault.azure.net", "privatelink.vaultcore.azure.net"),
        ("azurecr.io", "privatelink.azurecr.io"),
        ("api.ml.azure.us", "privatelink.api.ml.azure.us"),
        ("instances.azureml.us", "privatelink.api.ml.azure.us"),
        (
            "notebooks.usgovcloudapi.net",
            "privatelink.notebooks.usgovcloudapi.net",
        ),
        (
            "vault.usgovcloudapi.net",
            "privatelink.vaultcore.usgovcloudapi.net",
        ),
        ("azurecr.us", "privatelink.azurecr.us"),
        ("api.ml.azure.cn", "privatelink.api.ml.azure.cn"),
        ("instances.azureml.cn", "privatelink.api.ml.azure.cn"),
        (
            "notebooks.chinacloudapi.cn",
            "privatelink.notebooks.chinacloudapi.cn",
        ),
        ("vault.azure.cn", "privatelink.vaultcore.azure.cn"),
        ("azurecr.cn", "privatelink.azurecr.cn"),
    ];
    if let Some((_, zone)) = ZONES.iter().find(|(d, _)| host.ends_with(&format!(".{d}"))) {
        return Some(zone.to_string());
    }
    // Storage: NAME.{blob,file,queue,table,dfs}.core.<cloud suffix>
    let mut labels = host.splitn(3, '.');
    let (_, service, suffix) = (labels.next()?, labels.next()?, labels.next()?);
    let storage = ["blob", "file", "queue", "table", "dfs"].contains(&service)
        && [
            "core.windows.net",
            "core.usgovcloudapi.net",
            "core.chinacloudapi.cn",
        ]
        .contains(&suffix);
    storage.then(|| format!("privatelink.{service}.{suffix}"))
}

/// The domains the documents tell custom DNS to forward to Azure DNS, most specific first.
const FORWARDED: &[&str] = &[
    "instances.azureml.ms",
    "instances.azureml.net",
    "instances.ml.azure.ms",
    "api.azureml.ms",
    "notebooks.azure.net",
    "aznbcontent.net",
    "inference.ml.azure.com",
    "instances.azureml.us",
    "api.ml.azure.us",
    "notebooks.usgovcloudapi.net",
    "instances.azureml.cn",
    "api.ml.azure.cn",
    "notebooks.chinacloudapi.cn",
];

/// The domain custom DNS must forward for a name: a documented one, the public twin of its
/// private zone, or the name's parent domain.
fn forwarded_domain(host: &str) -> String {
    if let Some(d) = FORWARDED.iter().find(|d| host.ends_with(&format!(".{d}"))) {
        return d.to_string();
    }
    match privatelink_zone(host) {
        Some(zone) => zone
            .trim_start_matches("privatelink.")
            .replace("vaultcore.", "vault.")
            .to_string(),
        None => host.split_once('.').map_or(host, |(_, d)| d).to_string(),
    }
}

fn protocol(r: &ResultEntry) -> &'static str {
    if r.protocol == Protocol::Udp {
        "Udp"
    } else {
        "Tcp"
    }
}

fn kind(r: &ResultEntry) -> Option<ErrorKind> {
    Some(r.error.as_ref()?.kind)
}

/// A value for the shell: POSIX single quotes, a quote inside as `'\''`; control characters,
/// which a terminal would act on when the plan is shown, as `?`.
pub fn quote(value: &str) -> String {
    let clean: String = value
        .chars()
        .map(|c| {
            if c.is_control() || crate::printable::is_hidden(c) {
                '?'
            } else {
                c
            }
        })
        .collect();
    format!("'{}'", clean.replace('\'', r"'\''"))
}

/// One comment line: `# ` and the text with every control or hidden character (a newline
/// too) escaped, so nothing in it can end the comment or reach a terminal raw.
pub fn comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push_str("# ");
    for c in text.chars() {
        if c.is_control() || crate::printable::is_hidden(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// The Azure Firewall application-rule protocol of a target, as `az` spells it.
fn app_protocol(r: &ResultEntry) -> String {
    let port = r.port.unwrap_or(443);
    let kind = kind(r).unwrap_or(ErrorKind::TlsResetAfterHello);
    let plain = match kind.layer() {
        Layer::AppRule => diagnosis::app_protocol(kind, r.tls.is_some(), port).starts_with("Http:"),
        // A connection failure on 80 to a name: the HTTP the port carries.
        _ => port == 80,
    };
    match (plain, port) {
        (true, _) => format!("Http={port}"),
        (false, 1433) => "Mssql=1433".to_string(),
        (false, _) => format!("Https={port}"),
    }
}

/// Whether the run is public-IP compute: the inbound rows of that profile are in it.
fn public_ip(report: &Report) -> bool {
    report.results.iter().any(|r| {
        r.profiles.iter().any(|p| p == "public-ip")
            && r.direction == crate::catalog::Direction::Inbound
    })
}

impl Plan {
    fn collect(report: &Report) -> Plan {
        let mut plan = Plan::default();
        for r in report.results.iter().filter(|r| r.status == Status::Fail) {
            let Some(k) = kind(r) else { continue };
            match k.layer() {
                Layer::Dns => plan.dns(r, k),
                Layer::Connection if k == ErrorKind::LocalFirewall => plan.local.add(r),
                Layer::Connection if k == ErrorKind::RouteNotInternet => plan.routes.add(r),
                Layer::Connection if k == ErrorKind::ForcedTunnel => plan.other(r, k),
                Layer::Connection => plan.path(r),
                Layer::AppRule => plan.application(r),
                Layer::Answer
                    if k == ErrorKind::TlsHandshake
                        && !r
                            .error
                            .as_ref()
                            .is_some_and(|e| e.message.contains("alert")) =>
                {
                    plan.path(r)
                }
                Layer::Trust => plan.inspection.entry(r.host.clone()).or_default().add(r),
                Layer::Proxy if k == ErrorKind::ProxyDenied => {
                    let entry = diagnosis::no_proxy_entry(&r.host);
                    if entry.starts_with('.') {
                        plan.no_proxy.entry(entry).or_default().add(r);
                    } else {
                        plan.proxy_acl.entry(r.host.clone()).or_default().add(r);
                    }
                }
                Layer::Verdict if k == ErrorKind::UnexpectedlyReachable => plan.exfiltration.add(r),
                _ => plan.other(r, k),
            }
        }
        // Public-IP compute behind an application-rule firewall is behind forced tunnelling:
        // Azure ML's inbound management traffic must return through the Internet.
        if public_ip(report) && !plan.application.is_empty() {
            for r in report
                .results
                .iter()
                .filter(|r| r.id == "inbound-aml-route")
            {
                plan.routes.add(r);
            }
        }
        plan
    }

    fn other(&mut self, r: &ResultEntry, k: ErrorKind) {
        self.other.push((
            r.id.clone(),
            k.as_str().to_string(),
            r.hint.clone().unwrap_or_default(),
        ));
    }

    fn dns(&mut self, r: &ResultEntry, k: ErrorKind) {
        match (k, privatelink_zone(&r.host)) {
            (ErrorKind::DnsNotPrivate, Some(zone)) => self.zones.entry(zone).or_default().add(r),
            (ErrorKind::DnsNxdomain | ErrorKind::DnsServfail | ErrorKind::DnsTimeout, _) => self
                .forwarders
                .entry(forwarded_domain(&r.host))
                .or_default()
                .add(r),
            _ => self.other(r, k),
        }
    }

    /// An FQDN an application rule must allow, in the collection of the target's profile.
    fn application(&mut self, r: &ResultEntry) {
        let collection = r
            .profiles
            .first()
            .cloned()
            .unwrap_or_else(|| "other".into());
        let (fqdns, fixes) = self
            .application
            .entry((collection, app_protocol(r)))
            .or_default();
        fqdns.insert(r.host.clone());
        fixes.add(r);
    }

    /// A connection-level failure: a rule by service tag; without one, an application rule for
    /// web ports, or a rule to the private addresses it resolved to.
    fn path(&mut self, r: &ResultEntry) {
        let port = r.port.unwrap_or(443);
        let private: Vec<String> = r
            .addresses
            .iter()
            .filter(|a| r.private == Some(true) && !a.is_empty())
            .map(|a| format!("{a}/32"))
            .collect();
        let destination = match (&r.service_tag, private.is_empty()) {
            (Some(tag), _) => Dest::Tag(tag.clone()),
            (None, false) => Dest::Addresses(private),
            (None, true) if port == 443 || port == 80 => return self.application(r),
            (None, true) => Dest::Fqdn(r.host.clone()),
        };
        let (ports, fixes) = self.network.entry((destination, protocol(r))).or_default();
        ports.insert(port);
        fixes.add(r);
    }
}

/// Where a network rule points.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Dest {
    Tag(String),
    /// Private endpoint addresses, as /32 prefixes.
    Addresses(Vec<String>),
    /// A name without a tag on a port no application rule takes: a network rule by FQDN.
    Fqdn(String),
}

impl Dest {
    fn label(&self) -> String {
        match self {
            Dest::Tag(t) | Dest::Fqdn(t) => t.clone(),
            Dest::Addresses(a) => a.join("-"),
        }
    }
}

/// `<NAME>` placeholders, or the value the context knows.
struct Ctx {
    subscription: String,
    group: String,
    region: String,
}

impl Ctx {
    fn of(report: &Report) -> Ctx {
        let get = |k: &str, placeholder: &str| {
            report
                .context
                .get(k)
                .cloned()
                .unwrap_or_else(|| placeholder.to_string())
        };
        Ctx {
            subscription: get("subscription", "<SUBSCRIPTION_ID>"),
            group: get("resource_group", "<RESOURCE_GROUP>"),
            region: get("region", "<REGION>"),
        }
    }
}

fn rule_name(destination: &str, proto: &str) -> String {
    let clean: String = destination
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let clean: String = clean.trim_matches('-').chars().take(60).collect();
    format!("vnetprobe-{clean}-{proto}")
}

/// The part of every firewall policy command before its collection.
fn policy(sub: &str) -> String {
    format!(
        "az network firewall policy rule-collection-group collection add-filter-collection {sub} \
         --policy-name '<FIREWALL_POLICY>' --rule-collection-group-name '<RULE_COLLECTION_GROUP>'"
    )
}

/// Renders the plan. Empty sections are left out; a report without failures says so.
pub fn render(report: &Report) -> String {
    let plan = Plan::collect(report);
    let ctx = Ctx::of(report);
    let known = report.tag_features.as_ref();
    let mut out = String::new();
    let failing = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .count();
    let _ = writeln!(
        out,
        "{}",
        comment(&format!(
            "vnetprobe fix plan · cloud {} · region {} · {failing} failing target(s)",
            report.context.get("cloud").map_or("public", String::as_str),
            ctx.region
        ))
    );
    if failing == 0 && plan.routes.0.is_empty() {
        let _ = writeln!(out, "# Nothing failed: nothing to fix.");
        return out;
    }
    let _ = writeln!(
        out,
        "# Replace the <PLACEHOLDERS>; each command names the failing targets it fixes."
    );
    if !plan.network.is_empty() {
        let _ = writeln!(
            out,
            "# The node cannot tell an NSG drop from a firewall network-rule drop: apply the rule where the traffic is denied."
        );
    }
    let sub = format!(
        "--subscription {} --resource-group {}",
        quote(&ctx.subscription),
        quote(&ctx.group)
    );
    let section = |out: &mut String, title: &str| {
        let _ = writeln!(out, "\n## {title}");
    };
    // The tag for a use, with the comment line that says why it is not the catalog's.
    let tag_for = |out: &mut String, tag: &str, use_: Use| -> String {
        let (tag, why) = features::usable(tag, use_, known);
        if let Some(why) = why {
            let _ = writeln!(out, "{}", comment(&why));
        }
        tag
    };

    if !plan.network.is_empty() {
        section(&mut out, "NSG outbound rules (the compute subnet's NSG)");
        for ((dest, proto), (ports, fixes)) in &plan.network {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            let _ = writeln!(out, "{}", fixes.line());
            let prefixes = match dest {
                Dest::Tag(t) => quote(&tag_for(&mut out, t, Use::Nsg)),
                Dest::Addresses(a) => a.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" "),
                Dest::Fqdn(host) => {
                    let _ = writeln!(
                        out,
                        "{}",
                        comment(&format!(
                            "an NSG takes no FQDN: replace <ADDRESSES_OF_HOST> with the addresses {host} resolves to"
                        ))
                    );
                    "'<ADDRESSES_OF_HOST>'".to_string()
                }
            };
            let _ = writeln!(
                out,
                "az network nsg rule create {sub} --nsg-name '<NSG_NAME>' --name {} --priority '<PRIORITY>' \
                 --direction Outbound --access Allow --protocol {proto} --source-address-prefixes VirtualNetwork \
                 --source-port-ranges '*' --destination-address-prefixes {prefixes} --destination-port-ranges {}",
                quote(&rule_name(&dest.label(), proto)),
                ports.join(" ")
            );
        }
        section(
            &mut out,
            "Azure Firewall Policy network rules (when a firewall is in the path)",
        );
        let _ = writeln!(
            out,
            "# Into a rule collection group of the firewall's policy; a new one: az network firewall policy \
             rule-collection-group create {sub} --policy-name '<FIREWALL_POLICY>' --name vnetprobe --priority '<PRIORITY>'"
        );
        for ((dest, proto), (ports, fixes)) in &plan.network {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            let _ = writeln!(out, "{}", fixes.line());
            let target = match dest {
                Dest::Tag(t) => format!(
                    "--destination-addresses {}",
                    quote(&tag_for(&mut out, t, Use::Firewall))
                ),
                Dest::Addresses(a) => format!(
                    "--destination-addresses {}",
                    a.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
                ),
                Dest::Fqdn(host) => {
                    let _ = writeln!(
                        out,
                        "# An FQDN in a network rule needs the firewall's DNS proxy enabled, and this VNet's DNS \
                         server set to the firewall, so both resolve the name alike."
                    );
                    format!("--destination-fqdns {}", quote(host))
                }
            };
            let name = rule_name(&dest.label(), proto);
            let _ = writeln!(
                out,
                "{} --name {} --collection-priority '<PRIORITY>' --action Allow --rule-name {} \
                 --rule-type NetworkRule --source-addresses '<COMPUTE_SUBNET_PREFIX>' {target} \
                 --destination-ports {} --ip-protocols {}",
                policy(&sub),
                quote(&name),
                quote(&name),
                ports.join(" "),
                proto.to_ascii_uppercase()
            );
        }
    }
    if !plan.application.is_empty() {
        section(
            &mut out,
            "Azure Firewall Policy application rules (FQDNs the firewall's application rules deny)",
        );
        let _ = writeln!(
            out,
            "# NSG rules do not help here: the firewall completes the TCP handshake itself and decides by the TLS SNI or HTTP Host."
        );
        for ((collection, proto), (fqdns, fixes)) in &plan.application {
            let fqdns: Vec<String> = fqdns.iter().map(|f| quote(f)).collect();
            let name = rule_name(collection, &proto.replace('=', "-").to_ascii_lowercase());
            let _ = writeln!(
                out,
                "{}\n{} --name {} --collection-priority '<PRIORITY>' --action Allow --rule-name {} \
                 --rule-type ApplicationRule --source-addresses '<COMPUTE_SUBNET_PREFIX>' --protocols {proto} \
                 --target-fqdns {}",
                fixes.line(),
                policy(&sub),
                quote(&name),
                quote(&name),
                fqdns.join(" ")
            );
        }
    }
    if !plan.application.is_empty() || !plan.network.is_empty() {
        let _ = writeln!(
            out,
            "# A firewall still on classic rules (no Firewall Policy) takes the same FQDNs, tags and ports with \
             az network firewall application-rule create / network-rule create."
        );
    }
    if !plan.routes.0.is_empty() {
        section(
            &mut out,
            "User-defined routes (public-IP compute behind forced tunnelling)",
        );
        let _ = writeln!(
            out,
            "# Azure ML's inbound management traffic must return through the Internet, not the firewall: the documents\n\
             # name AzureMachineLearning; deployments fail without BatchNodeManagement too. Routes take global tags only.\n{}",
            comment(&format!(
                "needed by: {}",
                plan.routes.0.iter().cloned().collect::<Vec<_>>().join(", ")
            ))
        );
        for tag in ["AzureMachineLearning", "BatchNodeManagement"] {
            let tag = tag_for(&mut out, tag, Use::Route);
            let _ = writeln!(
                out,
                "az network route-table route create {sub} --route-table-name '<ROUTE_TABLE>' --name {} \
                 --address-prefix {} --next-hop-type Internet",
                quote(&rule_name(&tag, "internet")),
                quote(&tag)
            );
        }
    }
    if !plan.zones.is_empty() {
        section(
            &mut out,
            "Private DNS zone links (the compute VNet to each zone)",
        );
        for (zone, fixes) in &plan.zones {
            let _ = writeln!(
                out,
                "{}\naz network private-dns link vnet create --subscription {} --resource-group '<DNS_ZONE_RESOURCE_GROUP>' \
                 --zone-name {} --name '<VNET_NAME>-link' --virtual-network '<VNET_RESOURCE_ID>' \
                 --registration-enabled false",
                fixes.line(),
                quote(&ctx.subscription),
                quote(zone)
            );
        }
    }
    if !plan.forwarders.is_empty() {
        section(
            &mut out,
            "Custom DNS: conditional forwarders to Azure DNS (on your DNS servers, no az command)",
        );
        for (domain, fixes) in &plan.forwarders {
            let _ = writeln!(
                out,
                "{}\n{}",
                fixes.line(),
                comment(&format!("forward {domain} to 168.63.129.16"))
            );
        }
    }
    if !plan.no_proxy.is_empty() {
        section(
            &mut out,
            "Proxy bypass for private endpoints (~/.bashrc and wherever pip, conda and curl run)",
        );
        let mut all = Fixes::default();
        for fixes in plan.no_proxy.values() {
            all.0.extend(fixes.0.iter().cloned());
        }
        let entries: Vec<&str> = plan.no_proxy.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "{}\nexport NO_PROXY=\"${{NO_PROXY:+$NO_PROXY,}}\"{}\nexport no_proxy=\"$NO_PROXY\"",
            all.line(),
            quote(&entries.join(","))
        );
    }
    if !plan.proxy_acl.is_empty() {
        section(&mut out, "Proxy allow list (the proxy's own configuration)");
        for (host, fixes) in &plan.proxy_acl {
            let _ = writeln!(
                out,
                "{}\n{}",
                fixes.line(),
                comment(&format!("allow CONNECT to {host}:443"))
            );
        }
    }
    if !plan.inspection.is_empty() {
        section(
            &mut out,
            "TLS inspection: exempt these FQDNs, or install the inspecting CA for pip and conda",
        );
        for (host, fixes) in &plan.inspection {
            let _ = writeln!(
                out,
                "{}\n{}",
                fixes.line(),
                comment(&format!("exempt {host}"))
            );
        }
    }
    if !plan.exfiltration.0.is_empty() {
        section(
            &mut out,
            "Service endpoint policy: only the workspace's storage accounts from the compute subnet",
        );
        let account = report
            .context
            .get("storage_account")
            .cloned()
            .unwrap_or_else(|| "<WORKSPACE_STORAGE_ACCOUNT>".into());
        let _ = writeln!(
            out,
            "{}\naz network service-endpoint policy create {sub} --name vnetprobe-storage --location {}\n\
             az network service-endpoint policy-definition create {sub} --policy-name vnetprobe-storage \
             --name workspace-storage --service Microsoft.Storage --service-resources {}\n\
             az network vnet subnet update {sub} --vnet-name '<VNET_NAME>' --name '<COMPUTE_SUBNET_NAME>' \
             --service-endpoint-policy vnetprobe-storage",
            plan.exfiltration.line(),
            quote(&ctx.region),
            quote(&format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Storage/storageAccounts/{account}",
                ctx.subscription, ctx.group
            ))
        );
    }
    if !plan.local.0.is_empty() {
        section(&mut out, "This node's own packet filter");
        let _ = writeln!(
            out,
            "{}\n# allow the traffic in nftables/iptables (nft list ruleset) or the unit's IPAddressDeny",
            plan.local.line()
        );
    }
    if !plan.other.is_empty() {
        section(
            &mut out,
            "Not fixed by a rule (the service answered, or the path was not tried)",
        );
        for (id, kind, hint) in &plan.other {
            let _ = writeln!(out, "{}", comment(&format!("{id}: {kind}: {hint}")));
        }
    }
    out.push_str(&super::fix_prefixes::section(report));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One result as a report's JSON holds it.
    fn result(
        id: &str,
        protocol: &str,
        host: &str,
        port: u16,
        tag: Option<&str>,
        kind: &str,
    ) -> serde_json::Value {
        serde_json::json!({
            "id": id, "name": id, "protocol": protocol, "host": host, "port": port,
            "profiles": ["public-ip"], "service_tag": tag, "required": true, "expect": "reachable",
            "status": "fail", "error": {"kind": kind, "message": "m"}, "via_proxy": null,
        })
    }

    fn report(results: Vec<serde_json::Value>, context: serde_json::Value) -> Report {
        serde_json::from_value(serde_json::json!({
            "version": 1, "started_at": "2026-12-04T00:00:00Z", "duration_ms": 1,
            "context": context, "summary": {"pass": 0, "fail": results.len(), "skip": 0},
            "results": results,
        }))
        .unwrap()
    }

    fn firewall_report() -> Report {
        let mut inbound = result(
            "inbound-aml-route",
            "tcp",
            "10.0.0.4",
            44224,
            Some("AzureMachineLearning"),
            "tcp_timeout",
        );
        inbound["status"] = "skip".into();
        inbound["direction"] = "inbound".into();
        inbound["error"] = serde_json::Value::Null;
        report(
            vec![
                result(
                    "storage-queue-tls",
                    "tls",
                    "sa1.queue.core.windows.net",
                    443,
                    Some("Storage.westeurope"),
                    "tls_reset_after_hello",
                ),
                result(
                    "batch-account-tls",
                    "tls",
                    "ab1.westeurope.batch.azure.com",
                    443,
                    Some("BatchNodeManagement.westeurope"),
                    "tls_reset_after_hello",
                ),
                result(
                    "entra-login-http",
                    "http",
                    "login.microsoftonline.com",
                    80,
                    Some("AzureActiveDirectory"),
                    "firewall_denied",
                ),
                result(
                    "batch-tcp",
                    "tcp",
                    "ab1.westeurope.batch.azure.com",
                    8443,
                    Some("BatchNodeManagement.westeurope"),
                    "tcp_timeout",
                ),
                inbound,
            ],
            serde_json::json!({"region": "westeurope", "subscription": "sub'1", "resource_group": "rg$(id)"}),
        )
    }

    #[test]
    fn application_denials_become_policy_application_rules_and_tags_go_where_azure_takes_them() {
        let plan = render(&firewall_report());
        // Exactly the denied FQDNs, per protocol, as Firewall Policy application rules.
        let app: Vec<&str> = plan
            .lines()
            .filter(|l| l.contains("--rule-type ApplicationRule"))
            .collect();
        assert_eq!(app.len(), 2, "{plan}");
        let https = app
            .iter()
            .find(|l| l.contains("--protocols Https=443"))
            .unwrap();
        assert!(
            https.ends_with(
                "--target-fqdns 'ab1.westeurope.batch.azure.com' 'sa1.queue.core.windows.net'"
            ),
            "{https}"
        );
        let http = app
            .iter()
            .find(|l| l.contains("--protocols Http=80"))
            .unwrap();
        assert!(
            http.ends_with("--target-fqdns 'login.microsoftonline.com'"),
            "{http}"
        );
        assert!(
            !plan.contains("application-rule create --"),
            "no classic command: {plan}"
        );
        // The NSG keeps the regional Batch tag; the firewall and routes take the global one.
        assert!(plan.contains("az network nsg rule create") && plan.contains("--destination-address-prefixes 'BatchNodeManagement.westeurope' --destination-port-ranges 8443"), "{plan}");
        let net = plan
            .lines()
            .find(|l| l.contains("--rule-type NetworkRule"))
            .unwrap();
        assert!(net.contains("--destination-addresses 'BatchNodeManagement' --destination-ports 8443 --ip-protocols TCP"), "{net}");
        assert!(plan.contains("# BatchNodeManagement.westeurope carries no FW in Azure's service-tag data (networkFeatures API,NSG)"), "{plan}");
        // Public-IP compute behind the firewall: both routes, next hop Internet.
        for tag in ["AzureMachineLearning", "BatchNodeManagement"] {
            assert!(
                plan.contains(&format!(
                    "--address-prefix '{tag}' --next-hop-type Internet"
                )),
                "{tag}: {plan}"
            );
        }
        assert!(
            plan.contains("# needed by: inbound-aml-route:44224"),
            "{plan}"
        );
    }

    /// Every line is a comment, blank, or a command; hostile values stay single arguments.
    #[test]
    fn the_plan_is_a_safe_shell_script() {
        let mut r = firewall_report();
        r.results[0].host = "x'$(touch /tmp/pwned)`id`\n\u{1b}[2J.blob.core.windows.net".into();
        r.results.push(
            serde_json::from_value(result("weird", "tcp", "h", 5831, None, "internal_error"))
                .unwrap(),
        );
        r.results.last_mut().unwrap().hint = Some("line1\nrm -rf / \u{1b}]0;title\u{7}".into());
        let plan = render(&r);
        for line in plan.lines() {
            assert!(
                line.is_empty()
                    || line.starts_with('#')
                    || line.starts_with("az ")
                    || line.starts_with("export "),
                "{line:?}"
            );
            assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        }
        let Ok(bash) = std::process::Command::new("bash").arg("--version").output() else {
            panic!("bash is needed to check the plan");
        };
        assert!(bash.status.success());
        let dir = std::env::temp_dir().join(format!("vnetprobe-fix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("plan.sh");
        std::fs::write(&script, &plan).unwrap();
        let check = std::process::Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        // Run it against a stand-in az that records its arguments, one per line.
        let args = dir.join("args");
        let run = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "az() {{ printf '%s\\n' \"$@\" >> '{}'; }}; . '{}'",
                args.display(),
                script.display()
            ))
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let seen = std::fs::read_to_string(&args).unwrap();
        assert!(
            seen.lines()
                .any(|a| a == "x'$(touch /tmp/pwned)`id`??[2J.blob.core.windows.net"),
            "{seen}"
        );
        assert!(
            seen.lines().any(|a| a == "rg$(id)") && seen.lines().any(|a| a == "sub'1"),
            "{seen}"
        );
        assert!(!std::path::Path::new("/tmp/pwned").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_service_tag_file_decides_when_given() {
        let mut r = firewall_report();
        // A file in which the regional Batch tag does carry FW (as a future file might).
        r.tag_features = Some(
            [(
                "batchnodemanagement.westeurope".to_string(),
                vec!["API".into(), "NSG".into(), "FW".into()],
            )]
            .into_iter()
            .collect(),
        );
        let plan = render(&r);
        let net = plan
            .lines()
            .find(|l| l.contains("--rule-type NetworkRule"))
            .unwrap();
        assert!(
            net.contains("--destination-addresses 'BatchNodeManagement.westeurope'"),
            "{net}"
        );
    }
}
