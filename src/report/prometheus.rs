//! The Prometheus text renderer: one report as metric families, built in a fresh registry per
//! render so a target removed from the catalog leaves no stale series. The names and labels are
//! a contract shared with packaging's alert rules and dashboard (DESIGN.md, Metrics).

use std::time::{Duration, UNIX_EPOCH};

use prometheus::{Gauge, GaugeVec, Opts, Registry, TextEncoder};

use super::{Report, ResultEntry};
use crate::catalog::Protocol;
use crate::outcome::Status;

/// The labels every per-target family carries.
const TARGET_LABELS: [&str; 5] = ["target", "protocol", "host", "port", "required"];

/// The report's families, registered into a fresh registry and encoded.
pub fn render(report: &Report) -> String {
    let registry = Registry::new();
    register(report, &registry);
    register_build_info(&registry);
    encode(&registry)
}

/// `vnetprobe_build_info{version,revision,target,static,rustc_version} 1`: what `--version` says.
pub fn register_build_info(registry: &Registry) {
    let labels = crate::build_info::labels();
    let names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
    let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
    let info = gauge_vec(
        registry,
        "vnetprobe_build_info",
        "The vnetprobe build that produced these metrics.",
        &names,
    );
    info.with_label_values(&values).set(1.0);
}

/// Encodes every family of `registry` in the text format (families sorted by name).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut out)
        .expect("our families are always well formed");
    out
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let vec = GaugeVec::new(Opts::new(name, help), labels).expect("a valid metric name and labels");
    registry
        .register(Box::new(vec.clone()))
        .expect("each family is registered once per registry");
    vec
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("a valid metric name");
    registry
        .register(Box::new(g.clone()))
        .expect("each family is registered once per registry");
    g
}

/// The label values of a result, in `TARGET_LABELS` order.
fn target_labels(r: &ResultEntry) -> [String; 5] {
    [
        r.id.clone(),
        r.protocol.to_string(),
        r.host.clone(),
        r.port.map(|p| p.to_string()).unwrap_or_default(),
        r.required.to_string(),
    ]
}

fn with_extra<'a>(base: &'a [String; 5], extra: &'a str) -> [&'a str; 6] {
    [&base[0], &base[1], &base[2], &base[3], &base[4], extra]
}

/// Registers the report's per-target and per-run families into `registry`.
pub fn register(report: &Report, registry: &Registry) {
    let with = |extra: &'static str| {
        let mut l = TARGET_LABELS.to_vec();
        l.push(extra);
        l
    };
    let success = gauge_vec(
        registry,
        "vnetprobe_probe_success",
        "Whether the target met its expectation in the last run (1) or not (0); skipped targets have no series.",
        &TARGET_LABELS,
    );
    let skipped = gauge_vec(
        registry,
        "vnetprobe_probe_skipped",
        "1 for a target skipped in the last run (a variable its host needs is not set).",
        &TARGET_LABELS,
    );
    let unverified = gauge_vec(
        registry,
        "vnetprobe_probe_unverified",
        "1 for a target that passed without proof the node can see (UDP silence, a sign-in wall instead of an upgrade).",
        &TARGET_LABELS,
    );
    let duration = gauge_vec(
        registry,
        "vnetprobe_probe_duration_seconds",
        "How long the target's probe took in the last run.",
        &TARGET_LABELS,
    );
    let phase = gauge_vec(
        registry,
        "vnetprobe_probe_phase_seconds",
        "Time spent in each phase of the target's probe in the last run (dns, connect, proxy_connect, tls, upgrade, first_byte, wait).",
        &with("phase"),
    );
    let error = gauge_vec(
        registry,
        "vnetprobe_probe_error_info",
        "1 for a target failing in the last run, labelled with the kind of its error (a fixed vocabulary).",
        &with("kind"),
    );
    let dns_private = gauge_vec(
        registry,
        "vnetprobe_dns_private",
        "For DNS targets that got an answer in the last run: 1 if every address is private, 0 if any is public.",
        &["target", "host"],
    );
    let expiry = gauge_vec(
        registry,
        "vnetprobe_tls_cert_expiry_timestamp_seconds",
        "Earliest not-after date in the certificate chain the target presented in the last run, as a Unix timestamp.",
        &["target", "host", "port"],
    );
    for r in &report.results {
        let labels = target_labels(r);
        let base: Vec<&str> = labels.iter().map(String::as_str).collect();
        match r.status {
            Status::Skip => {
                skipped.with_label_values(&base).set(1.0);
                continue;
            }
            Status::Pass => {
                success.with_label_values(&base).set(1.0);
                if r.unverified {
                    unverified.with_label_values(&base).set(1.0);
                }
            }
            Status::Fail => success.with_label_values(&base).set(0.0),
        }
        duration
            .with_label_values(&base)
            .set(seconds(r.duration_ms));
        for (p, ms) in &r.phases_ms {
            phase
                .with_label_values(&with_extra(&labels, p.as_str()))
                .set(seconds(*ms));
        }
        if let Some(e) = r.error.as_ref().filter(|_| r.status == Status::Fail) {
            error
                .with_label_values(&with_extra(&labels, e.kind.as_str()))
                .set(1.0);
        }
        if r.protocol == Protocol::Dns
            && let Some(private) = r.private
        {
            dns_private
                .with_label_values(&[&r.id, &r.host])
                .set(if private { 1.0 } else { 0.0 });
        }
        if let Some(at) = r.tls.as_ref().and_then(|t| t.earliest_expiry) {
            expiry
                .with_label_values(&[&r.id, &r.host, &labels[3]])
                .set(at as f64);
        }
    }

    let targets = gauge_vec(
        registry,
        "vnetprobe_targets",
        "Targets of the last run by status.",
        &["status"],
    );
    let s = &report.summary;
    for (status, n) in [("pass", s.pass), ("fail", s.fail), ("skip", s.skip)] {
        targets.with_label_values(&[status]).set(n as f64);
    }
    gauge(
        registry,
        "vnetprobe_run_duration_seconds",
        "How long the last run took.",
    )
    .set(report.duration_ms as f64 / 1000.0);
    if let Some(end) = finished_at(report) {
        gauge(
            registry,
            "vnetprobe_last_run_timestamp_seconds",
            "When the last run finished, as a Unix timestamp.",
        )
        .set(end);
    }
}

/// Milliseconds as seconds, to the microsecond (0.00024, not 0.00023999999999999998).
fn seconds(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1_000_000.0
}

/// The end of the run in seconds since the epoch: its start (whole seconds) plus its duration.
fn finished_at(report: &Report) -> Option<f64> {
    let started = humantime::parse_rfc3339(&report.started_at).ok()?;
    let end = started + Duration::from_millis(report.duration_ms);
    Some(end.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{ErrorKind, TlsEvidence};
    use crate::report::ErrorEntry;

    /// A result as a reader of the JSON would see it: fields not named take their defaults.
    fn entry(id: &str, protocol: &str, port: Option<u16>, status: Status) -> ResultEntry {
        serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "protocol": protocol, "host": "h.example", "port": port,
            "required": true, "expect": "reachable", "status": status, "duration_ms": 12.5,
            "phases_ms": {"dns": 2.0, "connect": 10.0},
        }))
        .expect("a valid result")
    }

    fn report(results: Vec<ResultEntry>) -> Report {
        serde_json::from_value(serde_json::json!({
            "version": 1, "started_at": "2026-01-01T00:00:00Z", "duration_ms": 1500, "context": {},
            "summary": {"pass": 1, "fail": 1, "skip": 1, "required_fail": 1},
            "results": results,
        }))
        .expect("a valid report")
    }

    fn lines(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(String::from)
            .collect()
    }

    #[test]
    fn pass_fail_and_skip_become_the_contract_series() {
        let mut fail = entry("b", "tcp", Some(443), Status::Fail);
        fail.error = Some(ErrorEntry {
            kind: ErrorKind::TcpRefused,
            message: "secret detail".into(),
        });
        let mut dns = entry("d", "dns", None, Status::Pass);
        dns.private = Some(true);
        let text = render(&report(vec![
            entry("a", "tcp", Some(443), Status::Pass),
            fail,
            entry("c", "tcp", Some(80), Status::Skip),
            dns,
        ]));
        let a = r#"{host="h.example",port="443",protocol="tcp",required="true",target="a"}"#;
        let b = r#"{host="h.example",port="443",protocol="tcp",required="true",target="b"}"#;
        assert!(
            text.contains(&format!("vnetprobe_probe_success{a} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("vnetprobe_probe_success{b} 0\n")),
            "{text}"
        );
        assert!(text.contains(
            r#"vnetprobe_probe_skipped{host="h.example",port="80",protocol="tcp",required="true",target="c"} 1"#
        ));
        assert_eq!(
            lines(&text, "vnetprobe_probe_success{").len(),
            3,
            "skipped targets have no success series"
        );
        assert!(text.contains(r#"vnetprobe_probe_error_info{host="h.example",kind="tcp_refused",port="443",protocol="tcp",required="true",target="b"} 1"#));
        assert!(
            !text.contains("secret detail"),
            "messages never become labels"
        );
        assert!(text.contains(&format!("vnetprobe_probe_duration_seconds{a} 0.0125\n")));
        assert!(text.contains(r#"vnetprobe_probe_phase_seconds{host="h.example",phase="connect",port="443",protocol="tcp",required="true",target="a"} 0.01"#));
        assert!(text.contains(r#"vnetprobe_dns_private{host="h.example",target="d"} 1"#));
        assert!(text.contains(
            r#"vnetprobe_probe_success{host="h.example",port="",protocol="dns",required="true",target="d"} 1"#
        ));
        assert!(text.contains("vnetprobe_targets{status=\"skip\"} 1\n"));
        assert!(text.contains("vnetprobe_run_duration_seconds 1.5\n"));
        assert!(
            text.contains("vnetprobe_last_run_timestamp_seconds 1767225601.5\n"),
            "{text}"
        );
        let b = crate::build_info::labels();
        assert!(
            text.contains(&format!(
                "vnetprobe_build_info{{revision=\"{}\",rustc_version=\"{}\",static=\"{}\",target=\"{}\",version=\"{}\"}} 1\n",
                b[1].1, b[4].1, b[3].1, b[2].1, b[0].1
            )),
            "{text}"
        );
    }

    #[test]
    fn every_family_has_help_and_type() {
        let mut tls = entry("t", "tls", Some(443), Status::Pass);
        tls.tls = Some(TlsEvidence {
            earliest_expiry: Some(1_900_000_000),
            ..Default::default()
        });
        let text = render(&report(vec![tls]));
        assert!(text.contains(
            r#"vnetprobe_tls_cert_expiry_timestamp_seconds{host="h.example",port="443",target="t"} 1900000000"#
        ));
        let families: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap())
            .collect();
        // Every value is from the latest run, never measured at the scrape: the HELP says so.
        for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
            let name = help.split(' ').nth(2).unwrap();
            if name != "vnetprobe_build_info" {
                assert!(help.contains("last run"), "{help}");
            }
        }
        for f in families {
            assert!(text.contains(&format!("# HELP {f} ")), "no HELP for {f}");
            assert!(
                text.contains(&format!("# TYPE {f} gauge")),
                "no TYPE for {f}"
            );
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let mut odd = entry("a", "tcp", Some(1), Status::Pass);
        odd.host = "we\"ird\\host\n".into();
        odd.duration_ms = 0.24;
        let text = render(&report(vec![odd]));
        assert!(text.contains(r#"host="we\"ird\\host\n""#), "{text}");
        assert!(text.contains("} 0.00024\n"), "{text}");
    }

    #[test]
    fn a_fresh_registry_per_render_forgets_removed_targets() {
        let first = render(&report(vec![entry("old", "tcp", Some(1), Status::Pass)]));
        let second = render(&report(vec![entry("new", "tcp", Some(1), Status::Pass)]));
        assert!(first.contains("target=\"old\""));
        assert!(!second.contains("target=\"old\""));
    }
}
