//! The table for people: grouped by profile, one line per target that fits the terminal's width
//! (the endpoint shortened in its middle when it must be), the detail and the fix wrapped under
//! the row, a one-line summary. Colour only when asked (a terminal without NO_COLOR). `probe`
//! adds the evidence of its one target: addresses, peer, certificate, HTTP status, phases.

use std::fmt::Write;

use super::{Report, ResultEntry};
use crate::outcome::Status;
use crate::printable::printable;

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
    if let Some(t) = &r.trace {
        add(format!("trace: {}", t.summary));
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
        if let Some(azure) = azure_detail(r) {
            labelled(
                out,
                colour,
                INDENT,
                "azure:",
                &printable(&azure),
                self.width,
            );
        }
    }
}

/// What the exported files say, for a failing target and an evaluated inbound row: the deciding
/// NSG rule, the route, and the service tags of its addresses.
fn azure_detail(r: &ResultEntry) -> Option<String> {
    let inbound_checked =
        r.direction == crate::catalog::Direction::Inbound && r.status != Status::Skip;
    if r.status != Status::Fail && !inbound_checked {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(v) = &r.rules {
        parts.push(format!(
            "NSG {} rule {} ({}): {}",
            v.nsg, v.rule, v.priority, v.access
        ));
    }
    if let Some(route) = &r.route {
        let hop = route
            .next_hop
            .as_deref()
            .map(|h| format!(" {h}"))
            .unwrap_or_default();
        parts.push(format!(
            "route {} -> {}{hop} ({})",
            route.prefix, route.next_hop_type, route.source
        ));
    }
    for (addr, tags) in r.address_tags.iter().take(2) {
        parts.push(format!(
            "{addr} in {}",
            tags.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
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
            labelled(
                &mut out,
                colour,
                2,
                c.kind.as_str(),
                &printable(&c.message),
                width,
            );
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
mod tests;
