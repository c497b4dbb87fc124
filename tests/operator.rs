//! The operator's experience end to end: help that fits the terminal and ends with examples, a
//! man page per subcommand, `explain`, `--version`, the table at 80 and 100 columns, progress
//! under a pseudo-terminal, `check --wait`. Every target is on loopback.

use std::process::Output;

use crate::support::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn subcommands() -> Vec<String> {
    let out = run(&["--help"]);
    let text = stdout(&out);
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect()
}

#[test]
fn every_help_ends_with_examples_and_fits_80_columns() {
    let subs = subcommands();
    assert!(subs.len() >= 9, "{subs:?}");
    let mut commands: Vec<Vec<String>> = vec![vec![]];
    commands.extend(subs.iter().map(|s| vec![s.clone()]));
    for args in commands {
        for flag in ["-h", "--help"] {
            let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
            argv.push(flag);
            let out = command(&argv).env("COLUMNS", "80").output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{argv:?}");
            let text = stdout(&out);
            let tail: Vec<&str> = text
                .trim_end()
                .lines()
                .rev()
                .take_while(|l| !l.starts_with("Examples:"))
                .collect();
            assert!(
                (2..=3).contains(&tail.len()) && text.contains("\nExamples:\n"),
                "{argv:?}: want two or three examples at the end:\n{text}"
            );
            assert!(tail.iter().all(|l| l.trim_start().starts_with("vnetprobe")
                || l.trim_start().starts_with("curl")
                || l.trim_start().starts_with("VNETPROBE_")));
            for line in text.lines() {
                assert!(
                    line.chars().count() <= 80,
                    "{argv:?}: a line wider than 80 columns: {line:?}"
                );
            }
        }
    }
    // Wider terminals get longer lines: the long help is wrapped, not pre-broken.
    let wide = command(&["check", "--help"])
        .env("COLUMNS", "200")
        .output()
        .unwrap();
    assert!(stdout(&wide).lines().any(|l| l.chars().count() > 100));
}

#[test]
fn man_writes_a_page_per_subcommand_with_every_section() {
    let dir = temp_dir("man-pages");
    let out = run(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let listed: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    let mut want = vec!["vnetprobe.1".to_string()];
    want.extend(subcommands().iter().map(|s| format!("vnetprobe-{s}.1")));
    assert_eq!(listed, want);
    for page in &want {
        let text = std::fs::read_to_string(dir.join(page)).unwrap();
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH \"EXIT STATUS\"",
            ".SH \"ENVIRONMENT\"",
            ".SH \"FILES\"",
            ".SH \"EXAMPLES\"",
        ] {
            assert!(text.contains(section), "{page}: no {section}");
        }
    }
    // `man SUBCOMMAND` prints the same page; the main page still prints without arguments.
    let check = run(&["man", "check"]);
    assert_eq!(
        stdout(&check),
        std::fs::read_to_string(dir.join("vnetprobe-check.1")).unwrap()
    );
    let main = stdout(&run(&["man"]));
    assert!(
        main.lines().any(|l| l.starts_with(".TH vnetprobe 1 ")),
        "{main}"
    );
    let bad = run(&["man", "frobnicate"]);
    assert_eq!(bad.status.code(), Some(2));
    // The pages render with man(1) where it is installed.
    if have("man") {
        let rendered = std::process::Command::new("man")
            .args(["-l", dir.join("vnetprobe-serve.1").to_str().unwrap()])
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let text = stdout(&rendered);
        assert!(
            text.contains("EXIT STATUS") && text.contains("ENVIRONMENT"),
            "{text}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explain_covers_every_kind_the_report_uses() {
    let list = stdout(&run(&["explain"]));
    // Every kind of the JSON contract, as README lists them.
    for kind in [
        "dns_nxdomain",
        "dns_servfail",
        "dns_timeout",
        "dns_no_records",
        "dns_not_private",
        "dns_not_public",
        "tcp_refused",
        "tcp_timeout",
        "net_unreachable",
        "local_firewall",
        "udp_rejected",
        "tls_handshake",
        "tls_untrusted",
        "tls_intercepted",
        "tls_name_mismatch",
        "tls_expired",
        "http_status",
        "ws_rejected",
        "proxy_unreachable",
        "proxy_denied",
        "proxy_auth_required",
        "unexpectedly_reachable",
        "timeout",
        "io_error",
        "unverified",
        "not_checked",
    ] {
        assert!(list.contains(kind), "explain lists no {kind}");
        let out = command(&["explain", kind])
            .env("COLUMNS", "80")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = stdout(&out);
        for part in ["Meaning:", "Detected:", "Fix:"] {
            assert!(text.contains(part), "{kind}: no {part}");
        }
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    }
    let out = run(&["explain", "dns_nx"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dns_nxdomain"));
}

#[test]
fn version_says_commit_target_and_static() {
    let long = stdout(&run(&["--version"]));
    let lines: Vec<&str> = long.lines().collect();
    assert!(lines[0].starts_with("vnetprobe 0."), "{long}");
    for key in ["commit: ", "target: x86_64-", "static: ", "rustc: "] {
        assert!(lines.iter().any(|l| l.starts_with(key)), "{key} in {long}");
    }
    let short = stdout(&run(&["-V"]));
    assert_eq!(short.lines().count(), 1, "{short}");
}

/// A catalog of targets on 127.0.0.1: (id, protocol, host, port).
fn catalog(targets: &[(&str, &str, &str, u16)]) -> String {
    targets
        .iter()
        .map(|(id, protocol, host, port)| {
            format!(
                "[[target]]\nid = \"{id}\"\nname = \"{id}\"\nprotocol = \"{protocol}\"\nhost = \"{host}\"\nports = [{port}]\n\
                 profiles = [\"internet\"]\nrequired = true\nwhy = \"test\"\n\
                 fix = \"Allow outbound TCP {port} to the AzureMachineLearning service tag in the NSG and the firewall; rules that allow only 443 break this path.\"\n\n"
            )
        })
        .collect()
}

/// `vnetprobe check` on `catalog` (no config file) with `extra` arguments.
fn check_on(catalog: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut c = command(&["check", "--config", "/dev/null", "--catalog"]);
    c.arg(catalog).args(extra);
    c
}

/// A port that accepts connections (the kernel completes them) and never answers: a TLS
/// handshake there waits for its timeout.
fn silent_port() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary with `args` under a pseudo-terminal; returns what the terminal showed
/// (stdout and stderr together) and the exit code.
fn under_pty(args: &[String]) -> (String, Option<i32>) {
    let quoted: Vec<String> = std::iter::once(bin().to_string())
        .chain(args.iter().cloned())
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    let mut script = std::process::Command::new("script");
    script.args(["-q", "-e", "-c", &quoted.join(" "), "/dev/null"]);
    // script(1) (util-linux) passes its environment on to the command.
    let out = clean_env(&mut script)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

#[test]
fn progress_is_live_on_a_terminal_and_cleared_before_the_table() {
    if !need("script", "progress under a pseudo-terminal") {
        return;
    }
    let (_silent, slow) = silent_port();
    let open = Listener::start();
    let dir = temp_dir("progress");
    let cat = write(
        &dir,
        "c.toml",
        &catalog(&[
            ("slow-tls", "tls", "127.0.0.1", slow),
            ("open-tcp", "tcp", "127.0.0.1", open.port),
            ("closed-tcp", "tcp", "127.0.0.1", closed_port()),
        ]),
    );
    let base: Vec<String> = [
        "check",
        "--config",
        "/dev/null",
        "--catalog",
        cat.to_str().unwrap(),
        "--timeout",
        "1s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (screen, code) = under_pty(&base);
    assert_eq!(code, Some(1), "{screen}");
    let clear = "\r\x1b[2K";
    // Frames while the TLS probe waits: done/total, the failure so far, the slowest target.
    assert!(
        screen.contains("vnetprobe: 2/3 done, 1 failed · waiting")
            && screen.contains("on slow-tls"),
        "no live progress in: {screen:?}"
    );
    let table = screen.find("vnetprobe check ·").expect("the table");
    let last_clear = screen.rfind(clear).expect("the line is cleared");
    assert!(
        last_clear < table,
        "the progress line is cleared before the table"
    );
    assert!(screen[last_clear + clear.len()..table].trim().is_empty());
    assert!(
        !screen[table..].contains("vnetprobe: "),
        "no progress inside the report"
    );

    // --quiet, and machine outputs, draw nothing.
    let mut quiet = base.clone();
    quiet.push("--quiet".into());
    let (screen, _) = under_pty(&quiet);
    assert!(
        !screen.contains("vnetprobe: ") && !screen.contains(clear),
        "{screen:?}"
    );
    let mut json = base.clone();
    json.extend(["--output".to_string(), "json".to_string()]);
    let (screen, _) = under_pty(&json);
    assert!(
        !screen.contains(clear) && screen.trim_start().starts_with('{'),
        "{screen:?}"
    );

    // Not a terminal: nothing on stderr.
    let piped = check_on(&cat, &["--timeout", "1s"]).output().unwrap();
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_table_fits_80_and_100_columns_and_names_missing_variables_in_words() {
    let dir = temp_dir("width");
    let closed = closed_port();
    let mut text = catalog(&[
        (
            "a-rather-long-target-identifier-for-a-port",
            "tcp",
            "127.0.0.1",
            closed,
        ),
        ("short", "tcp", "127.0.0.1", closed),
    ]);
    text.push_str(&catalog(&[(
        "needs-instance",
        "tls",
        "{instance}.{region}.instances.azureml.ms",
        18881,
    )]));
    let cat = write(&dir, "c.toml", &text);
    for width in [80, 100] {
        let out = check_on(&cat, &["--region", "westeurope", "--profile", "internet"])
            .env("COLUMNS", width.to_string())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let table = stdout(&out);
        for line in table.lines() {
            assert!(line.chars().count() <= width, "{width}: {line:?}\n{table}");
        }
        assert!(!table.contains('{'), "raw template text: {table}");
        assert!(
            table.contains("  <instance") && table.contains("needs instance"),
            "{table}"
        );
        assert!(
            table.contains("\n          fix: The connection was refused"),
            "{table}"
        );
        assert!(table.contains("tcp_refused"), "{table}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_passing_probe_shows_addresses_and_the_peer() {
    let open = Listener::start();
    let out = run(&["probe", "tcp", &format!("localhost:{}", open.port)]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("evidence"), "{text}");
    assert!(text.contains("addresses  127.0.0.1"), "{text}");
    assert!(
        text.contains(&format!("peer       127.0.0.1:{} (direct)", open.port)),
        "{text}"
    );
}

#[test]
fn wait_retries_until_the_path_comes_up_and_says_when() {
    let port = free_port();
    let late = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        // Accept for a while, then let go: bounded.
        l.set_nonblocking(true).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while std::time::Instant::now() < until {
            if l.accept().is_err() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    });
    let dir = temp_dir("wait");
    let cat = write(
        &dir,
        "c.toml",
        &catalog(&[("late-tcp", "tcp", "127.0.0.1", port)]),
    );
    let started = std::time::Instant::now();
    let out = check_on(
        &cat,
        &["--timeout", "500ms", "--wait", "12s", "--output", "json"],
    )
    .output()
    .unwrap();
    let took = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);
    let r = result(&report, "late-tcp");
    assert_eq!(r["status"], "pass");
    let attempts = r["wait"]["attempts"].as_u64().unwrap();
    let after = r["wait"]["reachable_after_ms"].as_f64().unwrap();
    assert!(attempts >= 2, "{r}");
    assert!(
        (1400.0..took.as_millis() as f64).contains(&after),
        "{after} ms of {took:?}"
    );
    assert!(
        took < std::time::Duration::from_secs(8),
        "{took:?}: it stops once everything passes"
    );

    // A path that never comes up: retried until the time is up, then reported as failing.
    let closed = closed_port();
    let cat = write(
        &dir,
        "d.toml",
        &catalog(&[("never", "tcp", "127.0.0.1", closed)]),
    );
    let started = std::time::Instant::now();
    let out = check_on(&cat, &["--timeout", "500ms", "--wait", "2500ms"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        took >= std::time::Duration::from_millis(2000) && took < std::time::Duration::from_secs(6),
        "{took:?}"
    );
    let text = stdout(&out).replace("\n          ", " ");
    assert!(text.contains("still failing after 3 attempts"), "{text}");
    late.join().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_target_with_its_own_timeout_waits_longer_within_the_run() {
    let (_silent, port) = silent_port();
    let dir = temp_dir("target-timeout");
    let mut text = catalog(&[("run-timeout", "tls", "127.0.0.1", port)]);
    text.push_str(
        &catalog(&[("own-timeout", "tls", "127.0.0.1", port)]).replacen(
            "why = \"test\"",
            "why = \"test\"\ntimeout = \"2s\"",
            1,
        ),
    );
    let cat = write(&dir, "c.toml", &text);
    let started = std::time::Instant::now();
    let out = check_on(&cat, &["--timeout", "500ms", "--output", "json"])
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    let run = result(&report, "run-timeout");
    let own = result(&report, "own-timeout");
    let message = |r: &serde_json::Value| r["error"]["message"].as_str().unwrap().to_string();
    // The TLS step gets what is left of the probe's one deadline after the connect.
    let within = |r: &serde_json::Value| {
        let m = message(r);
        m.split("within ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no 'within N ms' in {m}"))
    };
    assert!((300..=500).contains(&within(run)), "{run}");
    assert!((1800..=2000).contains(&within(own)), "{own}");
    let waited = own["duration_ms"].as_f64().unwrap();
    assert!((1900.0..4500.0).contains(&waited), "{own}");
    assert!(run["duration_ms"].as_f64().unwrap() < 1500.0, "{run}");
    assert!(took < std::time::Duration::from_secs(6), "{took:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_readme_installs_first_and_lists_every_profile_and_variable() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = |h: &str| {
        readme
            .find(h)
            .unwrap_or_else(|| panic!("README has no {h}"))
    };
    assert!(at("## Install") < at("## Usage"));
    for what in [
        "build-static.sh",
        "sha256sum",
        "build-deb.sh",
        "dpkg -i",
        "vnetprobe.service",
        "completions bash",
    ] {
        assert!(
            readme[at("## Install")..at("## Usage")].contains(what),
            "install: {what}"
        );
    }
    // Every profile of the embedded catalog, as the error for an unknown one lists them.
    let err = String::from_utf8_lossy(
        &run(&["check", "--profile", "nope", "--config", "/dev/null"]).stderr,
    )
    .into_owned();
    let known = err
        .split("known:")
        .nth(1)
        .or_else(|| err.split("one of").nth(1))
        .unwrap_or_else(|| panic!("the error lists the profiles: {err}"));
    let profiles: Vec<&str> = known
        .split([',', ' ', ')', '(', '\n', ';'])
        .map(|p| p.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '-'))
        .filter(|p| p.len() > 2 && p.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    assert!(profiles.len() >= 7, "{profiles:?} from {err}");
    for p in profiles {
        assert!(
            readme.contains(&format!("`{p}`")),
            "README does not list the profile {p}"
        );
    }
    // Every variable the man page lists as read.
    let man = stdout(&run(&["man"])).replace("\\-", "-");
    let env = &man[man.find(".SH \"ENVIRONMENT\"").unwrap()..];
    let env = &env[..env[4..].find(".SH").unwrap() + 4];
    let names: Vec<String> = env
        .lines()
        .filter_map(|l| {
            l.strip_prefix("\\fB")?
                .strip_suffix("\\fR")
                .map(str::to_string)
        })
        .flat_map(|l| l.split(", ").map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert!(names.len() >= 30, "{names:?}");
    for n in names {
        assert!(
            readme.contains(&format!("`{n}`")),
            "README does not list the variable {n}"
        );
    }
}
