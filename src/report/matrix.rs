//! The node-by-node view of peer checks in merged reports: which node reaches which, over
//! which paths. A destination is named by the responder's echo (its host name) wherever any
//! node got one from that address, otherwise by the address probed.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::Report;
use crate::catalog::Protocol;
use crate::outcome::ErrorKind;
use crate::outcome::Status;

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

fn is_peer(r: &super::ResultEntry) -> bool {
    r.responder.is_some() || r.profiles.iter().any(|p| p == "peer")
}

/// The matrix of `(node name, report)` pairs; None when no report holds a peer check.
pub fn build(reports: &[(String, &Report)]) -> Option<PeerMatrix> {
    // Address -> the name its responder gave, from any node that got an echo.
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    for (_, report) in reports {
        for r in &report.results {
            if let Some(resp) = &r.responder {
                names.insert(r.host.as_str(), resp.node.as_str());
            }
        }
    }
    let mut nodes: Vec<String> = reports.iter().map(|(n, _)| n.clone()).collect();
    let mut paths = Vec::new();
    for (node, report) in reports {
        for r in report.results.iter().filter(|r| is_peer(r)) {
            if r.status == Status::Skip {
                continue;
            }
            let to = r
                .responder
                .as_ref()
                .map(|resp| resp.node.clone())
                .or_else(|| names.get(r.host.as_str()).map(|n| n.to_string()))
                .unwrap_or_else(|| r.host.clone());
            if !nodes.contains(&to) {
                nodes.push(to.clone());
            }
            paths.push(PeerPath {
                from: node.clone(),
                to,
                host: r.host.clone(),
                protocol: r.protocol,
                port: r.port,
                status: r.status,
                kind: r.error.as_ref().map(|e| e.kind),
                authenticated: r.responder.as_ref().is_some_and(|resp| resp.authenticated),
            });
        }
    }
    (!paths.is_empty()).then_some(PeerMatrix { nodes, paths })
}

impl PeerMatrix {
    /// The cell of `from` reaching `to`: "-" for itself, "." when untested, "ok" when every path
    /// echoed, otherwise the failing paths.
    fn cell(&self, from: &str, to: &str) -> String {
        if from == to {
            return "-".into();
        }
        let paths: Vec<&PeerPath> = self
            .paths
            .iter()
            .filter(|p| p.from == from && p.to == to)
            .collect();
        if paths.is_empty() {
            return ".".into();
        }
        let failing: Vec<String> = paths
            .iter()
            .filter(|p| p.status == Status::Fail)
            .map(|p| {
                let port = p.port.map(|p| p.to_string()).unwrap_or_default();
                format!(
                    "{}/{port} {}",
                    p.protocol,
                    p.kind.map_or("fail", ErrorKind::as_str)
                )
            })
            .collect();
        if failing.is_empty() {
            "ok".into()
        } else {
            failing.join(", ")
        }
    }

    /// The matrix as a table: rows reach columns.
    pub fn render(&self, out: &mut String) {
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
        let cells: Vec<Vec<String>> = self
            .nodes
            .iter()
            .map(|from| self.nodes.iter().map(|to| self.cell(from, to)).collect())
            .collect();
        let w_node = self
            .nodes
            .iter()
            .map(|n| n.len())
            .max()
            .unwrap_or(4)
            .max("FROM \\ TO".len());
        let widths: Vec<usize> = (0..self.nodes.len())
            .map(|c| {
                cells
                    .iter()
                    .map(|row| row[c].len())
                    .chain([self.nodes[c].len()])
                    .max()
                    .unwrap_or(1)
            })
            .collect();
        let _ = write!(out, "{:<w_node$}", "FROM \\ TO");
        for (n, w) in self.nodes.iter().zip(&widths) {
            let _ = write!(out, "  {n:<w$}");
        }
        let end = out.trim_end_matches(' ').len();
        out.truncate(end);
        out.push('\n');
        for (from, row) in self.nodes.iter().zip(&cells) {
            let _ = write!(out, "{from:<w_node$}");
            for (cell, w) in row.iter().zip(&widths) {
                let _ = write!(out, "  {cell:<w$}");
            }
            let end = out.trim_end_matches(' ').len();
            out.truncate(end);
            out.push('\n');
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
        m.render(&mut out);
        assert!(out.contains("peer paths: 6 checked, 3 failing"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("node-c") && l.contains("tcp/445 tcp_refused")),
            "{out}"
        );
        assert!(build(&[("x".into(), &report("x", serde_json::json!([])))]).is_none());
    }
}
