//! Many nodes' JSON reports as one view: the shape of a fleet's failure. Nodes are grouped by
//! their failure signature (the failing required targets with their kinds), each group lined up
//! with the node facts that could explain it (subnet, zone, VM size); then each failing target,
//! and the peer matrix. The scheduler that ran them is Azure ML's; this only aggregates.
//!
//! Reports are read one at a time and folded into what the view needs, so a fleet costs the
//! view, not the sum of its reports. Every text a report holds is escaped before it is shown.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::table::column;
use super::{Report, Summary};
use crate::catalog::Protocol;
use crate::outcome::ErrorKind;
use crate::outcome::Status;
use crate::printable::printable;

/// The node facts a report's context may hold (IMDS and the DaemonSet), in the order shown.
pub const FACTS: &[&str] = &["subnet", "zone", "vm_size", "private_ip", "k8s_node"];
/// The facts a failure group is lined up with, and what to look at when it lines up.
const ALIGNED: &[(&str, &str, &str)] = &[
    ("subnet", "subnet", "that subnet's NSG and route table"),
    (
        "zone",
        "zone",
        "that zone's network path (a zonal firewall or NAT gateway)",
    ),
    (
        "vm_size",
        "VM size",
        "that VM size (its accelerated networking or image)",
    ),
];
/// How many nodes a table line names before "+N more" (JSON names them all).
const EXAMPLES: usize = 5;

/// One node's report, named by its `node` field or, failing that, its file name.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub file: String,
    pub started_at: String,
    pub summary: Summary,
    /// The node's facts from its report's context (`subnet`, `zone`, `vm_size`,
    /// `private_ip`, `k8s_node`), where the report has them.
    pub facts: BTreeMap<String, String>,
    /// The failing required targets with their kinds, sorted: the node's failure group.
    pub signature: Vec<Failed>,
}

/// A target that failed, and how.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Failed {
    pub target: String,
    pub kind: ErrorKind,
}

/// Nodes that share one failure signature.
#[derive(Debug, Clone, Serialize)]
pub struct FailureGroup {
    /// Empty for the healthy group.
    pub signature: Vec<Failed>,
    pub nodes: Vec<String>,
    /// Facts every node of the group shares: `{fact, value, nodes_with_value}` (how many nodes
    /// of the whole fleet have that value).
    pub aligned: Vec<Alignment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alignment {
    pub fact: String,
    pub value: String,
    pub nodes_with_value: usize,
}

/// A failure on one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFailure {
    pub node: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// One target across nodes.
#[derive(Debug, Clone, Serialize)]
pub struct TargetAcross {
    pub id: String,
    pub endpoint: String,
    pub protocol: Protocol,
    pub required: bool,
    pub pass: usize,
    pub skip: usize,
    pub failing: Vec<NodeFailure>,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    pub nodes: Vec<NodeSummary>,
    /// Nodes by failure signature, largest group first.
    pub groups: Vec<FailureGroup>,
    /// Targets that failed on at least one node, most widespread first.
    pub failing: Vec<TargetAcross>,
    /// Targets that passed or were skipped everywhere.
    pub healthy: usize,
    /// Duplicate node names, reports of different vnetprobe versions or catalogs.
    pub warnings: Vec<String>,
    /// Node by node, when the reports hold peer checks (`check --peer`, the `peer` profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<super::matrix::PeerMatrix>,
}

impl Merged {
    /// 1 when any node has a required failure, like `check`.
    pub fn exit_code(&self) -> u8 {
        if self.nodes.iter().any(|n| n.summary.required_fail > 0) {
            1
        } else {
            0
        }
    }
}

/// Reads one file as a report; the error names the file (and the line of a JSON error).
pub fn read(p: &Path) -> Result<Report, String> {
    let text = crate::input::read_text(p, crate::input::REPORT)
        .map_err(|e| format!("{}: {e}", p.display()))?;
    let report: Report = serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}:{}: not a vnetprobe JSON report: {e}",
            p.display(),
            e.line()
        )
    })?;
    if report.version != super::VERSION {
        return Err(format!(
            "{}: report version {} (this vnetprobe reads {})",
            p.display(),
            report.version,
            super::VERSION
        ));
    }
    Ok(report)
}

/// Reads each file as a report; the error names the file. Holds every report: for tests and
/// small fleets; `merge_files` reads one at a time.
pub fn load(paths: &[PathBuf]) -> Result<Vec<(String, Report)>, String> {
    if paths.is_empty() {
        return Err("merge: give at least one REPORT.json".into());
    }
    paths
        .iter()
        .map(|p| Ok((p.display().to_string(), read(p)?)))
        .collect()
}

/// Merges the reports in `paths`, reading one at a time.
pub fn merge_files(paths: &[PathBuf]) -> Result<Merged, String> {
    if paths.is_empty() {
        return Err("merge: give at least one REPORT.json".into());
    }
    let mut fleet = Fleet::default();
    for p in paths {
        let report = read(p)?;
        fleet.add(&p.display().to_string(), &report);
    }
    Ok(fleet.finish())
}

fn node_name(file: &str, report: &Report) -> String {
    report
        .node
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| {
            Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default()
        })
}

pub fn merge(reports: &[(String, Report)]) -> Merged {
    let mut fleet = Fleet::default();
    for (file, report) in reports {
        fleet.add(file, report);
    }
    fleet.finish()
}

/// What the view keeps of the reports read so far.
#[derive(Default)]
struct Fleet {
    nodes: Vec<NodeSummary>,
    // Keyed by id and port, not host: per-node names (the instance) differ across a fleet.
    across: BTreeMap<(String, Option<u16>), TargetAcross>,
    peers: super::matrix::PeerBuilder,
    /// vnetprobe version and catalog digest -> the nodes that reported them.
    versions: BTreeMap<String, Vec<usize>>,
    catalogs: BTreeMap<String, Vec<usize>>,
}

impl Fleet {
    fn add(&mut self, file: &str, report: &Report) {
        let node = node_name(file, report);
        self.peers.add(&node, report);
        let at = self.nodes.len();
        let unknown = || "unknown".to_string();
        self.versions
            .entry(report.vnetprobe_version.clone().unwrap_or_else(unknown))
            .or_default()
            .push(at);
        self.catalogs
            .entry(report.catalog_digest.clone().unwrap_or_else(unknown))
            .or_default()
            .push(at);
        let mut signature = Vec::new();
        for r in &report.results {
            let entry = self
                .across
                .entry((r.id.clone(), r.port))
                .or_insert_with(|| TargetAcross {
                    id: r.id.clone(),
                    endpoint: r.endpoint(),
                    protocol: r.protocol,
                    required: r.required,
                    pass: 0,
                    skip: 0,
                    failing: Vec::new(),
                    hint: None,
                });
            match r.status {
                Status::Pass => entry.pass += 1,
                Status::Skip => entry.skip += 1,
                Status::Fail => {
                    let (kind, message) = r
                        .error
                        .as_ref()
                        .map(|e| (e.kind, e.message.clone()))
                        .unwrap_or((ErrorKind::Internal, String::new()));
                    entry.failing.push(NodeFailure {
                        node: node.clone(),
                        kind,
                        message,
                    });
                    if entry.hint.is_none() {
                        entry.hint = r.hint.clone();
                    }
                    if r.required {
                        signature.push(Failed {
                            target: r.id.clone(),
                            kind,
                        });
                    }
                }
            }
        }
        signature.sort();
        signature.dedup();
        self.nodes.push(NodeSummary {
            node,
            file: file.to_string(),
            started_at: report.started_at.clone(),
            summary: report.summary,
            facts: FACTS
                .iter()
                .filter_map(|f| Some((f.to_string(), report.context.get(*f)?.clone())))
                .collect(),
            signature,
        });
    }

    fn finish(self) -> Merged {
        let Fleet {
            nodes,
            across,
            peers,
            versions,
            catalogs,
        } = self;
        let total = across.len();
        let mut failing: Vec<TargetAcross> = across
            .into_values()
            .filter(|t| !t.failing.is_empty())
            .collect();
        failing.sort_by(|a, b| {
            b.required
                .cmp(&a.required)
                .then(b.failing.len().cmp(&a.failing.len()))
                .then(a.id.cmp(&b.id))
        });
        let mut warnings = duplicates(&nodes);
        warnings.extend(split("vnetprobe versions", &versions, &nodes));
        warnings.extend(split("catalogs", &catalogs, &nodes));
        Merged {
            groups: groups(&nodes),
            nodes,
            healthy: total - failing.len(),
            failing,
            warnings,
            peers: peers.finish(),
        }
    }
}

/// Nodes grouped by signature, largest first (the healthy group among them by its size).
fn groups(nodes: &[NodeSummary]) -> Vec<FailureGroup> {
    let mut by: HashMap<&[Failed], Vec<usize>> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        by.entry(n.signature.as_slice()).or_default().push(i);
    }
    // How many nodes of the fleet have each value of each fact.
    let mut fleet: HashMap<(&str, &str), usize> = HashMap::new();
    for n in nodes {
        for (f, v) in &n.facts {
            *fleet.entry((f.as_str(), v.as_str())).or_default() += 1;
        }
    }
    let mut out: Vec<FailureGroup> = by
        .into_iter()
        .map(|(signature, members)| {
            let aligned = if signature.is_empty() {
                Vec::new()
            } else {
                ALIGNED
                    .iter()
                    .filter_map(|(fact, _, _)| {
                        let first = nodes[members[0]].facts.get(*fact)?;
                        members
                            .iter()
                            .all(|&i| nodes[i].facts.get(*fact) == Some(first))
                            .then(|| Alignment {
                                fact: fact.to_string(),
                                value: first.clone(),
                                nodes_with_value: fleet[&(*fact, first.as_str())],
                            })
                    })
                    .collect()
            };
            FailureGroup {
                signature: signature.to_vec(),
                nodes: members.iter().map(|&i| nodes[i].node.clone()).collect(),
                aligned,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.nodes
            .len()
            .cmp(&a.nodes.len())
            .then(a.signature.cmp(&b.signature))
    });
    out
}

/// One warning per node name that more than one report carries.
fn duplicates(nodes: &[NodeSummary]) -> Vec<String> {
    let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for n in nodes {
        by.entry(n.node.as_str()).or_default().push(n.file.as_str());
    }
    by.into_iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(node, files)| {
            format!(
                "node {node}: {} reports ({}); each is counted",
                files.len(),
                examples(&files, EXAMPLES)
            )
        })
        .collect()
}

/// A warning when the reports come from more than one `what` (the largest share first).
fn split(what: &str, by: &BTreeMap<String, Vec<usize>>, nodes: &[NodeSummary]) -> Option<String> {
    if by.len() < 2 {
        return None;
    }
    let mut shares: Vec<(&String, &Vec<usize>)> = by.iter().collect();
    shares.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let parts: Vec<String> = shares
        .iter()
        .map(|(value, at)| {
            let names: Vec<&str> = at.iter().map(|&i| nodes[i].node.as_str()).collect();
            format!("{value}: {} ({})", at.len(), examples(&names, 3))
        })
        .collect();
    Some(format!(
        "reports from {} {what}, compare with care: {}",
        by.len(),
        parts.join("; ")
    ))
}

/// The first `n` of `items` and "+N more".
fn examples(items: &[&str], n: usize) -> String {
    let mut s = items.iter().take(n).copied().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        let _ = write!(s, " +{} more", items.len() - n);
    }
    s
}

fn signature_text(sig: &[Failed]) -> String {
    sig.iter()
        .map(|f| format!("{} ({})", f.target, f.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Word wrap at `width` that never cuts a word (a longer word gets a line of its own), each
/// line after the first indented by `hang` spaces.
fn wrapped(out: &mut String, first: &str, text: &str, hang: usize, width: usize) {
    let mut line = first.to_string();
    let mut fresh = first.trim().is_empty();
    let len = |s: &str| s.chars().count();
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        if !fresh && len(&line) + 1 + len(word) > width {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(hang);
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

/// The table: `nodes` adds the node-by-node table; `width` is the terminal's.
pub fn render_table(m: &Merged, nodes: bool, width: usize) -> String {
    let width = width.clamp(40, 1000);
    let mut out = String::new();
    render_groups(&mut out, m, width);
    if nodes {
        render_nodes(&mut out, m);
    }
    render_failures(&mut out, m, width);
    if let Some(peers) = &m.peers {
        peers.render(&mut out, width);
    }
    out
}

fn render_groups(out: &mut String, m: &Merged, width: usize) {
    let parts: Vec<String> = m
        .groups
        .iter()
        .map(|g| match g.signature.is_empty() {
            true => format!("{} healthy", g.nodes.len()),
            false => format!(
                "{} fail {}",
                g.nodes.len(),
                printable(&signature_text(&g.signature))
            ),
        })
        .collect();
    let head = format!("{} reports:", m.nodes.len());
    wrapped(out, &head, &parts.join(" · "), 2, width);
    for w in &m.warnings {
        wrapped(out, "warning:", &printable(w), 2, width);
    }
    if m.groups.iter().all(|g| g.signature.is_empty()) {
        return;
    }
    let _ = writeln!(
        out,
        "\nFAILURE GROUPS (nodes with the same failing required targets, largest first)"
    );
    let w_n = m
        .groups
        .first()
        .map_or(1, |g| g.nodes.len().to_string().len());
    let hang = w_n + 4;
    for g in &m.groups {
        let lead = format!("  {:>w_n$}", g.nodes.len());
        if g.signature.is_empty() {
            let _ = writeln!(out, "{lead}  healthy");
            continue;
        }
        wrapped(
            out,
            &format!("{lead}  fail"),
            &printable(&signature_text(&g.signature)),
            hang,
            width,
        );
        let names: Vec<&str> = g.nodes.iter().map(String::as_str).collect();
        wrapped(
            out,
            &format!("{:hang$}nodes:", ""),
            &printable(&examples(&names, EXAMPLES)),
            hang + 2,
            width,
        );
        // A value most of whose nodes do not fail so explains nothing.
        for a in g
            .aligned
            .iter()
            .filter(|a| a.nodes_with_value < 2 * g.nodes.len())
        {
            let (_, label, look) = ALIGNED
                .iter()
                .find(|(f, _, _)| *f == a.fact)
                .expect("aligned facts are ALIGNED's");
            let alone = if a.nodes_with_value == g.nodes.len() {
                ", and no other node is".to_string()
            } else {
                format!(
                    " ({} other nodes there do not fail so)",
                    a.nodes_with_value - g.nodes.len()
                )
            };
            let text = format!(
                "all {} in {label} {}{alone}: {look}",
                g.nodes.len(),
                printable(&a.value)
            );
            wrapped(out, &format!("{:hang$}", ""), &text, hang + 2, width);
        }
    }
}

fn render_nodes(out: &mut String, m: &Merged) {
    let names: Vec<String> = m
        .nodes
        .iter()
        .map(|n| printable(&n.node).into_owned())
        .collect();
    let w_node = column(names.iter().map(|n| n.chars().count()), 4);
    let _ = writeln!(
        out,
        "\n{:<w_node$}  {:>4}  {:>4}  {:>4}  {:<20}  FACTS",
        "NODE", "PASS", "FAIL", "SKIP", "STARTED"
    );
    for (n, name) in m.nodes.iter().zip(&names) {
        let s = &n.summary;
        let facts: Vec<String> = n.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(
            out,
            "{name:<w_node$}  {:>4}  {:>4}  {:>4}  {:<20}  {}",
            s.pass,
            s.fail,
            s.skip,
            printable(&n.started_at),
            printable(&facts.join(" "))
        );
    }
}

fn render_failures(out: &mut String, m: &Merged, width: usize) {
    if m.failing.is_empty() {
        let _ = writeln!(out, "\nno target fails on any node ({} targets)", m.healthy);
        return;
    }
    let ids: Vec<String> = m
        .failing
        .iter()
        .map(|t| printable(&t.id).into_owned())
        .collect();
    let eps: Vec<String> = m
        .failing
        .iter()
        .map(|t| printable(&t.endpoint).into_owned())
        .collect();
    let w_id = column(ids.iter().map(|t| t.chars().count()), 6);
    let w_ep = column(eps.iter().map(|t| t.chars().count()), 8);
    let _ = writeln!(
        out,
        "\n{:<w_id$}  {:<w_ep$}  {:<8}  FAILING ON",
        "TARGET", "ENDPOINT", "REQUIRED"
    );
    for ((t, id), ep) in m.failing.iter().zip(&ids).zip(&eps) {
        let nodes: Vec<String> = t
            .failing
            .iter()
            .take(EXAMPLES)
            .map(|f| format!("{} ({})", printable(&f.node), f.kind))
            .collect();
        let mut list = nodes.join(", ");
        if t.failing.len() > EXAMPLES {
            let _ = write!(list, " +{} more", t.failing.len() - EXAMPLES);
        }
        let lead = format!(
            "{id:<w_id$}  {ep:<w_ep$}  {:<8}  {}/{}:",
            if t.required { "yes" } else { "no" },
            t.failing.len(),
            t.failing.len() + t.pass + t.skip,
        );
        wrapped(out, &lead, &list, w_id + w_ep + 14, width);
        if let Some(h) = &t.hint {
            wrapped(
                out,
                &format!("{:w_id$}  fix:", ""),
                &printable(h),
                w_id + 7,
                width,
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{} targets fail somewhere; {} pass or skip everywhere",
        m.failing.len(),
        m.healthy
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, subnet: &str, failing: &[&str]) -> Report {
        let results: Vec<serde_json::Value> = ["t1", "t2", "t3"]
            .iter()
            .map(|id| {
                let fail = failing.contains(id);
                serde_json::json!({
                    "id": id, "name": id, "protocol": "tcp", "host": "h\nno target fails on any node",
                    "port": 443, "required": true, "expect": "reachable",
                    "status": if fail { "fail" } else { "pass" },
                    "error": if fail { serde_json::json!({"kind": "tcp_refused", "message": "m"}) } else { serde_json::Value::Null },
                    "via_proxy": null, "hint": if fail { "fix\nit" } else { "" },
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "version": 1, "node": node, "started_at": "2026-01-01T00:00:00Z", "duration_ms": 5,
            "context": {"subnet": subnet}, "summary": {"pass": 0, "fail": 0, "skip": 0,
            "required_fail": failing.len()}, "results": results,
        }))
        .unwrap()
    }

    #[test]
    fn nodes_group_by_signature_and_a_group_lines_up_with_its_subnet() {
        let mut reports = Vec::new();
        for i in 0..9 {
            reports.push((
                format!("{i}.json"),
                report(&format!("ok-{i}"), "10.0.1.0/24", &[]),
            ));
        }
        for i in 0..3 {
            reports.push((
                format!("b{i}.json"),
                report(&format!("bad-{i}"), "10.0.2.0/24", &["t2"]),
            ));
        }
        reports.push((
            "x.json".into(),
            report("bad-0\nforged", "10.0.1.0/24", &["t2", "t3"]),
        ));
        reports.push(("dup.json".into(), report("ok-1", "10.0.1.0/24", &[])));
        let m = merge(&reports);
        assert_eq!(m.groups[0].nodes.len(), 10);
        assert!(m.groups[0].signature.is_empty());
        assert_eq!(m.groups[1].nodes, ["bad-0", "bad-1", "bad-2"]);
        assert_eq!(m.groups[1].aligned[0].value, "10.0.2.0/24");
        assert!(
            m.warnings
                .iter()
                .any(|w| w.contains("node ok-1: 2 reports")),
            "{:?}",
            m.warnings
        );
        let table = render_table(&m, false, 100);
        assert!(table.contains("14 reports: 10 healthy · 3 fail t2 (tcp_refused) · 1 fail t2 (tcp_refused), t3 (tcp_refused)"), "{table}");
        assert!(
            table.contains("all 3 in subnet 10.0.2.0/24, and no other node is"),
            "{table}"
        );
        assert!(
            !table
                .lines()
                .any(|l| l.starts_with("no target fails") || l == "forged" || l.trim() == "it"),
            "{table}"
        );
        assert!(
            table.contains("bad-0\\x0aforged") && table.contains("fix\\x0ait"),
            "{table}"
        );
        assert!(!table.contains("NODE "), "the node table only with --nodes");
        assert!(render_table(&m, true, 100).contains("subnet=10.0.2.0/24"));
    }
}
