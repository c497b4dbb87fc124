//! Many nodes' JSON reports as one view: which node fails which target. The scheduler that
//! ran them is Azure ML's; this only aggregates.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::table::column;
use super::{Report, Summary};
use crate::catalog::Protocol;
use crate::outcome::ErrorKind;
use crate::outcome::Status;

/// One node's report, named by its `node` field or, failing that, its file name.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSummary {
    pub node: String,
    pub file: String,
    pub started_at: String,
    pub summary: Summary,
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
    /// Targets that failed on at least one node, most widespread first.
    pub failing: Vec<TargetAcross>,
    /// Targets that passed or were skipped everywhere.
    pub healthy: usize,
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

/// Reads each file as a report; the error names the file.
pub fn load(paths: &[PathBuf]) -> Result<Vec<(String, Report)>, String> {
    if paths.is_empty() {
        return Err("merge: give at least one REPORT.json".into());
    }
    paths
        .iter()
        .map(|p| {
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
            Ok((p.display().to_string(), report))
        })
        .collect()
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
    let mut nodes = Vec::new();
    let named: Vec<(String, &Report)> = reports
        .iter()
        .map(|(file, report)| (node_name(file, report), report))
        .collect();
    let peers = super::matrix::build(&named);
    // Keyed by id and port, not host: per-node names (the instance) differ across a fleet.
    let mut across: BTreeMap<(String, Option<u16>), TargetAcross> = BTreeMap::new();
    for (file, report) in reports {
        let node = node_name(file, report);
        nodes.push(NodeSummary {
            node: node.clone(),
            file: file.clone(),
            started_at: report.started_at.clone(),
            summary: report.summary,
        });
        for r in &report.results {
            let entry = across
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
                    entry.hint = entry.hint.take().or_else(|| r.hint.clone());
                }
            }
        }
    }
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
    Merged {
        nodes,
        healthy: total - failing.len(),
        failing,
        peers,
    }
}

pub fn render_table(m: &Merged) -> String {
    let mut out = render_nodes_and_failures(m);
    if let Some(peers) = &m.peers {
        peers.render(&mut out);
    }
    out
}

fn render_nodes_and_failures(m: &Merged) -> String {
    let mut out = String::new();
    let bad = m
        .nodes
        .iter()
        .filter(|n| n.summary.required_fail > 0)
        .count();
    let _ = writeln!(
        out,
        "{} reports: {} nodes healthy, {bad} with required failures",
        m.nodes.len(),
        m.nodes.len() - bad
    );
    let w_node = column(m.nodes.iter().map(|n| n.node.len()), 4);
    let _ = writeln!(
        out,
        "\n{:<w_node$}  {:>4}  {:>4}  {:>4}  STARTED",
        "NODE", "PASS", "FAIL", "SKIP"
    );
    for n in &m.nodes {
        let s = &n.summary;
        let _ = writeln!(
            out,
            "{:<w_node$}  {:>4}  {:>4}  {:>4}  {}",
            n.node, s.pass, s.fail, s.skip, n.started_at
        );
    }
    if m.failing.is_empty() {
        let _ = writeln!(out, "\nno target fails on any node ({} targets)", m.healthy);
        return out;
    }
    let w_id = column(m.failing.iter().map(|t| t.id.len()), 6);
    let w_ep = column(m.failing.iter().map(|t| t.endpoint.len()), 8);
    let _ = writeln!(
        out,
        "\n{:<w_id$}  {:<w_ep$}  {:<8}  FAILING ON",
        "TARGET", "ENDPOINT", "REQUIRED"
    );
    for t in &m.failing {
        let nodes: Vec<String> = t
            .failing
            .iter()
            .map(|f| format!("{} ({})", f.node, f.kind))
            .collect();
        let _ = writeln!(
            out,
            "{:<w_id$}  {:<w_ep$}  {:<8}  {}/{}: {}",
            t.id,
            t.endpoint,
            if t.required { "yes" } else { "no" },
            t.failing.len(),
            t.failing.len() + t.pass + t.skip,
            nodes.join(", ")
        );
        if let Some(h) = &t.hint {
            let _ = writeln!(out, "{:w_id$}  fix: {h}", "");
        }
    }
    let _ = writeln!(
        out,
        "\n{} targets fail somewhere; {} pass or skip everywhere",
        m.failing.len(),
        m.healthy
    );
    out
}
