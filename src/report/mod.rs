//! A run's report, one serialisable shape that every renderer reads (table, JSON, Prometheus,
//! JUnit, the HTML status page) and that `merge` reads back.

pub mod azure;
pub mod diagnosis;
pub mod fix;
pub mod fix_prefixes;
pub mod html;
pub mod json;
pub mod junit;
pub mod listing;
pub mod matrix;
pub mod merge;
pub mod prometheus;
pub mod table;
pub mod textfile;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::catalog::Direction;
use crate::catalog::{Expect, Protocol};
use crate::outcome::{ErrorKind, Phase, ResponderEvidence, Status, TlsEvidence, Trace};
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
    /// Failures that share one cause (a resolver, a proxy, a service tag, an inspecting CA),
    /// largest first; a single failure is never a cause.
    #[serde(default)]
    pub causes: Vec<diagnosis::Cause>,
    pub results: Vec<ResultEntry>,
    /// The vnetprobe that wrote the report (`VERSION COMMIT`), for `merge`'s version check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vnetprobe_version: Option<String>,
    /// The digest of the catalog files the run loaded (`Catalog::digest`), for `merge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_digest: Option<String>,
    /// With `--service-tags`: the file's `networkFeatures` of the tags the run names, for the
    /// fix plan's choice of tag per rule kind (not written out).
    #[serde(skip)]
    pub tag_features: Option<crate::azure::features::FileFeatures>,
    /// With `--service-tags`: the aggregated prefixes (CIDR blocks) of each service tag a
    /// failing target declares, spelt as in the file (empty: the file does not hold the tag).
    /// For the fix plan's IP lists; not in the JSON.
    #[serde(skip)]
    pub tag_prefixes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub pass: usize,
    pub fail: usize,
    pub skip: usize,
    /// Failures of required targets: these decide the exit code.
    #[serde(default)]
    pub required_fail: usize,
    /// Passes the node could not confirm (`unverified: true` on the result).
    #[serde(default)]
    pub unverified: usize,
    /// Required outbound targets that were skipped (a variable is missing): not checked, so
    /// never summarised as met. Inbound rows are not counted: no node can check them.
    #[serde(default)]
    pub required_skip: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub kind: ErrorKind,
    pub message: String,
}

/// One target's result, flattened for readers of the JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultEntry {
    pub id: String,
    pub name: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub profiles: Vec<String>,
    #[serde(default)]
    pub service_tag: Option<String>,
    pub required: bool,
    pub expect: Expect,
    /// `outbound`, or `inbound` for rows about traffic to this node (always skipped).
    #[serde(default)]
    pub direction: Direction,
    pub status: Status,
    pub error: Option<ErrorEntry>,
    #[serde(default)]
    pub skip_reason: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    /// A pass whose evidence does not prove the path: the note says what was not proven.
    #[serde(default)]
    pub unverified: bool,
    #[serde(default)]
    pub duration_ms: f64,
    #[serde(default)]
    pub phases_ms: BTreeMap<Phase, f64>,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The DNS server asked for this target's name.
    #[serde(default)]
    pub resolver: Option<String>,
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
    /// An application-rule firewall's deny (HTTP 470 `Action: Deny`) seen for this target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firewall: Option<crate::outcome::FirewallEvidence>,
    /// The fix, for a failed target; for an inbound row, the rule to verify from Azure's side.
    pub hint: Option<String>,
    #[serde(default)]
    pub why: String,
    /// With `check --wait`: the attempts made and when the target became reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<WaitEntry>,
    /// With `check --trace` (failing paths) and `probe trace`: the path trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Box<Trace>>,
    /// With `--service-tags`: the service tags holding each resolved address.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub address_tags: BTreeMap<String, Vec<String>>,
    /// With `--nsg`: the rule that decides this flow (`access` Allow, Deny or unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<crate::azure::Verdict>,
    /// With `--routes`: the route this flow's address takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::azure::RouteVerdict>,
}

/// How a target fared under `check --wait`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WaitEntry {
    /// Attempts made (the report shows the last).
    pub attempts: u32,
    /// Milliseconds from the start of the check to the end of the attempt that passed; null
    /// when it never passed.
    pub reachable_after_ms: Option<f64>,
}

fn round2(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

impl ResultEntry {
    /// The entry of one result, taking its evidence (a run's results become its report without
    /// a second copy of every string).
    pub fn from_finished(f: Finished) -> ResultEntry {
        let (t, o) = (&f.target, f.outcome);
        let hint = match (o.status, &o.error, t.direction) {
            (Status::Fail, Some(e), _) => Some(diagnosis::hint(t, e, &o.evidence)),
            (Status::Fail, None, _) => Some(t.fix.clone()),
            (Status::Skip, _, Direction::Inbound) => Some(t.fix.clone()),
            _ => None,
        };
        let ev = *o.evidence;
        ResultEntry {
            id: t.id.clone(),
            name: t.name.clone(),
            protocol: t.protocol(),
            host: t.host.to_string(),
            port: t.port(),
            profiles: t.profiles.clone(),
            service_tag: t.service_tag.clone(),
            required: t.required,
            expect: t.expect,
            direction: t.direction,
            status: o.status,
            error: o.error.map(|e| ErrorEntry {
                kind: e.kind,
                message: e.message,
            }),
            skip_reason: o.skip_reason,
            note: match (ev.note, &ev.unverified) {
                (Some(n), Some(u)) => Some(format!("{n}; unverified: {u}")),
                (None, Some(u)) => Some(format!("unverified: {u}")),
                (n, None) => n,
            },
            unverified: o.status == Status::Pass && ev.unverified.is_some(),
            duration_ms: round2(f.duration.as_secs_f64() * 1000.0),
            phases_ms: ev
                .phases_ms
                .iter()
                .map(|(p, ms)| (*p, round2(*ms)))
                .collect(),
            addresses: ev.addresses.iter().map(|a| a.to_string()).collect(),
            resolver: ev.resolver,
            private: ev.private,
            cname_chain: ev.cname_chain,
            peer: ev.peer.map(|p| p.to_string()),
            via_proxy: ev.via_proxy,
            tls: ev.tls,
            http_status: ev.http_status,
            warnings: ev.warnings,
            responder: ev.responder,
            firewall: ev.firewall,
            hint,
            why: t.why.clone(),
            wait: None,
            trace: ev.trace,
            address_tags: BTreeMap::new(),
            rules: None,
            route: None,
        }
    }

    /// A required outbound target that was not checked (a variable is missing).
    pub fn is_required_skip(&self) -> bool {
        self.status == Status::Skip && self.required && self.direction == Direction::Outbound
    }

    /// `--strict`: an unconfirmed pass and a required skip become failures.
    fn strict(&mut self) {
        let (kind, message, fix) = if self.unverified {
            (
                ErrorKind::Unverified,
                format!(
                    "--strict: the pass could not be confirmed: {}",
                    self.note
                        .as_deref()
                        .and_then(|n| n.rsplit_once("unverified: "))
                        .map_or("no evidence", |(_, why)| why)
                ),
                if self
                    .note
                    .as_deref()
                    .is_some_and(|n| n.contains("application rule answers TCP itself"))
                {
                    "Prove the path at the layer its traffic uses: a tls or http target for this host and \
                     port (vnetprobe probe tls HOST:PORT); a TCP connect there may be the firewall's own answer."
                } else {
                    "Confirm the rule from Azure's side (Network Watcher IP flow verify or the effective \
                     security rules of the node's NIC), or run without --strict to accept an unconfirmed pass."
                },
            )
        } else if self.is_required_skip() {
            (
                ErrorKind::NotChecked,
                format!(
                    "--strict: a required target was not checked ({})",
                    self.skip_reason.as_deref().unwrap_or("skipped")
                ),
                "Give the variable the skip reason names (a flag, a VNETPROBE_* variable or the config file), \
                 or select profiles without this target.",
            )
        } else {
            return;
        };
        self.status = Status::Fail;
        self.hint = Some(fix.to_string());
        self.error = Some(ErrorEntry { kind, message });
    }

    /// `host:port`, or the host alone.
    pub fn endpoint(&self) -> String {
        crate::address::endpoint(&self.host, self.port)
    }
}

/// Escapes text for XML and HTML (JUnit, the status page): the five markup characters; control
/// characters XML cannot hold are dropped, and other hidden characters are written as references,
/// so none reaches a terminal raw.
pub fn escape_markup(s: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot hold the other C0 characters at all, even as references.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c if c != '\n' && crate::printable::is_hidden(c) => {
                let _ = write!(out, "&#x{:x};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// RFC 3339 in UTC, whole seconds.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

impl Report {
    /// The report of one run. With `strict`, a pass the node could not confirm and a required
    /// target that was skipped are failures (`unverified`, `not_checked`).
    pub fn new(
        context: BTreeMap<String, String>,
        started: SystemTime,
        took: Duration,
        finished: Vec<Finished>,
        strict: bool,
    ) -> Report {
        let mut results: Vec<ResultEntry> = finished
            .into_iter()
            .map(ResultEntry::from_finished)
            .collect();
        if strict {
            results.iter_mut().for_each(ResultEntry::strict);
        }
        Report {
            version: VERSION,
            node: crate::context::node_name(),
            started_at: rfc3339(started),
            duration_ms: took.as_millis() as u64,
            context,
            context_sources: BTreeMap::new(),
            summary: summarise(&results),
            causes: diagnosis::causes(&results),
            results,
            vnetprobe_version: Some(format!(
                "{} {}",
                crate::build_info::VERSION,
                crate::build_info::COMMIT
            )),
            catalog_digest: None,
            tag_features: None,
            tag_prefixes: BTreeMap::new(),
        }
    }
}

/// The counts of a run's results.
fn summarise(results: &[ResultEntry]) -> Summary {
    {
        let mut summary = Summary::default();
        for r in results {
            match r.status {
                Status::Pass => {
                    summary.pass += 1;
                    summary.unverified += usize::from(r.unverified);
                }
                Status::Fail => {
                    summary.fail += 1;
                    if r.required {
                        summary.required_fail += 1;
                    }
                }
                Status::Skip => {
                    summary.skip += 1;
                    summary.required_skip += usize::from(r.is_required_skip());
                }
            }
        }
        summary
    }
}

impl Report {
    /// Whether any target was checked at all: a run in which every target was skipped proved
    /// nothing, whatever its exit code would say.
    pub fn checked_anything(&self) -> bool {
        self.summary.pass + self.summary.fail > 0
    }

    /// The contract: 0 when every required target met its expectation, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.summary.required_fail > 0 { 1 } else { 0 }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::catalog::{Check, Expect, Host, Target};
    use crate::outcome::{Outcome, ProbeError};

    pub(crate) fn finished(kind: Option<ErrorKind>, required: bool) -> Finished {
        let target = Target {
            id: "t".into(),
            name: "t".into(),
            host: Host::Ready("h".into()),
            check: Check::Tcp {
                port: 443,
                responder: false,
            },
            profiles: vec!["internet".into()],
            service_tag: None,
            required,
            expect: Expect::Reachable,
            why: "w".into(),
            fix: "Allow outbound TCP 443.".into(),
            section: None,
            direction: Default::default(),
            client: Default::default(),
            timeout: None,
        };
        let outcome = match kind {
            Some(k) => Outcome {
                status: Status::Fail,
                error: Some(ProbeError::new(k, "m")),
                skip_reason: None,
                evidence: Default::default(),
            },
            None => Outcome {
                status: Status::Pass,
                error: None,
                skip_reason: None,
                evidence: Default::default(),
            },
        };
        Finished {
            target: target.into(),
            outcome,
            duration: Duration::from_millis(3),
        }
    }

    #[test]
    fn only_required_failures_set_the_exit_code() {
        let ctx = BTreeMap::new();
        let optional = [
            finished(Some(ErrorKind::TcpRefused), false),
            finished(None, true),
        ];
        let r = Report::new(
            ctx.clone(),
            SystemTime::now(),
            Duration::ZERO,
            optional.to_vec(),
            false,
        );
        assert_eq!(
            (r.summary.fail, r.summary.required_fail, r.exit_code()),
            (1, 0, 0)
        );
        let required = [finished(Some(ErrorKind::TcpRefused), true)];
        assert_eq!(
            Report::new(
                ctx,
                SystemTime::now(),
                Duration::ZERO,
                required.to_vec(),
                false
            )
            .exit_code(),
            1
        );
    }

    fn report_of(run: &[Finished], strict: bool) -> Report {
        Report::new(
            BTreeMap::new(),
            SystemTime::now(),
            Duration::ZERO,
            run.to_vec(),
            strict,
        )
    }

    fn unverified_pass() -> Finished {
        let mut f = finished(None, true);
        f.outcome.evidence.unverified = Some("silence".into());
        f
    }

    fn skipped(required: bool, direction: Direction) -> Finished {
        let mut f = finished(None, required);
        std::sync::Arc::make_mut(&mut f.target).direction = direction;
        f.outcome = Outcome::skip("needs batch_account");
        f
    }

    #[test]
    fn unconfirmed_passes_and_required_skips_are_counted_and_strict_fails_them() {
        let run = [
            unverified_pass(),
            skipped(true, Direction::Outbound),
            skipped(false, Direction::Outbound),
            skipped(true, Direction::Inbound),
            finished(None, true),
        ];
        let r = report_of(&run, false);
        let s = r.summary;
        assert_eq!(
            (s.pass, s.unverified, s.skip, s.required_skip),
            (2, 1, 3, 1)
        );
        assert_eq!(r.exit_code(), 0);
        assert!(r.results[0].unverified);
        assert_eq!(
            r.results[3].hint.as_deref(),
            Some("Allow outbound TCP 443.")
        );
        let line = table::summary_line(&r, false);
        assert!(line.contains("1 pass unconfirmed"), "{line}");
        assert!(line.contains("1 required not checked (t)"), "{line}");
        assert!(!line.contains("every required target met"), "{line}");

        let strict = report_of(&run, true);
        let kinds: Vec<Option<&str>> = strict
            .results
            .iter()
            .map(|r| r.error.as_ref().map(|e| e.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [Some("unverified"), Some("not_checked"), None, None, None]
        );
        assert_eq!((strict.summary.required_fail, strict.exit_code()), (2, 1));
        assert_eq!(
            strict.results[3].status,
            Status::Skip,
            "inbound rows stay skipped"
        );
    }

    #[test]
    fn a_run_of_skips_checked_nothing() {
        let r = report_of(&[skipped(true, Direction::Outbound)], false);
        assert!(!r.checked_anything());
        assert!(report_of(&[finished(None, true)], false).checked_anything());
    }
}
