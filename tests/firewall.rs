//! Truth behind an application-layer firewall (Azure Firewall), against loopback servers that
//! answer as it does: its 470 deny, and TCP on 80/443 that proves nothing. The whole topology (a
//! firewall in the path, its reset after a denied ClientHello, the port-80 confirmation, the fix
//! plan) is the lab's `azure-firewall` scenario (tests/lab_scenarios.rs).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vnetprobe::catalog::{Check, DEFAULT_ACCEPT, Expect, Method, Web, adhoc};
use vnetprobe::net::NetConfig;
use vnetprobe::probe::dns::DnsCache;
use vnetprobe::probe::{self, ErrorKind, ProbeEnv, Status};

use crate::support::{Scratch, json, run};

const WAIT: Duration = Duration::from_secs(2);

/// One connection: reads the request, answers `answer`, then holds the connection a moment.
async fn answering(answer: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let mut buf = [0u8; 4096];
        let _ = tokio::time::timeout(WAIT, s.read(&mut buf)).await;
        let _ = s.write_all(&answer).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    addr
}

async fn http(addr: SocketAddr) -> probe::Outcome {
    let t = adhoc::target(
        "127.0.0.1".into(),
        Check::Http {
            port: addr.port(),
            web: Web {
                tls: false,
                path: "/".into(),
            },
            method: Method::Get,
            accept: DEFAULT_ACCEPT.to_vec(),
        },
        Expect::Reachable,
    );
    let env = ProbeEnv::new(
        DnsCache::new(None, WAIT).unwrap(),
        WAIT,
        NetConfig::default(),
    );
    probe::run(&t, &env).await
}

fn answer_470(body: &[u8], length: usize) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 470 status code 470\r\nContent-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes();
    a.extend_from_slice(body);
    a
}

#[tokio::test]
async fn a_470_with_action_deny_names_the_firewall_and_its_rule() {
    let body = b"HTTP request from 10.0.2.4:50748 to pypi.org:80. Action: Deny. Policy: fw-prod. \
Rule Collection Group: DefaultApplicationRuleCollectionGroup. Rule Collection: deny-\x1b[31mpackages. Rule: no-pypi";
    let o = http(answering(answer_470(body, body.len())).await).await;
    assert_eq!(o.status, Status::Fail);
    let e = o.error.as_ref().unwrap();
    assert_eq!(e.kind, ErrorKind::FirewallDenied, "{e:?}");
    let fw = o.evidence.firewall.as_ref().expect("firewall evidence");
    assert!(!fw.no_rule_matched);
    assert!(
        fw.deny.contains("policy 'fw-prod'") && fw.deny.contains("rule 'no-pypi'"),
        "{fw:?}"
    );
    assert!(
        !fw.deny.contains('\x1b') && !e.message.contains('\x1b'),
        "{fw:?}"
    );
    assert_eq!(
        fw.seen_on,
        format!("GET http://127.0.0.1:{}/", o.evidence.peer.unwrap().port())
    );
}

#[tokio::test]
async fn a_470_that_is_not_the_firewalls_or_never_sends_its_body_is_a_status() {
    // Another device's 470, without Azure Firewall's words.
    let o = http(answering(answer_470(b"<html>nope</html>", 17)).await).await;
    assert_eq!(
        o.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::HttpStatus),
        "{o:?}"
    );
    assert!(o.evidence.firewall.is_none());
    // A head promising a body that never comes: the head counts, within the deadline.
    let started = std::time::Instant::now();
    let o = http(answering(answer_470(b"", 100)).await).await;
    assert_eq!(
        o.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::HttpStatus),
        "{o:?}"
    );
    assert!(
        started.elapsed() < WAIT + Duration::from_secs(2),
        "bounded by the deadline"
    );
    // A huge body: read to 4 KiB at most, the deny still found.
    let mut big =
        b"Action: Deny. Reason: No rule matched. Proceeding with default action.".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1 << 20));
    let o = http(answering(answer_470(&big, big.len())).await).await;
    assert_eq!(
        o.error.as_ref().map(|e| e.kind),
        Some(ErrorKind::FirewallDenied),
        "{o:?}"
    );
    assert!(o.evidence.firewall.unwrap().no_rule_matched);
}

/// `probe tcp` on an application-rule port passes only as unverified, and says why; a port the
/// user names is one too; a bad port in the config file is a usage error naming its line.
#[test]
fn a_connect_on_an_application_rule_port_is_unverified() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port().to_string();
    let target = format!("127.0.0.1:{port}");
    let plain = json(&run(&["probe", "tcp", &target, "--output", "json"]));
    assert_eq!(plain["results"][0]["status"], "pass");
    assert_eq!(plain["results"][0]["unverified"], false);
    let named = json(&run(&[
        "probe",
        "tcp",
        &target,
        "--app-rule-port",
        &format!("8443,{port}"),
        "--output",
        "json",
    ]));
    let r = &named["results"][0];
    assert_eq!(
        (&r["status"], &r["unverified"]),
        (&"pass".into(), &true.into()),
        "{r}"
    );
    assert!(
        r["note"].as_str().unwrap().contains(&format!(
            "a firewall's application rule answers TCP itself on port {port}; only TLS or HTTP proves this path"
        )),
        "{r}"
    );
    let strict = run(&[
        "probe",
        "tcp",
        &target,
        "--app-rule-port",
        &port,
        "--strict",
        "--output",
        "json",
    ]);
    let r = json(&strict);
    assert_eq!(r["results"][0]["error"]["kind"], "unverified", "{r}");
    assert!(
        r["results"][0]["hint"]
            .as_str()
            .unwrap()
            .contains("vnetprobe probe tls"),
        "{r}"
    );

    let dir = Scratch::new("app-rule-ports");
    let config = dir.write(
        "config.toml",
        "timeout = \"2s\"\napp-rule-ports = [8443, 0]\n",
    );
    let bad = run(&[
        "context",
        "--no-discover",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("config.toml:2") && err.contains("app-rule-ports"),
        "{err}"
    );
    drop(l);
}

/// A proxy URL's secret (a password, or a user alone: a token) is in no output, whatever the
/// spelling: every format of `probe` and `check`'s plan, `context` and its settings, the logs.
#[test]
fn a_proxy_token_or_password_is_in_no_output() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    for spelling in [
        format!("http://Tok3nSecret@127.0.0.1:{port}"),
        format!("http://Tok3nSecret:@127.0.0.1:{port}"),
        format!("Tok3nSecret@127.0.0.1:{port}"),
        format!("http://user:Tok3nSecret@127.0.0.1:{port}"),
    ] {
        let mut runs: Vec<Vec<&str>> = ["table", "json", "junit", "fix", "prometheus"]
            .iter()
            .map(|o| {
                vec![
                    "probe",
                    "--timeout",
                    "1s",
                    "--log-level",
                    "debug",
                    "tls",
                    "example.test:443",
                    "--output",
                    o,
                ]
            })
            .collect();
        runs.push(vec!["context", "--no-discover"]);
        runs.push(vec![
            "context",
            "--no-discover",
            "--settings",
            "--output",
            "json",
        ]);
        for args in runs {
            let out = crate::support::command(&args)
                .env("HTTPS_PROXY", &spelling)
                .env("https_proxy", &spelling)
                .output()
                .unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(!all.contains("Tok3nSecret"), "{spelling} {args:?}:\n{all}");
            // Where the proxy is shown at all, it is shown masked.
            if ["table", "json", "--no-discover", "--settings"]
                .iter()
                .any(|a| args.contains(a))
            {
                assert!(
                    all.contains("***@127.0.0.1"),
                    "{spelling} {args:?} shows the proxy masked:\n{all}"
                );
            }
        }
    }
}
