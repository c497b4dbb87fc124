//! The status page of `serve` (`/`): the latest run as one self-contained HTML page (inline
//! style, no script, no external asset: it must work inside a VNet without internet) with the
//! summary, the causes (failures grouped by error kind, with the fix), and a table of targets
//! coloured by status; it reloads itself every interval and reads on a phone.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Report, ResultEntry, escape_markup as escape};
use crate::outcome::{ErrorKind, Status};

const STYLE: &str = "\
:root{color-scheme:light dark;--pass:#1a7f37;--fail:#cf222e;--warn:#9a6700;--skip:#6e7781;--line:#d0d7de}
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;padding:12px;max-width:1200px}
h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .4em}
.meta{color:var(--skip);margin:0 0 .6em}
.verdict{font-weight:600;padding:.5em .7em;border-radius:6px;border-left:6px solid var(--pass)}
.verdict.failing{border-color:var(--fail)}.verdict.unconfirmed{border-color:var(--warn)}
.counts{display:flex;flex-wrap:wrap;gap:8px;margin:.6em 0;padding:0;list-style:none}
.counts li{border:1px solid var(--line);border-radius:6px;padding:.3em .7em}
.counts b{font-size:1.2em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.35em .5em;border-bottom:1px solid var(--line)}
td.num{text-align:right;white-space:nowrap}
tr.status-pass td.status{color:var(--pass)}tr.status-fail td.status{color:var(--fail);font-weight:700}
tr.status-unverified td.status{color:var(--warn)}tr.status-skip td{color:var(--skip)}
tr.status-fail{background:rgba(207,34,46,.07)}tr.status-unverified{background:rgba(154,103,0,.07)}
td.status{font-weight:600;white-space:nowrap}
.kind{font-family:ui-monospace,monospace;font-size:.92em}
.hint{display:block;margin-top:.25em}
.cause{border:1px solid var(--line);border-left:6px solid var(--fail);border-radius:6px;padding:.4em .7em;margin:.5em 0}
code{font-family:ui-monospace,monospace;font-size:.92em;word-break:break-all}
footer{margin-top:1.5em;color:var(--skip);font-size:.9em}
@media (max-width:700px){thead{display:none}table,tbody,tr,td{display:block;width:100%;box-sizing:border-box}
tr{border:1px solid var(--line);border-radius:6px;margin:.5em 0}td{border:0;padding:.2em .6em}
td[data-label]::before{content:attr(data-label) ': ';color:var(--skip);font-weight:400}td.num{text-align:left}}
";

fn page(title: &str, refresh_secs: u64, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"{refresh_secs}\">\n<title>{}</title>\n\
         <style>\n{STYLE}</style></head>\n<body>\n{body}<footer>vnetprobe {} · reloads every \
         {refresh_secs} s · <a href=\"metrics\">/metrics</a> · <a href=\"results\">/results</a> \
         (JSON) · <a href=\"healthz\">/healthz</a> · <a href=\"readyz\">/readyz</a></footer>\n\
         </body></html>\n",
        escape(title),
        escape(crate::build_info::VERSION)
    )
}

/// The page before the first run has finished.
pub fn pending(refresh_secs: u64) -> String {
    page(
        "vnetprobe: waiting for the first run",
        refresh_secs,
        "<h1>vnetprobe</h1>\n<p class=\"verdict unconfirmed\" id=\"verdict\">The first run has not \
         finished yet.</p>\n",
    )
}

fn status_class(r: &ResultEntry) -> (&'static str, &'static str) {
    match r.status {
        Status::Pass if r.unverified => ("status-unverified", "pass?"),
        Status::Pass => ("status-pass", "pass"),
        Status::Fail if r.required => ("status-fail", "FAIL"),
        Status::Fail => ("status-fail", "fail"),
        Status::Skip => ("status-skip", "skip"),
    }
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        format!("{v:.0} ms")
    }
}

/// The failures grouped by error kind: (kind, fix, target ids), most targets first.
fn causes(report: &Report) -> Vec<(String, String, Vec<String>)> {
    let mut by_kind: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for r in report.results.iter().filter(|r| r.status == Status::Fail) {
        let kind = r.error.as_ref().map(|e| e.kind);
        let remedy = kind.map(|k| k.remedy().to_string());
        let kind = kind.map(ErrorKind::as_str).unwrap_or_default().to_string();
        let entry = by_kind.entry(kind).or_insert_with(|| {
            (
                remedy.unwrap_or_else(|| r.hint.clone().unwrap_or_default()),
                Vec::new(),
            )
        });
        if !entry.1.contains(&r.id) {
            entry.1.push(r.id.clone());
        }
    }
    let mut v: Vec<_> = by_kind
        .into_iter()
        .map(|(k, (fix, ids))| (k, fix, ids))
        .collect();
    v.sort_by_key(|(_, _, ids)| std::cmp::Reverse(ids.len()));
    v
}

/// The status page of `report`, reloading every `refresh_secs`.
pub fn render(report: &Report, refresh_secs: u64) -> String {
    let s = &report.summary;
    let mut b = String::new();
    let node = report.node.as_deref().unwrap_or("this node");
    let _ = writeln!(b, "<h1>vnetprobe on {}</h1>", escape(node));
    let mut meta = format!(
        "cloud {}",
        report
            .context
            .get("cloud")
            .map(String::as_str)
            .unwrap_or("public")
    );
    if let Some(region) = report.context.get("region") {
        let _ = write!(meta, " · region {region}");
    }
    let _ = writeln!(
        b,
        "<p class=\"meta\">{} · last run <time datetime=\"{t}\">{t}</time> · {} targets in {}</p>",
        escape(&meta),
        report.results.len(),
        ms(report.duration_ms as f64),
        t = escape(&report.started_at),
    );
    let (class, verdict) = if s.required_fail > 0 {
        (
            "failing",
            format!("{} required target(s) failing", s.required_fail),
        )
    } else if s.required_skip > 0 || s.unverified > 0 {
        (
            "unconfirmed",
            "Every required target that ran met its expectation (some were not confirmed or not checked)".into(),
        )
    } else {
        ("", "Every required target met its expectation".into())
    };
    let _ = writeln!(
        b,
        "<p class=\"verdict {class}\" id=\"verdict\">{}</p>",
        escape(&verdict)
    );
    let _ = writeln!(b, "<ul class=\"counts\" id=\"summary\">");
    for (id, label, n) in [
        ("pass", "pass", s.pass),
        ("fail", "fail", s.fail),
        ("skip", "skip", s.skip),
        ("unverified", "unconfirmed", s.unverified),
        ("required_fail", "required failing", s.required_fail),
        ("required_skip", "required not checked", s.required_skip),
    ] {
        let _ = writeln!(b, "<li data-count=\"{id}\"><b>{n}</b> {label}</li>");
    }
    let _ = writeln!(b, "</ul>");

    let causes = causes(report);
    if !causes.is_empty() {
        let _ = writeln!(b, "<h2>Causes</h2>\n<section id=\"causes\">");
        for (kind, fix, ids) in causes {
            let _ = writeln!(
                b,
                "<div class=\"cause\" data-kind=\"{k}\"><span class=\"kind\">{k}</span> · {} \
                 target(s): {}<span class=\"hint\">{}</span></div>",
                ids.len(),
                escape(&ids.join(", ")),
                escape(&fix),
                k = escape(&kind),
            );
        }
        let _ = writeln!(b, "</section>");
    }

    let _ = writeln!(
        b,
        "<h2>Targets</h2>\n<table id=\"results\"><thead><tr><th>Status</th><th>Target</th>\
         <th>Endpoint</th><th>Protocol</th><th>Time</th><th>Error kind</th><th>Detail and fix</th>\
         <th>Phases</th></tr></thead>\n<tbody>"
    );
    for r in &report.results {
        let (class, label) = status_class(r);
        let kind = r.error.as_ref().map(|e| e.kind.as_str()).unwrap_or("");
        let detail = match (&r.error, &r.skip_reason) {
            (Some(e), _) => e.message.clone(),
            (None, Some(reason)) => reason.clone(),
            (None, None) => r.note.clone().unwrap_or_default(),
        };
        let hint = match (&r.hint, r.status) {
            (Some(h), Status::Skip) => format!("<span class=\"hint\">verify: {}</span>", escape(h)),
            (Some(h), _) => format!("<span class=\"hint\">fix: {}</span>", escape(h)),
            (None, _) => String::new(),
        };
        let phases: Vec<String> = r
            .phases_ms
            .iter()
            .map(|(p, v)| format!("{} {}", p.as_str(), ms(*v)))
            .collect();
        let time = if r.status == Status::Skip {
            "-".to_string()
        } else {
            ms(r.duration_ms)
        };
        let _ = writeln!(
            b,
            "<tr class=\"{class}\" data-target=\"{id}\" data-kind=\"{k}\"><td class=\"status\" \
             data-label=\"Status\">{label}</td><td data-label=\"Target\" title=\"{name}\">{id}</td>\
             <td data-label=\"Endpoint\"><code>{ep}</code></td><td data-label=\"Protocol\">{proto}</td>\
             <td class=\"num\" data-label=\"Time\">{time}</td><td class=\"kind\" data-label=\"Error kind\">{k}</td>\
             <td data-label=\"Detail\">{detail}{hint}</td><td data-label=\"Phases\">{phases}</td></tr>",
            id = escape(&r.id),
            name = escape(&r.name),
            ep = escape(&r.endpoint()),
            proto = r.protocol,
            k = escape(kind),
            detail = escape(&detail),
            phases = escape(&phases.join(" · ")),
        );
    }
    let _ = writeln!(b, "</tbody></table>");
    let title = format!(
        "vnetprobe · {} pass, {} fail, {} skip",
        s.pass, s.fail, s.skip
    );
    page(&title, refresh_secs, &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        serde_json::from_value(serde_json::json!({
            "version": 1, "node": "ci<1>", "started_at": "2026-01-01T00:00:00Z", "duration_ms": 812,
            "context": {"cloud": "public", "region": "westeurope"},
            "summary": {"pass": 1, "fail": 2, "skip": 0, "required_fail": 2},
            "results": [
                {"id": "a", "name": "A", "protocol": "tcp", "host": "h", "port": 1, "required": true,
                 "expect": "reachable", "status": "fail", "duration_ms": 3.0,
                 "error": {"kind": "proxy_denied", "message": "<script>alert(1)</script>"},
                 "hint": "fix a"},
                {"id": "b", "name": "B", "protocol": "tcp", "host": "h", "port": 2, "required": true,
                 "expect": "reachable", "status": "fail", "duration_ms": 3.0,
                 "error": {"kind": "proxy_denied", "message": "m"}, "hint": "fix b"},
                {"id": "c", "name": "C", "protocol": "dns", "host": "h", "port": null, "required": true,
                 "expect": "reachable", "status": "pass", "duration_ms": 3.0, "phases_ms": {"dns": 2.5}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn the_page_is_self_contained_and_escaped() {
        let html = render(&report(), 60);
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"60\">"));
        assert!(html.contains("name=\"viewport\""));
        assert!(!html.contains("<script>") && html.contains("&lt;script&gt;"));
        assert!(html.contains("vnetprobe on ci&lt;1&gt;"));
        for external in ["src=", "http://", "https://", "<link", "@import"] {
            assert!(!html.contains(external), "external reference {external:?}");
        }
        // One cause for the two proxy denials, with the kind's remedy.
        assert_eq!(html.matches("class=\"cause\"").count(), 1);
        assert!(html.contains("2 target(s): a, b"));
        assert!(html.contains("The proxy refused"));
        assert!(html.contains("dns 2 ms") || html.contains("dns 3 ms"));
    }
}
