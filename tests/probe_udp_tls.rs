//! UDP and TLS probes against real servers on loopback (and, for this host's own firewall, in a
//! network namespace the test makes and removes): each case a server behaviour and the outcome
//! an operator should read.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use support::pki::{Ca, Leaf, Scratch, server_config, tls_server};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use vnetprobe::catalog::{Expect, ProbeSpec, Protocol, Target, adhoc};
use vnetprobe::net::NetConfig;
use vnetprobe::probe::dns::DnsCache;
use vnetprobe::probe::{self, ErrorKind, Evidence, Outcome, Phase, ProbeEnv, Status};

const WAIT: Duration = Duration::from_millis(400);

fn env(net: NetConfig) -> ProbeEnv {
    ProbeEnv::new(DnsCache::new(None, WAIT).expect("resolver"), WAIT, net)
}

fn target(protocol: Protocol, addr: SocketAddr, expect: Expect, payload: &[u8]) -> Target {
    let spec = ProbeSpec { payload: payload.to_vec(), ..ProbeSpec::default() };
    adhoc::target(protocol, addr.ip().to_string(), Some(addr.port()), expect, spec)
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
                let _ = tcp.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
                let _ = tcp.shutdown().await;
            }
            Misbehave::Close => drop(tcp),
            // Holds the connection open, saying nothing, until the test's runtime ends.
            Misbehave::Silent => tokio::time::sleep(Duration::from_secs(30)).await,
        }
    });
    addr
}

async fn tls_case(leaf: &Leaf, net: NetConfig) -> Outcome {
    let (addr, _) = tls_server(server_config(leaf, &[]), 1).await;
    probe::run(&target(Protocol::Tls, addr, Expect::Reachable, b""), &env(net)).await
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
            says: &["chain ends at 'Contoso TLS Inspection CA'", "--ca-file", "TLS-inspecting"],
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
            says: &["chain ends at 'Nobody Trusts Me CA'", "VNETPROBE_PUBLIC_ROOTS", "--ca-file"],
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
        let want = if case.kind.is_some() { Status::Fail } else { Status::Pass };
        assert_eq!(o.status, want, "{}", case.name);
        for phrase in case.says {
            assert!(message(&o).contains(phrase), "{}: {:?} lacks {phrase:?}", case.name, message(&o));
        }
        let tls = o.evidence.tls.as_ref().unwrap_or_else(|| panic!("{}: no TLS evidence", case.name));
        assert_eq!(tls.trusted_by, case.trusted_by, "{}", case.name);
        assert_eq!(tls.chain.len(), case.leaf.chain.len(), "{}: the chain is recorded whatever the verdict", case.name);
        assert!(tls.earliest_expiry.is_some(), "{}", case.name);
        assert!(o.evidence.phases_ms.contains_key(&Phase::Connect), "{}", case.name);
        assert!(o.evidence.phases_ms.contains_key(&Phase::Tls), "{}", case.name);
        assert_eq!(o.evidence.note.as_deref(), Some("direct"), "{}", case.name);
        if case.allow_intercept {
            assert!(
                o.evidence.warnings.iter().any(|w| w.contains("Contoso TLS Inspection CA")),
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
    assert!(tls.version.as_deref().is_some_and(|v| v.starts_with("TLS 1.")), "{:?}", tls.version);
    assert_eq!(tls.chain.len(), 2);
    assert!(tls.chain[0].issuer.contains("Test Public Issuing CA"), "{:?}", tls.chain[0]);
    assert!(tls.chain[1].subject.contains("Test Public Issuing CA"), "{:?}", tls.chain[1]);
    assert!(tls.chain[1].issuer.contains("Test Public Root R1"), "{:?}", tls.chain[1]);
    assert_eq!(tls.chain[0].sans, vec!["127.0.0.1".to_string()]);
    assert_eq!(tls.earliest_expiry, tls.chain.iter().map(|c| c.not_after).min());
}

#[tokio::test]
async fn tls_servers_that_do_not_speak_tls() {
    for (how, want, says) in [
        (Misbehave::Garbage, ErrorKind::TlsHandshake, "did not answer with TLS"),
        (Misbehave::Close, ErrorKind::TlsHandshake, "closed the connection"),
        (Misbehave::Silent, ErrorKind::Timeout, "no TLS handshake within"),
    ] {
        let addr = bad_server(how).await;
        let o = probe::run(&target(Protocol::Tls, addr, Expect::Reachable, b""), &env(NetConfig::default())).await;
        assert_eq!(kind(&o), Some(want), "{says}: {:?}", o.error);
        assert!(message(&o).contains(says), "{:?} lacks {says:?}", message(&o));
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
    let tls = vnetprobe::net::tls::handshake_with_alpn(tcp, "api.vnetprobe.test", &[b"http/1.1"], &env, &mut ev)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let hello = hellos.recv().await.unwrap();
    assert_eq!(hello.sni.as_deref(), Some("api.vnetprobe.test"));
    assert_eq!(hello.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(ev.tls.as_ref().unwrap().trusted_by, "public");

    let mut ev = Evidence::default();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = vnetprobe::net::tls::handshake(tcp, "api.vnetprobe.test", &env, &mut ev).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), None, "no ALPN unless asked");
    assert!(ev.phases_ms.contains_key(&Phase::Tls));
}

#[tokio::test]
async fn unusable_trust_files_are_errors_that_name_them() {
    let scratch = Scratch::new("badpem");
    let empty = scratch.write("empty.pem", "no certificates here\n");
    let missing: PathBuf = scratch.0.join("missing.pem");
    for (net, names) in [
        (NetConfig { ca_file: Some(empty.clone()), ..NetConfig::default() }, "--ca-file"),
        (NetConfig { public_roots: Some(missing.clone()), ..NetConfig::default() }, "VNETPROBE_PUBLIC_ROOTS"),
    ] {
        let err = vnetprobe::net::tls::Trust::load(&net).expect_err("bad file");
        assert!(err.contains(names), "{err}");
        assert!(err.contains("empty.pem") || err.contains("missing.pem"), "{err}");
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
            let Ok(Ok((n, from))) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf)).await
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

#[tokio::test]
async fn udp_verdicts_against_real_peers() {
    let env = env(NetConfig::default());
    let cases: &[(Peer, Expect, &[u8], Status, Option<ErrorKind>, &str)] = &[
        (Peer::Echo, Expect::Reachable, b"ping", Status::Pass, None, "answered (4 bytes)"),
        (Peer::Echo, Expect::Reachable, b"", Status::Pass, None, "answered (0 bytes)"),
        (Peer::Silent, Expect::Reachable, b"\x00", Status::Pass, None, "open|filtered: no reply and no rejection"),
        (Peer::Closed, Expect::Reachable, b"", Status::Fail, Some(ErrorKind::UdpRejected), "ICMP port unreachable"),
        (Peer::Echo, Expect::Blocked, b"ping", Status::Fail, Some(ErrorKind::UnexpectedlyReachable), "answered"),
        (Peer::Silent, Expect::Blocked, b"ping", Status::Pass, None, "blocked as expected (timeout)"),
        (Peer::Closed, Expect::Blocked, b"ping", Status::Pass, None, "blocked as expected (udp_rejected)"),
    ];
    for &(peer, expect, payload, status, want, says) in cases {
        let label = format!("{peer:?}/{expect:?}/{payload:?}");
        let (addr, mut seen) = udp_peer(peer).await;
        let o = probe::run(&target(Protocol::Udp, addr, expect, payload), &env).await;
        assert_eq!(o.status, status, "{label}: {:?}", o.error);
        assert_eq!(kind(&o), want, "{label}");
        let text = format!("{} {}", message(&o), o.evidence.note.as_deref().unwrap_or(""));
        assert!(text.contains(says), "{label}: {text:?} lacks {says:?}");
        assert!(!text.contains("open;") && !text.ends_with("open"), "{label}: silence is never called open");
        assert!(o.evidence.phases_ms.contains_key(&Phase::Wait), "{label}");
        if peer != Peer::Closed {
            assert_eq!(o.evidence.peer, Some(addr), "{label}");
            assert!(o.evidence.note.as_deref().unwrap_or("").contains("direct"), "{label}");
            let got = tokio::time::timeout(Duration::from_secs(2), seen.recv()).await.ok().flatten();
            assert_eq!(got.as_deref(), Some(payload), "{label}: the peer got the target's payload");
        }
    }
}

// ---------------------------------------------------------------- the binary

struct Run {
    code: i32,
    json: serde_json::Value,
}

fn vnetprobe(args: &[&str], envs: &[(&str, &str)], netns: Option<&str>) -> Run {
    let bin = env!("CARGO_BIN_EXE_vnetprobe");
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", ns, bin]);
            c
        }
        None => std::process::Command::new(bin),
    };
    cmd.args(args).env_remove("VNETPROBE_PUBLIC_ROOTS").env_remove("SSL_CERT_FILE").env_remove("SSL_CERT_DIR");
    cmd.envs(envs.iter().copied());
    let out = cmd.output().expect("run vnetprobe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("{args:?}: not JSON ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    Run { code: out.status.code().unwrap_or(-1), json }
}

fn result(run: &Run) -> &serde_json::Value {
    &run.json["results"][0]
}

fn error_kind(run: &Run) -> &str {
    result(run)["error"]["kind"].as_str().unwrap_or("")
}

#[tokio::test]
async fn binary_probes_udp_and_reports_json() {
    let (echo, _) = udp_peer(Peer::Echo).await;
    let (closed, _) = udp_peer(Peer::Closed).await;
    let echo_arg = echo.to_string();
    let closed_arg = closed.to_string();
    let (ok, rejected) = tokio::task::spawn_blocking(move || {
        let args = |ep: &str| ["probe", "--timeout", "1s", "udp", ep, "--output", "json"].map(String::from);
        let run = |ep: &str| vnetprobe(&args(ep).iter().map(String::as_str).collect::<Vec<_>>(), &[], None);
        (run(&echo_arg), run(&closed_arg))
    })
    .await
    .unwrap();
    assert_eq!(ok.code, 0, "{}", ok.json);
    assert_eq!(result(&ok)["protocol"], "udp");
    assert_eq!(result(&ok)["status"], "pass");
    assert!(result(&ok)["note"].as_str().unwrap().contains("answered"), "{}", ok.json);
    assert!(result(&ok)["phases_ms"]["wait"].is_number(), "{}", ok.json);
    assert_eq!(rejected.code, 1, "{}", rejected.json);
    assert_eq!(error_kind(&rejected), "udp_rejected");
}

#[tokio::test]
async fn binary_probes_tls_with_ca_file_and_system_store() {
    let pki = Pki::new();
    let leaf = pki.inspection_sub.leaf_with_chain(&["127.0.0.1"]);
    let (addr, _) = tls_server(server_config(&leaf, &[]), 3).await;
    let public = pki.public.write(&pki.scratch, "public.pem").display().to_string();
    let inspection = pki.inspection.write(&pki.scratch, "inspection.pem").display().to_string();
    let empty_store = pki.scratch.write("empty-store.pem", "").display().to_string();
    let ep = addr.to_string();
    let (by_ca_file, allowed, by_system) = tokio::task::spawn_blocking(move || {
        let publics = ("VNETPROBE_PUBLIC_ROOTS", public.as_str());
        let with_ca = ["probe", "--ca-file", &inspection, "tls", &ep, "--output", "json"];
        let allow = ["probe", "--ca-file", &inspection, "--allow-intercept", "tls", &ep, "--output", "json"];
        let plain = ["probe", "tls", &ep, "--output", "json"];
        (
            // An empty system store must not get in the way of --ca-file.
            vnetprobe(&with_ca, &[publics, ("SSL_CERT_FILE", &empty_store)], None),
            vnetprobe(&allow, &[publics, ("SSL_CERT_FILE", &empty_store)], None),
            vnetprobe(&plain, &[publics, ("SSL_CERT_FILE", &inspection)], None),
        )
    })
    .await
    .unwrap();
    assert_eq!(by_ca_file.code, 1, "{}", by_ca_file.json);
    assert_eq!(error_kind(&by_ca_file), "tls_intercepted");
    let msg = result(&by_ca_file)["error"]["message"].as_str().unwrap();
    assert!(msg.contains("'Contoso TLS Inspection CA'") && msg.contains("--ca-file"), "{msg}");
    assert_eq!(result(&by_ca_file)["tls"]["trusted_by"], "system");
    assert_eq!(result(&by_ca_file)["tls"]["chain"].as_array().map(Vec::len), Some(2));

    assert_eq!(allowed.code, 0, "{}", allowed.json);
    assert_eq!(result(&allowed)["status"], "pass");

    assert_eq!(by_system.code, 1, "{}", by_system.json);
    assert_eq!(error_kind(&by_system), "tls_intercepted");
    let msg = result(&by_system)["error"]["message"].as_str().unwrap();
    assert!(msg.contains("the system store"), "{msg}");
}

// ---------------------------------------------------------------- this host's own firewall

/// A network namespace with only loopback and an nftables output filter, removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// None (and a loud note) when this test cannot make one: not root, or no `ip`/`nft`.
    fn new(rules: &str, hosts: &str) -> Option<Netns> {
        let root = unsafe { libc::geteuid() } == 0;
        let tools = ["ip", "nft"].iter().all(|t| {
            std::process::Command::new(t).arg("-V").output().is_ok_and(|o| o.status.success())
                || std::process::Command::new(t).arg("--version").output().is_ok_and(|o| o.status.success())
        });
        if !root || !tools {
            eprintln!("SKIPPED: local firewall tests need root, ip(8) and nft(8) (root={root}, tools={tools})");
            return None;
        }
        let ns = Netns { name: format!("vnp-udp-{}", std::process::id()) };
        // `ip netns exec` mounts /etc/netns/NAME/* over /etc: the namespace gets its own hosts file.
        let etc = PathBuf::from("/etc/netns").join(&ns.name);
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        std::fs::write(etc.join("hosts"), hosts).expect("hosts");
        std::fs::write(etc.join("resolv.conf"), "nameserver 127.0.0.1\n").expect("resolv.conf");
        ns.sh(&["ip", "netns", "add", &ns.name]);
        ns.sh(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        let mut nft = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, "nft", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        std::io::Write::write_all(nft.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
        drop(nft.stdin.take());
        assert!(nft.wait().unwrap().success(), "nft rules loaded");
        Some(ns)
    }

    fn sh(&self, args: &[&str]) {
        let out = std::process::Command::new(args[0]).args(&args[1..]).output().expect(args[0]);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.name]).output();
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.name));
    }
}

/// Output rules match destination ports below the ephemeral range, so no reply is caught.
const FIREWALL: &str = "table inet vnetprobe_test {
    chain out {
        type filter hook output priority 0;
        udp dport 5831 drop
        udp dport 5832 reject
    }
}
";

#[test]
fn udp_through_this_hosts_own_firewall() {
    // Both families in the hosts file, so the lookup never needs a DNS server.
    let hosts = "10.255.255.1 multi.vnetprobe.test\n127.0.0.1 multi.vnetprobe.test\n::1 multi.vnetprobe.test\n";
    let Some(ns) = Netns::new(FIREWALL, hosts) else { return };
    let cases = [
        ("127.0.0.1:5831", "local_firewall", "this host's own firewall"),
        ("127.0.0.1:5832", "local_firewall", "this host's own firewall"),
        ("127.0.0.1:5833", "udp_rejected", "ICMP port unreachable"),
        // No route in the namespace: nothing leaves it.
        ("10.255.255.1:5833", "net_unreachable", "unreachable"),
        // The first address has no route and is skipped; the next one decides.
        ("multi.vnetprobe.test:5833", "udp_rejected", "127.0.0.1:5833"),
    ];
    for (endpoint, kind, says) in cases {
        let run = vnetprobe(&["probe", "--timeout", "1s", "udp", endpoint, "--output", "json"], &[], Some(&ns.name));
        assert_eq!(run.code, 1, "{endpoint}: {}", run.json);
        assert_eq!(error_kind(&run), kind, "{endpoint}: {}", run.json);
        let msg = result(&run)["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{endpoint}: {msg:?} lacks {says:?}");
        if endpoint.starts_with("multi") {
            assert_eq!(result(&run)["warnings"][0], "skipped 10.255.255.1:5833: Network is unreachable (os error 101)");
        }
    }
}
