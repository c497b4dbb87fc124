//! Routes as an admin exports them: `az network nic show-effective-route-table` (the REST API's
//! EffectiveRoute: `source`, `state`, `addressPrefix` [list], `nextHopType`, `nextHopIpAddress`
//! [list]) and `az network route-table show` (the REST API's "Route Tables - Get": `routes[]`
//! with `addressPrefix`, `nextHopType`, `nextHopIpAddress`, flattened or under `properties`).
//! A route's prefix may be a service tag: it is expanded from the service-tag file. The route of
//! an address is the longest prefix that holds it; on a tie an explicit prefix beats a tag and a
//! user route beats BGP (`VirtualNetworkGateway`) and the system's (`Default`), as Azure documents.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::nsg::{flat, json};
use super::prefix::{PrefixSet, Range};

pub const MAX_ROUTES: usize = 20_000;

#[derive(Debug, Clone)]
pub struct Route {
    pub name: Option<String>,
    /// The prefix as written (a CIDR or a service tag).
    pub prefix: String,
    pub next_hop_type: String,
    pub next_hop: Option<String>,
    /// `Default`, `User`, `VirtualNetworkGateway` (BGP), `Unknown`.
    pub source: String,
}

#[derive(Debug, Clone)]
struct Entry {
    range: Range,
    len: u32,
    from_tag: bool,
    route: usize,
}

/// One file's routes, the tag prefixes expanded.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    pub routes: Vec<Route>,
    entries: Vec<Entry>,
    /// Routes whose tag prefix could not be expanded (no service-tag file, or a tag it lacks).
    pub unexpanded: Vec<String>,
    /// Whether the file is a route table's own routes (no system routes in it).
    pub user_only: bool,
}

/// The route an address takes, as the JSON shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteVerdict {
    /// The matching prefix as written (a tag route names its tag).
    pub prefix: String,
    pub next_hop_type: String,
    pub next_hop: Option<String>,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn rank(source: &str) -> u8 {
    match source.to_ascii_lowercase().as_str() {
        "user" => 3,
        "virtualnetworkgateway" => 2,
        "default" => 1,
        _ => 0,
    }
}

fn texts(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        _ => vec![],
    }
}

const HOP_TYPES: &[&str] = &[
    "VnetLocal",
    "Internet",
    "VirtualAppliance",
    "VirtualNetworkGateway",
    "None",
    "VnetPeering",
    "VirtualNetworkServiceEndpoint",
];

impl RouteTable {
    /// Reads one file; `tag` expands a service-tag prefix.
    pub fn parse(
        bytes: &[u8],
        tag: &dyn Fn(&str) -> Option<PrefixSet>,
    ) -> Result<RouteTable, String> {
        let v = json(bytes)?;
        let top = flat(&v);
        let (list, user_only) = match (&v, top.get("value"), top.get("routes")) {
            (Value::Array(a), _, _) => (a.clone(), false),
            (_, Some(Value::Array(a)), _) => (a.clone(), false),
            (_, _, Some(Value::Array(a))) => (a.clone(), true),
            _ => return Err("neither `value` (az network nic show-effective-route-table) nor `routes` (az network route-table show)".into()),
        };
        if list.len() > MAX_ROUTES {
            return Err(format!("more than {MAX_ROUTES} routes"));
        }
        let mut t = RouteTable {
            user_only,
            ..Default::default()
        };
        for (i, r) in list.iter().enumerate() {
            let o = flat(r);
            let at = if user_only {
                format!("routes[{i}]")
            } else {
                format!("value[{i}]")
            };
            if o.get("state")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("invalid"))
            {
                continue;
            }
            let hop = o
                .get("nextHopType")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{at}: no `nextHopType`"))?;
            let hop = HOP_TYPES
                .iter()
                .find(|h| h.eq_ignore_ascii_case(hop))
                .ok_or_else(|| {
                    format!(
                        "{at}: nextHopType {:?} is none of {}",
                        crate::printable::printable(hop),
                        HOP_TYPES.join(", ")
                    )
                })?;
            let prefixes = texts(o.get("addressPrefix"));
            if prefixes.is_empty() {
                return Err(format!("{at}: no `addressPrefix`"));
            }
            let source = o
                .get("source")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if user_only {
                        "User".into()
                    } else {
                        "Unknown".into()
                    }
                });
            let next_hop = texts(o.get("nextHopIpAddress")).into_iter().next();
            let name = o.get("name").and_then(Value::as_str).map(str::to_string);
            for p in prefixes {
                let route = t.routes.len();
                match Range::parse(&p) {
                    Ok(range) => t.entries.push(Entry {
                        len: len_of(&range),
                        range,
                        from_tag: false,
                        route,
                    }),
                    Err(_) => match tag(&p) {
                        Some(set) => t.entries.extend(set.ranges().iter().flat_map(split).map(
                            |(range, len)| Entry {
                                range,
                                len,
                                from_tag: true,
                                route,
                            },
                        )),
                        None => t.unexpanded.push(p.clone()),
                    },
                }
                t.routes.push(Route {
                    name: name.clone(),
                    prefix: p,
                    next_hop_type: hop.to_string(),
                    next_hop: next_hop.clone(),
                    source: source.clone(),
                });
            }
        }
        Ok(t)
    }

    fn best(&self, ok: impl Fn(&Entry) -> bool) -> Option<&Entry> {
        self.entries
            .iter()
            .filter(|e| ok(e))
            .max_by_key(|e| (e.len, !e.from_tag, rank(&self.routes[e.route].source)))
    }

    fn verdict(&self, e: &Entry) -> RouteVerdict {
        let r = &self.routes[e.route];
        RouteVerdict {
            prefix: r.prefix.clone(),
            next_hop_type: r.next_hop_type.clone(),
            next_hop: r.next_hop.clone(),
            source: r.source.clone(),
            name: r.name.clone(),
        }
    }

    /// The route `ip` takes. A route table's own file holds no system routes: a public address
    /// no user route holds takes the system's 0.0.0.0/0 to the Internet; a private one is unknown.
    pub fn lookup(&self, ip: IpAddr) -> Option<RouteVerdict> {
        match self.best(|e| e.range.contains(ip)) {
            Some(e) => Some(self.verdict(e)),
            None if self.user_only && !super::prefix::private().contains(ip) => {
                Some(RouteVerdict {
                    prefix: if ip.is_ipv4() {
                        "0.0.0.0/0".into()
                    } else {
                        "::/0".into()
                    },
                    next_hop_type: "Internet".into(),
                    next_hop: None,
                    source: "Default".into(),
                    name: None,
                })
            }
            None => None,
        }
    }

    /// The VNet's own prefixes: the `VnetLocal` routes.
    pub fn vnet_prefixes(&self) -> PrefixSet {
        PrefixSet::new(
            self.entries
                .iter()
                .filter(|e| self.routes[e.route].next_hop_type == "VnetLocal")
                .map(|e| e.range)
                .collect(),
        )
    }

    /// A default route (0.0.0.0/0) to an appliance or a gateway: forced tunnelling.
    pub fn forced_tunnel(&self) -> Option<RouteVerdict> {
        self.entries
            .iter()
            .filter(|e| e.len == 0 && e.range.v4)
            .max_by_key(|e| rank(&self.routes[e.route].source))
            .filter(|e| {
                matches!(
                    self.routes[e.route].next_hop_type.as_str(),
                    "VirtualAppliance" | "VirtualNetworkGateway"
                )
            })
            .map(|e| self.verdict(e))
    }

    /// The part of `set` whose route is not `Internet`, with the hops it takes instead.
    pub fn not_internet(&self, set: &PrefixSet) -> (PrefixSet, Vec<RouteVerdict>) {
        let mut bad = Vec::new();
        let mut hops: Vec<RouteVerdict> = Vec::new();
        for r in set.ranges() {
            for (piece, len) in split(r) {
                // The route of the whole block, then more specific routes inside it, shortest first.
                let whole = self.best(|e| {
                    e.range.v4 == piece.v4
                        && e.range.first <= piece.first
                        && e.range.last >= piece.last
                        && e.len <= len
                });
                let mut inner: Vec<&Entry> = self
                    .entries
                    .iter()
                    .filter(|e| {
                        e.range.v4 == piece.v4
                            && e.len > len
                            && e.range.first >= piece.first
                            && e.range.last <= piece.last
                    })
                    .collect();
                inner.sort_by_key(|e| (e.len, !e.from_tag, rank(&self.routes[e.route].source)));
                let mut part = PrefixSet::default();
                let note = |e: &Entry, hops: &mut Vec<RouteVerdict>| {
                    let v = self.verdict(e);
                    if !hops.contains(&v) {
                        hops.push(v);
                    }
                };
                match whole {
                    Some(e) if self.routes[e.route].next_hop_type != "Internet" => {
                        part = PrefixSet::new(vec![piece]);
                        note(e, &mut hops);
                    }
                    None if self.user_only => {}
                    None => part = PrefixSet::new(vec![piece]),
                    _ => {}
                }
                for e in inner {
                    let one = PrefixSet::new(vec![e.range]);
                    if self.routes[e.route].next_hop_type == "Internet" {
                        part = part.minus(&one);
                    } else {
                        part = part.union(&one);
                        note(e, &mut hops);
                    }
                }
                bad.extend(part.ranges().iter().copied());
            }
        }
        (PrefixSet::new(bad), hops)
    }
}

fn len_of(r: &Range) -> u32 {
    let bits = if r.v4 { 32 } else { 128 };
    let size = r.last - r.first;
    bits - (128 - size.leading_zeros()).min(bits)
}

/// A merged range as its CIDR blocks, each with its length.
fn split(r: &Range) -> Vec<(Range, u32)> {
    PrefixSet::new(vec![*r])
        .cidrs()
        .iter()
        .filter_map(|c| Range::parse(c).ok())
        .map(|r| (r, len_of(&r)))
        .collect()
}
