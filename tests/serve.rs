//! `vnetprobe serve` and the Prometheus outputs end to end: a real Prometheus scraping the daemon,
//! promtool on the text, signals, the textfile writer under a concurrent reader, Basic auth and
//! TLS. Every target is on loopback; every child process is killed by a guard.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Listener, Reaper, Scratch, assert_promtool_clean, command, free_port};

const MAX_BODY: u64 = 16 * 1024 * 1024;

/// Polls `check` every 50 ms until it gives a value or `limit` passes.
pub(crate) fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {limit:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A catalog of TCP targets on 127.0.0.1: (id, port, required).
pub(crate) fn tcp_catalog(targets: &[(&str, u16, bool)]) -> String {
    targets
        .iter()
        .map(|(id, port, required)| {
            format!(
                "[[target]]\nid = \"{id}\"\nname = \"{id}\"\nprotocol = \"tcp\"\nhost = \"127.0.0.1\"\nports = [{port}]\n\
                 profiles = [\"internet\"]\nrequired = {required}\nwhy = \"test\"\nfix = \"open port {port}\"\n\n"
            )
        })
        .collect()
}

/// `vnetprobe SUBCOMMAND --config /dev/null` (no system config), discovery off.
fn vnetprobe(subcommand: &str) -> Command {
    command(&[subcommand, "--config", "/dev/null"])
}

/// `vnetprobe check` on a catalog.
fn check(catalog: &std::path::Path) -> Command {
    let mut c = vnetprobe("check");
    c.arg("--catalog").arg(catalog);
    c
}

/// Runs `cmd` and returns its stdout, asserting the exit code.
fn stdout_of(cmd: &mut Command, code: i32) -> String {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(code), "{stdout}{stderr}");
    stdout.into_owned()
}

/// A running `vnetprobe serve`, killed on drop; its stderr is collected.
pub(crate) struct Daemon {
    child: Reaper,
    pub(crate) addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub(crate) fn start(args: &[&str]) -> Daemon {
        let mut child = vnetprobe("serve")
            .args(["--listen", "127.0.0.1:0", "--log-level", "info"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (pipe, sink) = (child.stderr.take().unwrap(), stderr.clone());
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut daemon = Daemon {
            child: Reaper(child),
            addr: "0.0.0.0:0".parse().unwrap(),
            stderr,
        };
        daemon.addr = wait_for(Duration::from_secs(20), "the daemon to listen", || {
            let log = daemon.log();
            let at = log.find("listening on ")?;
            let rest = &log[at..];
            let addr = rest[rest.find("://")? + 3..rest.find(';')?].parse().ok();
            if addr.is_none() {
                assert!(
                    daemon.child.0.try_wait().unwrap().is_none(),
                    "serve exited: {log}"
                );
            }
            addr
        });
        daemon
    }

    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn get(&self, path: &str) -> Reply {
        http_get(self.addr, path, None)
    }

    fn metrics(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    pub(crate) fn wait_ready(&self) {
        wait_for(Duration::from_secs(30), "the first run", || {
            (self.get("/readyz").status == 200).then_some(())
        });
    }

    fn signal(&self, sig: i32) {
        assert_eq!(unsafe { libc::kill(self.child.0.id() as i32, sig) }, 0);
    }

    /// Waits (bounded) for the process to exit and returns its code.
    fn wait_exit(&mut self) -> Option<i32> {
        wait_for(Duration::from_secs(10), "serve to exit", || {
            self.child.0.try_wait().unwrap()
        })
        .code()
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

/// One HTTP/1.1 GET over any stream, `Connection: close`, read to the end (capped).
fn exchange(
    mut stream: impl Read + Write,
    path: &str,
    auth: Option<&str>,
) -> std::io::Result<Reply> {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{auth}\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.take(MAX_BODY).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head: {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Reply {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn http_get(addr: SocketAddr, path: &str, auth: Option<&str>) -> Reply {
    exchange(connect(addr), path, auth).unwrap()
}

/// The sample value of the series whose line starts with `prefix` (name and labels).
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn success_series(id: &str, port: u16) -> String {
    format!(
        "vnetprobe_probe_success{{host=\"127.0.0.1\",port=\"{port}\",protocol=\"tcp\",required=\"true\",target=\"{id}\"}}"
    )
}

/// A real Prometheus on loopback scraping `target` every second, killed on drop.
struct Prometheus {
    child: Reaper,
    port: u16,
    _dir: Scratch,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = Scratch::new("prometheus");
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: vnetprobe\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        );
        let port = free_port();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus) is installed");
        Prometheus {
            child: Reaper(child),
            port,
            _dir: dir,
        }
    }

    /// The instant vector of `query`, as (labels, value) pairs; None while Prometheus is not up.
    fn query(&mut self, query: &str) -> Option<Vec<(serde_json::Value, String)>> {
        assert!(
            self.child.0.try_wait().unwrap().is_none(),
            "prometheus exited"
        );
        let stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reply = exchange(stream, &format!("/api/v1/query?query={query}"), None).ok()?;
        let json: serde_json::Value = serde_json::from_str(&reply.body).ok()?;
        let result = json["data"]["result"].as_array()?;
        Some(
            result
                .iter()
                .map(|r| {
                    (
                        r["metric"].clone(),
                        r["value"][1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
        )
    }
}

#[test]
fn prometheus_scrapes_success_and_failure() {
    let server = Listener::start();
    let dir = Scratch::new("scrape");
    let closed = free_port();
    let catalog = dir.write(
        "c.toml",
        &tcp_catalog(&[("up", server.port, true), ("down", closed, true)]),
    );
    let daemon = Daemon::start(&["--catalog", catalog.to_str().unwrap(), "--interval", "1s"]);
    let mut prometheus = Prometheus::start(daemon.addr);
    let values = wait_for(
        Duration::from_secs(60),
        "Prometheus to scrape both targets",
        || {
            let result = prometheus.query("vnetprobe_probe_success")?;
            let value = |id: &str| {
                result
                    .iter()
                    .find(|(m, _)| m["target"] == id)
                    .map(|(_, v)| v.clone())
            };
            Some((value("up")?, value("down")?, result))
        },
    );
    assert_eq!(values.0, "1", "{:?}", values.2);
    assert_eq!(values.1, "0", "{:?}", values.2);
    let (labels, _) = values
        .2
        .iter()
        .find(|(m, _)| m["target"] == "down")
        .unwrap();
    assert_eq!(labels["port"], closed.to_string());
    assert_eq!(labels["protocol"], "tcp");
    assert_eq!(labels["required"], "true");
    let kind = wait_for(Duration::from_secs(30), "the error kind series", || {
        prometheus
            .query("vnetprobe_probe_error_info")?
            .into_iter()
            .find(|(m, _)| m["target"] == "down")
    });
    assert_eq!(kind.0["kind"], "tcp_refused");
}

#[test]
fn metrics_and_check_output_pass_promtool() {
    let server = Listener::start();
    let dir = Scratch::new("promtool");
    let catalog = dir.write(
        "c.toml",
        &(tcp_catalog(&[("up", server.port, true), ("down", free_port(), false)])
            + "[[target]]\nid = \"local-name\"\nname = \"n\"\nprotocol = \"dns\"\nhost = \"localhost\"\n\
               profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n\n\
               [[target]]\nid = \"unset\"\nname = \"n\"\nprotocol = \"tcp\"\nhost = \"{storage_account}.example\"\n\
               ports = [443]\nprofiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n"),
    );
    let daemon = Daemon::start(&["--catalog", catalog.to_str().unwrap(), "--interval", "1h"]);
    daemon.wait_ready();
    let served = daemon.metrics();
    assert!(
        sample(&served, &success_series("up", server.port)) == Some(1.0),
        "{served}"
    );
    assert!(served.contains("vnetprobe_probe_skipped{"), "{served}");
    assert!(
        served.contains("vnetprobe_dns_private{host=\"localhost\",target=\"local-name\"} 1"),
        "{served}"
    );
    assert_eq!(sample(&served, "vnetprobe_runs_total"), Some(1.0));
    assert_promtool_clean(&served, "/metrics");

    let text = stdout_of(check(&catalog).args(["--output", "prometheus"]), 0);
    assert!(
        text.contains("# TYPE vnetprobe_probe_success gauge"),
        "{text}"
    );
    assert_promtool_clean(&text, "check --output prometheus");
}

#[test]
fn fifty_concurrent_scrapes_start_no_probe() {
    let server = Listener::start();
    let dir = Scratch::new("concurrent");
    let catalog = dir.write(
        "c.toml",
        &tcp_catalog(&[("up", server.port, true), ("down", free_port(), true)]),
    );
    let daemon = Daemon::start(&["--catalog", catalog.to_str().unwrap(), "--interval", "1h"]);
    daemon.wait_ready();
    wait_for(
        Duration::from_secs(10),
        "the run's connection at the server",
        || (server.accepted.load(Ordering::SeqCst) == 1).then_some(()),
    );
    let first = daemon.metrics();

    let addr = daemon.addr;
    let scrapers: Vec<_> = (0..50)
        .map(|_| {
            thread::spawn(move || {
                (0..4)
                    .map(|_| {
                        let r = http_get(addr, "/metrics", None);
                        (r.status, r.body)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let replies: Vec<(u16, String)> = scrapers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(replies.len(), 200);
    // The process_* families are read per scrape; everything else is the run's.
    let of_the_run = |body: &str| -> String {
        body.lines()
            .filter(|l| !l.contains("process_"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    for (status, body) in &replies {
        assert_eq!(*status, 200);
        assert_eq!(
            of_the_run(body),
            of_the_run(&first),
            "every scrape serves the same run"
        );
    }
    // A probe started by a scrape would have connected before its scrape was answered; the
    // pause only lets the counting thread catch up with its backlog.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        server.accepted.load(Ordering::SeqCst),
        1,
        "scrapes caused probe traffic"
    );
    assert_eq!(sample(&daemon.metrics(), "vnetprobe_runs_total"), Some(1.0));
}

#[test]
fn readiness_waits_for_the_first_run_and_sigterm_stops_a_run() {
    // A DNS server that never answers keeps the first run going for the whole timeout.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dir = Scratch::new("ready");
    let catalog = dir.write(
        "c.toml",
        "[[target]]\nid = \"slow\"\nname = \"n\"\nprotocol = \"dns\"\nhost = \"slow.example\"\n\
         profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n",
    );
    let dns = silent.local_addr().unwrap().to_string();
    let mut daemon = Daemon::start(&[
        "--catalog",
        catalog.to_str().unwrap(),
        "--dns-server",
        &dns,
        "--timeout",
        "20s",
        "--interval",
        "1h",
    ]);
    assert_eq!(daemon.get("/healthz").status, 200);
    assert_eq!(daemon.get("/healthz").body, "ok\n");
    let ready = daemon.get("/readyz");
    assert_eq!(ready.status, 503, "{}", ready.body);
    assert_eq!(daemon.get("/results").status, 503);
    let early = daemon.metrics();
    assert!(early.contains("vnetprobe_build_info{"), "{early}");
    assert!(!early.contains("vnetprobe_probe_success"), "{early}");
    assert_eq!(sample(&early, "vnetprobe_runs_total"), Some(0.0));
    assert_promtool_clean(&early, "/metrics before the first run");
    let index = daemon.get("/");
    assert!(
        index.status == 200 && index.body.contains("href=\"metrics\""),
        "{}",
        index.body
    );
    assert_eq!(daemon.get("/nope").status, 404);

    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log());
}

#[test]
fn sigint_exits_zero() {
    let dir = Scratch::new("sigint");
    let catalog = dir.write("c.toml", &tcp_catalog(&[("down", free_port(), true)]));
    let mut daemon = Daemon::start(&["--catalog", catalog.to_str().unwrap(), "--interval", "1h"]);
    daemon.wait_ready();
    let results: serde_json::Value = serde_json::from_str(&daemon.get("/results").body).unwrap();
    assert_eq!(results["results"][0]["id"], "down");
    assert_eq!(results["results"][0]["status"], "fail");
    daemon.signal(libc::SIGINT);
    assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log());
}

#[test]
fn sighup_keeps_the_old_catalog_when_the_new_one_is_broken() {
    let server = Listener::start();
    let dir = Scratch::new("sighup");
    let catalog = dir.write("c.toml", &tcp_catalog(&[("alpha", server.port, true)]));
    let mut daemon = Daemon::start(&["--catalog", catalog.to_str().unwrap(), "--interval", "1h"]);
    daemon.wait_ready();
    assert_eq!(
        sample(&daemon.metrics(), &success_series("alpha", server.port)),
        Some(1.0)
    );

    std::fs::write(&catalog, "[[target]]\nid = \"beta\"\nnmae = \"typo\"\n").unwrap();
    daemon.signal(libc::SIGHUP);
    let metrics = wait_for(Duration::from_secs(10), "the failed reload", || {
        let m = daemon.metrics();
        (sample(&m, "vnetprobe_reloads_total{result=\"failure\"}") == Some(1.0)).then_some(m)
    });
    assert_eq!(
        sample(&metrics, &success_series("alpha", server.port)),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, "vnetprobe_config_last_reload_successful"),
        Some(0.0)
    );
    // The daemon logs the failure after it counts it: give the line a moment too.
    let logged = Instant::now() + Duration::from_secs(10);
    while !daemon.log().contains("reload failed") && Instant::now() < logged {
        thread::sleep(Duration::from_millis(50));
    }
    let log = daemon.log();
    assert!(
        log.contains("reload failed") && log.contains(&format!("{}:3", catalog.display())),
        "{log}"
    );

    std::fs::write(&catalog, tcp_catalog(&[("beta", server.port, true)])).unwrap();
    daemon.signal(libc::SIGHUP);
    let metrics = wait_for(Duration::from_secs(20), "the new catalog's run", || {
        let m = daemon.metrics();
        m.contains("target=\"beta\"").then_some(m)
    });
    assert!(
        !metrics.contains("target=\"alpha\""),
        "a removed target left a series: {metrics}"
    );
    assert_eq!(
        sample(&metrics, "vnetprobe_reloads_total{result=\"success\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "vnetprobe_config_last_reload_successful"),
        Some(1.0)
    );

    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(), Some(0), "{}", daemon.log());
}

/// Whether `text` is a whole metrics file of `n` targets: every line a comment or a sample with
/// a number, and every family up to the last one present.
fn complete(text: &str, n: usize) -> Result<(), String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or("");
        value
            .parse::<f64>()
            .map_err(|_| format!("bad sample line {line:?}"))?;
    }
    let successes = text
        .lines()
        .filter(|l| l.starts_with("vnetprobe_probe_success{"))
        .count();
    if successes != n {
        return Err(format!("{successes} success series, expected {n}"));
    }
    if !text.contains("vnetprobe_targets{status=\"skip\"} 0\n") {
        return Err("the last family is missing".into());
    }
    Ok(())
}

#[test]
fn the_textfile_is_never_seen_half_written() {
    const TARGETS: usize = 300;
    let dir = Scratch::new("textfile");
    let closed = free_port();
    let ids: Vec<String> = (0..TARGETS).map(|i| format!("t{i}")).collect();
    let targets: Vec<(&str, u16, bool)> =
        ids.iter().map(|id| (id.as_str(), closed, false)).collect();
    let catalog = dir.write("c.toml", &tcp_catalog(&targets));
    let textfile = dir.0.join("vnetprobe.prom");

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (path, done) = (textfile.clone(), done.clone());
        thread::spawn(move || {
            let mut whole_reads = 0usize;
            for _ in 0..1_000_000 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        complete(&text, TARGETS).map_err(|e| format!("read {whole_reads}: {e}"))?;
                        whole_reads += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(whole_reads)
        })
    };
    for _ in 0..15 {
        stdout_of(check(&catalog).arg("--textfile").arg(&textfile), 0);
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("a reader saw a partial file: {e}"));
    assert!(reads > 0, "the reader never saw the file");
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert_promtool_clean(&text, "the textfile");
    let names: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains(".tmp")),
        "a temporary file was left: {names:?}"
    );
}

#[test]
fn textfile_in_a_missing_folder_exits_2_naming_the_flag() {
    let dir = Scratch::new("textfile-missing");
    let catalog = dir.write("c.toml", &tcp_catalog(&[("down", free_port(), false)]));
    let out = check(&catalog)
        .args(["--textfile", "/nonexistent-vnetprobe/x.prom"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--textfile /nonexistent-vnetprobe/x.prom"),
        "{err}"
    );
}

/// Issue 27 point 3: the writer renamed over whatever the path was (as root, `--textfile
/// /dev/null` replaced the device), and a missing folder was found only after every probe.
#[test]
fn textfile_destinations_are_checked_before_probing() {
    use std::os::unix::fs::FileTypeExt;
    let dir = Scratch::new("textfile-destination");
    let listener = crate::support::Listener::start();
    let catalog = dir.write("c.toml", &tcp_catalog(&[("up", listener.port, true)]));
    std::fs::create_dir(dir.0.join("folder.prom")).unwrap();
    let fifo = dir.0.join("fifo.prom");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let device = if crate::support::ROOT_TESTS {
        // Root may replace /dev/null: a copy of it in the scratch folder is the victim.
        let copy = dir.0.join("null.prom");
        assert!(
            Command::new("mknod")
                .arg(&copy)
                .args(["c", "1", "3"])
                .status()
                .unwrap()
                .success()
        );
        Some(copy)
    } else {
        None
    };
    let mut cases = vec![
        (dir.0.join("folder.prom"), "a folder"),
        (fifo.clone(), "a named pipe"),
        (dir.0.join("missing/x.prom"), "its folder"),
    ];
    // Never the real /dev/null as root: a writer without the check would replace it.
    if !crate::support::ROOT_TESTS {
        cases.push(("/dev/null".into(), "a character device"));
    }
    if let Some(d) = &device {
        cases.push((d.clone(), "a character device"));
    }
    for (path, why) in &cases {
        let out = check(&catalog)
            .arg("--textfile")
            .arg(path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", path.display());
        assert!(
            err.contains(&format!("--textfile {}", path.display())) && err.contains(why),
            "{err}"
        );
    }
    assert_eq!(
        listener.accepted.load(Ordering::Relaxed),
        0,
        "probed before refusing"
    );
    assert!(
        std::fs::symlink_metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device()
    );
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
    if let Some(d) = &device {
        assert!(
            std::fs::symlink_metadata(d)
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }
    // A regular file is still replaced.
    let ok = dir.write("ok.prom", "old\n");
    check(&catalog).arg("--textfile").arg(&ok).output().unwrap();
    assert!(
        std::fs::read_to_string(&ok)
            .unwrap()
            .contains("vnetprobe_probe_success")
    );
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A TLS client trusting only `cert` (the daemon's self-signed certificate for localhost).
pub(crate) fn tls_client(cert: &rcgen::CertifiedKey<rcgen::KeyPair>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// One GET over TLS to the daemon at `addr`, as `localhost`.
fn tls_get(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
) -> Reply {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    exchange(rustls::StreamOwned::new(conn, connect(addr)), path, auth).unwrap()
}

#[test]
fn web_config_basic_auth_and_tls() {
    let dir = Scratch::new("web");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    dir.write("cert.pem", &cert.cert.pem());
    dir.write("key.pem", &cert.signing_key.serialize_pem());
    let hash = bcrypt::hash_with_salt("correct horse", 4, [9; 16])
        .unwrap()
        .to_string();
    let web = dir.write(
        "web.yml",
        &format!(
            "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\nbasic_auth_users:\n  alice: '{hash}'\n"
        ),
    );
    let catalog = dir.write("c.toml", &tcp_catalog(&[("down", free_port(), true)]));
    let daemon = Daemon::start(&[
        "--catalog",
        catalog.to_str().unwrap(),
        "--interval",
        "1h",
        "--web-config-file",
        web.to_str().unwrap(),
    ]);
    assert!(
        daemon.log().contains("listening on https://"),
        "{}",
        daemon.log()
    );

    let config = tls_client(&cert);
    let get = |path: &str, auth: Option<&str>| tls_get(&config, daemon.addr, path, auth);

    let denied = get("/metrics", None);
    assert_eq!(denied.status, 401);
    assert!(
        denied
            .head
            .contains("www-authenticate: basic realm=\"vnetprobe\""),
        "{}",
        denied.head
    );
    assert_eq!(get("/metrics", Some(&basic("alice", "wrong"))).status, 401);
    assert_eq!(
        get("/metrics", Some(&basic("mallory", "correct horse"))).status,
        401
    );
    assert_eq!(get("/results", None).status, 401);
    assert_eq!(
        get("/healthz", None).status,
        200,
        "liveness needs no credentials"
    );
    wait_for(Duration::from_secs(30), "the first run", || {
        (get("/readyz", None).status == 200).then_some(())
    });
    for _ in 0..2 {
        let ok = get("/metrics", Some(&basic("alice", "correct horse")));
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert!(ok.body.contains("vnetprobe_probe_success{"), "{}", ok.body);
    }

    // The daemon's own TLS listener as a `tls` target: the expiry metric carries the
    // certificate's not-after date.
    let port = daemon.addr.port();
    let tls_catalog = dir.write(
        "tls.toml",
        &format!(
            "[[target]]\nid = \"own-tls\"\nname = \"n\"\nprotocol = \"tls\"\nhost = \"localhost\"\n\
             ports = [{port}]\nprofiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n"
        ),
    );
    let text = stdout_of(
        check(&tls_catalog)
            .args(["--output", "prometheus"])
            .env("VNETPROBE_PUBLIC_ROOTS", dir.0.join("cert.pem")),
        0,
    );
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.cert.der()).unwrap();
    let series = format!(
        "vnetprobe_tls_cert_expiry_timestamp_seconds{{host=\"localhost\",port=\"{port}\",target=\"own-tls\"}}"
    );
    assert_eq!(
        sample(&text, &series),
        Some(parsed.validity().not_after.timestamp() as f64),
        "{text}"
    );

    // Plain HTTP to the TLS listener gets no HTTP answer.
    let plain = exchange(
        connect(daemon.addr),
        "/metrics",
        Some(&basic("alice", "correct horse")),
    );
    assert!(plain.map(|r| r.status != 200).unwrap_or(true));
    assert!(
        !daemon.log().contains("correct horse"),
        "the password reached the log"
    );
}

#[test]
fn a_bad_web_config_exits_2_naming_file_and_line() {
    let dir = Scratch::new("bad-web");
    let web = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: a.pem\n  ciphers: x\n",
    );
    let out = vnetprobe("serve")
        .args(["--listen", "127.0.0.1:0", "--web-config-file"])
        .arg(&web)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3: unknown key `ciphers`", web.display())),
        "{err}"
    );
}

/// `n` connections to `addr` that send `partial` (an unfinished request head, or nothing before
/// TLS) and then hold still; from six loopback addresses, so both the per-peer and the overall
/// connection caps come into play.
fn slowloris(addr: SocketAddr, n: usize, partial: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let source: SocketAddr = format!("127.0.0.{}:0", 2 + i % 6).parse().unwrap();
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            socket.bind(&source.into()).unwrap();
            socket
                .connect_timeout(&addr.into(), Duration::from_secs(5))
                .unwrap();
            let mut stream: TcpStream = socket.into();
            stream.write_all(partial).unwrap();
            stream
        })
        .collect()
}

/// The latency of each of `n` scrapes made by `scrape`, asserting each one succeeds.
fn scrape_latencies(n: usize, scrape: impl Fn() -> Reply) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            let r = scrape();
            assert_eq!(r.status, 200, "{}", r.body);
            start.elapsed()
        })
        .collect()
}

#[test]
fn hundreds_of_slow_connections_never_lock_a_scraper_out() {
    let dir = Scratch::new("slowloris");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    dir.write("cert.pem", &cert.cert.pem());
    dir.write("key.pem", &cert.signing_key.serialize_pem());
    let web = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n",
    );
    let catalog = dir.write("c.toml", &tcp_catalog(&[("down", free_port(), true)]));
    let catalog = catalog.to_str().unwrap();

    // Plain HTTP: clients that never finish their request head.
    let plain = Daemon::start(&["--catalog", catalog, "--interval", "1h"]);
    plain.wait_ready();
    let held = slowloris(plain.addr, 300, b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
    let took = scrape_latencies(5, || plain.get("/metrics"));
    // Generous: before the fix every scrape waited for the 10 s header deadline of a slot.
    eprintln!("plain HTTP scrapes beside 300 slow connections: {took:?}");
    assert!(took.iter().all(|t| *t < Duration::from_secs(2)), "{took:?}");
    drop(held);

    // TLS: clients that connect and never say hello.
    let tls = Daemon::start(&[
        "--catalog",
        catalog,
        "--interval",
        "1h",
        "--web-config-file",
        web.to_str().unwrap(),
    ]);
    let config = tls_client(&cert);
    let held = slowloris(tls.addr, 300, b"");
    let took = scrape_latencies(5, || tls_get(&config, tls.addr, "/metrics", None));
    eprintln!("TLS scrapes beside 300 silent connections: {took:?}");
    assert!(took.iter().all(|t| *t < Duration::from_secs(2)), "{took:?}");
    drop(held);
}
