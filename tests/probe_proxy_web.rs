//! HTTP, WebSocket and proxied probes against real servers on loopback: in-process HTTP and
//! WebSocket servers (plain and TLS, certificates from a test CA) and a real tinyproxy.
//! DNS goes to a loopback port nobody answers, so no query leaves the machine and a name only
//! the proxy can resolve (localhost, from its /etc/hosts) proves "resolved by proxy".

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::pki::{self, Ca};
use crate::support::proxy::{self, Tinyproxy};
use crate::support::{FakeDns, Scratch, web};
use vnetprobe::catalog::{
    Check, DEFAULT_ACCEPT, Expect, Method, Protocol, StatusMatch, Target, Web, adhoc,
};
use vnetprobe::net::NetConfig;
use vnetprobe::probe::dns::DnsCache;
use vnetprobe::probe::{ErrorKind, Outcome, Phase, ProbeEnv, Status};

const TIMEOUT: Duration = Duration::from_secs(3);

struct Lab {
    /// The run's DNS server: SERVFAIL for every name, so lookups stay local and fail fast.
    dns: FakeDns,
    _scratch: Scratch,
    roots: PathBuf,
    tls: std::sync::Arc<rustls::ServerConfig>,
}

fn lab() -> Lab {
    let scratch = Scratch::new("proxyweb");
    let ca = Ca::root("vnetprobe test root");
    let roots = ca.write(&scratch, "roots.pem");
    let leaf = ca.leaf(
        &[
            "localhost",
            proxy::PROXY_ONLY_HOST,
            proxy::DENIED_HOST,
            "127.0.0.1",
        ],
        false,
    );
    Lab {
        dns: FakeDns::start(true),
        tls: pki::server_config(&leaf, &[b"http/1.1"]),
        roots,
        _scratch: scratch,
    }
}

fn net(lab: &Lab, vars: &[(&str, &str)]) -> NetConfig {
    NetConfig {
        public_roots: Some(lab.roots.clone()),
        proxy_env: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

fn env(lab: &Lab, net: NetConfig) -> ProbeEnv {
    ProbeEnv::new(
        DnsCache::new(Some(lab.dns.addr), TIMEOUT).expect("resolver"),
        TIMEOUT,
        net,
    )
}

fn web_target(protocol: Protocol, host: &str, addr: SocketAddr, tls: bool, path: &str) -> Target {
    let (port, web) = (
        addr.port(),
        Web {
            tls,
            path: path.into(),
        },
    );
    let check = match protocol {
        Protocol::Http => Check::Http {
            port,
            web,
            method: Method::Get,
            accept: DEFAULT_ACCEPT.to_vec(),
        },
        Protocol::Ws => Check::Ws { port, web },
        other => panic!("{other} is not a web protocol"),
    };
    adhoc::target(host.into(), check, Expect::Reachable)
}

async fn probe(target: &Target, env: &ProbeEnv) -> Outcome {
    vnetprobe::probe::run(target, env).await
}

fn kind(o: &Outcome) -> Option<ErrorKind> {
    o.error.as_ref().map(|e| e.kind)
}

#[tokio::test]
async fn http_status_is_held_to_the_accept_list() {
    let lab = lab();
    let (addr, log) = web::http_server(None).await;
    let env = env(&lab, net(&lab, &[]));
    let cases: &[(&str, &str, &[StatusMatch], Option<ErrorKind>)] = &[
        ("GET", "/status/200", &[], None),
        ("GET", "/status/302", &[], None),
        ("GET", "/status/400", &[], Some(ErrorKind::HttpStatus)),
        ("GET", "/status/500", &[], Some(ErrorKind::HttpStatus)),
        ("GET", "/status/500", &[StatusMatch::Code(500)], None),
        (
            "GET",
            "/status/401",
            &[StatusMatch::Class(2), StatusMatch::Code(401)],
            None,
        ),
        ("HEAD", "/status/404", &[StatusMatch::Class(4)], None),
        (
            "HEAD",
            "/status/200",
            &[StatusMatch::Class(4)],
            Some(ErrorKind::HttpStatus),
        ),
    ];
    for &(method, path, accept, want) in cases {
        let mut t = web_target(Protocol::Http, "127.0.0.1", addr, false, path);
        if let Check::Http {
            method: m,
            accept: a,
            ..
        } = &mut t.check
        {
            *m = Method::from_label(method).unwrap();
            if !accept.is_empty() {
                *a = accept.to_vec();
            }
        }
        let o = probe(&t, &env).await;
        let code: u16 = path.trim_start_matches("/status/").parse().unwrap();
        assert_eq!(kind(&o), want, "{method} {path}: {o:?}");
        assert_eq!(o.evidence.http_status, Some(code), "{method} {path}");
        assert!(
            o.evidence.phases_ms.contains_key(&Phase::FirstByte),
            "{o:?}"
        );
        assert_eq!(o.evidence.via_proxy, None);
        if want.is_some() {
            let msg = &o.error.as_ref().unwrap().message;
            assert!(
                msg.contains(&code.to_string()) && msg.contains("expected"),
                "{msg}"
            );
        }
    }
    let heads = web::wait_for(&log, cases.len()).await;
    assert!(
        heads
            .iter()
            .any(|h| h.starts_with("HEAD /status/404 HTTP/1.1\r\n")),
        "{heads:?}"
    );
    let host = format!("host: 127.0.0.1:{}", addr.port());
    assert!(
        heads.iter().all(|h| h.to_ascii_lowercase().contains(&host)),
        "{heads:?}"
    );
    assert!(
        heads.iter().all(|h| h.contains("vnetprobe/")),
        "User-Agent missing: {heads:?}"
    );
}

#[tokio::test]
async fn https_and_wss_directly_with_a_trusted_test_ca() {
    let lab = lab();
    let (http_addr, _) = web::http_server(Some(lab.tls.clone())).await;
    let (ws_addr, ws_log) = web::ws_server(Some(lab.tls.clone())).await;
    let env = env(&lab, net(&lab, &[]));

    let o = probe(
        &web_target(Protocol::Http, "127.0.0.1", http_addr, true, "/status/204"),
        &env,
    )
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.evidence.http_status, Some(204));
    assert!(
        o.evidence.tls.is_some() && o.evidence.phases_ms.contains_key(&Phase::Tls),
        "{o:?}"
    );

    let o = probe(
        &web_target(Protocol::Ws, "127.0.0.1", ws_addr, true, "/socket"),
        &env,
    )
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.evidence.http_status, Some(101));
    assert!(
        o.evidence.phases_ms.contains_key(&Phase::Upgrade) && o.evidence.tls.is_some(),
        "{o:?}"
    );
    let seen = web::wait_for(&ws_log, 1).await;
    assert_eq!(
        seen,
        vec![format!("ua={} close=true", vnetprobe::net::USER_AGENT)],
        "no polite close"
    );
}

#[tokio::test]
async fn websocket_upgrades_and_refusals() {
    let lab = lab();
    let (ws_addr, ws_log) = web::ws_server(None).await;
    let (http_addr, _) = web::http_server(None).await;
    let env = env(&lab, net(&lab, &[]));

    let o = probe(
        &web_target(Protocol::Ws, "127.0.0.1", ws_addr, false, "/socket"),
        &env,
    )
    .await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert!(
        o.evidence
            .note
            .as_deref()
            .is_some_and(|n| n.ends_with("upgraded")),
        "{o:?}"
    );

    let o = probe(
        &web_target(Protocol::Ws, "127.0.0.1", ws_addr, false, "/refuse"),
        &env,
    )
    .await;
    assert_eq!(kind(&o), Some(ErrorKind::WsRejected), "{o:?}");
    assert_eq!(o.evidence.http_status, Some(403));
    assert!(o.error.unwrap().message.contains("403 Forbidden"));

    // a plain web server answers the upgrade with 200: not a WebSocket endpoint
    let o = probe(
        &web_target(Protocol::Ws, "127.0.0.1", http_addr, false, "/"),
        &env,
    )
    .await;
    assert_eq!(kind(&o), Some(ErrorKind::WsRejected), "{o:?}");
    assert_eq!(o.evidence.http_status, Some(200));

    let seen = web::wait_for(&ws_log, 1).await;
    assert!(seen.iter().any(|s| s.ends_with("close=true")), "{seen:?}");
}

#[tokio::test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
async fn through_tinyproxy_with_credentials() {
    let lab = lab();
    let tp = Tinyproxy::start();
    let (https_addr, _) = web::http_server(Some(lab.tls.clone())).await;
    let (http_addr, http_log) = web::http_server(None).await;
    let (wss_addr, wss_log) = web::ws_server(Some(lab.tls.clone())).await;
    let (ws_addr, _) = web::ws_server(None).await;
    let url = tp.url();
    let env = env(
        &lab,
        net(&lab, &[("HTTPS_PROXY", &url), ("http_proxy", &url)]),
    );

    // the local resolver cannot answer for this name (SERVFAIL); the proxy can
    for (t, extra_phase) in [
        (
            web_target(
                Protocol::Http,
                proxy::PROXY_ONLY_HOST,
                https_addr,
                true,
                "/status/200",
            ),
            Some(Phase::ProxyConnect),
        ),
        (
            web_target(
                Protocol::Http,
                proxy::PROXY_ONLY_HOST,
                http_addr,
                false,
                "/status/200",
            ),
            None,
        ),
        (
            web_target(
                Protocol::Ws,
                proxy::PROXY_ONLY_HOST,
                wss_addr,
                true,
                "/socket",
            ),
            Some(Phase::ProxyConnect),
        ),
        (
            web_target(
                Protocol::Ws,
                proxy::PROXY_ONLY_HOST,
                ws_addr,
                false,
                "/socket",
            ),
            Some(Phase::ProxyConnect),
        ),
    ] {
        let o = probe(&t, &env).await;
        let what = format!("{} {:?}", t.protocol(), t.check);
        assert_eq!(o.status, Status::Pass, "{what}: {o:?}\n{}", tp.log());
        assert_eq!(
            o.evidence.via_proxy.as_deref(),
            Some(tp.masked().as_str()),
            "{what}"
        );
        assert_eq!(
            o.evidence.peer,
            Some(tp.addr),
            "{what}: the peer is the proxy"
        );
        assert!(
            o.evidence
                .note
                .as_deref()
                .unwrap_or_default()
                .contains("resolved by proxy"),
            "{what}: {o:?}"
        );
        assert!(o.evidence.addresses.is_empty());
        if let Some(p) = extra_phase {
            assert!(o.evidence.phases_ms.contains_key(&p), "{what}: {o:?}");
        }
    }
    // the plain request went through the proxy in absolute form: tinyproxy added its Via
    let heads = web::wait_for(&http_log, 1).await;
    assert!(
        heads[0]
            .lines()
            .any(|l| l.starts_with("Via: ") && l.contains("tinyproxy")),
        "{heads:?}"
    );
    assert_eq!(
        web::wait_for(&wss_log, 1).await,
        vec![format!("ua={} close=true", vnetprobe::net::USER_AGENT)]
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
async fn tls_probes_use_the_https_proxy_and_tcp_stays_direct() {
    let lab = lab();
    let tp = Tinyproxy::start();
    let (addr, _) = web::http_server(Some(lab.tls.clone())).await;
    let env = env(&lab, net(&lab, &[("https_proxy", &tp.url())]));

    let t = adhoc::target(
        proxy::PROXY_ONLY_HOST.into(),
        Check::Tls { port: addr.port() },
        Expect::Reachable,
    );
    let o = probe(&t, &env).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.evidence.via_proxy.as_deref(), Some(tp.masked().as_str()));
    assert!(o.evidence.tls.is_some());

    let t = adhoc::target(
        "127.0.0.1".into(),
        Check::Tcp {
            port: addr.port(),
            responder: false,
        },
        Expect::Reachable,
    );
    let o = probe(&t, &env).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(
        (o.evidence.via_proxy, o.evidence.note.as_deref()),
        (None, Some("direct"))
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
async fn proxy_failures_are_named() {
    let lab = lab();
    let tp = Tinyproxy::start();
    let (addr, _) = web::http_server(Some(lab.tls.clone())).await;
    let (plain, _) = web::http_server(None).await;
    let dead = format!("http://127.0.0.1:{}", proxy::free_port());
    let wrong = tp.url_with_password("WrongPassw0rd");
    let bare = tp.url_without_credentials();
    let cases: &[(&str, &str, SocketAddr, bool, ErrorKind, &str)] = &[
        (
            &bare,
            proxy::PROXY_ONLY_HOST,
            addr,
            true,
            ErrorKind::ProxyAuthRequired,
            "put credentials",
        ),
        (
            &wrong,
            proxy::PROXY_ONLY_HOST,
            addr,
            true,
            ErrorKind::ProxyAuthRequired,
            "refused the credentials",
        ),
        (
            &bare,
            proxy::PROXY_ONLY_HOST,
            plain,
            false,
            ErrorKind::ProxyAuthRequired,
            "407",
        ),
        (
            &tp.url(),
            proxy::DENIED_HOST,
            addr,
            true,
            ErrorKind::ProxyDenied,
            "403 Filtered",
        ),
        // tinyproxy reaches nothing on a closed port: 500 from the proxy
        (
            &tp.url(),
            proxy::PROXY_ONLY_HOST,
            SocketAddr::from(([127, 0, 0, 1], proxy::free_port())),
            true,
            ErrorKind::ProxyDenied,
            "could not reach",
        ),
        (
            &dead,
            proxy::PROXY_ONLY_HOST,
            addr,
            true,
            ErrorKind::ProxyUnreachable,
            "tcp_refused",
        ),
    ];
    for &(proxy_url, host, target_addr, tls, want, text) in cases {
        let env = env(
            &lab,
            net(
                &lab,
                &[("https_proxy", proxy_url), ("http_proxy", proxy_url)],
            ),
        );
        let o = probe(
            &web_target(Protocol::Http, host, target_addr, tls, "/"),
            &env,
        )
        .await;
        let e = o
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{proxy_url} {host}: {o:?}"));
        assert_eq!(e.kind, want, "{host} via {proxy_url}: {e}");
        assert!(e.message.contains(text), "{host} via {proxy_url}: {e}");
        assert!(
            !e.message.contains("WrongPassw0rd") && !e.message.contains(proxy::PASSWORD_IN_URL),
            "{e}"
        );
        assert!(o.evidence.via_proxy.is_some());
    }
}

#[tokio::test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
async fn no_proxy_and_the_flags_decide_the_route() {
    let lab = lab();
    let tp = Tinyproxy::start();
    let (addr, _) = web::http_server(Some(lab.tls.clone())).await;
    let dead = format!("http://127.0.0.1:{}", proxy::free_port());
    let t = web_target(Protocol::Http, "127.0.0.1", addr, true, "/");

    let bypass = env(
        &lab,
        net(
            &lab,
            &[
                ("HTTPS_PROXY", &dead),
                ("no_proxy", "example.org, 127.0.0.0/8"),
            ],
        ),
    );
    let o = probe(&t, &bypass).await;
    assert_eq!(o.status, Status::Pass, "{o:?}");
    assert_eq!(o.evidence.via_proxy, None);
    assert!(o.evidence.note.unwrap().contains("NO_PROXY"));

    let off = env(
        &lab,
        NetConfig {
            no_proxy: true,
            ..net(&lab, &[("HTTPS_PROXY", &dead)])
        },
    );
    assert_eq!(probe(&t, &off).await.status, Status::Pass);

    let flag = env(
        &lab,
        NetConfig {
            proxy: Some(tp.url()),
            ..net(&lab, &[("HTTPS_PROXY", &dead)])
        },
    );
    let o = probe(&t, &flag).await;
    assert_eq!(
        (o.status, o.evidence.via_proxy),
        (Status::Pass, Some(tp.masked()))
    );

    let o = probe(&t, &env(&lab, net(&lab, &[("HTTPS_PROXY", &dead)]))).await;
    assert_eq!(kind(&o), Some(ErrorKind::ProxyUnreachable), "{o:?}");
}

/// The real binary, with the test CA as its public roots and proxy variables only from `vars`.
fn vnetprobe(args: &[&str], vars: &[(&str, &str)], roots: &PathBuf) -> (i32, String, String) {
    let out = crate::support::command(args)
        .env("VNETPROBE_PUBLIC_ROOTS", roots)
        .envs(vars.iter().copied())
        .output()
        .expect("run vnetprobe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
async fn binary_goes_through_the_proxy_and_never_prints_the_password() {
    let lab = lab();
    let tp = Tinyproxy::start();
    let (addr, _) = web::http_server(Some(lab.tls.clone())).await;
    let dns = lab.dns.addr.to_string();
    let url = format!(
        "https://{}:{}/status/200",
        proxy::PROXY_ONLY_HOST,
        addr.port()
    );
    let net_flags = [
        "probe",
        "--dns-server",
        dns.as_str(),
        "--timeout",
        "3s",
        "--log-level",
        "debug",
        "http",
    ];
    // The child talks to servers on this runtime: keep them running while it blocks.
    let run = |args: Vec<&str>, proxy_url: String| {
        tokio::task::block_in_place(|| {
            vnetprobe(&args, &[("HTTPS_PROXY", proxy_url.as_str())], &lab.roots)
        })
    };

    let args: Vec<&str> = net_flags
        .into_iter()
        .chain([url.as_str(), "--output", "json"])
        .collect();
    let (code, out, err) = run(args, tp.url());
    assert_eq!(code, 0, "{out}\n{err}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    let r = &json["results"][0];
    assert_eq!(
        (r["status"].as_str(), r["via_proxy"].as_str()),
        (Some("pass"), Some(tp.masked().as_str())),
        "{out}"
    );
    for s in [&out, &err] {
        assert!(
            !s.contains(proxy::PASSWORD) && !s.contains(proxy::PASSWORD_IN_URL),
            "password in output: {s}"
        );
    }

    // failing runs: wrong password (407) and a denied host, as JSON and as a table
    let denied = format!("https://{}:{}/", proxy::DENIED_HOST, addr.port());
    for (target, proxy_url, kind) in [
        (
            url.as_str(),
            tp.url_with_password("WrongPassw0rd"),
            "proxy_auth_required",
        ),
        (denied.as_str(), tp.url(), "proxy_denied"),
    ] {
        for output in ["json", "table"] {
            let args: Vec<&str> = net_flags
                .into_iter()
                .chain([target, "--output", output])
                .collect();
            let (code, out, err) = run(args, proxy_url.clone());
            assert_eq!(code, 1, "{out}\n{err}");
            assert!(out.contains(kind), "{out}");
            assert!(out.contains(&tp.masked()), "{out}");
            for s in [&out, &err] {
                for secret in ["WrongPassw0rd", proxy::PASSWORD, proxy::PASSWORD_IN_URL] {
                    assert!(!s.contains(secret), "{secret} in output: {s}");
                }
            }
        }
    }
}

#[test]
fn binary_rejects_an_unusable_proxy_variable() {
    let lab = lab();
    for (var, value) in [
        ("HTTPS_PROXY", "socks5://u:hunter2@127.0.0.1:1080"),
        ("all_proxy", "http://u:hunter2@proxy:port"),
    ] {
        let (code, out, err) = vnetprobe(
            &["probe", "--timeout", "1s", "http", "https://127.0.0.1:1/"],
            &[(var, value)],
            &lab.roots,
        );
        assert_eq!(code, 2, "{out}\n{err}");
        assert!(
            err.contains(&format!("environment variable {var}")),
            "{err}"
        );
        assert!(
            !err.contains("hunter2") && !out.contains("hunter2"),
            "{err}"
        );
    }
}

/// A real compute instance answers an unauthenticated upgrade with a sign-in wall. After a
/// publicly trusted handshake that proves the path, unconfirmed; without TLS, through an
/// inspecting device, or with another status it proves nothing.
#[tokio::test]
async fn a_sign_in_wall_passes_unconfirmed_only_behind_public_tls() {
    let lab = lab();
    let (https_addr, _) = web::http_server(Some(lab.tls.clone())).await;
    let (http_addr, _) = web::http_server(None).await;
    let public = env(&lab, net(&lab, &[]));
    let intercepted = env(
        &lab,
        NetConfig {
            ca_file: Some(lab.roots.clone()),
            allow_intercept: true,
            ..Default::default()
        },
    );
    // (server, tls, path, environment, expected: None = unconfirmed pass, Some(kind) = failure)
    let cases: [(SocketAddr, bool, &str, &ProbeEnv, Option<ErrorKind>); 6] = [
        (https_addr, true, "/status/401", &public, None),
        (https_addr, true, "/status/302", &public, None),
        (https_addr, true, "/status/403", &public, None),
        (
            https_addr,
            true,
            "/status/500",
            &public,
            Some(ErrorKind::WsRejected),
        ),
        (
            http_addr,
            false,
            "/status/401",
            &public,
            Some(ErrorKind::WsRejected),
        ),
        (
            https_addr,
            true,
            "/status/401",
            &intercepted,
            Some(ErrorKind::WsRejected),
        ),
    ];
    for (addr, tls, path, env, want) in cases {
        let o = probe(&web_target(Protocol::Ws, "127.0.0.1", addr, tls, path), env).await;
        let case = format!("{path} tls={tls} public={}", std::ptr::eq(env, &public));
        match want {
            None => {
                assert_eq!(o.status, Status::Pass, "{case}: {o:?}");
                let why = o.evidence.unverified.as_deref().unwrap_or_default();
                assert!(why.contains("sign-in"), "{case}: {o:?}");
                assert!(
                    o.evidence
                        .note
                        .as_deref()
                        .is_some_and(|n| n.contains("needs sign-in")),
                    "{case}: {o:?}"
                );
            }
            Some(k) => {
                assert_eq!(kind(&o), Some(k), "{case}: {o:?}");
                assert!(o.evidence.unverified.is_none(), "{case}: {o:?}");
            }
        }
    }
}
