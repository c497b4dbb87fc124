//! The operator's experience end to end: help that fits the terminal and ends with examples, a
//! man page per subcommand, `explain`, `--version`, the table at 80 and 100 columns, progress
//! under a pseudo-terminal, `check --wait`. Every target is on loopback.

mod support;

use std::process::Output;

use support::*;

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
