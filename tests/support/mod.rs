//! Test support shared by the integration tests: the real binary, real servers on loopback,
//! network namespaces made and removed by the test. Every wait here is bounded.

pub mod attack;
pub mod pki;
pub mod proxy;
pub mod web;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vnetprobe")
}

/// The one environment every test runs the binary in, also when a wrapper starts it (`ip netns
/// exec`, `unshare`, `script`): nothing of the test's own environment but PATH, so no proxy,
/// trust store, `VNETPROBE_*`, Azure ML or systemd variable of this machine leaks in; discovery
/// off; NO_COLOR. A test adds what it needs with `.env`, and one about discovery switches it
/// back on with `.env_remove("VNETPROBE_DISCOVER")`.
pub fn clean_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VNETPROBE_DISCOVER", "0")
        .env("NO_COLOR", "1")
}

/// The binary with `args`, in the clean environment.
pub fn command(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    clean_env(c.args(args));
    c
}

/// Runs the binary with `args` in the clean environment.
pub fn run(args: &[&str]) -> Output {
    command(args).output().expect("the binary runs")
}

/// Written past libtest's capture: a skip, or the progress of a long test, must be seen.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Whether the tests that need root run (the `root-tests` feature, which tests/run.sh sets).
pub const ROOT_TESTS: bool = cfg!(feature = "root-tests");

/// Fails the test unless it runs as root. The tests that call this (through `Netns::create`,
/// `Tinyproxy::start`, the lab) are ignored without the `root-tests` feature; run with it, they
/// must not pass by doing nothing.
pub fn require_root(what: &str) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() == 0 };
    assert!(
        root,
        "{what} needs root (namespaces, nftables): run tests/run.sh, or \
         `cargo test --features root-tests` as root; without the feature it is ignored"
    );
}

/// Whether `tool` is installed, for `what` (see `need_that`).
pub fn need(tool: &str, what: &str) -> bool {
    need_that(have(tool), what, &format!("{tool}, which is not installed"))
}

/// `present`, the test's prerequisite `needed`. When it is missing: with the `root-tests`
/// feature (the whole suite, after tests/run.sh installed every tool) the test fails; without
/// it, a skip that says so.
pub fn need_that(present: bool, what: &str, needed: &str) -> bool {
    if present {
        return true;
    }
    if ROOT_TESTS {
        panic!("{what} needs {needed} (tests/run.sh installs it)");
    }
    say(&format!("\n*** SKIPPED: {what}: needs {needed} ***\n"));
    false
}

pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Runs the binary and asserts a usage error: exit 2, no panic, each needle in stderr, and
/// nothing on stdout.
pub fn assert_usage_error(args: &[&str], needles: &[&str]) {
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?} should exit 2; stderr: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: want {n:?} in: {err}");
    }
    assert!(
        out.stdout.is_empty(),
        "{args:?}: nothing on stdout for a usage error"
    );
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The results with this id, in order.
pub fn results<'a>(report: &'a serde_json::Value, id: &str) -> Vec<&'a serde_json::Value> {
    report["results"]
        .as_array()
        .expect("results array")
        .iter()
        .filter(|r| r["id"] == id)
        .collect()
}

pub fn result<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    let r = results(report, id);
    assert_eq!(r.len(), 1, "exactly one result for {id}");
    r[0]
}

pub fn error_kind(r: &serde_json::Value) -> &str {
    r["error"]["kind"].as_str().unwrap_or("")
}

/// A new directory for the test, unique in the test process (its tests run side by side).
/// The scratch folders made by `temp_dir`, removed when the test binary exits.
static MADE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

extern "C" fn remove_made() {
    if let Ok(dirs) = MADE.lock() {
        for dir in dirs.iter() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A fresh folder under the system's temporary folder, removed when the test binary exits
/// (every server a test starts is stopped by then).
pub fn temp_dir(tag: &str) -> PathBuf {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    // SAFETY: atexit takes a plain function pointer, registered once.
    AT_EXIT.call_once(|| unsafe {
        libc::atexit(remove_made);
    });
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vnetprobe-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    MADE.lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir.clone());
    dir
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch(temp_dir(tag))
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        write(&self.0, name, text)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p
}

/// A free loopback port (TCP and UDP both free at the time of asking).
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = t.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 50 tries");
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Kills and reaps a child when dropped.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A minimal DNS query for `name` type A, for readiness checks.
pub fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// A real dnsmasq on a loopback port, logging its queries, gone when dropped.
pub struct Dnsmasq {
    pub addr: SocketAddr,
    pub log: PathBuf,
    _child: Reaper,
}

impl Dnsmasq {
    /// Starts dnsmasq with `conf` lines added to a base that answers only from its own records.
    pub fn start(conf: &str) -> Dnsmasq {
        let dir = temp_dir("dnsmasq");
        let port = free_port();
        let log = dir.join("queries.log");
        let text = format!(
            "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\nno-negcache\n\
             cache-size=0\nlog-queries\nlog-facility={}\npid-file=\nuser=root\n{conf}\n",
            log.display()
        );
        let conf_path = write(&dir, "dnsmasq.conf", &text);
        let child = Command::new("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf_path.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dnsmasq is installed (tests/run.sh installs dnsmasq-base)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let d = Dnsmasq {
            addr,
            log,
            _child: Reaper(child),
        };
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buf = [0u8; 512];
        for i in 0..50 {
            let _ = sock.send_to(&dns_query(i, "ready.invalid"), addr);
            if sock.recv_from(&mut buf).is_ok() {
                return d;
            }
        }
        panic!("dnsmasq did not answer on {addr} within 5 s");
    }

    /// Queries dnsmasq has logged so far (one line per query it received).
    pub fn queries(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(": query[") && !l.contains("ready.invalid"))
            .map(String::from)
            .collect()
    }
}

/// A UDP DNS responder that answers every query with SERVFAIL, or never answers.
pub struct FakeDns {
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeDns {
    pub fn start(answer: bool) -> FakeDns {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let start = Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(120)
            {
                if let Ok((n, from)) = sock.recv_from(&mut buf)
                    && answer
                    && n >= 12
                {
                    let mut reply = buf[..n].to_vec();
                    reply[2] = 0x81; // QR, RD
                    reply[3] = 0x82; // RA, SERVFAIL
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        FakeDns { addr, stop }
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A TCP listener on loopback that accepts and counts connections until dropped.
pub struct Listener {
    pub port: u16,
    pub accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Listener {
    pub fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (count, flag) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && start.elapsed() < Duration::from_secs(300)
            {
                match l.accept() {
                    Ok(_) => {
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Listener {
            port,
            accepted,
            stop,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A network namespace made by the test, deleted when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// Fails the test when namespaces cannot be made here (not root, no `ip netns`).
    pub fn create(tag: &str) -> Netns {
        require_root(&format!("network namespace {tag}"));
        let name = format!("vpt-{tag}-{}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip(8) runs (Debian package iproute2)");
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ns = Netns { name };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn exec(&self, cmd: &[&str]) -> Output {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn nft(&self, ruleset: &str) {
        let mut nft = Command::new("ip");
        let out = feed(
            nft.args(["netns", "exec", &self.name, "nft", "-f", "-"]),
            ruleset,
        );
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The binary with `args` inside the namespace, in the clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        clean_env(c.args(["netns", "exec", &self.name, bin()]).args(args));
        c
    }

    /// Runs the binary inside the namespace.
    pub fn vnetprobe(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A JSON report of one failed probe: TCP to a free (refused) loopback port.
pub fn refused_report() -> serde_json::Value {
    let port = free_port().to_string();
    let endpoint = format!("127.0.0.1:{port}");
    let out = run(&["probe", "tcp", &endpoint, "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    json(&out)
}

/// Runs `cmd` with `input` on its stdin, to its end, and collects its output.
pub fn feed(cmd: &mut Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{:?} does not run: {e}", cmd.get_program()));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    // Written beside the reading, so a child that answers before it has read all cannot block.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    let _ = writer.join();
    out
}

/// Asserts that `promtool check metrics` (Debian package prometheus) accepts `text` and prints
/// nothing: no lint warning either.
pub fn assert_promtool_clean(text: &str, what: &str) {
    let out = feed(Command::new("promtool").args(["check", "metrics"]), text);
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && printed.is_empty(),
        "promtool on {what}: {printed}\n{text}"
    );
}

/// Runs `cmd` to its end, or kills it and fails the test when it runs past `deadline`.
pub fn output_within(cmd: &mut Command, deadline: Duration) -> Output {
    try_output_within(cmd, deadline).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` to its end with stdin closed and its output collected; an error when it does not
/// start, or when it runs past `deadline` (then it is killed).
pub fn try_output_within(cmd: &mut Command, deadline: Duration) -> Result<Output, String> {
    use std::io::Read;
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what}: still running after {deadline:?}, killed"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

/// One `#[test]` per case of a table: `cases! { check; name: case, ... }` makes `fn name()`
/// calling `check("name", case)`, so each case counts, runs and fails on its own, by its name.
macro_rules! cases {
    ($check:path; $($(#[$doc:meta])* $name:ident: $case:expr),+ $(,)?) => {
        $(
            $(#[$doc])*
            #[test]
            fn $name() {
                $check(stringify!($name), $case)
            }
        )+
    };
}
pub(crate) use cases;
