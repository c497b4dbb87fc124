//! Paths between nodes: `vnetprobe listen` and `check --peer`, end to end with the real binary.
//! On loopback: the signed echo, a forged reply, the rate limit, the deadline, bad input. In two
//! network namespaces joined by a veth link (root only): the responder in one, the checks from
//! the other, then nftables dropping and rejecting in between.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;
use vnetprobe::net::echo::{self, Key, Transport};

const KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5\n";
const OTHER_KEY: &str = "YW5vdGhlci1rZXktdGhhdC1kb2VzLW5vdC1tYXRjaC0wMTI=\n";

/// A running responder whose stderr is collected; killed when dropped.
struct Responder {
    child: Reaper,
    log: Arc<Mutex<String>>,
}

impl Responder {
    /// Starts `cmd` (a `listen` command line) and waits, at most 10 s, for its "listening" line.
    fn start(mut cmd: Command) -> Responder {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("the responder starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening on") {
                    let _ = tx.send(());
                }
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let r = Responder {
            child: Reaper(child),
            log,
        };
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            panic!(
                "the responder did not say it listens within 10 s:\n{}",
                r.log()
            );
        }
        r
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then the exit status within 10 s.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill with a pid this test spawned and has not reaped.
        unsafe { libc::kill(self.child.0.id() as i32, libc::SIGTERM) };
        wait_exit(&mut self.child.0, Duration::from_secs(10))
            .expect("the responder stops on SIGTERM")
    }

    /// The log, once the reader thread has seen everything up to `marker` (bounded wait).
    fn log_with(&self, marker: &str) -> String {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            let log = self.log();
            if log.contains(marker) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn listen(args: &[&str]) -> Responder {
    let mut cmd = command(&["listen"]);
    cmd.args(args);
    Responder::start(cmd)
}

/// A responder on loopback UDP `port`, with more `listen` arguments.
fn listen_udp(port: u16, extra: &[&str]) -> Responder {
    let port = port.to_string();
    let mut args = vec!["--address", "127.0.0.1", "--udp", &port];
    args.extend_from_slice(extra);
    listen(&args)
}

fn key_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    write(dir, name, text).display().to_string()
}

/// `check` with only the peer targets (`--only` matches no catalog id).
fn check_peer(peer: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "check",
        "--only",
        "no-catalog-target",
        "--peer",
        peer,
        "--timeout",
        "1s",
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

// ---- who answers the echo ----

/// Who answers at the peer's TCP and UDP ports.
enum Server {
    /// `vnetprobe listen`, with this key (None: without a key).
    Responder(Option<&'static str>),
    /// A fake responder without the key: its replies are well formed, unsigned or (`signs`)
    /// signed with a key of its own.
    Forger { signs: bool },
    /// Another service: an SSH greeting on TCP, a fixed datagram on UDP.
    OtherService,
}

/// A `check --peer` of both transports against `server`, and what each of the two results must
/// show.
struct Echo {
    server: Server,
    /// The key of the check (None: no `--key-file`).
    key: Option<&'static str>,
    status: &'static str,
    kind: &'static str,
    /// `responder.authenticated`; None: no `responder` (nothing proved it is one).
    authenticated: Option<bool>,
    /// (field, text): the result's field says the text.
    says: &'static [(&'static str, &'static str)],
    /// What the responder logs (`{tcp}` and `{udp}` stand for its ports).
    logs: &'static [&'static str],
}

/// A server for `Echo` while the check runs.
enum Running {
    Responder(Responder),
    Forger(Arc<AtomicBool>),
    OtherService,
}

fn echo(name: &str, case: Echo) {
    let dir = Scratch::new("peer-echo");
    let (tcp, udp, running) = match case.server {
        Server::Responder(key) => {
            let (tcp, udp) = (free_port(), free_port());
            let (t, u) = (tcp.to_string(), udp.to_string());
            let key = key.map(|k| key_file(&dir.0, "responder.key", k));
            let mut args = vec!["--address", "127.0.0.1", "--tcp", &t, "--udp", &u];
            args.extend(key.iter().flat_map(|k| ["--key-file", k.as_str()]));
            (tcp, udp, Running::Responder(listen(&args)))
        }
        Server::Forger { signs } => {
            let own = signs.then(|| Key::from_bytes(b"the forger's own key, not ours").unwrap());
            let (tcp, udp, stop) = forger(own);
            (tcp, udp, Running::Forger(stop))
        }
        Server::OtherService => {
            let (tcp, udp) = other_service();
            (tcp, udp, Running::OtherService)
        }
    };
    let key = case.key.map(|k| key_file(&dir.0, "check.key", k));
    let extra: Vec<&str> = key
        .iter()
        .flat_map(|k| ["--key-file", k.as_str()])
        .collect();
    let out = check_peer(&format!("127.0.0.1:tcp/{tcp},udp/{udp}"), &extra);
    let report = json(&out);
    let code = if case.status == "pass" { 0 } else { 1 };
    assert_eq!(out.status.code(), Some(code), "{name}: {report}");
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{name}: a result per transport: {report}");
    for res in results {
        assert_eq!(res["status"], case.status, "{name}: {res}");
        assert_eq!(error_kind(res), case.kind, "{name}: {res}");
        assert!(
            res["profiles"].as_array().unwrap().contains(&"peer".into()),
            "{name}: {res}"
        );
        match case.authenticated {
            Some(authenticated) => {
                assert_eq!(
                    res["responder"]["authenticated"], authenticated,
                    "{name}: {res}"
                );
                assert!(
                    res["responder"]["node"]
                        .as_str()
                        .is_some_and(|n| !n.is_empty()),
                    "{name}: the responder names its node: {res}"
                );
            }
            None => assert!(
                res.get("responder").is_none(),
                "{name}: nothing proved a responder: {res}"
            ),
        }
        for (field, text) in case.says {
            assert!(
                res[field].to_string().contains(text),
                "{name}: {field} should say {text:?}: {res}"
            );
        }
    }
    match running {
        Running::Responder(mut r) => {
            for want in case.logs {
                let want = want
                    .replace("{tcp}", &tcp.to_string())
                    .replace("{udp}", &udp.to_string());
                let log = r.log_with(&want);
                assert!(log.contains(&want), "{name}: {want:?} in:\n{log}");
            }
            assert_eq!(r.stop().code(), Some(0), "{name}: {}", r.log());
            for key in [KEY, OTHER_KEY] {
                assert!(
                    !r.log().contains(key.trim()),
                    "{name}: a key is never logged"
                );
            }
        }
        Running::Forger(stop) => stop.store(true, Ordering::Relaxed),
        Running::OtherService => {}
    }
}

/// A fake responder that has no key: it echoes the nonce in a well-formed reply, unsigned or
/// signed with a key of its own, on TCP and UDP.
fn forger(signed_with: Option<Key>) -> (u16, u16, Arc<AtomicBool>) {
    let stop = Arc::new(AtomicBool::new(false));
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (tport, uport) = (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    tcp.set_nonblocking(true).unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let forge = move |req: &[u8], t: Transport, port: u16| {
        let nonce: [u8; 16] = req[12..28].try_into().unwrap();
        echo::reply(signed_with.as_ref(), t, port, &nonce, "forger")
    };
    let flag = stop.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let start = Instant::now();
        let mut buf = [0u8; 200];
        while !flag.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
            if let Ok((n, from)) = udp.recv_from(&mut buf)
                && n >= 28
            {
                let _ = udp.send_to(&forge(&buf[..n], Transport::Udp, uport), from);
            }
            if let Ok((mut s, _)) = tcp.accept() {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut req = [0u8; echo::REQUEST_LEN];
                if s.read_exact(&mut req).is_ok() {
                    let _ = s.write_all(&forge(&req, Transport::Tcp, tport));
                }
            }
        }
    });
    (tport, uport, stop)
}

/// A TCP server that greets like SSH and a UDP one that answers anything with a fixed datagram,
/// each for one client.
fn other_service() -> (u16, u16) {
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (tport, uport) = (
        tcp.local_addr().unwrap().port(),
        udp.local_addr().unwrap().port(),
    );
    udp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    std::thread::spawn(move || {
        use std::io::Write;
        if let Ok((mut s, _)) = tcp.accept() {
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 200];
        for _ in 0..100 {
            if let Ok((_, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(b"pong", from);
                return;
            }
        }
    });
    (tport, uport)
}

/// What an `Echo` case does not say: the check fails as not authenticated, nothing is a
/// responder, nothing more is said or logged.
const NOT_AUTHENTICATED: Echo = Echo {
    server: Server::OtherService,
    key: Some(KEY),
    status: "fail",
    kind: "peer_not_authenticated",
    authenticated: None,
    says: &[],
    logs: &[],
};

// One test per server behaviour (see `cases!`).
cases! { echo;
    a_shared_key_confirms_tcp_and_udp_and_the_responder_logs_each_peer: Echo {
        server: Server::Responder(Some(KEY)),
        status: "pass",
        kind: "",
        authenticated: Some(true),
        says: &[("note", "peer ")],
        logs: &["answered tcp/{tcp} from 127.0.0.1:", "answered udp/{udp} from 127.0.0.1:"],
        ..NOT_AUTHENTICATED
    },
    without_a_key_the_echo_passes_unauthenticated_and_says_so: Echo {
        server: Server::Responder(None),
        key: None,
        status: "pass",
        kind: "",
        authenticated: Some(false),
        says: &[("warnings", "not authenticated")],
        ..NOT_AUTHENTICATED
    },
    different_keys_fail_as_not_authenticated: Echo {
        server: Server::Responder(Some(OTHER_KEY)),
        says: &[("hint", "--key-file")],
        logs: &["refused"],
        ..NOT_AUTHENTICATED
    },
    /// The responder answers only signed requests.
    a_keyless_check_of_a_keyed_responder_fails_as_not_authenticated: Echo {
        server: Server::Responder(Some(KEY)),
        key: None,
        logs: &["refused"],
        ..NOT_AUTHENTICATED
    },
    a_forged_unsigned_reply_fails_as_not_authenticated: Echo {
        server: Server::Forger { signs: false },
        ..NOT_AUTHENTICATED
    },
    a_reply_signed_with_another_key_fails_as_not_authenticated: Echo {
        server: Server::Forger { signs: true },
        ..NOT_AUTHENTICATED
    },
    another_service_on_the_port_is_no_echo: Echo {
        server: Server::OtherService,
        key: None,
        kind: "peer_no_echo",
        ..NOT_AUTHENTICATED
    },
}

#[test]
fn the_rate_limit_cuts_a_burst_from_one_source() {
    let udp = free_port();
    let mut r = listen_udp(udp, &["--rate", "1"]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", udp)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    const SENT: usize = 30;
    for _ in 0..SENT {
        let req = echo::request(None, Transport::Udp, udp, &echo::nonce());
        sock.send(&req).unwrap();
    }
    let mut replies = 0;
    let mut buf = [0u8; 200];
    while replies < SENT && sock.recv(&mut buf).is_ok() {
        replies += 1;
    }
    // A burst is twice the rate; a slow machine may refill a token or two meanwhile.
    assert!(
        (1..SENT / 2).contains(&replies),
        "{replies} replies to {SENT} requests"
    );
    assert_eq!(r.stop().code(), Some(0));
    let log = r.log_with("rate limit");
    assert!(log.contains("rate limit: "), "{log}");
}

#[test]
fn the_responder_stops_at_its_deadline() {
    let udp = free_port();
    let mut r = listen_udp(udp, &["--for", "1s"]);
    let status = wait_exit(&mut r.child.0, Duration::from_secs(15)).expect("stopped by itself");
    assert_eq!(status.code(), Some(0));
    let log = r.log_with("deadline");
    assert!(log.contains("deadline of 1s reached"), "{log}");
    // Nothing answers there any more.
    let out = check_peer(&format!("127.0.0.1:udp/{udp}"), &[]);
    assert_eq!(error_kind(&json(&out)["results"][0]), "udp_rejected");
}

#[test]
fn bad_input_exits_2_naming_the_flag_or_file() {
    let dir = temp_dir("peer-bad");
    let short = key_file(&dir, "short.key", "tooshort\n");
    let missing = dir.join("missing.key").display().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["listen", "--tcp", "0"], "--tcp"),
        (vec!["listen", "--tcp", "70000"], "--tcp"),
        (vec!["listen", "--udp", "5000-4000"], "--udp"),
        (vec!["listen", "--udp", "1000-2000"], "--udp"),
        (vec!["listen"], "--tcp PORTS"),
        (vec!["listen", "--udp", "9", "--for", "0s"], "--for"),
        (
            vec!["listen", "--udp", "9", "--for", "1m", "--forever"],
            "--forever",
        ),
        (vec!["listen", "--udp", "9", "--rate", "0"], "--rate"),
        (
            vec!["listen", "--udp", "9", "--key-file", &short],
            "short.key",
        ),
        (
            vec!["listen", "--udp", "9", "--key-file", &missing],
            "missing.key",
        ),
        (vec!["check", "--peer", "10.0.0.1"], "--peer"),
        (vec!["check", "--peer", "10.0.0.1:sctp/9"], "--peer"),
        (vec!["check", "--peer", "10.0.0.1:tcp/0"], "--peer"),
        (
            vec!["check", "--peer", "127.0.0.1:tcp/9", "--key-file", &short],
            "short.key",
        ),
    ];
    for (args, named) in cases {
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(named), "{args:?} must name {named}: {err}");
        assert!(!err.contains("tooshort"), "a key is never printed: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn a_port_in_use_is_named() {
    let held = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let out = run(&[
        "listen",
        "--address",
        "127.0.0.1",
        "--udp",
        &port,
        "--for",
        "2s",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--udp: cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn the_listen_unit_scores_at_most_1_5() {
    if !need("systemd-analyze", "the listen unit's exposure score") {
        return;
    }
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/vnetprobe-listen.service"
    );
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", unit])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(':').nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{text}"));
    assert!(score <= 1.5, "exposure {score} > 1.5:\n{text}");
    let unit_text = std::fs::read_to_string(unit).unwrap();
    assert!(unit_text.contains("\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"));
    assert!(unit_text.contains("\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"));
}

/// Two namespaces joined by a veth pair: `a` 10.231.7.1, `b` 10.231.7.2 (addresses that exist
/// only inside them).
fn linked_pair(tag: &str) -> (Netns, Netns) {
    let a = Netns::create(&format!("{tag}a"));
    let b = Netns::create(&format!("{tag}b"));
    let (va, vb) = (
        format!("vpa{}", std::process::id() % 100000),
        format!("vpb{}", std::process::id() % 100000),
    );
    a.exec(&[
        "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb, "netns", &b.name,
    ]);
    a.exec(&["ip", "addr", "add", "10.231.7.1/24", "dev", &va]);
    a.exec(&["ip", "link", "set", &va, "up"]);
    b.exec(&["ip", "addr", "add", "10.231.7.2/24", "dev", &vb]);
    b.exec(&["ip", "link", "set", &vb, "up"]);
    (a, b)
}

fn listen_in(ns: &Netns, args: &[&str]) -> Responder {
    let mut cmd = ns.command(&["listen"]);
    cmd.args(args);
    Responder::start(cmd)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn between_two_namespaces_the_echo_crosses_and_nftables_drop_and_reject_are_told_apart() {
    let (a, b) = linked_pair("peer");
    let dir = temp_dir("peer-ns");
    let key = key_file(&dir, "peer.key", KEY);
    let _r = listen_in(&b, &["--tcp", "4450", "--udp", "5831", "--key-file", &key]);
    let check = |timeout: &str| {
        let out = a.vnetprobe(&[
            "check",
            "--only",
            "no-catalog-target",
            "--peer",
            "10.231.7.2:tcp/4450,udp/5831",
            "--key-file",
            &key,
            "--timeout",
            timeout,
            "--output",
            "json",
        ]);
        let report = json(&out);
        let kinds: Vec<(String, String)> = ["peer-10-231-7-2-tcp", "peer-10-231-7-2-udp"]
            .iter()
            .map(|id| {
                let r = result(&report, id);
                (
                    r["status"].as_str().unwrap().to_string(),
                    error_kind(r).to_string(),
                )
            })
            .collect();
        (out.status.code(), kinds, report)
    };
    let (code, kinds, report) = check("1s");
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        kinds,
        [("pass".into(), "".into()), ("pass".into(), "".into())]
    );
    assert_eq!(
        result(&report, "peer-10-231-7-2-udp")["responder"]["authenticated"],
        true
    );

    // The peer's subnet drops what comes from 10.231.7.1: silence on both.
    let rules = |verdict: &str| {
        format!(
            "table inet peer {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  \
             ip saddr 10.231.7.1 tcp dport 4450 {verdict}\n  ip saddr 10.231.7.1 udp dport 5831 {verdict}\n }}\n}}\n"
        )
    };
    // Drop is silence on both; reject answers: refused, and ICMP port unreachable.
    let cases = [
        ("drop", "500ms", ["tcp_timeout", "timeout"]),
        ("reject", "1s", ["tcp_refused", "udp_rejected"]),
    ];
    for (verdict, timeout, expected) in cases {
        b.nft(&rules(verdict));
        let (code, kinds, report) = check(timeout);
        assert_eq!(code, Some(1), "{verdict}");
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|k| ("fail".to_string(), k.to_string()))
            .collect();
        assert_eq!(kinds, want, "{verdict}: {report}");
        let hint = result(&report, "peer-10-231-7-2-udp")["hint"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            hint.contains("peering") && hint.contains("NSG") && hint.contains("route"),
            "{hint}"
        );
        b.nft("delete table inet peer\n");
    }
}

/// `vnetprobe ARGS` in namespace `ns` under its own host name `node` (a UTS namespace), as a
/// node of a fleet would run it.
fn as_node(node: &str, ns: &Netns, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--uts",
        "sh",
        "-c",
        r#"hostname "$0" && exec ip netns exec "$@""#,
        node,
    ])
    .arg(&ns.name)
    .arg(bin())
    .args(args);
    clean_env(&mut cmd);
    cmd
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn a_fleet_of_two_merges_into_a_node_by_node_matrix() {
    if !need("unshare", "a fleet of two nodes") {
        return;
    }
    let (a, b) = linked_pair("mtx");
    let dir = temp_dir("peer-matrix");
    let key = key_file(&dir, "peer.key", KEY);
    let listen_args = [
        "listen",
        "--tcp",
        "4450",
        "--udp",
        "5831",
        "--key-file",
        &key,
    ];
    let _ra = Responder::start(as_node("node-a", &a, &listen_args));
    let _rb = Responder::start(as_node("node-b", &b, &listen_args));
    // node-b's subnet drops TCP from node-a: one direction of one path is broken.
    b.nft(
        "table inet peer {\n chain input {\n  type filter hook input priority 0; policy accept;\n  \
         ip saddr 10.231.7.1 tcp dport 4450 drop\n }\n}\n",
    );
    let mut files = Vec::new();
    for (node, ns, peer) in [("node-a", &a, "10.231.7.2"), ("node-b", &b, "10.231.7.1")] {
        let spec = format!("{peer}:tcp/4450,udp/5831");
        let out = as_node(
            node,
            ns,
            &[
                "check",
                "--only",
                "no-catalog-target",
                "--peer",
                &spec,
                "--key-file",
                &key,
                "--timeout",
                "500ms",
                "--output",
                "json",
            ],
        )
        .output()
        .unwrap();
        assert_eq!(json(&out)["node"], node);
        files.push(write(
            &dir,
            &format!("{node}.json"),
            &String::from_utf8_lossy(&out.stdout),
        ));
    }
    let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let mut args = vec!["merge"];
    args.extend_from_slice(&paths);
    let out = run(&args);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{table}");
    assert!(
        table.contains("peer paths: 4 checked, 1 failing"),
        "{table}"
    );
    let row = |node: &str| {
        table
            .lines()
            .skip_while(|l| !l.starts_with("FROM \\ TO"))
            .find(|l| l.starts_with(node))
            .unwrap_or_else(|| panic!("no matrix row for {node}:\n{table}"))
            .to_string()
    };
    assert!(row("node-a").contains("tcp/4450 tcp_timeout"), "{table}");
    assert!(row("node-b").contains(" ok "), "{table}");
    args.extend_from_slice(&["--output", "json"]);
    let merged = json(&run(&args));
    assert_eq!(
        merged["peers"]["nodes"],
        serde_json::json!(["node-a", "node-b"])
    );
}

/// The job's command as Azure ML runs it: the folded `command: >-` block of fleet-job.yml.
fn fleet_command() -> String {
    let yml = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/azureml/fleet-job.yml"
    );
    let text = std::fs::read_to_string(yml).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "command: >-")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(str::trim)
        .collect();
    assert!(!lines.is_empty(), "no `command: >-` block in {yml}");
    lines.join(" ")
}

/// The files a fleet job leaves on its node (pid files and key copies): when dropped, the
/// responders they name are stopped and the files removed.
struct FleetCleanup(Vec<std::path::PathBuf>);

impl Drop for FleetCleanup {
    fn drop(&mut self) {
        for file in &self.0 {
            if file.extension().is_some_and(|e| e == "pid")
                && let Some(pid) = std::fs::read_to_string(file)
                    .ok()
                    .and_then(|p| p.trim().parse::<i32>().ok())
            {
                // SAFETY: a pid our own run wrote; at worst the process is already gone.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let _ = std::fs::remove_file(file);
        }
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn the_fleet_job_peer_mode_checks_every_node_from_every_node() {
    if !need("unshare", "the fleet job's peer mode") {
        return;
    }
    let (a, b) = linked_pair("flt");
    let code = temp_dir("fleet-code");
    let out = temp_dir("fleet-out");
    // Each node installs the binary where the job says (/tmp/vnetprobe on a real node); the two
    // "nodes" here share one folder, so each gets its own path or their installs would race.
    let installed = |node: &str| code.join(format!("installed-vnetprobe-{node}"));
    std::fs::copy(bin(), code.join("vnetprobe")).unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/azureml/fleet-peers.sh"
    );
    std::fs::copy(script, code.join("fleet-peers.sh")).unwrap();
    write(&code, "peer.key", KEY);
    let cmd = fleet_command()
        .replace("/tmp/vnetprobe", "${VNETPROBE}")
        .replace("${{inputs.mode}}", "peers")
        .replace("${{outputs.reports}}", out.to_str().unwrap())
        // Only the peer checks: the namespaces have no DNS for the catalog.
        .replace(
            "check --output json",
            "check --only no-catalog-target --timeout 1s --output json",
        );
    let pid = std::process::id();
    let nodes = [(format!("vpt-a-{pid}"), &a), (format!("vpt-b-{pid}"), &b)];
    let _cleanup = FleetCleanup(
        nodes
            .iter()
            .flat_map(|(n, _)| {
                // What the job leaves on a node: the responder's pid file and its key copy.
                [
                    format!("/tmp/vnetprobe-listen.{n}.pid"),
                    format!("/tmp/vnetprobe-peer.{n}.key"),
                ]
            })
            .map(std::path::PathBuf::from)
            .collect(),
    );
    let mut children: Vec<Reaper> = nodes
        .iter()
        .map(|(node, ns)| {
            let mut job = Command::new("unshare");
            job.args([
                "--uts",
                "sh",
                "-c",
                r#"hostname "$0" && exec ip netns exec "$1" sh -c "$2""#,
            ])
            .args([node.as_str(), ns.name.as_str(), cmd.as_str()]);
            let child = clean_env(&mut job)
                .current_dir(&code)
                .env("VNETPROBE", installed(node))
                .env("WORLD_SIZE", "2")
                .env("VNETPROBE_PEER_TCP", "4450")
                .env("VNETPROBE_PEER_UDP", "5831")
                .env("VNETPROBE_PEER_WAIT", "30")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(out.join(format!("{node}.err"))).unwrap())
                .spawn()
                .unwrap();
            Reaper(child)
        })
        .collect();
    for c in &mut children {
        let status = wait_exit(&mut c.0, Duration::from_secs(90)).expect("the node's job ends");
        assert!(status.success(), "the job command always succeeds");
    }
    let reports: Vec<String> = nodes
        .iter()
        .map(|(n, _)| out.join(format!("{n}.json")).display().to_string())
        .collect();
    let mut args = vec!["merge", "--output", "json"];
    args.extend(reports.iter().map(String::as_str));
    let merged = run(&args);
    let stderr: Vec<String> = nodes
        .iter()
        .map(|(n, _)| std::fs::read_to_string(out.join(format!("{n}.err"))).unwrap_or_default())
        .collect();
    assert_eq!(
        merged.status.code(),
        Some(0),
        "{}{}\nnodes' stderr:\n{}",
        String::from_utf8_lossy(&merged.stdout),
        String::from_utf8_lossy(&merged.stderr),
        stderr.join("\n")
    );
    let m = json(&merged);
    let names: Vec<&str> = nodes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(m["peers"]["nodes"], serde_json::json!(names), "{m}");
    let paths = m["peers"]["paths"].as_array().unwrap();
    assert_eq!(paths.len(), 4, "tcp and udp, both ways: {m}");
    assert!(
        paths
            .iter()
            .all(|p| p["status"] == "pass" && p["authenticated"] == true),
        "{m}"
    );
    let log = std::fs::read_to_string(out.join("peers").join(format!("{}.listen.log", names[0])))
        .unwrap();
    assert!(log.contains("answered tcp/4450 from 10.231.7.2:"), "{log}");
}

#[test]
fn ports_key_and_deadline_come_from_the_config_file_and_its_mistakes_are_named() {
    let dir = temp_dir("peer-config");
    let key = key_file(&dir, "peer.key", KEY);
    let udp = free_port();
    let config = write(
        &dir,
        "config.toml",
        &format!(
            "[listen]\nudp = \"{udp}\"\naddress = \"127.0.0.1\"\nkey-file = \"{key}\"\nfor = \"1s\"\n"
        ),
    );
    let config = config.to_str().unwrap();
    let mut r = listen(&["--config", config]);
    // check reads the same key from the config file's [listen] table.
    let out = check_peer(&format!("127.0.0.1:udp/{udp}"), &["--config", config]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(json(&out)["results"][0]["responder"]["authenticated"], true);
    let status = wait_exit(&mut r.child.0, Duration::from_secs(15)).expect("stopped at for = 1s");
    assert_eq!(status.code(), Some(0));

    for (table, field) in [
        ("[listen]\nudp = \"0\"\n", "bad.toml:2: field `listen.udp`"),
        (
            "[listen]\nudp = \"9\"\nfor = \"soon\"\n",
            "bad.toml:3: field `listen.for`",
        ),
        (
            "[listen]\nudp = \"9\"\nrate = 0\n",
            "bad.toml:3: field `listen.rate`",
        ),
        ("[listen]\nudp = \"9\"\nport = 9\n", "port"),
    ] {
        let bad = write(&dir, "bad.toml", table);
        let out = run(&["listen", "--config", bad.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{table}: {err}");
        assert!(
            err.contains("bad.toml:") && err.contains(field),
            "{table}: {err}"
        );
    }
}
