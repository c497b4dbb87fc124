//! UDP and TLS probes against real servers on loopback (and, for this host's own firewall, in a
//! network namespace the test makes and removes): each case a server behaviour and the outcome
//! an operator should read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::pki::{Ca, Leaf, server_config, tls_server};
use crate::support::{Netns, Scratch, command, error_kind, json, need, write};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vnetprobe::catalog::{Check, Expect, Protocol, Target, adhoc};
use vnetprobe::net::NetConfig;
use vnetprobe::probe::dns::DnsCache;
use vnetprobe::probe::{self, ErrorKind, Evidence, Outcome, Phase, ProbeEnv, Status};

const WAIT: Duration = Duration::from_millis(400);

fn env(net: NetConfig) -> ProbeEnv {
    ProbeEnv::new(DnsCache::new(None, WAIT).expect("resolver"), WAIT, net)
}

fn target(protocol: Protocol, addr: SocketAddr, expect: Expect, payload: &[u8]) -> Target {
    let port = addr.port();
    let check = match protocol {
        Protocol::Udp => Check::Udp {
            port,
            payload: payload.to_vec(),
            responder: false,
        },
        Protocol::Tls => Check::Tls { port },
        other => panic!("no {other} cases here"),
    };
    adhoc::target(addr.ip().to_string(), check, expect)
}

fn kind(o: &Outcome) -> Option<ErrorKind> {
    o.error.as_ref().map(|e| e.kind)
}

fn message(o: &Outcome) -> &str {
    o.error.as_ref().map(|e| e.message.as_str()).unwrap_or("")
}

// ---------------------------------------------------------------- TLS

/// The PKI of the TLS cases: a stand-in for the web PKI, an inspection CA with an
/// intermediate (what a TLS-inspecting firewall presents), and a CA nobody trusts.
struct Pki {
    scratch: Scratch,
    public: Ca,
    inspection: Ca,
    inspection_sub: Ca,
    stranger: Ca,
}

impl Pki {
    fn new() -> Pki {
        let inspection = Ca::root("Contoso TLS Inspection CA");
        let inspection_sub = inspection.intermediate("Contoso Inspection Issuing CA 01");
        Pki {
            scratch: Scratch::new("tls"),
            public: Ca::root("Test Public Root R1"),
            inspection,
            inspection_sub,
            stranger: Ca::root("Nobody Trusts Me CA"),
        }
    }

    fn net(&self, allow_intercept: bool) -> NetConfig {
        NetConfig {
            public_roots: Some(self.public.write(&self.scratch, "public.pem")),
            ca_file: Some(self.inspection.write(&self.scratch, "inspection.pem")),
            allow_intercept,
            ..NetConfig::default()
        }
    }
}

/// A server that accepts TCP and then misbehaves instead of speaking TLS.
#[derive(Clone, Copy)]
enum Misbehave {
    Garbage,
    Close,
    /// Reads the ClientHello, then resets (SO_LINGER 0), as Azure Firewall does to an FQDN its
    /// application rules deny.
    ResetAfterHello,
    Silent,
}

async fn bad_server(how: Misbehave) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        match how {
            Misbehave::Garbage => {
                let _ = tcp
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = tcp.shutdown().await;
            }
            Misbehave::Close => drop(tcp),
            Misbehave::ResetAfterHello => {
                let mut hello = [0u8; 2048];
                let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut hello)).await;
                let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
                drop(tcp);
            }
            // Holds the connection open, saying nothing, until the test's runtime ends.
            Misbehave::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    });
    addr
}

async fn tls_case(leaf: &Leaf, net: NetConfig) -> Outcome {
    let (addr, _) = tls_server(server_config(leaf, &[]), 1).await;
    probe::run(
        &target(Protocol::Tls, addr, Expect::Reachable, b""),
        &env(net),
    )
    .await
}

#[tokio::test]
async fn tls_verdicts_against_real_servers() {
    let pki = Pki::new();
    let ip = ["127.0.0.1"];
    struct Case {
        name: &'static str,
        leaf: Leaf,
        allow_intercept: bool,
        kind: Option<ErrorKind>,
        trusted_by: &'static str,
        says: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "valid public chain",
            leaf: pki.public.leaf(&ip, false),
            allow_intercept: false,
            kind: None,
            trusted_by: "public",
            says: &[],
        },
        Case {
            name: "inspection CA from --ca-file",
            leaf: pki.inspection_sub.leaf_with_chain(&ip),
            allow_intercept: false,
            kind: Some(ErrorKind::TlsIntercepted),
            trusted_by: "system",
            says: &[
                "chain ends at 'Contoso TLS Inspection CA'",
                "--ca-file",
                "TLS-inspecting",
            ],
        },
        Case {
            name: "inspection CA allowed",
            leaf: pki.inspection_sub.leaf_with_chain(&ip),
            allow_intercept: true,
            kind: None,
            trusted_by: "system",
            says: &[],
        },
        Case {
            name: "unknown CA",
            leaf: pki.stranger.leaf(&ip, false),
            allow_intercept: false,
            kind: Some(ErrorKind::TlsUntrusted),
            trusted_by: "none",
            says: &[
                "chain ends at 'Nobody Trusts Me CA'",
                "VNETPROBE_PUBLIC_ROOTS",
                "--ca-file",
            ],
        },
        Case {
            name: "wrong name",
            leaf: pki.public.leaf(&["other.example"], false),
            allow_intercept: false,
            kind: Some(ErrorKind::TlsNameMismatch),
            trusted_by: "none",
            says: &["the certificate is for other.example, not for 127.0.0.1"],
        },
        Case {
            name: "wrong name behind the inspection CA",
            leaf: pki.inspection.leaf(&["other.example"], false),
            allow_intercept: false,
            kind: Some(ErrorKind::TlsNameMismatch),
            trusted_by: "none",
            says: &["trusted only by --ca-file"],
        },
        Case {
            name: "expired",
            leaf: pki.public.leaf(&ip, true),
            allow_intercept: false,
            kind: Some(ErrorKind::TlsExpired),
            trusted_by: "none",
            says: &["certificate out of date: '127.0.0.1' expired on 2020-12-31T00:00:00Z"],
        },
    ];
    for case in cases {
        let o = tls_case(&case.leaf, pki.net(case.allow_intercept)).await;
        assert_eq!(kind(&o), case.kind, "{}: {:?}", case.name, o.error);
        let want = if case.kind.is_some() {
            Status::Fail
        } else {
            Status::Pass
        };
        assert_eq!(o.status, want, "{}", case.name);
        for phrase in case.says {
            assert!(
                message(&o).contains(phrase),
                "{}: {:?} lacks {phrase:?}",
                case.name,
                message(&o)
            );
        }
        let tls = o
            .evidence
            .tls
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no TLS evidence", case.name));
        assert_eq!(tls.trusted_by, case.trusted_by, "{}", case.name);
        assert_eq!(
            tls.chain.len(),
            case.leaf.chain.len(),
            "{}: the chain is recorded whatever the verdict",
            case.name
        );
        assert!(tls.earliest_expiry.is_some(), "{}", case.name);
        assert!(
            o.evidence.phases_ms.contains_key(&Phase::Connect),
            "{}",
            case.name
        );
        assert!(
            o.evidence.phases_ms.contains_key(&Phase::Tls),
            "{}",
            case.name
        );
        assert_eq!(o.evidence.note.as_deref(), Some("direct"), "{}", case.name);
        if case.allow_intercept {
            assert!(
                o.evidence
                    .warnings
                    .iter()
                    .any(|w| w.contains("Contoso TLS Inspection CA")),
                "{}: {:?}",
                case.name,
                o.evidence.warnings
            );
        }
    }
}

#[tokio::test]
async fn tls_records_the_chain_of_a_valid_handshake() {
    let pki = Pki::new();
    let sub = pki.public.intermediate("Test Public Issuing CA");
    let o = tls_case(&sub.leaf_with_chain(&["127.0.0.1"]), pki.net(false)).await;
    assert_eq!(o.status, Status::Pass, "{:?}", o.error);
    let tls = o.evidence.tls.unwrap();
    assert!(
        tls.version
            .as_deref()
            .is_some_and(|v| v.starts_with("TLS 1.")),
        "{:?}",
        tls.version
    );
    assert_eq!(tls.chain.len(), 2);
    assert!(
        tls.chain[0].issuer.contains("Test Public Issuing CA"),
        "{:?}",
        tls.chain[0]
    );
    assert!(
        tls.chain[1].subject.contains("Test Public Issuing CA"),
        "{:?}",
        tls.chain[1]
    );
    assert!(
        tls.chain[1].issuer.contains("Test Public Root R1"),
        "{:?}",
        tls.chain[1]
    );
    assert_eq!(tls.chain[0].sans, vec!["127.0.0.1".to_string()]);
    assert_eq!(
        tls.earliest_expiry,
        tls.chain.iter().map(|c| c.not_after).min()
    );
}

#[tokio::test]
async fn tls_servers_that_do_not_speak_tls() {
    for (how, want, says) in [
        (
            Misbehave::Garbage,
            ErrorKind::TlsHandshake,
            "did not answer with TLS",
        ),
        // Not one byte back: what an application-rule firewall does, told apart from the rest.
        (
            Misbehave::Close,
            ErrorKind::TlsResetAfterHello,
            "closed right after the ClientHello (no SNI",
        ),
        (
            Misbehave::ResetAfterHello,
            ErrorKind::TlsResetAfterHello,
            "reset right after the ClientHello (no SNI",
        ),
        (
            Misbehave::Silent,
            ErrorKind::Timeout,
            "no TLS handshake within",
        ),
    ] {
        let addr = bad_server(how).await;
        let o = probe::run(
            &target(Protocol::Tls, addr, Expect::Reachable, b""),
            &env(NetConfig::default()),
        )
        .await;
        assert_eq!(kind(&o), Some(want), "{says}: {:?}", o.error);
        assert!(
            message(&o).contains(says),
            "{:?} lacks {says:?}",
            message(&o)
        );
        assert!(o.evidence.tls.is_none(), "no certificate was seen");
    }
}

/// The API the HTTP and WebSocket probes build on: any stream, any SNI, optional ALPN.
#[tokio::test]
async fn handshake_over_a_given_stream_sends_sni_and_alpn() {
    let pki = Pki::new();
    let leaf = pki.public.leaf(&["api.vnetprobe.test"], false);
    let (addr, mut hellos) = tls_server(server_config(&leaf, &[&b"h2"[..], b"http/1.1"]), 2).await;
    let env = env(pki.net(false));

    let mut ev = Evidence::default();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = vnetprobe::probe::route::handshake(
        tcp,
        "api.vnetprobe.test",
        &[b"http/1.1"],
        &env,
        &mut ev,
    )
    .await
    .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let hello = hellos.recv().await.unwrap();
    assert_eq!(hello.sni.as_deref(), Some("api.vnetprobe.test"));
    assert_eq!(hello.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(ev.tls.as_ref().unwrap().trusted_by, "public");

    let mut ev = Evidence::default();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = vnetprobe::probe::route::handshake(tcp, "api.vnetprobe.test", &[], &env, &mut ev)
        .await
        .expect("handshake");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        None,
        "no ALPN unless asked"
    );
    assert!(ev.phases_ms.contains_key(&Phase::Tls));
}

#[tokio::test]
async fn unusable_trust_files_are_errors_that_name_them() {
    let scratch = Scratch::new("badpem");
    let empty = scratch.write("empty.pem", "no certificates here\n");
    let missing: PathBuf = scratch.0.join("missing.pem");
    for (net, names) in [
        (
            NetConfig {
                ca_file: Some(empty.clone()),
                ..NetConfig::default()
            },
            "--ca-file",
        ),
        (
            NetConfig {
                public_roots: Some(missing.clone()),
                ..NetConfig::default()
            },
            "VNETPROBE_PUBLIC_ROOTS",
        ),
    ] {
        let err = vnetprobe::net::tls::Trust::load(&net).expect_err("bad file");
        assert!(err.contains(names), "{err}");
        assert!(
            err.contains("empty.pem") || err.contains("missing.pem"),
            "{err}"
        );
    }
    // The binary refuses them before probing: exit 2, naming the flag and the file.
    let empty_arg = empty.display().to_string();
    let missing_arg = missing.display().to_string();
    let runs = tokio::task::spawn_blocking(move || {
        let ca = command(&["probe", "tls", "127.0.0.1:1", "--ca-file", &empty_arg])
            .output()
            .unwrap();
        let mut roots = command(&["probe", "tls", "127.0.0.1:1"]);
        let roots = roots
            .env("VNETPROBE_PUBLIC_ROOTS", &missing_arg)
            .output()
            .unwrap();
        [
            (ca, "--ca-file", empty_arg),
            (roots, "VNETPROBE_PUBLIC_ROOTS", missing_arg),
        ]
    })
    .await
    .unwrap();
    for (out, names, file) in runs {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{names}: {stderr}");
        assert!(stderr.contains(names) && stderr.contains(&file), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing probed");
    }
}

// ---------------------------------------------------------------- UDP

#[derive(Debug, Clone, Copy, PartialEq)]
enum Peer {
    Echo,
    Silent,
    Closed,
}

/// A UDP peer on 127.0.0.1 for at most a few datagrams: it echoes, or reads and never answers,
/// or is a port nobody listens on. Each datagram it reads is reported on the channel.
async fn udp_peer(kind: Peer) -> (SocketAddr, tokio::sync::mpsc::Receiver<Vec<u8>>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    if kind == Peer::Closed {
        return (addr, rx);
    }
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        for _ in 0..4 {
            let Ok(Ok((n, from))) =
                tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await
            else {
                return;
            };
            if kind == Peer::Echo {
                let _ = socket.send_to(&buf[..n], from).await;
            }
            let _ = tx.send(buf[..n].to_vec()).await;
        }
    });
    (addr, rx)
}

type UdpCase = (Peer, Expect, &'static [u8], Option<ErrorKind>, &'static str);

#[tokio::test]
async fn udp_verdicts_against_real_peers() {
    let env = env(NetConfig::default());
    // Peer, expectation, payload, the error (None: pass), and what the report must say.
    #[rustfmt::skip]
    let cases: &[UdpCase] = &[
        (Peer::Echo, Expect::Reachable, b"ping", None, "answered (4 bytes)"),
        (Peer::Echo, Expect::Reachable, b"", None, "answered (0 bytes)"),
        (Peer::Silent, Expect::Reachable, b"\x00", None, "open|filtered: no reply and no rejection"),
        (Peer::Closed, Expect::Reachable, b"", Some(ErrorKind::UdpRejected), "ICMP port unreachable"),
        (Peer::Echo, Expect::Blocked, b"ping", Some(ErrorKind::UnexpectedlyReachable), "answered"),
        (Peer::Silent, Expect::Blocked, b"ping", None, "blocked as expected (timeout)"),
        (Peer::Closed, Expect::Blocked, b"ping", None, "blocked as expected (udp_rejected)"),
    ];
    for &(peer, expect, payload, want, says) in cases {
        let status = if want.is_some() {
            Status::Fail
        } else {
            Status::Pass
        };
        let label = format!("{peer:?}/{expect:?}/{payload:?}");
        let (addr, mut seen) = udp_peer(peer).await;
        let o = probe::run(&target(Protocol::Udp, addr, expect, payload), &env).await;
        assert_eq!(o.status, status, "{label}: {:?}", o.error);
        assert_eq!(kind(&o), want, "{label}");
        let text = format!(
            "{} {}",
            message(&o),
            o.evidence.note.as_deref().unwrap_or("")
        );
        assert!(text.contains(says), "{label}: {text:?} lacks {says:?}");
        assert!(
            !text.contains("open;") && !text.ends_with("open"),
            "{label}: silence is never called open"
        );
        assert!(o.evidence.phases_ms.contains_key(&Phase::Wait), "{label}");
        // Only a pass on silence is unconfirmed: a reply proves the path, a rejection the block.
        assert_eq!(
            o.evidence.unverified.is_some(),
            peer == Peer::Silent && expect == Expect::Reachable,
            "{label}: {:?}",
            o.evidence.unverified
        );
        if peer != Peer::Closed {
            assert_eq!(o.evidence.peer, Some(addr), "{label}");
            assert!(
                o.evidence.note.as_deref().unwrap_or("").contains("direct"),
                "{label}"
            );
            let got = tokio::time::timeout(Duration::from_secs(2), seen.recv())
                .await
                .ok()
                .flatten();
            assert_eq!(
                got.as_deref(),
                Some(payload),
                "{label}: the peer got the target's payload"
            );
        }
    }
}

// ---------------------------------------------------------------- the binary

/// Runs the binary with `envs` (no trust store variable but these), for its JSON report.
fn vnetprobe(args: &[&str], envs: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let out = command(args)
        .envs(envs.iter().copied())
        .output()
        .expect("run vnetprobe");
    (out.status.code().unwrap_or(-1), json(&out))
}

#[tokio::test]
async fn binary_probes_udp_and_reports_json() {
    let (echo, _) = udp_peer(Peer::Echo).await;
    let (closed, _) = udp_peer(Peer::Closed).await;
    let (ok, rejected) = tokio::task::spawn_blocking(move || {
        let run = |ep: SocketAddr| {
            vnetprobe(
                &[
                    "probe",
                    "--timeout",
                    "1s",
                    "udp",
                    &ep.to_string(),
                    "--output",
                    "json",
                ],
                &[],
            )
        };
        (run(echo), run(closed))
    })
    .await
    .unwrap();
    let r = &ok.1["results"][0];
    assert_eq!(ok.0, 0, "{}", ok.1);
    assert_eq!(r["protocol"], "udp");
    assert_eq!(r["status"], "pass");
    assert!(r["note"].as_str().unwrap().contains("answered"), "{r}");
    assert!(r["phases_ms"]["wait"].is_number(), "{r}");
    assert_eq!(rejected.0, 1, "{}", rejected.1);
    assert_eq!(error_kind(&rejected.1["results"][0]), "udp_rejected");
}

#[tokio::test]
async fn binary_probes_tls_with_ca_file_and_system_store() {
    let pki = Pki::new();
    let leaf = pki.inspection_sub.leaf_with_chain(&["127.0.0.1"]);
    let (addr, _) = tls_server(server_config(&leaf, &[]), 3).await;
    let public = pki
        .public
        .write(&pki.scratch, "public.pem")
        .display()
        .to_string();
    let inspection = pki
        .inspection
        .write(&pki.scratch, "inspection.pem")
        .display()
        .to_string();
    let empty_store = pki
        .scratch
        .write("empty-store.pem", "")
        .display()
        .to_string();
    let ep = addr.to_string();
    let (by_ca_file, allowed, by_system) = tokio::task::spawn_blocking(move || {
        let publics = ("VNETPROBE_PUBLIC_ROOTS", public.as_str());
        let with_ca = [
            "probe",
            "--ca-file",
            &inspection,
            "tls",
            &ep,
            "--output",
            "json",
        ];
        let allow = [
            "probe",
            "--ca-file",
            &inspection,
            "--allow-intercept",
            "tls",
            &ep,
            "--output",
            "json",
        ];
        let plain = ["probe", "tls", &ep, "--output", "json"];
        (
            // An empty system store must not get in the way of --ca-file.
            vnetprobe(&with_ca, &[publics, ("SSL_CERT_FILE", &empty_store)]),
            vnetprobe(&allow, &[publics, ("SSL_CERT_FILE", &empty_store)]),
            vnetprobe(&plain, &[publics, ("SSL_CERT_FILE", &inspection)]),
        )
    })
    .await
    .unwrap();
    let r = &by_ca_file.1["results"][0];
    assert_eq!(by_ca_file.0, 1, "{r}");
    assert_eq!(error_kind(r), "tls_intercepted");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("'Contoso TLS Inspection CA'") && msg.contains("--ca-file"),
        "{msg}"
    );
    assert_eq!(r["tls"]["trusted_by"], "system");
    assert_eq!(r["tls"]["chain"].as_array().map(Vec::len), Some(2));

    assert_eq!(allowed.0, 0, "{}", allowed.1);
    assert_eq!(allowed.1["results"][0]["status"], "pass");

    let r = &by_system.1["results"][0];
    assert_eq!(by_system.0, 1, "{r}");
    assert_eq!(error_kind(r), "tls_intercepted");
    let msg = r["error"]["message"].as_str().unwrap();
    assert!(msg.contains("the system store"), "{msg}");
}

// ---------------------------------------------------------------- this host's own firewall

/// Output rules match destination ports below the ephemeral range, so no reply is caught.
const FIREWALL: &str = "table inet vnetprobe_test {
    chain out {
        type filter hook output priority 0;
        udp dport 5831 drop
        udp dport 5832 reject
    }
}
";

/// Removes the namespace's own /etc files (`ip netns exec` mounts /etc/netns/NAME/* over /etc).
struct NetnsEtc(PathBuf);

impl Drop for NetnsEtc {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn udp_through_this_hosts_own_firewall() {
    if !need("nft", "udp through the local firewall") {
        return;
    }
    let ns = Netns::create("udpfw");
    ns.nft(FIREWALL);
    let etc = NetnsEtc(PathBuf::from("/etc/netns").join(&ns.name));
    std::fs::create_dir_all(&etc.0).unwrap();
    // Both families in the hosts file, so the lookup never needs a DNS server.
    write(
        &etc.0,
        "hosts",
        "10.255.255.1 multi.vnetprobe.test\n127.0.0.1 multi.vnetprobe.test\n::1 multi.vnetprobe.test\n",
    );
    let cases = [
        (
            "127.0.0.1:5831",
            "local_firewall",
            "this host's own firewall",
        ),
        (
            "127.0.0.1:5832",
            "local_firewall",
            "this host's own firewall",
        ),
        ("127.0.0.1:5833", "udp_rejected", "ICMP port unreachable"),
        // No route in the namespace: nothing leaves it.
        ("10.255.255.1:5833", "net_unreachable", "unreachable"),
        // The first address has no route and is skipped; the next one decides.
        (
            "multi.vnetprobe.test:5833",
            "udp_rejected",
            "127.0.0.1:5833",
        ),
    ];
    for (endpoint, kind, says) in cases {
        let out = ns.vnetprobe(&[
            "probe",
            "--timeout",
            "1s",
            "udp",
            endpoint,
            "--output",
            "json",
        ]);
        let (code, report) = (out.status.code(), json(&out));
        let r = &report["results"][0];
        assert_eq!(code, Some(1), "{endpoint}: {r}");
        assert_eq!(error_kind(r), kind, "{endpoint}: {r}");
        let msg = r["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{endpoint}: {msg:?} lacks {says:?}");
        if endpoint.starts_with("multi") {
            assert_eq!(
                r["warnings"][0],
                "skipped 10.255.255.1:5833: Network is unreachable (os error 101)"
            );
        }
    }
    drop(etc);
}

/// Azure Firewall refuses a ClientHello without SNI: the probe's ClientHello names the host
/// through a CONNECT tunnel as well as directly.
#[tokio::test]
async fn the_client_hello_carries_sni_through_a_proxy_tunnel() {
    let pki = Pki::new();
    let leaf = pki.public.leaf(&["api.vnetprobe.test"], false);
    let (server, mut hellos) = tls_server(server_config(&leaf, &[]), 1).await;
    // A one-connection CONNECT proxy that tunnels whatever is asked to the TLS server.
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let asked = tokio::spawn(async move {
        let (mut client, _) = proxy.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
            client.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .unwrap();
        let mut upstream = TcpStream::connect(server).await.unwrap();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::copy_bidirectional(&mut client, &mut upstream),
        )
        .await;
        String::from_utf8_lossy(&head).into_owned()
    });
    let mut net = pki.net(false);
    net.proxy = Some(format!("http://{proxy_addr}"));
    let t = adhoc::target(
        "api.vnetprobe.test".into(),
        Check::Tls {
            port: server.port(),
        },
        Expect::Reachable,
    );
    let o = probe::run(&t, &env(net)).await;
    assert_eq!(o.status, Status::Pass, "{:?}", o.error);
    let hello = hellos.recv().await.unwrap();
    assert_eq!(hello.sni.as_deref(), Some("api.vnetprobe.test"));
    let head = asked.await.unwrap();
    assert!(
        head.starts_with(&format!("CONNECT api.vnetprobe.test:{} ", server.port())),
        "{head}"
    );
}
