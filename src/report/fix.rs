//! The fix plan (`check --output fix`): the failures of one report turned into what an admin
//! pastes. NSG and Azure Firewall rules per service tag and protocol, application rules per
//! FQDN, private DNS zone links, conditional forwarders, the NO_PROXY value, a service endpoint
//! policy; deduplicated, grouped per resource, each naming the failing targets it fixes. Values
//! the node cannot know (the NSG's name, the VNet) are `<PLACEHOLDERS>`; known context
//! (subscription, resource group, region) is filled in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::{Report, ResultEntry, diagnosis};
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
        format!(
            "# fixes: {}",
            self.0.iter().cloned().collect::<Vec<_>>().join(", ")
        )
    }
}

/// Everything the plan collects from the failures, keyed so that each command appears once.
#[derive(Default)]
struct Plan {
    /// (service tag or destination prefix, protocol) -> ports, targets
    network: BTreeMap<(String, &'static str), (BTreeSet<u16>, Fixes)>,
    /// FQDNs allowed by an application rule on 80/443, per collection (the target's profile)
    application: BTreeMap<String, (BTreeSet<String>, Fixes)>,
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

impl Plan {
    fn collect(report: &Report) -> Plan {
        let mut plan = Plan::default();
        for r in report.results.iter().filter(|r| r.status == Status::Fail) {
            let Some(k) = kind(r) else { continue };
            match k.layer() {
                Layer::Dns => plan.dns(r, k),
                Layer::Connection if k == ErrorKind::LocalFirewall => plan.local.add(r),
                Layer::Connection => plan.path(r),
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
                _ => plan.other.push((
                    r.id.clone(),
                    k.as_str().to_string(),
                    r.hint.clone().unwrap_or_default(),
                )),
            }
        }
        plan
    }

    fn dns(&mut self, r: &ResultEntry, k: ErrorKind) {
        match (k, privatelink_zone(&r.host)) {
            (ErrorKind::DnsNotPrivate, Some(zone)) => self.zones.entry(zone).or_default().add(r),
            (ErrorKind::DnsNxdomain | ErrorKind::DnsServfail | ErrorKind::DnsTimeout, _) => self
                .forwarders
                .entry(forwarded_domain(&r.host))
                .or_default()
                .add(r),
            _ => self.other.push((
                r.id.clone(),
                k.as_str().to_string(),
                r.hint.clone().unwrap_or_default(),
            )),
        }
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
            (Some(tag), _) => tag.clone(),
            (None, false) => private.join(" "),
            (None, true) if port == 443 || port == 80 => {
                let collection = r
                    .profiles
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "other".into());
                let (fqdns, fixes) = self.application.entry(collection).or_default();
                fqdns.insert(r.host.clone());
                fixes.add(r);
                return;
            }
            (None, true) => r.host.clone(),
        };
        let (ports, fixes) = self.network.entry((destination, protocol(r))).or_default();
        ports.insert(port);
        fixes.add(r);
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
    format!("vnetprobe-{}-{proto}", clean.trim_matches('-'))
}

/// Renders the plan. Empty sections are left out; a report without failures says so.
pub fn render(report: &Report) -> String {
    let plan = Plan::collect(report);
    let ctx = Ctx::of(report);
    let mut out = String::new();
    let failing = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .count();
    let _ = writeln!(
        out,
        "# vnetprobe fix plan · cloud {} · region {} · {failing} failing target(s)",
        report.context.get("cloud").map_or("public", String::as_str),
        ctx.region
    );
    if failing == 0 {
        let _ = writeln!(out, "# Nothing failed: nothing to fix.");
        return out;
    }
    let _ = writeln!(
        out,
        "# Replace the <PLACEHOLDERS>; each command names the failing targets it fixes.\n\
         # The node cannot tell an NSG drop from a firewall drop: apply the rule where the traffic is denied."
    );
    let sub = format!(
        "--subscription {} --resource-group {}",
        ctx.subscription, ctx.group
    );
    let section = |out: &mut String, title: &str| {
        let _ = writeln!(out, "\n## {title}");
    };

    if !plan.network.is_empty() {
        section(&mut out, "NSG outbound rules (the compute subnet's NSG)");
        for ((dest, proto), (ports, fixes)) in &plan.network {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            let _ = writeln!(
                out,
                "{}\naz network nsg rule create {sub} --nsg-name <NSG_NAME> --name {} --priority <PRIORITY> \
                 --direction Outbound --access Allow --protocol {proto} --source-address-prefixes VirtualNetwork \
                 --source-port-ranges '*' --destination-address-prefixes {dest} --destination-port-ranges {}",
                fixes.line(),
                rule_name(dest, proto),
                ports.join(" ")
            );
        }
        section(
            &mut out,
            "Azure Firewall network rules (when a firewall is in the path)",
        );
        for ((dest, proto), (ports, fixes)) in &plan.network {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            let _ = writeln!(
                out,
                "{}\naz network firewall network-rule create {sub} --firewall-name <FIREWALL_NAME> \
                 --collection-name vnetprobe-network --priority <PRIORITY> --action Allow --name {} \
                 --protocols {} --source-addresses <COMPUTE_SUBNET_PREFIX> --destination-addresses {dest} \
                 --destination-ports {}",
                fixes.line(),
                rule_name(dest, proto),
                proto.to_ascii_uppercase(),
                ports.join(" ")
            );
        }
    }
    if !plan.application.is_empty() {
        section(&mut out, "Azure Firewall application rules (FQDNs on 443)");
        for (collection, (fqdns, fixes)) in &plan.application {
            let fqdns: Vec<&str> = fqdns.iter().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "{}\naz network firewall application-rule create {sub} --firewall-name <FIREWALL_NAME> \
                 --collection-name vnetprobe-{collection} --priority <PRIORITY> --action Allow --name {collection} \
                 --protocols Https=443 --source-addresses <COMPUTE_SUBNET_PREFIX> --target-fqdns {}",
                fixes.line(),
                fqdns.join(" ")
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
                "{}\naz network private-dns link vnet create --subscription {} --resource-group <DNS_ZONE_RESOURCE_GROUP> \
                 --zone-name {zone} --name <VNET_NAME>-link --virtual-network <VNET_RESOURCE_ID> \
                 --registration-enabled false",
                fixes.line(),
                ctx.subscription
            );
        }
    }
    if !plan.forwarders.is_empty() {
        section(
            &mut out,
            "Custom DNS: conditional forwarders to Azure DNS (on your DNS servers, no az command)",
        );
        for (domain, fixes) in &plan.forwarders {
            let _ = writeln!(out, "{}\n# forward {domain} to 168.63.129.16", fixes.line());
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
            "{}\nexport NO_PROXY=\"${{NO_PROXY:+$NO_PROXY,}}{}\"\nexport no_proxy=\"$NO_PROXY\"",
            all.line(),
            entries.join(",")
        );
    }
    if !plan.proxy_acl.is_empty() {
        section(&mut out, "Proxy allow list (the proxy's own configuration)");
        for (host, fixes) in &plan.proxy_acl {
            let _ = writeln!(out, "{}\n# allow CONNECT to {host}:443", fixes.line());
        }
    }
    if !plan.inspection.is_empty() {
        section(
            &mut out,
            "TLS inspection: exempt these FQDNs, or install the inspecting CA for pip and conda",
        );
        for (host, fixes) in &plan.inspection {
            let _ = writeln!(out, "{}\n# exempt {host}", fixes.line());
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
             --name workspace-storage --service Microsoft.Storage --service-resources \
             /subscriptions/{}/resourceGroups/{}/providers/Microsoft.Storage/storageAccounts/{account}\n\
             az network vnet subnet update {sub} --vnet-name <VNET_NAME> --name <COMPUTE_SUBNET_NAME> \
             --service-endpoint-policy vnetprobe-storage",
            plan.exfiltration.line(),
            ctx.region,
            ctx.subscription,
            ctx.group
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
            let _ = writeln!(out, "# {id}: {kind}: {hint}");
        }
    }
    out.push_str(&super::fix_prefixes::section(report));
    out
}
