//! The table for people: grouped by profile, one line per target that fits the terminal's width
//! (the endpoint shortened in its middle when it must be), the detail and the fix wrapped under
//! the row, a one-line summary. Colour only when asked (a terminal without NO_COLOR). `probe`
//! adds the evidence of its one target: addresses, peer, certificate, HTTP status, phases.

use std::fmt::Write;

use super::{Report, ResultEntry};
use crate::printable::printable;
use crate::probe::Status;

const RESET: &str = "\x1b[0m";
/// Continuation lines (detail, fix) start under the target column.
const INDENT: usize = 10;
/// The widest TARGET column; longer ids are shortened.
const MAX_ID: usize = 34;
/// The narrowest ENDPOINT column.
const MIN_ENDPOINT: usize = 12;
/// A DETAIL column narrower than this puts long details under the row instead.
const MIN_DETAIL: usize = 30;

fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour {
        format!("\x1b[{code}m{text}{RESET}")
    } else {
        text.to_string()
    }
}

/// The widest a padded column gets: a longer value runs over it instead of widening every row
/// (and a width over 65,535 would make `format!` panic).
pub(crate) const MAX_COLUMN: usize = 64;

/// The width of a column holding values of `lens`: at least `min`, at most `MAX_COLUMN`.
pub(crate) fn column(lens: impl Iterator<Item = usize>, min: usize) -> usize {
    lens.max().unwrap_or(min).clamp(min, MAX_COLUMN.max(min))
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// `s` padded (or shortened at its end with `…`) to exactly `w` columns.
fn cell(s: &str, w: usize) -> String {
    if len(s) <= w {
        return format!("{s:<w$}");
    }
    let kept: String = s.chars().take(w.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// An endpoint shortened to `w` columns in the middle of its host: the start (an instance or
/// account name) and the end (the domain) and the port stay.
pub fn fit_endpoint(ep: &str, w: usize) -> String {
    if len(ep) <= w {
        return ep.to_string();
    }
    let (host, port) = match ep.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => {
            (h, format!(":{p}"))
        }
        _ => (ep, String::new()),
    };
    let keep = w.saturating_sub(len(&port) + 1);
    if keep < 4 {
        return cell(ep, w);
    }
    let head = keep.div_ceil(2);
    let tail = keep - head;
    let chars: Vec<char> = host.chars().collect();
    let start: String = chars[..head].iter().collect();
    let end: String = chars[chars.len() - tail..].iter().collect();
    format!("{start}…{end}{port}")
}

/// Greedy word wrap at `width` columns; a longer word is cut.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(10);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while len(&word) > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            lines.push(head);
        }
        if !line.is_empty() && len(&line) + 1 + len(&word) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `label text`, wrapped at `width`, every line starting at `indent`, continuations under the
/// text. The label is painted bold.
fn labelled(out: &mut String, colour: bool, indent: usize, label: &str, text: &str, width: usize) {
    let pad = " ".repeat(indent);
    let hang = " ".repeat(indent + len(label) + 1);
    for (i, line) in wrap(text, width.saturating_sub(indent + len(label) + 1))
        .iter()
        .enumerate()
    {
        if i == 0 {
            let _ = writeln!(out, "{pad}{} {line}", paint(colour, "1", label));
        } else {
            let _ = writeln!(out, "{hang}{line}");
        }
    }
}

fn time(r: &ResultEntry) -> String {
    if r.status == Status::Skip {
        return "-".into();
    }
    ms_text(r.duration_ms)
}

fn ms_text(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

fn detail(r: &ResultEntry) -> String {
    let mut d = match (&r.error, &r.skip_reason) {
        (Some(e), _) => format!("{}: {}", e.kind, e.message),
        (None, Some(s)) => s.clone(),
        (None, None) => r.note.clone().unwrap_or_default(),
    };
    let mut add = |part: String| {
        let _ = write!(d, "{}{part}", if d.is_empty() { "" } else { "; " });
    };
    if let Some(p) = &r.via_proxy {
        add(format!("via proxy {p}"));
    }
    for w in &r.warnings {
        add(format!("warning: {w}"));
    }
    if let Some(w) = &r.wait {
        match (w.reachable_after_ms, r.status) {
            (Some(ms), Status::Pass) if w.attempts > 1 => add(format!(
                "reachable after {} (attempt {})",
                ms_text(ms),
                w.attempts
            )),
            (_, Status::Fail) if w.attempts > 1 => {
                add(format!("still failing after {} attempts", w.attempts))
            }
            _ => {}
        }
    }
    // Messages and notes quote peers: certificate names, reason phrases, proxy replies.
    printable(&d).into_owned()
}

/// The column widths of one table.
struct Columns {
    id: usize,
    endpoint: usize,
    /// Columns before DETAIL.
    fixed: usize,
    width: usize,
}

impl Columns {
    fn fit(results: &[ResultEntry], width: usize) -> Columns {
        let id = results
            .iter()
            .map(|r| len(&r.id))
            .max()
            .unwrap_or(6)
            .clamp(6, MAX_ID.min(width / 3));
        let ep_max = results
            .iter()
            .map(|r| len(&r.endpoint()))
            .max()
            .unwrap_or(8)
            .max(8);
        // "  STATUS  ID  ENDPOINT  PROTO  TIME  "
        let around = 2 + 6 + 2 + id + 2 + 2 + 5 + 2 + 7 + 2;
        let endpoint = ep_max.min(width.saturating_sub(around)).max(MIN_ENDPOINT);
        Columns {
            id,
            endpoint,
            fixed: around + endpoint,
            width,
        }
    }

    fn row(&self, out: &mut String, status: &str, r: &ResultEntry, colour: bool) {
        let head = format!(
            "  {status}  {}  {}  {:<5}  {:>7}  ",
            cell(&printable(&r.id), self.id),
            cell(
                &fit_endpoint(&printable(&r.endpoint()), self.endpoint),
                self.endpoint
            ),
            r.protocol,
            time(r),
        );
        let d = detail(r);
        let room = self.width.saturating_sub(self.fixed);
        if len(&d) <= room {
            let _ = writeln!(out, "{}", format!("{head}{d}").trim_end());
        } else if room >= MIN_DETAIL {
            // Wrapped inside its column: the error kind stays on the row people scan.
            for (i, line) in wrap(&d, room).iter().enumerate() {
                let lead = if i == 0 {
                    head.clone()
                } else {
                    " ".repeat(self.fixed)
                };
                let _ = writeln!(out, "{lead}{line}");
            }
        } else {
            let _ = writeln!(out, "{}", head.trim_end());
            for line in wrap(&d, self.width.saturating_sub(INDENT)) {
                let _ = writeln!(out, "{}{line}", " ".repeat(INDENT));
            }
        }
        if let Some(hint) = &r.hint {
            let label = match r.status {
                Status::Skip => "verify:",
                _ => "fix:",
            };
            labelled(out, colour, INDENT, label, &printable(hint), self.width);
        }
    }
}

/// Renders the report to fit `width` columns; `colour` adds ANSI colours.
pub fn render(report: &Report, colour: bool, width: usize) -> String {
    render_titled(report, "check", colour, width, "")
}

/// The table; `extra` goes after the rows, before the failures and the summary.
fn render_titled(report: &Report, title: &str, colour: bool, width: usize, extra: &str) -> String {
    let mut out = String::new();
    let ctx = &report.context;
    let mut head = format!(
        "vnetprobe {title} · cloud {}",
        printable(ctx.get("cloud").map(String::as_str).unwrap_or("public"))
    );
    if let Some(region) = ctx.get("region") {
        let _ = write!(head, " · region {}", printable(region));
    }
    let _ = write!(
        head,
        " · {} targets in {} ms",
        report.results.len(),
        report.duration_ms
    );
    for line in wrap(&head, width) {
        let _ = writeln!(out, "{line}");
    }

    let cols = Columns::fit(&report.results, width);
    let mut groups: Vec<&str> = Vec::new();
    for r in &report.results {
        let g = r.profiles.first().map(String::as_str).unwrap_or("other");
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for group in groups {
        let _ = writeln!(out, "\n{}", paint(colour, "1", group));
        let header = format!(
            "  {:<6}  {}  {}  {:<5}  {:>7}  DETAIL",
            "STATUS",
            cell("TARGET", cols.id),
            cell("ENDPOINT", cols.endpoint),
            "PROTO",
            "TIME"
        );
        // DETAIL heads the column only where details can stand on the row.
        let header = match len(&header) > width {
            true => header.trim_end_matches("DETAIL").trim_end().to_string(),
            false => header,
        };
        let _ = writeln!(out, "{header}");
        for r in report
            .results
            .iter()
            .filter(|r| r.profiles.first().map(String::as_str).unwrap_or("other") == group)
        {
            let status = match r.status {
                Status::Pass if r.unverified => paint(colour, "33", "pass? "),
                Status::Pass => paint(colour, "32", "pass  "),
                Status::Fail if r.required => paint(colour, "1;31", "FAIL  "),
                Status::Fail => paint(colour, "33", "fail  "),
                Status::Skip => paint(colour, "2", "skip  "),
            };
            cols.row(&mut out, &status, r, colour);
        }
    }
    out.push_str(extra);
    if !report.causes.is_empty() {
        let _ = writeln!(out, "\n{}", paint(colour, "1", "causes"));
        for c in &report.causes {
            labelled(&mut out, colour, 2, &c.kind, &printable(&c.message), width);
            labelled(&mut out, colour, INDENT, "fix:", &printable(&c.fix), width);
            labelled(
                &mut out,
                colour,
                INDENT,
                "targets:",
                &c.targets.join(", "),
                width,
            );
        }
    }
    let failed: Vec<&ResultEntry> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Fail)
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\n{}", paint(colour, "1", "failures"));
        for r in failed {
            let kind = r.error.as_ref().map(|e| e.kind.as_str()).unwrap_or("");
            let req = if r.required { "" } else { " (optional)" };
            let line = format!(
                "  {}  {}  {kind}{req}",
                cell(&printable(&r.id), cols.id),
                cell(
                    &fit_endpoint(&printable(&r.endpoint()), cols.endpoint),
                    cols.endpoint
                )
            );
            let _ = writeln!(out, "{}", cell(line.trim_end(), width).trim_end());
        }
    }
    let _ = writeln!(out);
    let summary = summary_line(report, false);
    let lines = wrap(&summary, width.saturating_sub(9));
    if colour && lines.len() == 1 {
        let _ = writeln!(out, "{}", summary_line(report, true));
    } else {
        for (i, line) in lines.iter().enumerate() {
            let pad = if i == 0 { "" } else { "         " };
            let _ = writeln!(out, "{pad}{line}");
        }
    }
    out
}

/// `probe`'s table: the row, then what a troubleshooter wants on one screen: the addresses
/// and CNAME chain, the peer that answered and the route, the certificate, the HTTP status and
/// the phases.
pub fn render_probe(report: &Report, colour: bool, width: usize) -> String {
    let block = match report.results.first() {
        Some(r) => evidence(r, colour, width),
        None => String::new(),
    };
    render_titled(report, "probe", colour, width, &block)
}

fn evidence(r: &ResultEntry, colour: bool, width: usize) -> String {
    let mut out = String::new();
    let mut rows: Vec<(&str, String)> = Vec::new();
    if !r.addresses.is_empty() {
        let private = match r.private {
            Some(true) => " (private)",
            Some(false) => " (public)",
            None => "",
        };
        rows.push(("addresses", format!("{}{private}", r.addresses.join(", "))));
    }
    if !r.cname_chain.is_empty() {
        rows.push(("cname", r.cname_chain.join(" -> ")));
    }
    if let Some(peer) = &r.peer {
        let route = match &r.via_proxy {
            Some(p) => format!(" via proxy {p}"),
            None => " (direct)".into(),
        };
        rows.push(("peer", format!("{peer}{route}")));
    } else if let Some(p) = &r.via_proxy {
        rows.push(("proxy", p.clone()));
    }
    if let Some(tls) = &r.tls {
        let version = tls.version.clone().unwrap_or_else(|| "TLS".into());
        rows.push(("tls", format!("{version}, trusted by {}", tls.trusted_by)));
        if let Some(leaf) = tls.chain.first() {
            rows.push(("subject", leaf.subject.clone()));
            rows.push(("issuer", leaf.issuer.clone()));
            if !leaf.sans.is_empty() {
                rows.push(("names", leaf.sans.join(", ")));
            }
        }
        if let Some(exp) = tls.earliest_expiry {
            rows.push(("expires", expiry(exp)));
        }
    }
    if let Some(code) = r.http_status {
        rows.push(("http", code.to_string()));
    }
    if !r.phases_ms.is_empty() {
        let phases: Vec<String> = r
            .phases_ms
            .iter()
            .map(|(p, ms)| format!("{} {}", p.as_str(), ms_text(*ms)))
            .collect();
        rows.push(("phases", phases.join(" · ")));
    }
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\n{}", paint(colour, "1", "evidence"));
    for (label, text) in rows {
        let hang = " ".repeat(2 + 11);
        // Certificate names and CNAMEs come from peers: printable before the terminal.
        let text = printable(&text);
        for (i, line) in wrap(&text, width.saturating_sub(13)).iter().enumerate() {
            if i == 0 {
                let _ = writeln!(out, "  {label:<10} {line}");
            } else {
                let _ = writeln!(out, "{hang}{line}");
            }
        }
    }
    out
}

/// An expiry as RFC 3339 and the days left (or past).
fn expiry(not_after: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(not_after.max(0) as u64);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = (not_after - now) / 86_400;
    let when = if not_after >= now {
        format!("in {days} days")
    } else {
        format!("{} days ago: EXPIRED", -days)
    };
    format!("{} ({when})", super::rfc3339(at))
}

/// `summary: ...`: the counts, what was not confirmed or not checked, and the verdict. A run
/// with required targets skipped never says that every required target met its expectation.
pub fn summary_line(report: &Report, colour: bool) -> String {
    let s = &report.summary;
    let mut line = format!("summary: {} pass, {} fail, {} skip", s.pass, s.fail, s.skip);
    let mut note = |text: String| {
        let _ = write!(line, "; {}", paint(colour, "33", &text));
    };
    if s.unverified > 0 {
        let passes = if s.unverified == 1 { "pass" } else { "passes" };
        note(format!("{} {passes} unconfirmed", s.unverified));
    }
    if s.required_skip > 0 {
        let mut ids: Vec<&str> = report
            .results
            .iter()
            .filter(|r| r.is_required_skip())
            .map(|r| r.id.as_str())
            .collect();
        ids.dedup();
        note(format!(
            "{} required not checked ({})",
            s.required_skip,
            ids.join(", ")
        ));
    }
    let verdict = if s.required_fail > 0 {
        paint(
            colour,
            "1;31",
            &format!("{} required target(s) failing", s.required_fail),
        )
    } else if s.required_skip > 0 || s.unverified > 0 {
        paint(
            colour,
            "32",
            "every required target that ran met its expectation",
        )
    } else {
        paint(colour, "32", "every required target met its expectation")
    };
    let _ = write!(line, "; {verdict}");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_shortened_in_the_middle_keeping_the_port() {
        let ep = "ci1.westeurope.instances.azureml.ms:8787";
        assert_eq!(fit_endpoint(ep, 60), ep);
        let short = fit_endpoint(ep, 24);
        assert_eq!(len(&short), 24, "{short}");
        assert!(
            short.starts_with("ci1.") && short.ends_with("ml.ms:8787"),
            "{short}"
        );
        assert_eq!(len(&fit_endpoint("[::1]:443", 6)), 6);
        assert_eq!(
            len(&fit_endpoint("a-very-long-dns-only-name.example", 12)),
            12
        );
    }

    fn report() -> Report {
        let long_fix = "Allow outbound TCP 18881 to the AzureMachineLearning service tag in the NSG and firewall; rules that allow only 443 to Azure ML break IntelliSense.";
        serde_json::from_value(serde_json::json!({
            "version": 1, "started_at": "2026-01-01T00:00:00Z", "duration_ms": 1500,
            "context": {"cloud": "public", "region": "westeurope"},
            "summary": {"pass": 2, "fail": 1, "skip": 2, "required_fail": 1, "required_skip": 1},
            "results": [
                {"id": "aml-instance-tls-intellisense", "name": "n", "protocol": "tls",
                 "host": "computeinstance-with-a-long-name.westeurope.instances.azureml.ms", "port": 18881,
                 "profiles": ["no-public-ip"], "required": true, "expect": "reachable", "status": "fail",
                 "error": {"kind": "tcp_timeout", "message": "10.0.2.4:18881: no answer within 2000 ms, the SYN was dropped by something on the path"},
                 "duration_ms": 2000.0, "hint": long_fix},
                {"id": "monitor-appinsights-microsoft-tls", "name": "n", "protocol": "tls",
                 "host": "dc.applicationinsights.microsoft.com", "port": 443, "profiles": ["internet"],
                 "required": false, "expect": "reachable", "status": "pass", "duration_ms": 38.0,
                 "note": "direct", "unverified": false},
                {"id": "aml-tundra-udp", "name": "n", "protocol": "udp",
                 "host": "westeurope.tundra.azureml.ms", "port": 5831, "profiles": ["internet"],
                 "required": true, "expect": "reachable", "status": "pass", "unverified": true,
                 "duration_ms": 2000.0,
                 "note": "direct; open|filtered: no reply and no rejection within 2000 ms; unverified: silence is all a node sees of an open UDP port and of an NSG or firewall drop alike"},
                {"id": "aml-instance-ws", "name": "n", "protocol": "ws",
                 "host": "<instance>.westeurope.instances.azureml.ms", "port": 443, "profiles": ["no-public-ip"],
                 "required": true, "expect": "reachable", "status": "skip",
                 "skip_reason": "needs instance: set --set instance=VALUE (or VNETPROBE_INSTANCE)"},
                {"id": "inbound-aml-44224", "name": "n", "protocol": "tcp", "host": "vm", "port": 44224,
                 "profiles": ["public-ip"], "required": true, "expect": "reachable", "status": "skip",
                 "direction": "inbound", "skip_reason": "inbound: cannot be observed from this node",
                 "hint": "Verify an inbound NSG rule allowing TCP 44224 from the AzureMachineLearning service tag to the compute subnet (az network watcher test-ip-flow --direction Inbound --protocol TCP --local NODE_IP:44224 --remote AML_ADDRESS:PORT --vm VM --resource-group RG)."}
            ]
        }))
        .expect("a valid report")
    }

    #[test]
    fn the_table_fits_80_and_100_columns() {
        let r = report();
        for width in [80, 100] {
            let text = render(&r, false, width);
            for line in text.lines() {
                assert!(
                    len(line) <= width,
                    "{width}: {} columns: {line:?}\n{text}",
                    len(line)
                );
            }
            assert!(!text.contains('{'), "no raw template: {text}");
            // The shortened endpoint keeps its port; the detail and the fix wrap under the row.
            assert!(text.contains(":18881  tls"), "{text}");
            assert!(
                text.contains("\n          tcp_timeout: 10.0.2.4:18881"),
                "{text}"
            );
            assert!(
                text.contains("\n          fix: Allow outbound TCP 18881"),
                "{text}"
            );
            assert!(
                text.contains("\n          verify: Verify an inbound"),
                "{text}"
            );
            assert!(
                text.contains("break IntelliSense."),
                "the whole fix is there: {text}"
            );
            assert!(text.contains("  <instance>"), "{text}");
        }
        // A short detail stays on its row when there is room.
        let wide = render(&r, false, 160);
        assert!(
            wide.lines()
                .any(|l| l.contains("monitor-appinsights-microsoft-tls") && l.ends_with("direct")),
            "{wide}"
        );
    }

    #[test]
    fn a_probe_shows_its_evidence() {
        let mut r = report();
        r.results.truncate(2);
        r.results.remove(0);
        let one = &mut r.results[0];
        one.addresses = vec!["20.1.2.3".into()];
        one.private = Some(false);
        one.peer = Some("20.1.2.3:443".into());
        one.http_status = Some(200);
        one.tls = Some(crate::probe::TlsEvidence {
            version: Some("TLSv1.3".into()),
            chain: vec![crate::probe::CertInfo {
                subject: "CN=*.applicationinsights.microsoft.com".into(),
                issuer: "CN=Microsoft Azure RSA TLS Issuing CA 03".into(),
                not_after: 4_102_444_800,
                sans: vec!["dc.applicationinsights.microsoft.com".into()],
            }],
            trusted_by: "public".into(),
            earliest_expiry: Some(4_102_444_800),
        });
        let text = render_probe(&r, false, 80);
        for want in [
            "vnetprobe probe",
            "addresses  20.1.2.3 (public)",
            "peer       20.1.2.3:443 (direct)",
            "tls        TLSv1.3, trusted by public",
            "subject    CN=*.applicationinsights.microsoft.com",
            "issuer     CN=Microsoft Azure RSA TLS Issuing CA 03",
            "expires    2100-01-01T00:00:00Z (in ",
            "http       200",
        ] {
            assert!(text.contains(want), "{want:?} in\n{text}");
        }
        assert!(text.find("evidence").unwrap() < text.find("summary:").unwrap());
    }

    #[test]
    fn wrap_cuts_words_longer_than_the_line() {
        assert_eq!(wrap("aaaa bbbb cc", 10), ["aaaa bbbb", "cc"]);
        assert_eq!(wrap(&"x".repeat(25), 10).len(), 3);
    }
}
