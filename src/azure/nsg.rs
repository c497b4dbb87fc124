//! Network security groups as an admin exports them, and the evaluation of one flow the way
//! Azure does it: rules by priority, first match wins; outbound through the NIC's NSG then the
//! subnet's, inbound the other way round; a deny in either decides. Two shapes are read:
//! `az network nic list-effective-nsg` (the REST API's "List Effective Network Security Groups":
//! `value[].networkSecurityGroup`, `association`, `effectiveSecurityRules` with
//! `expandedSourceAddressPrefix`/`expandedDestinationAddressPrefix`, `tagMap`) and
//! `az network nsg show` (the REST API's "Network Security Groups - Get": `securityRules` and
//! `defaultSecurityRules`, flattened by the CLI or under `properties` as the REST API returns
//! them; tags not expanded). A rule the files cannot resolve (an application security group, a
//! tag without prefixes) is "unknown", never assumed to match.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::prefix::PrefixSet;

/// The most rules one file may hold (Azure allows 1,000 per NSG; an effective list has two).
pub const MAX_RULES: usize = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Access {
    Allow,
    Deny,
}

/// Where an NSG is attached: the order of evaluation depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attached {
    Nic,
    Subnet,
}

/// One side of a rule: addresses, tags to resolve, and what cannot be resolved.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub any: bool,
    pub prefixes: PrefixSet,
    /// Tags named without an expansion in the file (`az network nsg show`).
    pub tags: Vec<String>,
    /// Application security groups: never resolvable from these files.
    pub asgs: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub priority: u32,
    pub direction: Direction,
    pub access: Access,
    /// Lowercase: `tcp`, `udp`, `icmp`, or `*` for any.
    pub protocol: String,
    /// Destination port ranges; empty means any.
    pub ports: Vec<(u16, u16)>,
    /// Whether the rule limits the source port (the probe's is ephemeral: unknown).
    pub source_ports_limited: bool,
    pub source: Side,
    pub destination: Side,
}

#[derive(Debug, Clone)]
pub struct Nsg {
    pub name: String,
    pub attached: Attached,
    pub rules: Vec<Rule>,
    /// An effective list's `tagMap` (tag -> prefixes).
    pub tag_map: Vec<(String, PrefixSet)>,
}

/// The far end of a flow: one address, or every address of a service tag (inbound rows).
#[derive(Debug, Clone)]
pub enum Remote {
    Ip(IpAddr),
    Tag {
        name: String,
        prefixes: Option<PrefixSet>,
    },
}

#[derive(Debug, Clone)]
pub struct Flow {
    pub direction: Direction,
    /// `tcp` or `udp`.
    pub protocol: &'static str,
    pub port: u16,
    pub remote: Remote,
    /// This node's address, when known.
    pub local: Option<IpAddr>,
}

/// The rule that decided one NSG's part, or the rule that left it open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub nsg: String,
    pub rule: String,
    pub priority: u32,
    /// `Allow`, `Deny` or `unknown`.
    pub access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the NSGs say about one flow: the deciding step (`access` as above) and every NSG's step
/// in the order Azure evaluates them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub nsg: String,
    pub rule: String,
    pub priority: u32,
    pub access: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default)]
    pub evaluated: Vec<Step>,
}

impl Verdict {
    pub fn denied(&self) -> bool {
        self.access == "Deny"
    }
    pub fn allowed(&self) -> bool {
        self.access == "Allow"
    }
}

/// Resolves a tag to prefixes: the service-tag file, the VNet's prefixes, the NSG's tagMap.
pub type Resolve<'a> = &'a dyn Fn(&str) -> Option<PrefixSet>;

/// A JSON object with its `properties` (the REST API's nesting) merged in, as the CLI prints it.
pub(super) fn flat(v: &Value) -> Map<String, Value> {
    let mut out = v.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(p)) = out.remove("properties") {
        for (k, v) in p {
            out.entry(k).or_insert(v);
        }
    }
    out
}

fn text<'a>(o: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn texts(o: &Map<String, Value>, key: &str) -> Vec<String> {
    match o.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => vec![],
    }
}

/// The last segment of an Azure resource id.
pub(super) fn id_name(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_string()
}

fn ports(list: &[String], at: &str) -> Result<Vec<(u16, u16)>, String> {
    let mut out = Vec::new();
    for p in list {
        let p = p.trim();
        if p == "*" || p.eq_ignore_ascii_case("any") {
            return Ok(vec![]);
        }
        let (a, b) = p.split_once('-').unwrap_or((p, p));
        let (a, b) = match (a.trim().parse::<u16>(), b.trim().parse::<u16>()) {
            (Ok(a), Ok(b)) if a <= b => (a, b),
            _ => return Err(format!("{at}: {p:?} is not a port or port range")),
        };
        if (a, b) == (0, 65535) {
            return Ok(vec![]);
        }
        out.push((a, b));
    }
    Ok(out)
}

fn side(
    o: &Map<String, Value>,
    one: &str,
    many: &str,
    expanded: &str,
    asgs: &str,
    at: &str,
) -> Result<Side, String> {
    let mut s = Side::default();
    for g in o.get(asgs).and_then(Value::as_array).into_iter().flatten() {
        let id = flat(g);
        s.asgs.push(
            text(&id, "id")
                .map(id_name)
                .unwrap_or_else(|| "an application security group".into()),
        );
    }
    let expanded = texts(o, expanded);
    let mut entries = texts(o, one);
    entries.extend(texts(o, many));
    let mut ranges = Vec::new();
    for e in &entries {
        let e = e.trim();
        if e == "*" || e.eq_ignore_ascii_case("any") {
            s.any = true;
        } else if let Ok(r) = super::prefix::Range::parse(e) {
            ranges.push(r);
        } else if expanded.is_empty() {
            s.tags.push(e.to_string());
        }
    }
    if !expanded.is_empty() {
        let set = PrefixSet::parse(expanded.iter().map(String::as_str))
            .map_err(|e| format!("{at}: expanded prefix: {e}"))?;
        ranges.extend(set.ranges().iter().copied());
    }
    s.prefixes = PrefixSet::new(ranges);
    if entries.is_empty() && expanded.is_empty() && s.asgs.is_empty() {
        s.any = false;
    }
    Ok(s)
}

fn rule(v: &Value, at: &str) -> Result<Rule, String> {
    let o = flat(v);
    let name = text(&o, "name")
        .ok_or_else(|| format!("{at}: no `name`"))?
        .to_string();
    let at = format!("{at} ({})", crate::printable::printable(&name));
    let priority = o
        .get("priority")
        .and_then(Value::as_u64)
        .filter(|p| *p <= 65535)
        .ok_or_else(|| format!("{at}: no numeric `priority`"))? as u32;
    let direction = match text(&o, "direction")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("inbound") => Direction::Inbound,
        Some("outbound") => Direction::Outbound,
        _ => return Err(format!("{at}: `direction` must be Inbound or Outbound")),
    };
    let access = match text(&o, "access").map(str::to_ascii_lowercase).as_deref() {
        Some("allow") => Access::Allow,
        Some("deny") => Access::Deny,
        _ => return Err(format!("{at}: `access` must be Allow or Deny")),
    };
    let protocol = match text(&o, "protocol").map(str::to_ascii_lowercase) {
        Some(p) if p == "*" || p == "all" || p == "any" => "*".to_string(),
        Some(p) if ["tcp", "udp", "icmp", "esp", "ah"].contains(&p.as_str()) => p,
        _ => {
            return Err(format!(
                "{at}: `protocol` must be Tcp, Udp, Icmp, Esp, Ah, * or All"
            ));
        }
    };
    let mut dst = texts(&o, "destinationPortRange");
    dst.extend(texts(&o, "destinationPortRanges"));
    let mut src = texts(&o, "sourcePortRange");
    src.extend(texts(&o, "sourcePortRanges"));
    Ok(Rule {
        priority,
        direction,
        access,
        protocol,
        ports: ports(&dst, &at)?,
        source_ports_limited: !ports(&src, &at)?.is_empty(),
        source: side(
            &o,
            "sourceAddressPrefix",
            "sourceAddressPrefixes",
            "expandedSourceAddressPrefix",
            "sourceApplicationSecurityGroups",
            &at,
        )?,
        destination: side(
            &o,
            "destinationAddressPrefix",
            "destinationAddressPrefixes",
            "expandedDestinationAddressPrefix",
            "destinationApplicationSecurityGroups",
            &at,
        )?,
        name,
    })
}

fn rules(list: &[Value], at: &str, out: &mut Vec<Rule>) -> Result<(), String> {
    if out.len() + list.len() > MAX_RULES {
        return Err(format!("more than {MAX_RULES} rules"));
    }
    for (i, r) in list.iter().enumerate() {
        out.push(rule(r, &format!("{at}[{i}]"))?);
    }
    Ok(())
}

fn tag_map(v: Option<&Value>) -> Result<Vec<(String, PrefixSet)>, String> {
    // The REST API types it as a string holding JSON; SDKs and the CLI as an object.
    let owned;
    let v = match v {
        Some(Value::String(s)) if !s.trim().is_empty() => {
            owned = serde_json::from_str::<Value>(s).map_err(|e| format!("tagMap: {e}"))?;
            &owned
        }
        Some(v @ Value::Object(_)) => v,
        _ => return Ok(vec![]),
    };
    let mut out = Vec::new();
    for (tag, list) in v.as_object().into_iter().flatten() {
        let list: Vec<&str> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let set = PrefixSet::parse(list).map_err(|e| format!("tagMap.{tag}: {e}"))?;
        out.push((tag.clone(), set));
    }
    Ok(out)
}

/// A file's JSON, or why it is not JSON (line, column, and a message cut to 200 characters).
pub(super) fn json(bytes: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "not JSON (line {} column {}): {}",
            e.line(),
            e.column(),
            e.to_string().chars().take(200).collect::<String>()
        )
    })
}

/// Reads one file's NSGs.
pub fn parse(bytes: &[u8]) -> Result<Vec<Nsg>, String> {
    let v = json(bytes)?;
    let top = flat(&v);
    // `az network nic list-effective-nsg`: {"value": [...]}, or the bare list.
    let list = match (&v, top.get("value")) {
        (Value::Array(a), _) => Some(a.clone()),
        (_, Some(Value::Array(a))) => Some(a.clone()),
        _ => None,
    };
    if let Some(list) = list {
        let mut out = Vec::new();
        for (i, g) in list.iter().enumerate() {
            let g = flat(g);
            let at = format!("value[{i}]");
            let Some(Value::Array(eff)) = g.get("effectiveSecurityRules") else {
                return Err(format!(
                    "{at}: no `effectiveSecurityRules`: not `az network nic list-effective-nsg` output"
                ));
            };
            let assoc = g.get("association").map(flat).unwrap_or_default();
            let attached = match (assoc.get("networkInterface"), assoc.get("subnet")) {
                (Some(n), _) if !n.is_null() => Attached::Nic,
                (_, Some(s)) if !s.is_null() => Attached::Subnet,
                _ => {
                    return Err(format!(
                        "{at}: `association` names neither a networkInterface nor a subnet"
                    ));
                }
            };
            let name = g
                .get("networkSecurityGroup")
                .map(flat)
                .and_then(|n| text(&n, "id").map(id_name))
                .unwrap_or_else(|| format!("nsg {i}"));
            let mut rs = Vec::new();
            rules(eff, &format!("{at}.effectiveSecurityRules"), &mut rs)?;
            out.push(Nsg {
                name,
                attached,
                rules: rs,
                tag_map: tag_map(g.get("tagMap")).map_err(|e| format!("{at}: {e}"))?,
            });
        }
        return Ok(out);
    }
    // `az network nsg show`.
    let (Some(Value::Array(own)), defaults) =
        (top.get("securityRules"), top.get("defaultSecurityRules"))
    else {
        return Err("neither `value[].effectiveSecurityRules` (az network nic list-effective-nsg) nor `securityRules` (az network nsg show)".into());
    };
    let mut rs = Vec::new();
    rules(own, "securityRules", &mut rs)?;
    match defaults {
        Some(Value::Array(d)) => rules(d, "defaultSecurityRules", &mut rs)?,
        _ => {
            return Err(
                "no `defaultSecurityRules`: export the whole NSG with `az network nsg show`".into(),
            );
        }
    }
    let on_nic = top
        .get("networkInterfaces")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let on_subnet = top
        .get("subnets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    Ok(vec![Nsg {
        name: text(&top, "name").unwrap_or("nsg").to_string(),
        attached: if on_nic && !on_subnet {
            Attached::Nic
        } else {
            Attached::Subnet
        },
        rules: rs,
        tag_map: vec![],
    }])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    Unknown,
}

/// Whether one side holds an endpoint: this node (`node`), or the remote.
fn side_holds(s: &Side, node: bool, flow: &Flow, resolve: Resolve) -> (Match, Option<String>) {
    if s.any {
        return (Match::Yes, None);
    }
    if let Some(a) = s.asgs.first() {
        return (
            Match::Unknown,
            Some(format!(
                "application security group {a}: not resolvable from the files"
            )),
        );
    }
    let mut set = s.prefixes.clone();
    let mut unresolved = None;
    for t in &s.tags {
        if node && t.eq_ignore_ascii_case("VirtualNetwork") {
            // The node's own NIC is in its VNet by definition.
            return (Match::Yes, None);
        }
        if let (false, Remote::Tag { name, .. }) = (node, &flow.remote)
            && name.eq_ignore_ascii_case(t)
        {
            return (Match::Yes, None);
        }
        match resolve(t) {
            Some(p) => set = set.union(&p),
            None => unresolved = Some(format!("tag {t}: no prefixes for it in the files given")),
        }
    }
    let found = match (node, &flow.remote) {
        (true, _) => match flow.local {
            Some(ip) => set.contains(ip).then_some(Match::Yes),
            // All of IPv4 (how effective rules spell `*`) holds the node whatever its address:
            // a NIC's primary IP configuration is IPv4.
            None if set.covers(&all_v4()) => Some(Match::Yes),
            None => {
                return (
                    Match::Unknown,
                    Some("this node's address is unknown (set private_ip)".into()),
                );
            }
        },
        (false, Remote::Ip(ip)) => set.contains(*ip).then_some(Match::Yes),
        (false, Remote::Tag { name, prefixes }) => match prefixes {
            Some(p) if set.covers(p) => Some(Match::Yes),
            Some(p) if set.overlaps(p) => {
                return (
                    Match::Unknown,
                    Some(format!("covers some of the {name} prefixes, not all")),
                );
            }
            Some(_) => None,
            None => {
                return (
                    Match::Unknown,
                    Some(format!(
                        "the {name} prefixes are unknown (give --service-tags)"
                    )),
                );
            }
        },
    };
    match (found, unresolved) {
        (Some(m), _) => (m, None),
        (None, Some(why)) => (Match::Unknown, Some(why)),
        (None, None) => (Match::No, None),
    }
}

fn all_v4() -> PrefixSet {
    PrefixSet::parse(["0.0.0.0/0"]).expect("0.0.0.0/0 parses")
}

fn matches(r: &Rule, flow: &Flow, resolve: Resolve) -> (Match, Option<String>) {
    if r.direction != flow.direction
        || (r.protocol != "*" && r.protocol != flow.protocol)
        || (!r.ports.is_empty() && !r.ports.iter().any(|(a, b)| (*a..=*b).contains(&flow.port)))
    {
        return (Match::No, None);
    }
    let outbound = flow.direction == Direction::Outbound;
    let (src, dst) = (
        side_holds(&r.source, outbound, flow, resolve),
        side_holds(&r.destination, !outbound, flow, resolve),
    );
    if src.0 == Match::No || dst.0 == Match::No {
        return (Match::No, None);
    }
    if r.source_ports_limited {
        return (
            Match::Unknown,
            Some("limits the source port, which is ephemeral".into()),
        );
    }
    match (src, dst) {
        ((Match::Yes, _), (Match::Yes, _)) => (Match::Yes, None),
        ((Match::Unknown, why), _) | (_, (Match::Unknown, why)) => (Match::Unknown, why),
        _ => (Match::No, None),
    }
}

/// One NSG's decision.
fn decide(nsg: &Nsg, flow: &Flow, resolve: Resolve) -> Step {
    let mut order: Vec<&Rule> = nsg
        .rules
        .iter()
        .filter(|r| r.direction == flow.direction)
        .collect();
    order.sort_by_key(|r| r.priority);
    let local = |tag: &str| {
        nsg.tag_map
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(tag))
            .map(|(_, p)| p.clone())
            .or_else(|| resolve(tag))
    };
    let mut open: Vec<(&Rule, String)> = Vec::new();
    let step = |r: &Rule, access: &str, reason: Option<String>| Step {
        nsg: nsg.name.clone(),
        rule: r.name.clone(),
        priority: r.priority,
        access: access.into(),
        reason,
    };
    for r in order {
        match matches(r, flow, &local) {
            (Match::Yes, _) => {
                // An earlier rule that might match decides only if it would decide otherwise.
                if let Some((u, why)) = open.iter().find(|(u, _)| u.access != r.access) {
                    return step(
                        u,
                        "unknown",
                        Some(format!(
                            "{why}; if it does not match, {} ({}) decides",
                            r.name, r.priority
                        )),
                    );
                }
                let access = match r.access {
                    Access::Allow => "Allow",
                    Access::Deny => "Deny",
                };
                return step(r, access, None);
            }
            (Match::Unknown, why) => open.push((r, why.unwrap_or_else(|| "not resolvable".into()))),
            (Match::No, _) => {}
        }
    }
    // Rules that may match and none that does: the first of them is where to look.
    if let Some((u, why)) = open.first() {
        return step(u, "unknown", Some(why.clone()));
    }
    Step {
        nsg: nsg.name.clone(),
        rule: "-".into(),
        priority: 0,
        access: "unknown".into(),
        reason: Some(
            "no rule of this NSG matches (its default rules are missing from the file?)".into(),
        ),
    }
}

/// The flow through every NSG in Azure's order; None when no NSG applies.
pub fn evaluate(nsgs: &[Nsg], flow: &Flow, resolve: Resolve) -> Option<Verdict> {
    let first = match flow.direction {
        Direction::Outbound => Attached::Nic,
        Direction::Inbound => Attached::Subnet,
    };
    let ordered: Vec<&Nsg> = nsgs
        .iter()
        .filter(|n| n.attached == first)
        .chain(nsgs.iter().filter(|n| n.attached != first))
        .collect();
    if ordered.is_empty() {
        return None;
    }
    let evaluated: Vec<Step> = ordered.iter().map(|n| decide(n, flow, resolve)).collect();
    let decisive = evaluated
        .iter()
        .find(|s| s.access == "Deny")
        .or_else(|| evaluated.iter().find(|s| s.access == "unknown"))
        .or_else(|| evaluated.last())
        .cloned()?;
    Some(Verdict {
        nsg: decisive.nsg,
        rule: decisive.rule,
        priority: decisive.priority,
        access: decisive.access,
        reason: decisive.reason,
        evaluated,
    })
}
