//! JUnit XML, for CI systems that show test reports: one test case per target, grouped by
//! profile, failures carrying the error kind, the message and the fix.

use std::fmt::Write;

use super::{Report, ResultEntry, escape_markup as escape};
use crate::outcome::Status;

fn group(r: &ResultEntry) -> &str {
    r.profiles.first().map(String::as_str).unwrap_or("other")
}

pub fn render(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let s = &report.summary;
    let _ = writeln!(
        out,
        "<testsuites name=\"vnetprobe\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{:.3}\" timestamp=\"{}\">",
        report.results.len(),
        s.fail,
        s.skip,
        report.duration_ms as f64 / 1000.0,
        escape(&report.started_at)
    );
    let mut groups: Vec<&str> = Vec::new();
    for r in &report.results {
        if !groups.contains(&group(r)) {
            groups.push(group(r));
        }
    }
    for g in groups {
        let cases: Vec<&ResultEntry> = report.results.iter().filter(|r| group(r) == g).collect();
        let count = |st: Status| cases.iter().filter(|r| r.status == st).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
            escape(g),
            cases.len(),
            count(Status::Fail),
            count(Status::Skip)
        );
        for r in cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{} {}\" time=\"{:.3}\"",
                escape(g),
                r.protocol,
                escape(&r.id),
                escape(&r.endpoint()),
                r.duration_ms / 1000.0
            );
            match r.status {
                Status::Pass => out.push_str("/>\n"),
                Status::Skip => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        escape(r.skip_reason.as_deref().unwrap_or(""))
                    );
                }
                Status::Fail => {
                    let (kind, message) = r
                        .error
                        .as_ref()
                        .map(|e| (e.kind.as_str(), e.message.as_str()))
                        .unwrap_or(("", ""));
                    let _ = writeln!(
                        out,
                        ">\n      <failure type=\"{}\" message=\"{}\">{}\nfix: {}</failure>\n    </testcase>",
                        escape(kind),
                        escape(message),
                        escape(message),
                        escape(r.hint.as_deref().unwrap_or(""))
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            super::escape("a<b>&\"c'\u{1}\r\u{9b}\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#xd;&#x9b;\n"
        );
    }
}
