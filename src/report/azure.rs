//! Azure's own view beside the probes: every result gets the service tags of its addresses,
//! the NSG rule that decides its flow and the route its address takes (from the files an admin
//! exported); failures' hints name the rule or the hop; the inbound rows, which no node can
//! observe, are evaluated against the exported rules (a deny fails, an allow passes unverified).
//! The live probe stays the truth for outbound paths: the files never turn a probe's verdict.

use std::net::{IpAddr, SocketAddr};

use super::diagnosis::Cause;
use super::{Report, ResultEntry};
use crate::azure::{AzureData, Direction, Flow, PrefixSet, Remote};
use crate::catalog::{Direction as Way, Protocol};
use crate::outcome::{ErrorKind, Layer, Status};

/// The tags whose prefixes public-IP compute must route to the Internet (the firewall article
/// for AzureMachineLearning; BatchNodeManagement, without which deployments fail).
const MANAGEMENT_TAGS: &[&str] = &["AzureMachineLearning", "BatchNodeManagement"];

/// How many prefixes a message lists before it counts the rest.
const LISTED: usize = 8;

/// Adds the files' view to `report`; `node` is this node's address towards a destination.
pub fn annotate(
    report: &mut Report,
    azure: &AzureData,
    node: &dyn Fn(Option<IpAddr>) -> Option<IpAddr>,
    strict: bool,
) {
    for (k, v) in azure.inputs() {
        report.context.insert(k, v);
    }
    let mut tunnelled = Vec::new();
    for r in &mut report.results {
        if azure.tags.is_some() {
            for a in &r.addresses {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    let tags = azure.tags_of(ip);
                    if !tags.is_empty() {
                        r.address_tags.insert(a.clone(), tags);
                    }
                }
            }
        }
        match r.direction {
            Way::Outbound => {
                if outbound(r, azure, node) {
                    tunnelled.push(r.id.clone());
                }
            }
            Way::Inbound => {
                if inbound(r, azure, node(None)) && strict {
                    r.strict();
                }
            }
        }
    }
    if let Some(tags) = &azure.tags {
        report.tag_prefixes = super::fix_prefixes::failing_tags(&report.results, tags);
    }
    report.summary = super::summarise(&report.results);
    report.causes = super::diagnosis::causes(&report.results);
    if let Some(t) = azure.routes.as_ref().and_then(|t| t.forced_tunnel())
        && !tunnelled.is_empty()
    {
        tunnelled.dedup();
        let hop = t
            .next_hop
            .clone()
            .unwrap_or_else(|| t.next_hop_type.clone());
        report.causes.insert(
            0,
            Cause {
                kind: ErrorKind::ForcedTunnel,
                message: format!(
                    "The default route 0.0.0.0/0 goes to {} {hop} ({} route{}): these failures passed it.",
                    t.next_hop_type,
                    t.source,
                    t.name.as_ref().map(|n| format!(" {n}")).unwrap_or_default()
                ),
                fix: format!(
                    "Look at {hop}'s rules and logs for these flows; for public-IP compute, add user-defined routes \
                     with next hop Internet for AzureMachineLearning and BatchNodeManagement."
                ),
                targets: tunnelled,
            },
        );
    }
}

fn ip_of(r: &ResultEntry) -> Option<IpAddr> {
    r.peer
        .as_deref()
        .and_then(|p| p.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| r.addresses.iter().find_map(|a| a.parse().ok()))
}

fn rule_words(v: &crate::azure::Verdict) -> String {
    format!("rule {} ({}) of NSG {}", v.rule, v.priority, v.nsg)
}

/// An outbound result; true when it failed through a forced tunnel.
fn outbound(
    r: &mut ResultEntry,
    azure: &AzureData,
    node: &dyn Fn(Option<IpAddr>) -> Option<IpAddr>,
) -> bool {
    let mut findings: Vec<String> = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    // The service tag the target declares, against the public addresses it resolved to.
    if let (Some(tags), Some(tag)) = (&azure.tags, &r.service_tag)
        && let Some(set) = tags.prefixes(tag)
    {
        let private = crate::azure::prefix::private();
        for a in r.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
            if private.contains(a) || set.contains(a) {
                continue;
            }
            let family = tags.family_of(tag, a);
            let inside = match family.first() {
                Some(_) => format!("; it is in {}", family.join(", ")),
                None => format!("; it is in no {} tag", tag.split('.').next().unwrap_or(tag)),
            };
            let text = format!(
                "{a} is outside the {tag} service tag{inside}: a rule allowing {tag} does not allow it (the \
                 service is in another region, or its private endpoint is missing)"
            );
            findings.push(text.clone());
            warnings.push(format!("service tag: {text}"));
        }
    }
    let (Some(ip), Some(port)) = (ip_of(r), r.port) else {
        finish(r, findings, warnings);
        return false;
    };
    let protocol = match r.protocol {
        Protocol::Dns => {
            finish(r, findings, warnings);
            return false;
        }
        Protocol::Udp => "udp",
        _ => "tcp",
    };
    r.rules = azure.rules(&Flow {
        direction: Direction::Outbound,
        protocol,
        port,
        remote: Remote::Ip(ip),
        local: node(Some(ip)),
    });
    r.route = azure.route(ip);
    let failed_on_path = r.status == Status::Fail
        && r.error.as_ref().is_some_and(|e| {
            matches!(e.kind.layer(), Layer::Connection | Layer::Local)
                || e.kind == ErrorKind::TlsHandshake
        });
    let blocked = r.expect == crate::catalog::Expect::Blocked;
    if let Some(v) = r.rules.as_ref().filter(|_| blocked) {
        // A negative check: a pass is the path blocked, a failure the path open.
        match (r.status, v.access.as_str()) {
            (Status::Fail, "Allow") => findings.push(format!(
                "The NSG allows it ({}): only a deny rule above it, a firewall or a service endpoint policy closes \
                 this path.",
                rule_words(v)
            )),
            (Status::Fail, "Deny") => warnings.push(format!(
                "the exported NSG rules deny this flow ({}) yet it was reachable: the files are stale or the path is \
                 another",
                rule_words(v)
            )),
            _ => {}
        }
    } else if let Some(v) = &r.rules {
        match (r.status, v.access.as_str()) {
            (Status::Fail, "Allow") if failed_on_path => findings.push(format!(
                "The NSG allows it ({}): look at the route's next hop or a firewall.",
                rule_words(v)
            )),
            (Status::Fail, "Deny") => findings.push(format!("The NSG denies it: {}.", rule_words(v))),
            (Status::Pass, "Deny") => warnings.push(format!(
                "the exported NSG rules deny this flow ({}) yet it passed: the files are stale or the path is another",
                rule_words(v)
            )),
            _ => {}
        }
    }
    let mut tunnelled = false;
    // A negative check wants the path closed: its route is no finding.
    if let Some(route) = r.route.as_ref().filter(|_| !blocked) {
        let hop = route.next_hop.clone().unwrap_or_default();
        match (r.status, route.next_hop_type.as_str()) {
            (Status::Fail, "None") => findings.push(format!(
                "The route for {} has next hop None: a black hole (remove the route or give it a next hop).",
                route.prefix
            )),
            (Status::Pass, "None") => warnings.push(format!(
                "the exported route {} has next hop None yet the path works: the route file is stale",
                route.prefix
            )),
            (Status::Fail, "VirtualAppliance" | "VirtualNetworkGateway") if failed_on_path => {
                findings.push(format!(
                    "The route ({}, {}) sends it to the {} {hop}: look there for the drop or the reset.",
                    route.prefix, route.source, route.next_hop_type
                ));
                tunnelled = route.prefix == "0.0.0.0/0";
            }
            _ => {}
        }
    }
    finish(r, findings, warnings);
    tunnelled
}

fn finish(r: &mut ResultEntry, findings: Vec<String>, warnings: Vec<String>) {
    if r.status == Status::Fail && !findings.is_empty() {
        let hint = r.hint.take().unwrap_or_default();
        r.hint = Some(format!("{} {hint}", findings.join(" ")).trim().to_string());
    }
    r.warnings.extend(warnings);
}

/// An inbound row against the exported rules; true when its verdict changed.
fn inbound(r: &mut ResultEntry, azure: &AzureData, node: Option<IpAddr>) -> bool {
    if r.status != Status::Skip {
        return false;
    }
    if r.id.ends_with("-route") {
        return return_route(r, azure);
    }
    let (Some(tag), Some(port)) = (r.service_tag.clone(), r.port) else {
        return false;
    };
    if azure.nsgs.is_empty() {
        return false;
    }
    let flow = Flow {
        direction: Direction::Inbound,
        protocol: if r.protocol == Protocol::Udp {
            "udp"
        } else {
            "tcp"
        },
        port,
        remote: Remote::Tag {
            prefixes: azure.resolve(&tag),
            name: tag.clone(),
        },
        local: node,
    };
    let Some(v) = azure.rules(&flow) else {
        return false;
    };
    let what = format!(
        "inbound {} {port} from {tag}",
        flow.protocol.to_ascii_uppercase()
    );
    let verdict = match v.access.as_str() {
        "Deny" => {
            r.status = Status::Fail;
            r.error = Some(super::ErrorEntry {
                kind: ErrorKind::NsgDenied,
                message: format!("the exported rules deny {what}: {}", rule_words(&v)),
            });
            r.hint = Some(format!(
                "{} {}",
                ErrorKind::NsgDenied.remedy(),
                r.hint.take().unwrap_or_default()
            ));
            true
        }
        "Allow" => {
            r.status = Status::Pass;
            r.unverified = true;
            r.note = Some(format!(
                "unverified: allowed by the exported rules ({}); not observed",
                rule_words(&v)
            ));
            true
        }
        _ => {
            r.skip_reason = Some(format!(
                "{}; the exported rules cannot decide: {} ({})",
                r.skip_reason.as_deref().unwrap_or("inbound"),
                rule_words(&v),
                v.reason.as_deref().unwrap_or("unresolvable")
            ));
            false
        }
    };
    if verdict {
        r.skip_reason = None;
    }
    r.rules = Some(v);
    verdict
}

/// The return route of public-IP compute: every AzureMachineLearning and BatchNodeManagement
/// prefix must leave through the Internet.
fn return_route(r: &mut ResultEntry, azure: &AzureData) -> bool {
    let (Some(routes), Some(tags)) = (&azure.routes, &azure.tags) else {
        return false;
    };
    let mut bad = PrefixSet::default();
    let mut hops = Vec::new();
    for tag in MANAGEMENT_TAGS {
        let Some(set) = tags.prefixes(tag) else {
            return false;
        };
        let (b, h) = routes.not_internet(set);
        bad = bad.union(&b);
        hops.extend(h);
    }
    if bad.is_empty() {
        r.status = Status::Pass;
        r.unverified = true;
        r.note = Some(
            "unverified: the exported routes send every AzureMachineLearning and BatchNodeManagement prefix to the \
             Internet; not observed"
                .into(),
        );
        r.skip_reason = None;
        return true;
    }
    let cidrs = bad.cidrs();
    let listed: Vec<&str> = cidrs.iter().take(LISTED).map(String::as_str).collect();
    let more = cidrs.len().saturating_sub(LISTED);
    let mut through: Vec<String> = hops
        .iter()
        .map(|h| {
            format!(
                "{} {}",
                h.next_hop_type,
                h.next_hop.as_deref().unwrap_or("")
            )
            .trim()
            .to_string()
        })
        .collect();
    through.dedup();
    r.status = Status::Fail;
    r.skip_reason = None;
    r.error = Some(super::ErrorEntry {
        kind: ErrorKind::RouteNotInternet,
        message: format!(
            "{} prefixes of AzureMachineLearning and BatchNodeManagement do not leave through the Internet \
             (they go to {}): {}{}",
            cidrs.len(),
            through.join(", "),
            listed.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    });
    r.hint = Some(format!(
        "{} {}",
        ErrorKind::RouteNotInternet.remedy(),
        r.hint.take().unwrap_or_default()
    ));
    r.route = hops.into_iter().next();
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::ServiceTags;
    use std::time::{Duration, SystemTime};

    /// One storage target resolving to `address`, failing with `kind` or passing.
    fn storage(kind: Option<ErrorKind>, address: &str) -> Report {
        let mut report = Report::new(
            Default::default(),
            SystemTime::now(),
            Duration::ZERO,
            vec![super::super::tests::finished(kind, true)],
            false,
        );
        let r = &mut report.results[0];
        r.service_tag = Some("Storage.westeurope".into());
        r.addresses = vec![address.into()];
        report
    }

    fn tags() -> AzureData {
        AzureData {
            tags: Some(
                ServiceTags::parse(crate::azure::service_tags::tests_fixture().as_bytes()).unwrap(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn an_address_outside_the_declared_tag_warns_and_a_failure_names_the_tag_it_is_in() {
        let azure = tags();
        let said = "20.60.17.1 is outside the Storage.westeurope service tag; it is in Storage.NorthEurope, Storage";
        // A failure: the hint leads with the finding, the catalog's fix after it.
        let mut failed = storage(Some(ErrorKind::TcpTimeout), "20.60.17.1");
        annotate(&mut failed, &azure, &|_| None, false);
        let r = &failed.results[0];
        assert_eq!(r.status, Status::Fail);
        let hint = r.hint.as_deref().unwrap();
        assert!(hint.starts_with(said), "{hint}");
        assert!(hint.ends_with("Allow outbound TCP 443."), "{hint}");
        assert_eq!(
            r.address_tags["20.60.17.1"],
            ["Storage.NorthEurope", "Storage"]
        );
        // A pass stays a pass (the live probe is the truth; a rule with the global tag allows
        // it): a warning only.
        let mut passed = storage(None, "20.60.17.1");
        annotate(&mut passed, &azure, &|_| None, false);
        let r = &passed.results[0];
        assert_eq!((r.status, r.hint.as_deref()), (Status::Pass, None));
        assert!(
            r.warnings.iter().any(|w| w.contains(said)),
            "{:?}",
            r.warnings
        );
        // Inside the tag, or private (a private endpoint): nothing to say.
        for inside in ["20.60.1.1", "10.0.1.5"] {
            let mut ok = storage(None, inside);
            annotate(&mut ok, &azure, &|_| None, false);
            assert!(ok.results[0].warnings.is_empty(), "{inside}");
        }
        // Outside every tag of the family.
        let mut elsewhere = storage(None, "198.51.100.7");
        annotate(&mut elsewhere, &azure, &|_| None, false);
        assert!(
            elsewhere.results[0].warnings[0].contains("it is in no Storage tag"),
            "{:?}",
            elsewhere.results[0].warnings
        );
    }

    #[test]
    fn a_negative_check_reads_the_rules_the_other_way_round() {
        let nsg = br#"{"name": "n", "securityRules": [
          {"name": "DenyOther", "priority": 100, "direction": "Outbound", "access": "Deny", "protocol": "Tcp",
           "destinationPortRange": "443", "sourceAddressPrefix": "*", "destinationAddressPrefix": "20.60.17.1"}],
          "defaultSecurityRules": [
          {"name": "AllowAll", "priority": 65000, "direction": "Outbound", "access": "Allow", "protocol": "*",
           "destinationPortRange": "*", "sourceAddressPrefix": "*", "destinationAddressPrefix": "*"}]}"#;
        let azure = AzureData {
            nsgs: crate::azure::nsg::parse(nsg).unwrap(),
            ..Default::default()
        };
        let run = |kind: Option<ErrorKind>, address: &str| {
            let mut report = storage(kind, address);
            report.results[0].expect = crate::catalog::Expect::Blocked;
            report.results[0].service_tag = None;
            annotate(&mut report, &azure, &|_| None, false);
            report.results.remove(0)
        };
        // Blocked as the rules say: no warning that the files are stale.
        let r = run(None, "20.60.17.1");
        assert_eq!(r.rules.as_ref().unwrap().rule, "DenyOther");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // Reachable where the rules allow it: the hint names the allowing rule.
        let r = run(Some(ErrorKind::UnexpectedlyReachable), "20.60.1.1");
        let hint = r.hint.unwrap();
        assert!(
            hint.starts_with("The NSG allows it (rule AllowAll (65000) of NSG n)"),
            "{hint}"
        );
        // Reachable where the rules deny it: the files are stale.
        let r = run(Some(ErrorKind::UnexpectedlyReachable), "20.60.17.1");
        assert!(
            r.warnings[0].contains("yet it was reachable"),
            "{:?}",
            r.warnings
        );
    }
}
