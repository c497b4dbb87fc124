//! Hostile input: values, files and strings chosen to break the program must end in exit 2 with
//! a message naming the culprit (or a sane report), never a panic, a hang or unbounded memory.

use crate::support::*;

#[test]
fn numbers_out_of_range_exit_2_from_every_source() {
    let huge = "18446744073709551615s";
    assert_usage_error(&["check", "--timeout", huge], &["--timeout"]);
    assert_usage_error(
        &["check", "--timeout", "11m"],
        &["--timeout", "out of range"],
    );
    assert_usage_error(
        &["probe", "tcp", "127.0.0.1:1", "--timeout", huge],
        &["--timeout"],
    );
    assert_usage_error(&["serve", "--interval", huge], &["--interval"]);
    assert_usage_error(
        &["serve", "--interval", "100ms"],
        &["--interval", "from 1s"],
    );
    assert_usage_error(
        &["check", "--concurrency", "4097"],
        &["--concurrency", "4096"],
    );
    assert_usage_error(
        &["check", "--concurrency", "3000000000000000000"],
        &["--concurrency"],
    );

    let dir = temp_dir("ranges");
    let cases = [
        ("concurrency = 3000000000000000000\n", "field `concurrency`"),
        ("concurrency = 0\n", "field `concurrency`"),
        (
            "\ntimeout = \"18446744073709551615s\"\n",
            "c.toml:2: field `timeout`",
        ),
        (
            "[serve]\ninterval = \"584942417355years\"\n",
            "c.toml:2: field `serve.interval`",
        ),
    ];
    for (text, needle) in cases {
        let cfg = write(&dir, "c.toml", text);
        let cfg = cfg.to_str().unwrap();
        let cmd = if text.contains("[serve]") {
            "serve"
        } else {
            "check"
        };
        assert_usage_error(&[cmd, "--config", cfg, "--only", "none"], &[needle]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// Asserts a usage error that ends within a few seconds: exit 2, no panic, the needles in stderr.
fn assert_quick_usage_error(cmd: &mut std::process::Command, needles: &[&str]) {
    let what = format!("{cmd:?}");
    let out = output_within(cmd, std::time::Duration::from_secs(20));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: want {n:?} in: {err}");
    }
}

#[test]
fn every_file_read_is_a_capped_regular_file() {
    let dir = temp_dir("devzero");
    let zero = "/dev/zero";
    let not_regular = "not a regular file";
    for args in [
        &["check", "--config", zero][..],
        &["catalog", "--catalog", zero],
        &["check", "--ca-file", zero, "--only", "none"],
        &["merge", zero],
    ] {
        assert_quick_usage_error(&mut command(args), &[zero, not_regular]);
    }
    for var in ["VNETPROBE_PUBLIC_ROOTS", "SSL_CERT_FILE"] {
        assert_quick_usage_error(
            command(&["probe", "tcp", "127.0.0.1:9"]).env(var, zero),
            &[var, not_regular],
        );
    }
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = write(&dir, "cert.pem", &c.cert.pem());
    let key = write(&dir, "key.pem", &c.signing_key.serialize_pem());
    let (pem, key) = (pem.to_str().unwrap(), key.to_str().unwrap());
    for (field, yaml) in [
        (
            "cert_file",
            format!("tls_server_config:\n  cert_file: {zero}\n  key_file: {key}\n"),
        ),
        (
            "key_file",
            format!("tls_server_config:\n  cert_file: {pem}\n  key_file: {zero}\n"),
        ),
        (
            "client_ca_file",
            format!(
                "tls_server_config:\n  cert_file: {pem}\n  key_file: {key}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {zero}\n"
            ),
        ),
    ] {
        let web = write(&dir, "web.yml", &yaml);
        assert_quick_usage_error(
            &mut command(&[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--web-config-file",
                web.to_str().unwrap(),
                "--only",
                "none",
            ]),
            &[field, zero, not_regular],
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn huge_ids_names_and_hosts_are_refused_with_the_limit() {
    let dir = temp_dir("huge");
    let long = "a".repeat(70_000);
    let base = "[[target]]\nid = \"x\"\nname = \"n\"\nprotocol = \"tcp\"\nhost = \"h.test\"\nports = [1]\nprofiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n";
    for (field, text, limit) in [
        (
            "id",
            base.replace("\"x\"", &format!("\"{long}\"")),
            "the most is 100",
        ),
        (
            "name",
            base.replace("\"n\"", &format!("\"{long}\"")),
            "the most is 200",
        ),
        ("host", base.replace("h.test", &long), "the most is 253"),
    ] {
        let path = write(&dir, "c.toml", &text);
        let field = format!("field `{field}`");
        for cmd in ["catalog", "check"] {
            assert_usage_error(
                &[cmd, "--catalog", path.to_str().unwrap()],
                &[&field, limit, "70000 characters"],
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A report from a real probe (refused on loopback), then rewritten with hostile strings.
fn report_with(edit: impl Fn(&mut serde_json::Value)) -> String {
    let mut report = refused_report();
    edit(&mut report);
    report.to_string()
}

#[test]
fn merge_renders_reports_with_huge_strings() {
    let dir = temp_dir("mergehuge");
    let long = "b".repeat(70_000);
    let report = report_with(|r| {
        r["node"] = long.clone().into();
        let x = &mut r["results"][0];
        x["id"] = long.clone().into();
        x["host"] = long.clone().into();
        x["name"] = long.clone().into();
    });
    let path = write(&dir, "r.json", &report);
    for output in ["table", "json"] {
        let out = run(&["merge", "--output", output, path.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{output}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(String::from_utf8_lossy(&out.stdout).contains(&long));
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// No raw control character (ESC, BEL, CR, C1 CSI) in what the program printed.
fn assert_no_raw_escapes(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let raw: Vec<char> = text
        .chars()
        .filter(|&c| c.is_control() && c != '\n')
        .collect();
    assert!(raw.is_empty(), "{what}: raw {raw:?} in:\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_names_with_escape_sequences_never_reach_the_terminal_raw() {
    use crate::support::pki::{Leaf, server_config, tls_server};
    // Self-signed, so the issuer a message names is the same hostile text.
    let evil = "evil\x1b[2J\x1b]0;pwned\x07\u{9b}31m\r";
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, evil);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let leaf = Leaf {
        chain: vec![cert.der().clone()],
        key: key.serialize_der(),
    };
    let (addr, _) = tls_server(server_config(&leaf, &[]), 4).await;
    let endpoint = addr.to_string();
    for output in ["table", "json", "junit", "prometheus"] {
        let endpoint = endpoint.clone();
        let out = tokio::task::spawn_blocking(move || {
            let args = [
                "probe",
                "--log-level",
                "debug",
                "--output",
                output,
                "tls",
                &endpoint,
            ];
            output_within(&mut command(&args), std::time::Duration::from_secs(20))
        })
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert_no_raw_escapes(&format!("{output} stdout"), &out.stdout);
        assert_no_raw_escapes(&format!("{output} stderr"), &out.stderr);
        if output == "table" {
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(shown.contains("evil\\x1b[2J\\x1b]0;pwned\\x07"), "{shown}");
        }
    }
}

#[test]
fn a_password_in_a_target_url_is_masked_in_the_usage_error() {
    for args in [
        &["probe", "http", "https://user:secret@host/"][..],
        &["probe", "ws", "wss://user:secret@host/socket"],
        &["probe", "http", "gopher://user:secret@host/"],
        &["probe", "tcp", "user:secret@host"],
    ] {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("secret"), "{args:?}: {err}");
        assert!(err.contains("user:***@host"), "{args:?}: {err}");
    }
}

/// A proxy on loopback that answers CONNECT `late` after the request, then says nothing more
/// (the TLS handshake through it never completes). It serves at most one client.
fn late_proxy(late: std::time::Duration) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            if client.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        std::thread::sleep(late);
        let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        // Holds the tunnel open and silent until the probe gives up (bounded).
        let _ = client.set_read_timeout(Some(std::time::Duration::from_secs(10)));
        let mut buf = [0u8; 4096];
        while client.read(&mut buf).is_ok_and(|n| n > 0) {}
    });
    addr
}

#[test]
fn a_proxied_probe_keeps_one_deadline_and_the_local_lookup_never_delays_it() {
    // A DNS server that never answers: the informational lookup of the proxied name would take
    // a whole timeout. The proxy answers CONNECT after 600 ms of a 1 s timeout; the TLS
    // handshake after it must get the 400 ms that are left, not a fresh second.
    let silent_dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent_dns.local_addr().unwrap().to_string();
    let proxy = format!(
        "http://{}",
        late_proxy(std::time::Duration::from_millis(600))
    );
    let args = [
        "probe",
        "--timeout",
        "1s",
        "--dns-server",
        &dns,
        "--proxy",
        &proxy,
        "--output",
        "json",
        "tls",
        "slow.proxied.test:443",
    ];
    let started = std::time::Instant::now();
    let out = output_within(&mut command(&args), std::time::Duration::from_secs(20));
    eprintln!(
        "proxied probe with a 1 s timeout took {:?} in all",
        started.elapsed()
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = json(&out);
    let r = &report["results"][0];
    assert_eq!(error_kind(r), "timeout", "{r}");
    let message = r["error"]["message"].as_str().unwrap();
    let left: u64 = message
        .split("no TLS handshake within ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("the TLS step names its wait: {message}"));
    assert!(
        left < 600,
        "the TLS handshake got a fresh timeout: {message}"
    );
    let note = r["note"].as_str().unwrap_or("");
    assert!(note.contains("local DNS had not answered"), "{r}");
    assert!(
        r["phases_ms"]["proxy_connect"].as_f64().unwrap() >= 500.0,
        "{r}"
    );
}

/// Issue 27 point 8: COLUMNS of 65,536 and more panicked in the table ("Formatting argument
/// out of range", exit 101); the width is clamped where it is read.
#[test]
fn a_huge_columns_value_is_clamped_not_a_panic() {
    let dir = Scratch::new("columns");
    let report = dir.write("r.json", &refused_report().to_string());
    let endpoint = format!("127.0.0.1:{}", free_port());
    for width in [
        "65535",
        "65536",
        "100000",
        "4294967296",
        "18446744073709551615",
    ] {
        let runs: [(&[&str], i32); 3] = [
            (&["probe", "tcp", &endpoint], 1),
            (&["catalog", "--profile", "internet"], 0),
            (&["merge", report.to_str().unwrap()], 1),
        ];
        for (args, code) in runs {
            let out = command(args).env("COLUMNS", width).output().unwrap();
            let (text, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
            assert_eq!(
                out.status.code(),
                Some(code),
                "COLUMNS={width} {args:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            assert!(
                widest <= 1000,
                "COLUMNS={width} {args:?}: a line of {widest}"
            );
        }
    }
}
