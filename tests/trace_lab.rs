//! Path tracing (issue 22) through real Linux routers: tests/lab/routers.sh builds a compute
//! namespace, two forwarding namespaces and a destination, of its own (`vptr-PID-FAMILY-*`,
//! apart from vplab), and each scenario filters the path one way. `vnetprobe probe trace` runs
//! in the compute namespace, unprivileged in what it asks of the kernel (an ordinary socket and
//! IP_RECVERR), and its JSON must say where the trail ended and which hop addresses answered.
//!
//! Needs root (to build the namespaces; the traces themselves also run as nobody with no
//! capability), `ip netns`, nft and setpriv: ignored without the `root-tests` feature.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::support::{bin, clean_env, need, output_within, require_root};

/// The TCP port the destination listens on, and the UDP port it echoes on; `CLOSED` has
/// neither.
const TCP_OPEN: u16 = 8787;
const UDP_ECHO: u16 = 5831;
const CLOSED: u16 = 9;

/// The addresses of routers.sh, for one family: the compute side of each router, and the
/// destination.
struct Family {
    tag: &'static str,
    hop1: &'static str,
    hop2: &'static str,
    dest: &'static str,
    /// ICMP type and code of "communication administratively prohibited".
    prohibited: (u64, u64),
}

const V4: Family = Family {
    tag: "4",
    hop1: "10.79.1.1",
    hop2: "10.79.2.2",
    dest: "10.79.3.2",
    prohibited: (3, 13),
};
const V6: Family = Family {
    tag: "6",
    hop1: "fd79:1::1",
    hop2: "fd79:2::2",
    dest: "fd79:3::2",
    prohibited: (1, 1),
};

fn routers(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/routers.sh");
    let out = output_within(
        Command::new("bash").arg(script).args(args),
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "routers.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The routed path while it is up; dropping it removes its namespaces, also on a panic.
struct Routed {
    prefix: String,
    stop: Arc<AtomicBool>,
}

impl Routed {
    fn up(family: &Family) -> Routed {
        require_root("the router namespaces");
        let prefix = format!("vptr-{}-{}", std::process::id(), family.tag);
        routers(&["up", &prefix]);
        Routed {
            prefix,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn scenario(&self, name: &str) {
        routers(&["scenario", &self.prefix, name]);
    }

    fn ns(&self, which: &str) -> String {
        format!("{}-{which}", self.prefix)
    }

    /// A TCP listener and a UDP echo in the destination namespace, made by a thread that
    /// entered it (a socket stays in the namespace it was made in). The echo ends when the
    /// path is dropped, and after a minute at the latest.
    fn serve(&self) -> TcpListener {
        let ns = std::fs::File::open(format!("/run/netns/{}", self.ns("d"))).unwrap();
        let stop = self.stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // SAFETY: a namespace fd that is open; this thread alone changes namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let tcp = TcpListener::bind(("::", TCP_OPEN)).unwrap();
            let udp = UdpSocket::bind(("::", UDP_ECHO)).unwrap();
            udp.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            tx.send(tcp).unwrap();
            let mut buf = [0u8; 512];
            for _ in 0..600 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(if n == 0 { b"pong" } else { &buf[..n] }, from);
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the destination's servers started")
    }

    /// `vnetprobe probe trace PROTOCOL DEST:PORT --output json` in the compute namespace: the
    /// result's trace.
    fn trace(&self, protocol: &str, dest: &str, port: u16) -> Value {
        self.trace_by(None, protocol, dest, port)
    }

    /// The same, as the hardened unit runs it: user nobody, no capability in any set (bounding
    /// included), no_new_privs; the binary copied where nobody can run it.
    fn trace_unprivileged(&self, protocol: &str, dest: &str, port: u16) -> Value {
        use std::os::unix::fs::PermissionsExt;
        let scratch = crate::support::Scratch::new("trace-nobody");
        let copy = scratch.0.join("vnetprobe");
        std::fs::copy(bin(), &copy).unwrap();
        for (path, mode) in [(&scratch.0, 0o755), (&copy, 0o755)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        self.trace_by(Some(&copy), protocol, dest, port)
    }

    fn trace_by(&self, nobody: Option<&Path>, protocol: &str, dest: &str, port: u16) -> Value {
        let to = SocketAddr::new(dest.parse::<IpAddr>().unwrap(), port).to_string();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns("c")]);
        match nobody {
            Some(binary) => cmd
                .args([
                    "setpriv",
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--bounding-set=-all",
                    "--no-new-privs",
                    "--",
                ])
                .arg(binary),
            None => cmd.arg(bin()),
        };
        clean_env(cmd.args([
            "probe",
            "trace",
            protocol,
            &to,
            "--max-ttl",
            "8",
            "--timeout",
            "2s",
            "--output",
            "json",
        ]));
        let out = output_within(&mut cmd, Duration::from_secs(30));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "probe trace {protocol} {to}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        report["results"][0]["trace"].clone()
    }

    /// `vnetprobe check --trace --output json` in the compute namespace on a catalog of one
    /// TCP target per port to `dest`.
    fn check_traced(&self, dest: &str, ports: &[u16]) -> Value {
        let scratch = crate::support::Scratch::new("trace-lab");
        let catalog: String = ports
            .iter()
            .map(|p| {
                format!(
                    "[[target]]\nid = \"path-{p}\"\nname = \"path {p}\"\nprotocol = \"tcp\"\n\
                     host = \"{dest}\"\nports = [{p}]\nprofiles = [\"internet\"]\nwhy = \"lab\"\n\
                     fix = \"lab\"\n\n"
                )
            })
            .collect();
        let file = scratch.write("catalog.toml", &catalog);
        let mut cmd = Command::new("ip");
        clean_env(cmd.args(["netns", "exec", &self.ns("c"), bin()]).args([
            "check",
            "--catalog",
            file.to_str().unwrap(),
            "--trace",
            "--timeout",
            "2s",
            "--output",
            "json",
        ]));
        let out = output_within(&mut cmd, Duration::from_secs(30));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/routers.sh");
        let _ = Command::new("bash")
            .arg(script)
            .args(["down", &self.prefix])
            .status();
    }
}

/// (ttl, address, kind) of each answered hop.
fn hops(trace: &Value) -> Vec<(u64, String, String)> {
    trace["hops"]
        .as_array()
        .unwrap_or_else(|| panic!("no hops in {trace}"))
        .iter()
        .map(|h| {
            (
                h["ttl"].as_u64().unwrap(),
                h["address"].as_str().unwrap().to_string(),
                h["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn hop(ttl: u64, address: &str, kind: &str) -> (u64, String, String) {
    (ttl, address.to_string(), kind.to_string())
}

fn ended(trace: &Value) -> &str {
    trace["ended"].as_str().unwrap_or_else(|| panic!("{trace}"))
}

fn traces_through_routers(f: &Family) {
    if !need("nft", "path tracing through router namespaces") {
        return;
    }
    let path = Routed::up(f);
    let _listener = path.serve();
    let te = "time_exceeded";
    let routers = [hop(1, f.hop1, te), hop(2, f.hop2, te)];

    // Open: both routers answer time exceeded, then the destination itself.
    path.scenario("open");
    for (protocol, port, meaning) in [
        ("tcp", TCP_OPEN, "SYN-ACK: connection accepted"),
        ("tcp", CLOSED, "TCP reset"),
        ("udp", UDP_ECHO, "UDP reply (4 bytes)"),
        ("udp", CLOSED, "port unreachable"),
    ] {
        let t = path.trace(protocol, f.dest, port);
        assert_eq!(ended(&t), "destination", "{protocol}/{port}: {t}");
        let got = hops(&t);
        assert_eq!(got[..2], routers, "{protocol}/{port}: {t}");
        assert_eq!((got[2].0, got[2].1.as_str()), (3, f.dest), "{t}");
        assert_eq!(got.len(), 3, "nothing past the destination: {t}");
        assert_eq!(t["at"]["address"], f.dest, "{t}");
        let said = t["at"]["meaning"].as_str().unwrap();
        assert!(said.starts_with(meaning), "{protocol}/{port}: {said}");
    }

    // Without root, without any capability: the same answers (the unit's sandbox allows no
    // capability, and tracing needs none).
    if need("setpriv", "path tracing as an unprivileged user") {
        for (protocol, port) in [("tcp", TCP_OPEN), ("udp", UDP_ECHO)] {
            let t = path.trace_unprivileged(protocol, f.dest, port);
            assert_eq!(ended(&t), "destination", "as nobody, {protocol}: {t}");
            assert_eq!(hops(&t)[..2], routers, "as nobody, {protocol}: {t}");
        }
    }

    // This host's own firewall drops on output: TCP sees silence at every TTL; a UDP send is
    // refused at once (EPERM), which the trace says is this host's filter.
    path.scenario("own-output");
    let t = path.trace("tcp", f.dest, TCP_OPEN);
    assert_eq!((ended(&t), hops(&t)), ("no_hop_answered", vec![]), "{t}");
    let t = path.trace("udp", f.dest, UDP_ECHO);
    assert_eq!((ended(&t), hops(&t)), ("local_firewall", vec![]), "{t}");

    // An NSG-like drop where the packets enter the first device: no TTL is answered.
    path.scenario("first-hop-drop");
    for protocol in ["tcp", "udp"] {
        let t = path.trace(protocol, f.dest, TCP_OPEN);
        assert_eq!((ended(&t), hops(&t)), ("no_hop_answered", vec![]), "{t}");
        assert_eq!(t["probed_ttl"], 8, "every TTL was tried: {t}");
        let s = t["summary"].as_str().unwrap();
        assert!(s.starts_with("no hop answered (TTL 1-8"), "{s}");
    }

    // A firewall two hops on drops: hop 1 answers, then silence, reported after hop 1.
    path.scenario("fw-drop");
    for protocol in ["tcp", "udp"] {
        let t = path.trace(protocol, f.dest, TCP_OPEN);
        assert_eq!(ended(&t), "silent_after_hop", "{t}");
        assert_eq!(hops(&t), routers[..1], "{t}");
        assert_eq!(t["at"]["address"], f.hop1, "{t}");
        let s = t["summary"].as_str().unwrap();
        let want = format!(
            "1 hop answered, silent after hop 1 {} (TTL 2-8 unanswered)",
            f.hop1
        );
        assert_eq!(s, want, "{t}");
    }

    // `check --trace` on two paths through that firewall: each traced, and one cause.
    let report = path.check_traced(f.dest, &[TCP_OPEN, TCP_OPEN + 1]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{report}");
    for r in results {
        assert_eq!(r["error"]["kind"], "tcp_timeout", "{r}");
        assert_eq!(ended(&r["trace"]), "silent_after_hop", "{r}");
        assert_eq!(r["trace"]["at"]["address"], f.hop1, "{r}");
        let hint = r["hint"].as_str().unwrap();
        assert!(
            hint.contains(&format!("silent after hop 1 {}", f.hop1)),
            "{hint}"
        );
    }
    let want = format!(
        "2 paths go silent after {}, the last hop that answered: TCP {TCP_OPEN}, TCP {}",
        f.hop1,
        TCP_OPEN + 1
    );
    assert!(
        report["causes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["message"] == want.as_str() && c["targets"].as_array().unwrap().len() == 2),
        "want the cause {want:?}: {}",
        report["causes"]
    );

    // A firewall that rejects what it forwards: the TTL it would forward with 0 is answered
    // time exceeded first, then the next TTL is rejected administratively by the same address.
    path.scenario("fw-reject");
    for protocol in ["tcp", "udp"] {
        let t = path.trace(protocol, f.dest, TCP_OPEN);
        assert_eq!(ended(&t), "rejected", "{t}");
        let got = hops(&t);
        assert_eq!(got[..2], routers, "{t}");
        assert_eq!(got[2..], [hop(3, f.hop2, "unreachable")], "{t}");
        let at = &t["at"];
        assert_eq!(
            (at["icmp_type"].as_u64(), at["icmp_code"].as_u64()),
            (Some(f.prohibited.0), Some(f.prohibited.1)),
            "{t}"
        );
        let said = at["meaning"].as_str().unwrap();
        assert!(
            said.starts_with("communication administratively prohibited"),
            "{said}"
        );
        let s = t["summary"].as_str().unwrap();
        assert!(s.contains(&format!("hop 2 {}", f.hop2)), "{s}");
    }
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn trace_ipv4_through_routers() {
    traces_through_routers(&V4);
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn trace_ipv6_through_routers() {
    traces_through_routers(&V6);
}
