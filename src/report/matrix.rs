//! The node-by-node view of peer checks in merged reports: which node reaches which, over
//! which paths. A destination is named by the responder's echo (its host name) wherever any
//! node got one from that address, otherwise by the address probed. Paths are indexed once by
//! (from, to); past a readable size the matrix is summarised (failing paths grouped by path and
//! kind, then by the node they share) instead of drawn.

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;

use super::{Report, ResultEntry};
use crate::catalog::Protocol;
use crate::outcome::ErrorKind;
use crate::outcome::Status;
use crate::printable::printable;

/// The most nodes drawn as a matrix; more are summarised.
pub const MAX_DRAWN: usize = 16;
/// How many entries a summary line lists before "+N more".
const EXAMPLES: usize = 5;

/// One path from a node to a peer, as that node's report tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerPath {
    pub from: String,
    pub to: String,
    pub host: String,
    pub protocol: Protocol,
    pub port: Option<u16>,
    pub status: Status,
    /// The error kind of a failed path.
    pub kind: Option<ErrorKind>,
    /// The echo was verified with the shared key.
    pub authenticated: bool,
}

/// Every node (reporting nodes first, then peers that sent no report) and every path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerMatrix {
    pub nodes: Vec<String>,
    pub paths: Vec<PeerPath>,
}

fn is_peer(r: &ResultEntry) -> bool {
    r.responder.is_some() || r.profiles.iter().any(|p| p == "peer")
}

/// Collects the peer paths of reports read one at a time; `finish` names the destinations.
#[derive(Debug, Default)]
pub struct PeerBuilder {
    /// Address -> the name its responder gave, from any node that got an echo.
    names: HashMap<String, String>,
    reporting: Vec<String>,
    /// Paths with `to` holding the echo's name, or the host when there was no echo.
    paths: Vec<(PeerPath, bool)>,
}

impl PeerBuilder {
    /// Adds the peer checks of `node`'s report.
    pub fn add(&mut self, node: &str, report: &Report) {
        self.reporting.push(node.to_string());
        for r in report.results.iter().filter(|r| is_peer(r)) {
            if let Some(resp) = &r.responder {
                self.names.insert(r.host.clone(), resp.node.clone());
            }
            if r.status == Status::Skip {
                continue;
            }
            let echoed = r.responder.is_some();
            self.paths.push((
                PeerPath {
                    from: node.to_string(),
                    to: r
                        .responder
                        .as_ref()
                        .map_or_else(|| r.host.clone(), |resp| resp.node.clone()),
                    host: r.host.clone(),
                    protocol: r.protocol,
                    port: r.port,
                    status: r.status,
                    kind: r.error.as_ref().map(|e| e.kind),
                    authenticated: r.responder.as_ref().is_some_and(|resp| resp.authenticated),
                },
                echoed,
            ));
        }
    }

    /// The matrix; None when no report held a peer check.
    pub fn finish(self) -> Option<PeerMatrix> {
        let PeerBuilder {
            names,
            reporting,
            paths,
        } = self;
        if paths.is_empty() {
            return None;
        }
        let mut nodes = reporting;
        let mut known: std::collections::HashSet<String> = nodes.iter().cloned().collect();
        let paths: Vec<PeerPath> = paths
            .into_iter()
            .map(|(mut p, echoed)| {
                if !echoed && let Some(name) = names.get(&p.host) {
                    p.to = name.clone();
                }
                if known.insert(p.to.clone()) {
                    nodes.push(p.to.clone());
                }
                p
            })
            .collect();
        Some(PeerMatrix { nodes, paths })
    }
}

/// The matrix of `(node name, report)` pairs; None when no report holds a peer check.
pub fn build(reports: &[(String, &Report)]) -> Option<PeerMatrix> {
    let mut b = PeerBuilder::default();
    for (node, report) in reports {
        b.add(node, report);
    }
    b.finish()
}

fn path_label(p: &PeerPath) -> String {
    let port = p.port.map(|p| p.to_string()).unwrap_or_default();
    format!(
        "{}/{port} {}",
        p.protocol,
        p.kind.map_or("fail", ErrorKind::as_str)
    )
}

impl PeerMatrix {
    /// Each node's index by name.
    fn node_at(&self) -> HashMap<&str, usize> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect()
    }

    /// The paths of each (from, to) pair of node indices, built once.
    fn index(&self) -> HashMap<(usize, usize), Vec<usize>> {
        let at = self.node_at();
        let mut cells: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        for (i, p) in self.paths.iter().enumerate() {
            if let (Some(&f), Some(&t)) = (at.get(p.from.as_str()), at.get(p.to.as_str())) {
                cells.entry((f, t)).or_default().push(i);
            }
        }
        cells
    }

    /// The cell of one pair: "-" for itself, "." when untested, "ok" when every path echoed,
    /// otherwise the failing paths.
    fn cell_of(&self, from: usize, to: usize, paths: Option<&Vec<usize>>) -> String {
        if from == to {
            return "-".into();
        }
        let Some(paths) = paths else {
            return ".".into();
        };
        let failing: Vec<String> = paths
            .iter()
            .map(|&i| &self.paths[i])
            .filter(|p| p.status == Status::Fail)
            .map(path_label)
            .collect();
        if failing.is_empty() {
            "ok".into()
        } else {
            failing.join(", ")
        }
    }

    #[cfg(test)]
    fn cell(&self, from: &str, to: &str) -> String {
        let i = |n: &str| self.nodes.iter().position(|x| x == n).unwrap();
        let (f, t) = (i(from), i(to));
        self.cell_of(f, t, self.index().get(&(f, t)))
    }

    /// The matrix as a table (rows reach columns), or its summary past `MAX_DRAWN` nodes or
    /// when it would not fit `width` columns. Node names are escaped.
    pub fn render(&self, out: &mut String, width: usize) {
        let failing = self
            .paths
            .iter()
            .filter(|p| p.status == Status::Fail)
            .count();
        let _ = writeln!(
            out,
            "\npeer paths: {} checked, {failing} failing (row reaches column; ok: every path echoed)",
            self.paths.len()
        );
        let names: Vec<String> = self
            .nodes
            .iter()
            .map(|n| printable(n).into_owned())
            .collect();
        if !self.draw(out, &names, width) {
            self.summarise(out, &names);
        }
        let unauthenticated = self
            .paths
            .iter()
            .filter(|p| p.status == Status::Pass && !p.authenticated)
            .count();
        if unauthenticated > 0 {
            let _ = writeln!(
                out,
                "{unauthenticated} passing paths were not authenticated (no --key-file): any device on the path could have answered"
            );
        }
    }

    /// Draws the matrix when it is small enough to read; false when it is not.
    fn draw(&self, out: &mut String, names: &[String], width: usize) -> bool {
        if self.nodes.len() > MAX_DRAWN {
            return false;
        }
        let index = self.index();
        let n = self.nodes.len();
        let cells: Vec<Vec<String>> = (0..n)
            .map(|f| {
                (0..n)
                    .map(|t| self.cell_of(f, t, index.get(&(f, t))))
                    .collect()
            })
            .collect();
        let len = |s: &str| s.chars().count();
        let w_node = names
            .iter()
            .map(|n| len(n))
            .max()
            .unwrap_or(4)
            .max("FROM \\ TO".len());
        let widths: Vec<usize> = (0..n)
            .map(|c| {
                cells
                    .iter()
                    .map(|row| len(&row[c]))
                    .chain([len(&names[c])])
                    .max()
                    .unwrap_or(1)
            })
            .collect();
        if w_node + widths.iter().map(|w| w + 2).sum::<usize>() > width.max(80) {
            return false;
        }
        let _ = write!(out, "{:<w_node$}", "FROM \\ TO");
        for (name, w) in names.iter().zip(&widths) {
            let _ = write!(out, "  {name:<w$}");
        }
        let end = out.trim_end_matches(' ').len();
        out.truncate(end);
        out.push('\n');
        for (from, row) in names.iter().zip(&cells) {
            let _ = write!(out, "{from:<w_node$}");
            for (cell, w) in row.iter().zip(&widths) {
                let _ = write!(out, "  {cell:<w$}");
            }
            let end = out.trim_end_matches(' ').len();
            out.truncate(end);
            out.push('\n');
        }
        true
    }

    /// The failing paths grouped by path and kind, each group by the nodes it shares: the
    /// destinations (a node nobody reaches) or the sources (a node that reaches nobody),
    /// whichever names fewer.
    fn summarise(&self, out: &mut String, names: &[String]) {
        let at = self.node_at();
        let mut groups: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        for p in self.paths.iter().filter(|p| p.status == Status::Fail) {
            let (Some(&f), Some(&t)) = (at.get(p.from.as_str()), at.get(p.to.as_str())) else {
                continue;
            };
            groups.entry(path_label(p)).or_default().push((f, t));
        }
        let _ = writeln!(
            out,
            "{} nodes: too many for a matrix, failing paths grouped (merge --output json lists every path)",
            self.nodes.len()
        );
        if groups.is_empty() {
            let _ = writeln!(out, "  every path checked echoed");
            return;
        }
        let mut groups: Vec<(String, Vec<(usize, usize)>)> = groups.into_iter().collect();
        groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
        for (label, pairs) in &groups {
            let _ = writeln!(out, "  {label}: {} paths", pairs.len());
            let count = |key: fn(&(usize, usize)) -> usize| {
                let mut c: HashMap<usize, usize> = HashMap::new();
                for p in pairs {
                    *c.entry(key(p)).or_default() += 1;
                }
                let mut c: Vec<(usize, usize)> = c.into_iter().collect();
                c.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                c
            };
            let to = count(|p| p.1);
            let from = count(|p| p.0);
            let (list, by_to) = if to.len() <= from.len() {
                (to, true)
            } else {
                (from, false)
            };
            for (node, n) in list.iter().take(EXAMPLES) {
                let _ = if by_to {
                    writeln!(out, "    to {}: from {n} nodes", names[*node])
                } else {
                    writeln!(out, "    from {}: to {n} nodes", names[*node])
                };
            }
            if list.len() > EXAMPLES {
                let what = if by_to { "destinations" } else { "sources" };
                let _ = writeln!(out, "    +{} more {what}", list.len() - EXAMPLES);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, results: serde_json::Value) -> Report {
        serde_json::from_value(serde_json::json!({
            "version": 1, "node": node, "started_at": "2026-01-01T00:00:00Z", "duration_ms": 5,
            "context": {}, "summary": {"pass": 0, "fail": 0, "skip": 0}, "results": results,
        }))
        .unwrap()
    }

    fn peer(
        host: &str,
        proto: &str,
        port: u16,
        echo: Option<&str>,
        kind: Option<&str>,
    ) -> serde_json::Value {
        let mut r = serde_json::json!({
            "id": format!("peer-{host}-{proto}"), "name": "p", "protocol": proto, "host": host,
            "port": port, "profiles": ["peer"], "required": true, "expect": "reachable",
            "status": if kind.is_some() { "fail" } else { "pass" }, "error": null, "via_proxy": null,
            "hint": null,
        });
        if let Some(n) = echo {
            r["responder"] = serde_json::json!({"node": n, "authenticated": true});
        }
        if let Some(k) = kind {
            r["error"] = serde_json::json!({"kind": k, "message": "m"});
        }
        r
    }

    #[test]
    fn nodes_are_named_by_their_echo_and_failures_fill_the_cells() {
        let a = report(
            "node-a",
            serde_json::json!([
                peer("10.0.0.5", "tcp", 445, Some("node-b"), None),
                peer("10.0.0.5", "udp", 5831, Some("node-b"), None),
                peer("10.1.0.9", "tcp", 445, None, Some("tcp_timeout")),
            ]),
        );
        let b = report(
            "node-b",
            serde_json::json!([
                peer("10.0.0.4", "tcp", 445, Some("node-a"), None),
                peer("10.1.0.9", "udp", 5831, None, Some("timeout")),
            ]),
        );
        let c = report(
            "node-c",
            serde_json::json!([peer("10.0.0.5", "tcp", 445, None, Some("tcp_refused"))]),
        );
        let m = build(&[
            ("node-a".into(), &a),
            ("node-b".into(), &b),
            ("node-c".into(), &c),
        ])
        .unwrap();
        assert_eq!(m.nodes, ["node-a", "node-b", "node-c", "10.1.0.9"]);
        assert_eq!(m.cell("node-a", "node-b"), "ok");
        assert_eq!(m.cell("node-b", "node-a"), "ok");
        assert_eq!(m.cell("node-a", "node-c"), ".");
        assert_eq!(
            m.cell("node-c", "node-b"),
            "tcp/445 tcp_refused",
            "named by node-a's echo"
        );
        assert_eq!(m.cell("node-a", "10.1.0.9"), "tcp/445 tcp_timeout");
        assert_eq!(m.cell("node-b", "node-b"), "-");
        let mut out = String::new();
        m.render(&mut out, 100);
        assert!(out.contains("peer paths: 6 checked, 3 failing"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("node-c") && l.contains("tcp/445 tcp_refused")),
            "{out}"
        );
        assert!(build(&[("x".into(), &report("x", serde_json::json!([])))]).is_none());
    }

    /// A full mesh of `n` nodes (10.9.x.y), each echoing; node `dark` drops TCP 445 inbound.
    fn mesh(n: usize, dark: usize) -> Vec<(String, Report)> {
        let name = |i: usize| format!("node-{i:03}");
        let addr = |i: usize| format!("10.9.{}.{}", i / 200, i % 200 + 1);
        (0..n)
            .map(|i| {
                let results: Vec<serde_json::Value> = (0..n)
                    .filter(|&j| j != i)
                    .flat_map(|j| {
                        let tcp = if j == dark {
                            peer(&addr(j), "tcp", 445, None, Some("tcp_timeout"))
                        } else {
                            peer(&addr(j), "tcp", 445, Some(&name(j)), None)
                        };
                        [tcp, peer(&addr(j), "udp", 5831, Some(&name(j)), None)]
                    })
                    .collect();
                (name(i), report(&name(i), serde_json::Value::Array(results)))
            })
            .collect()
    }

    #[test]
    fn a_large_mesh_is_summarised_by_the_node_its_failures_share() {
        let reports = mesh(40, 7);
        let named: Vec<(String, &Report)> = reports.iter().map(|(n, r)| (n.clone(), r)).collect();
        let m = build(&named).unwrap();
        assert_eq!(
            m.nodes.len(),
            40,
            "the dark node is named by the others' udp echo"
        );
        assert_eq!(m.paths.len(), 40 * 39 * 2);
        let mut out = String::new();
        m.render(&mut out, 200);
        assert!(!out.contains("FROM \\ TO"), "no 40-column matrix:\n{out}");
        assert!(out.contains("tcp/445 tcp_timeout: 39 paths"), "{out}");
        assert!(out.contains("to node-007: from 39 nodes"), "{out}");
        assert!(out.lines().count() < 10, "{out}");
    }

    #[test]
    fn node_names_cannot_forge_matrix_lines() {
        let a = report(
            "a\nno target fails on any node",
            serde_json::json!([peer("10.0.0.5", "tcp", 445, Some("b\x1b[2J"), None)]),
        );
        let m = build(&[("a\nno target fails on any node".into(), &a)]).unwrap();
        let mut out = String::new();
        m.render(&mut out, 100);
        assert!(
            !out.lines().any(|l| l.starts_with("no target fails")),
            "{out}"
        );
        assert!(
            out.contains("a\\x0ano target") && out.contains("b\\x1b[2J"),
            "{out}"
        );
    }
}
