//! The table for people: grouped by profile, one line per target, the fix under each failure,
//! a one-line summary. Colour only when asked (a terminal without NO_COLOR).

use std::fmt::Write;

use super::{Report, ResultEntry};
use crate::printable::printable;
use crate::probe::Status;

const RESET: &str = "\x1b[0m";

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

fn time(r: &ResultEntry) -> String {
    if r.status == Status::Skip {
        return "-".into();
    }
    let ms = r.duration_ms;
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
    if let Some(p) = &r.via_proxy {
        let _ = write!(d, "{}via proxy {p}", if d.is_empty() { "" } else { "; " });
    }
    for w in &r.warnings {
        let _ = write!(d, "{}warning: {w}", if d.is_empty() { "" } else { "; " });
    }
    // Messages and notes quote peers: certificate names, reason phrases, proxy replies.
    printable(&d).into_owned()
}

/// Renders the report; `colour` adds ANSI colours.
pub fn render(report: &Report, colour: bool) -> String {
    let mut out = String::new();
    let ctx = &report.context;
    let mut head = format!(
        "vnetprobe check · cloud {}",
        printable(ctx.get("cloud").map(String::as_str).unwrap_or("public"))
    );
    if let Some(region) = ctx.get("region") {
        let _ = write!(head, " · region {}", printable(region));
    }
    let _ = writeln!(
        out,
        "{head} · {} targets in {} ms",
        report.results.len(),
        report.duration_ms
    );

    let w_id = column(report.results.iter().map(|r| r.id.len()), 6);
    let w_ep = column(report.results.iter().map(|r| r.endpoint().len()), 8);
    let mut groups: Vec<&str> = Vec::new();
    for r in &report.results {
        let g = r.profiles.first().map(String::as_str).unwrap_or("other");
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    for group in groups {
        let _ = writeln!(out, "\n{}", paint(colour, "1", group));
        let _ = writeln!(
            out,
            "  {:<6}  {:<w_id$}  {:<w_ep$}  {:<5}  {:>7}  DETAIL",
            "STATUS", "TARGET", "ENDPOINT", "PROTO", "TIME"
        );
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
            let _ = writeln!(
                out,
                "  {status}  {:<w_id$}  {:<w_ep$}  {:<5}  {:>7}  {}",
                printable(&r.id),
                printable(&r.endpoint()),
                r.protocol,
                time(r),
                detail(r)
            );
            if let Some(hint) = &r.hint {
                let pad = " ".repeat(10);
                let hint = printable(hint);
                let label = match r.status {
                    Status::Skip => "verify:",
                    _ => "fix:",
                };
                let _ = writeln!(out, "{pad}{} {hint}", paint(colour, "1", label));
            }
        }
    }
    if !report.causes.is_empty() {
        let _ = writeln!(out, "\n{}", paint(colour, "1", "causes"));
        for c in &report.causes {
            let _ = writeln!(out, "  {}  {}", paint(colour, "1;31", &c.kind), c.message);
            let pad = " ".repeat(10);
            let _ = writeln!(out, "{pad}{} {}", paint(colour, "1", "fix:"), c.fix);
            let _ = writeln!(out, "{pad}targets: {}", c.targets.join(", "));
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
            let _ = writeln!(
                out,
                "  {:<w_id$}  {:<w_ep$}  {kind}{req}",
                printable(&r.id),
                printable(&r.endpoint())
            );
        }
    }
    let _ = writeln!(out, "\n{}", summary_line(report, colour));
    out
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
