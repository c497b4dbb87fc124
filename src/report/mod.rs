//! A run's report, one serialisable shape that every renderer reads (table, JSON, Prometheus,
//! JUnit) and that `merge` reads back.

pub mod json;
pub mod junit;
pub mod matrix;
pub mod merge;
pub mod prometheus;
pub mod table;
pub mod textfile;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::probe::{ErrorKind, Phase, ResponderEvidence, Status, TlsEvidence};
use crate::runner::Finished;

/// The JSON contract's version.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    /// The host name of the node that ran the check.
    #[serde(default)]
    pub node: Option<String>,
    pub started_at: String,
    pub duration_ms: u64,
    pub context: BTreeMap<String, String>,
    /// Where each `context` value came from (flag, env, file, imds, nbvm, mlflow, ...).
    #[serde(default)]
    pub context_sources: BTreeMap<String, String>,
    pub summary: Summary,
    pub results: Vec<ResultEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    /// Failures of required targets: these decide the exit code.
    #[serde(default)]
    pub required_fail: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub kind: String,
    pub message: String,
}

/// One target's result, flattened for readers of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEntry {
    pub id: String,
    pub name: String,
    pub protocol: String,
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub service_tag: Option<String>,
    pub required: bool,
    pub expect: String,
    pub status: Status,
    pub error: Option<ErrorEntry>,
    #[serde(default)]
    pub skip_reason: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub duration_ms: f64,
    #[serde(default)]
    pub phases_ms: BTreeMap<Phase, f64>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub private: Option<bool>,
    #[serde(default)]
    pub cname_chain: Vec<String>,
    #[serde(default)]
    pub peer: Option<String>,
    pub via_proxy: Option<String>,
    #[serde(default)]
    pub tls: Option<TlsEvidence>,
    #[serde(default)]
    pub http_status: Option<u16>,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Peer checks: the `vnetprobe listen` responder whose echo confirmed the path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder: Option<ResponderEvidence>,
    /// The fix, for a failed target.
    pub hint: Option<String>,
    #[serde(default)]
    pub why: String,
}

fn round2(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

impl ResultEntry {
    pub fn from_finished(f: &Finished) -> ResultEntry {
        let (t, o) = (&f.target, &f.outcome);
        let ev = &o.evidence;
        ResultEntry {
            id: t.id.clone(),
            name: t.name.clone(),
            protocol: t.protocol.as_str().into(),
            host: t.host.clone(),
            port: t.port,
            profiles: t.profiles.clone(),
            service_tag: t.service_tag.clone(),
            required: t.required,
            expect: t.expect.as_str().into(),
            status: o.status,
            error: o.error.as_ref().map(|e| ErrorEntry {
                kind: e.kind.as_str().into(),
                message: e.message.clone(),
            }),
            skip_reason: o.skip_reason.clone(),
            note: ev.note.clone(),
            duration_ms: round2(f.duration.as_secs_f64() * 1000.0),
            phases_ms: ev
                .phases_ms
                .iter()
                .map(|(p, ms)| (*p, round2(*ms)))
                .collect(),
            addresses: ev.addresses.iter().map(|a| a.to_string()).collect(),
            private: ev.private,
            cname_chain: ev.cname_chain.clone(),
            peer: ev.peer.map(|p| p.to_string()),
            via_proxy: ev.via_proxy.clone(),
            tls: ev.tls.clone(),
            http_status: ev.http_status,
            warnings: ev.warnings.clone(),
            responder: ev.responder.clone(),
            hint: (o.status == Status::Fail)
                .then(|| hint(o.error.as_ref().map(|e| e.kind), &t.fix)),
            why: t.why.clone(),
        }
    }

    /// `host:port`, or the host alone.
    pub fn endpoint(&self) -> String {
        match self.port {
            Some(p) if self.host.contains(':') => format!("[{}]:{p}", self.host),
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

/// The fix for a failure: the error kind's remedy where the cause is on the node, its proxy or
/// an inspecting device, then the catalog's fix for the path; only the remedy where the kind
/// proves the path itself open (a TLS handshake happened).
fn hint(kind: Option<ErrorKind>, fix: &str) -> String {
    match kind.and_then(|k| k.remedy().map(|r| (k, r))) {
        Some((ErrorKind::TlsIntercepted | ErrorKind::TlsUntrusted, remedy)) => remedy.to_string(),
        Some((_, remedy)) => format!("{remedy} If the path itself is closed: {fix}"),
        None => fix.to_string(),
    }
}

pub(crate) fn node_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// RFC 3339 in UTC, whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Report {
    pub fn new(
        context: BTreeMap<String, String>,
        started: SystemTime,
        took: Duration,
        finished: &[Finished],
    ) -> Report {
        let results: Vec<ResultEntry> = finished.iter().map(ResultEntry::from_finished).collect();
        let mut summary = Summary::default();
        for r in &results {
            match r.status {
                Status::Pass => summary.pass += 1,
                Status::Fail => {
                    summary.fail += 1;
                    if r.required {
                        summary.required_fail += 1;
                    }
                }
                Status::Skip => summary.skip += 1,
            }
        }
        Report {
            version: VERSION,
            node: node_name(),
            started_at: rfc3339(started),
            duration_ms: took.as_millis() as u64,
            context,
            context_sources: BTreeMap::new(),
            summary,
            results,
        }
    }

    /// The contract: 0 when every required target met its expectation, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.summary.required_fail > 0 { 1 } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Expect, ProbeSpec, Protocol, Target};
    use crate::probe::{Evidence, Outcome, ProbeError};

    fn finished(kind: Option<ErrorKind>, required: bool) -> Finished {
        let target = Target {
            id: "t".into(),
            name: "t".into(),
            protocol: Protocol::Tcp,
            host: "h".into(),
            port: Some(443),
            profiles: vec!["internet".into()],
            service_tag: None,
            required,
            expect: Expect::Reachable,
            why: "w".into(),
            fix: "Allow outbound TCP 443.".into(),
            section: None,
            spec: ProbeSpec::default(),
            skip: None,
        };
        let outcome = match kind {
            Some(k) => Outcome {
                status: Status::Fail,
                error: Some(ProbeError::new(k, "m")),
                skip_reason: None,
                evidence: Evidence::default(),
            },
            None => Outcome {
                status: Status::Pass,
                error: None,
                skip_reason: None,
                evidence: Evidence::default(),
            },
        };
        Finished {
            target,
            outcome,
            duration: Duration::from_millis(3),
        }
    }

    #[test]
    fn hints_lead_with_the_remedy_of_the_error_kind() {
        let r = ResultEntry::from_finished(&finished(Some(ErrorKind::ProxyDenied), true));
        let hint = r.hint.unwrap();
        assert!(
            hint.starts_with("The proxy refused") && hint.contains("NO_PROXY"),
            "{hint}"
        );
        assert!(hint.ends_with("Allow outbound TCP 443."), "{hint}");
        let r = ResultEntry::from_finished(&finished(Some(ErrorKind::TcpRefused), true));
        assert_eq!(r.hint.as_deref(), Some("Allow outbound TCP 443."));
        assert_eq!(ResultEntry::from_finished(&finished(None, true)).hint, None);
        let r = ResultEntry::from_finished(&finished(Some(ErrorKind::TlsIntercepted), true));
        assert!(
            !r.hint.unwrap().contains("Allow outbound"),
            "the path is open: no path rule"
        );
    }

    #[test]
    fn only_required_failures_set_the_exit_code() {
        let ctx = BTreeMap::new();
        let optional = [
            finished(Some(ErrorKind::TcpRefused), false),
            finished(None, true),
        ];
        let r = Report::new(ctx.clone(), SystemTime::now(), Duration::ZERO, &optional);
        assert_eq!(
            (r.summary.fail, r.summary.required_fail, r.exit_code()),
            (1, 0, 0)
        );
        let required = [finished(Some(ErrorKind::TcpRefused), true)];
        assert_eq!(
            Report::new(ctx, SystemTime::now(), Duration::ZERO, &required).exit_code(),
            1
        );
    }
}
