//! Man pages: vnetprobe(1) and one vnetprobe-SUBCOMMAND(1) per subcommand, generated from the
//! clap definitions (NAME, SYNOPSIS, DESCRIPTION, OPTIONS) plus the sections clap does not
//! know: EXIT STATUS, ENVIRONMENT, FILES, EXAMPLES (the examples of `--help`), SEE ALSO.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::context::discover;
use crate::net::proxy::PROXY_VARS;

/// The subcommands that get a page of their own, in the order of `--help`.
pub fn subcommands() -> Vec<String> {
    Cli::command()
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_string())
        .collect()
}

/// The file name of a page: `vnetprobe.1` or `vnetprobe-check.1`.
pub fn file_name(page: Option<&str>) -> String {
    match page {
        None => "vnetprobe.1".into(),
        Some(sub) => format!("vnetprobe-{sub}.1"),
    }
}

/// Renders vnetprobe(1) (`None`) or vnetprobe-SUB(1).
pub fn render(page: Option<&str>) -> Result<String, String> {
    let mut root = Cli::command();
    root.build();
    let cmd = match page {
        None => root.clone(),
        Some(sub) => {
            let found = root.find_subcommand(sub).cloned().ok_or_else(|| {
                format!(
                    "man: no subcommand {sub:?}: one of {}",
                    subcommands().join(", ")
                )
            })?;
            let name = format!("vnetprobe-{sub}");
            // clap names are 'static: one page per process, so the leak is bounded.
            let leaked: &'static str = Box::leak(name.clone().into_boxed_str());
            found
                .name(leaked)
                .display_name(name)
                .bin_name(format!("vnetprobe {sub}"))
                .version(crate::build_info::VERSION)
        }
    };
    let examples = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    let man = clap_mangen::Man::new(cmd.clone().after_help(None::<&str>))
        .date(env!("VNETPROBE_BUILD_DATE"))
        .manual("vnetprobe manual")
        .source(format!("vnetprobe {}", crate::build_info::VERSION));
    let mut buf = Vec::new();
    let io = |e: std::io::Error| e.to_string();
    man.render_title(&mut buf).map_err(io)?;
    man.render_name_section(&mut buf).map_err(io)?;
    man.render_synopsis_section(&mut buf).map_err(io)?;
    man.render_description_section(&mut buf).map_err(io)?;
    man.render_options_section(&mut buf).map_err(io)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf).map_err(io)?;
    }
    let mut out = String::from_utf8_lossy(&buf).into_owned();
    section(&mut out, "EXIT STATUS", &exit_status(page));
    section(&mut out, "ENVIRONMENT", &environment(page));
    section(&mut out, "FILES", FILES);
    section(&mut out, "EXAMPLES", &examples_roff(&examples));
    section(&mut out, "SEE ALSO", &see_also(page));
    let mut version = Vec::new();
    man.render_version_section(&mut version).map_err(io)?;
    out.push_str(&String::from_utf8_lossy(&version));
    Ok(out)
}

/// Writes every page into `dir`; returns the file names.
pub fn write_all(dir: &Path) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("man --dir {}: {e}", dir.display()))?;
    let mut pages = vec![None];
    pages.extend(subcommands().into_iter().map(Some));
    let mut written = Vec::new();
    for page in pages {
        let name = file_name(page.as_deref());
        let path = dir.join(&name);
        std::fs::write(&path, render(page.as_deref())?)
            .map_err(|e| format!("man --dir: {}: {e}", path.display()))?;
        written.push(name);
    }
    Ok(written)
}

/// Escapes text for roff: backslashes, and a leading dot or quote that would read as a request.
fn escape(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn section(out: &mut String, title: &str, body: &str) {
    if body.trim().is_empty() {
        return;
    }
    out.push_str(&format!(".SH \"{title}\"\n{body}"));
    if !body.ends_with('\n') {
        out.push('\n');
    }
}

/// A tagged paragraph: the term in bold, then the text.
fn item(term: &str, text: &str) -> String {
    format!(".TP\n\\fB{}\\fR\n{}\n", escape(term), escape(text))
}

fn exit_status(page: Option<&str>) -> String {
    let rows: &[(&str, &str)] = match page {
        Some("serve") => &[
            ("0", "Stopped by SIGTERM or SIGINT."),
            (
                "2",
                "Usage, config, catalog or web config error at start (the message names the flag, or the file, line and field), or the listen address is taken.",
            ),
        ],
        Some("catalog" | "context" | "explain" | "completions" | "man") => &[
            ("0", "Success."),
            ("2", "Usage, config or catalog error, or an unknown name."),
        ],
        Some("merge") => &[
            ("0", "No node failed a required target."),
            ("1", "At least one node failed a required target."),
            ("2", "A report could not be read."),
        ],
        _ => &[
            (
                "0",
                "Every required target that ran met its expectation (with --strict: and none was unconfirmed or skipped).",
            ),
            (
                "1",
                "At least one required target failed (with --strict: or was unconfirmed or not checked).",
            ),
            (
                "2",
                "Usage, config or catalog error (the message names the flag, or the file, line and field); a selection of no target; a check in which every target was skipped.",
            ),
        ],
    };
    rows.iter().map(|(c, t)| item(c, t)).collect()
}

/// Every variable vnetprobe reads, for the page of a command that reads it.
fn environment(page: Option<&str>) -> String {
    let mut s = String::new();
    // `context` resolves the settings of a check, so it reads what a check reads.
    let probes = matches!(page, None | Some("check" | "probe" | "serve" | "context"));
    let expands = matches!(page, None | Some("check" | "serve" | "catalog" | "context"));
    if expands {
        let vars: Vec<String> = crate::context::template::DEPLOYMENT_VARIABLES
            .iter()
            .map(|v| format!("VNETPROBE_{}", v.to_ascii_uppercase()))
            .collect();
        s.push_str(&item(
            &vars.join(", "),
            "The variables that fill the host templates, below flags and above the config file and discovery.",
        ));
        s.push_str(&item(
            "VNETPROBE_CLOUD",
            "public, usgov or china: the domain suffixes (as --cloud).",
        ));
        s.push_str(&item(
            "VNETPROBE_DISCOVER",
            "0 (or false, no, off) turns discovery off, as --no-discover.",
        ));
        s.push_str(&item(
            &discover::ENV_KEYS.join(", "),
            "Read by discovery: the Azure ML job and compute-instance variables, the MLflow tracking URI and the Batch account URL (see vnetprobe-context(1)).",
        ));
    }
    if probes {
        s.push_str(&item(
            &PROXY_VARS.join(", "),
            "The proxy for HTTP, TLS and WebSocket probes, chosen the way curl chooses it (http_proxy only in lower case); NO_PROXY takes suffixes, *, IPs and CIDR ranges. --proxy and --no-proxy override them. Raw TCP and UDP probes are always direct.",
        ));
        s.push_str(&item(
            "SSL_CERT_FILE, SSL_CERT_DIR",
            "Where the system trust store is read, for telling a TLS-inspecting firewall (trusted only locally) from the public web PKI.",
        ));
        s.push_str(&item(
            "VNETPROBE_PUBLIC_ROOTS",
            "A PEM file that replaces the built-in public web PKI roots (for labs and tests).",
        ));
    }
    if matches!(
        page,
        None | Some("check" | "probe" | "catalog" | "context" | "merge")
    ) {
        s.push_str(&item(
            "NO_COLOR",
            "When set and not empty, the table has no colours (https://no-color.org).",
        ));
        s.push_str(&item(
            "COLUMNS",
            "The width the table fits when stdout is not a terminal (default 100).",
        ));
    }
    s.push_str(&item(
        "JOURNAL_STREAM",
        "Set by systemd: log lines carry journald priority prefixes.",
    ));
    s
}

const FILES: &str = "\
.TP
\\fB/etc/vnetprobe/config.toml\\fR
The config file, read when present (or --config FILE): the variables, profiles, timeout, proxy and the [serve] settings. A commented template is in /usr/share/doc/vnetprobe/config.toml.
.TP
\\fB/var/lib/prometheus/node\\-exporter/vnetprobe.prom\\fR
The textfile that vnetprobe\\-check.service writes (check \\-\\-textfile) for node_exporter's textfile collector.
.TP
\\fB/lib/systemd/system/vnetprobe.service\\fR
The exporter (vnetprobe serve) on 127.0.0.1:9834.
.TP
\\fB/lib/systemd/system/vnetprobe\\-check.service\\fR, \\fBvnetprobe\\-check.timer\\fR
A check on a timer that writes the textfile, without a daemon.
.TP
\\fB/usr/share/bash\\-completion/completions/vnetprobe\\fR, \\fB/usr/share/zsh/vendor\\-completions/_vnetprobe\\fR, \\fB/usr/share/fish/vendor_completions.d/vnetprobe.fish\\fR
Shell completions (vnetprobe completions SHELL).
";

/// The `Examples:` block of `--help`, as roff: each command line in bold, its comment after.
fn examples_roff(after_help: &str) -> String {
    let mut s = String::new();
    for line in after_help
        .lines()
        .skip_while(|l| !l.starts_with("Examples"))
        .skip(1)
    {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (cmd, comment) = match line.split_once("  #") {
            Some((c, k)) => (c.trim(), Some(k.trim().trim_start_matches('#').trim())),
            None => (line, None),
        };
        s.push_str(&format!(".TP\n\\fB{}\\fR\n", escape(cmd)));
        s.push_str(&format!("{}\n", escape(comment.unwrap_or(""))));
    }
    s
}

fn see_also(page: Option<&str>) -> String {
    let mut refs: Vec<String> = std::iter::once("vnetprobe".to_string())
        .chain(subcommands().iter().map(|s| format!("vnetprobe-{s}")))
        .filter(|r| Some(r.as_str()) != page.map(|p| format!("vnetprobe-{p}")).as_deref())
        .filter(|r| page.is_some() || r != "vnetprobe")
        .map(|r| format!("\\fB{}\\fR(1)", escape(&r)))
        .collect();
    refs.push("\\fBcurl\\fR(1)".into());
    format!("{}\n", refs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_has_every_section() {
        let mut pages = vec![None];
        pages.extend(subcommands().into_iter().map(Some));
        assert!(pages.len() >= 10, "{pages:?}");
        for page in pages {
            let text = render(page.as_deref()).unwrap();
            for s in [
                "NAME",
                "SYNOPSIS",
                "DESCRIPTION",
                "OPTIONS",
                "\"EXIT STATUS\"",
                "\"ENVIRONMENT\"",
                "\"FILES\"",
                "\"EXAMPLES\"",
                "\"SEE ALSO\"",
            ] {
                assert!(
                    text.contains(&format!(".SH {s}")),
                    "{page:?}: no {s} in\n{text}"
                );
            }
            let title = file_name(page.as_deref())
                .trim_end_matches(".1")
                .to_string();
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!(".TH {title} 1 "))),
                "{page:?}: no .TH {title} 1"
            );
        }
    }

    #[test]
    fn the_main_page_names_every_variable_read() {
        let text = render(None).unwrap().replace("\\-", "-");
        for v in PROXY_VARS.iter().chain(discover::ENV_KEYS).chain(&[
            "NO_COLOR",
            "VNETPROBE_DISCOVER",
            "VNETPROBE_PUBLIC_ROOTS",
            "VNETPROBE_CLOUD",
        ]) {
            assert!(text.contains(v), "{v} missing");
        }
        for v in crate::context::template::DEPLOYMENT_VARIABLES {
            assert!(
                text.contains(&format!("VNETPROBE_{}", v.to_ascii_uppercase())),
                "{v}"
            );
        }
        assert!(render(Some("nope")).unwrap_err().contains("check"));
    }
}
