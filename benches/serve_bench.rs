//! Benchmark of `vnetprobe serve` (not a test: it prints figures and asserts nothing).
//!
//! For a 500-target catalog on loopback (400 to a listener that accepts, 100 to a closed port):
//! CPU seconds per probe run (/proc/PID/stat utime+stime over several runs, no scrapes), the
//! steady RSS (/proc/PID/status VmRSS), and scrape latency (median, p99) with 50 concurrent
//! scrapers (ApacheBench, `ab -c 50`) against a daemon at the default 60 s interval, each scrape
//! a new connection, plain and with `Accept-Encoding: gzip` (as Prometheus asks). Side by side
//! in the same run: node_exporter's textfile collector serving the same metrics (Debian's
//! prometheus-node-exporter, when installed).
//!
//! Run: `cargo bench --bench serve_bench` (release profile; `tests/run.sh` installs `ab` from
//! apache2-utils and node_exporter).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_vnetprobe");
const OPEN_TARGETS: usize = 400;
const CLOSED_TARGETS: usize = 100;
const INTERVAL_S: u64 = 3;
const MEASURED_RUNS: usize = 8;
const SCRAPERS: usize = 50;
/// Scrapes per measurement: of vnetprobe, and of node_exporter (which parses the textfile on
/// every scrape and answers in seconds under this load).
const SCRAPES: usize = 4000;
const NODE_EXPORTER_SCRAPES: usize = 500;

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it.
    if !std::env::args().any(|a| a == "--bench") {
        println!("serve_bench: a benchmark; run it with `cargo bench --bench serve_bench`");
        return;
    }
    let accepted = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let open = listener.local_addr().unwrap().port();
    let server = {
        let (accepted, stop) = (accepted.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok(_) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let dir = std::env::temp_dir().join(format!("vnetprobe-serve-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join("bench.toml");
    let mut text = String::new();
    for i in 0..OPEN_TARGETS + CLOSED_TARGETS {
        let port = if i < OPEN_TARGETS { open } else { closed };
        text.push_str(&format!(
            "[[target]]\nid = \"t{i}\"\nname = \"target {i}\"\nprotocol = \"tcp\"\nhost = \"127.0.0.1\"\n\
             ports = [{port}]\nprofiles = [\"internet\"]\nrequired = {}\nwhy = \"bench\"\nfix = \"none\"\n\n",
            i < OPEN_TARGETS
        ));
    }
    std::fs::write(&catalog, text).unwrap();

    let (daemon, pid, _, next) = start(&catalog, INTERVAL_S);
    // CPU per run: from the end of the first run to the end of the last measured one.
    let first = next("run finished");
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let mut last = first.clone();
    for _ in 0..MEASURED_RUNS {
        last = next("run finished");
    }
    let cpu = cpu_seconds(pid) - cpu0;
    let wall = t0.elapsed();
    let rss_after_runs = status_kib(pid, "VmRSS:");

    drop(daemon);

    // Scrapes against a daemon at the default interval, as in production (a run a minute):
    // its first run has finished and no other starts while it is measured.
    let (daemon, pid, addr, next) = start(&catalog, 60);
    next("run finished");
    // The log line comes just before the report is published: wait for its series.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !body(addr).contains("vnetprobe_probe_success{") {
        assert!(
            Instant::now() < deadline,
            "the first run was never published"
        );
        thread::sleep(Duration::from_millis(20));
    }

    // Scrape latency with 50 concurrent scrapers, plain and gzip.
    let body_len = scrape(addr, false).1;
    // For scale: one scraper alone.
    let mut alone: Vec<Duration> = (0..100).map(|_| scrape(addr, false).0).collect();
    alone.sort();
    let cpu_before_scrapes = cpu_seconds(pid);
    let plain = measure(addr, false, SCRAPES);
    let scrape_cpu = cpu_seconds(pid) - cpu_before_scrapes;
    let cpu_before_gzip = cpu_seconds(pid);
    let gzip = measure(addr, true, SCRAPES);
    let gzip_cpu = cpu_seconds(pid) - cpu_before_gzip;
    let rss_after_scrapes = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");

    // node_exporter's textfile collector with the same families (its own process_* aside).
    let text = body(addr);
    let textfile_dir = dir.join("textfile");
    std::fs::create_dir_all(&textfile_dir).unwrap();
    let same: String = text
        .lines()
        .filter(|l| !l.contains("process_"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(textfile_dir.join("vnetprobe.prom"), &same).unwrap();
    let node_exporter = ["prometheus-node-exporter", "node_exporter"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok());
    let node = node_exporter.map(|bin| {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No cap on parallel scrapes (its default, 40, answers 503 to the 41st scraper).
            .args([
                "--collector.disable-defaults",
                "--collector.textfile",
                "--web.max-requests=0",
            ])
            .arg(format!(
                "--collector.textfile.directory={}",
                textfile_dir.display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("node_exporter starts");
        let guard = Guard(child);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "node_exporter did not listen");
            thread::sleep(Duration::from_millis(50));
        }
        let served = body(addr);
        assert!(
            served.contains("vnetprobe_probe_success{"),
            "node_exporter does not serve the textfile"
        );
        let (plain, gzip) = (
            measure(addr, false, NODE_EXPORTER_SCRAPES),
            measure(addr, true, NODE_EXPORTER_SCRAPES),
        );
        drop(guard);
        (bin, served.len(), plain, gzip)
    });

    println!(
        "vnetprobe serve benchmark: {} targets on loopback ({OPEN_TARGETS} open, {CLOSED_TARGETS} refused)",
        OPEN_TARGETS + CLOSED_TARGETS
    );
    println!(
        "  last run log:          {}",
        last.split(" INFO ").last().unwrap_or(&last)
    );
    println!(
        "  CPU per probe run:     {:.4} s  ({cpu:.3} s over {MEASURED_RUNS} runs in {:.1} s, interval {INTERVAL_S}s)",
        cpu / MEASURED_RUNS as f64,
        wall.as_secs_f64()
    );
    println!(
        "  steady RSS:            {} KiB after {} runs, {} KiB after the scrapes (peak {} KiB)",
        rss_after_runs,
        MEASURED_RUNS + 1,
        rss_after_scrapes,
        hwm
    );
    println!(
        "  /metrics with {SCRAPERS} concurrent scrapers (ApacheBench -c {SCRAPERS}: {SCRAPES} scrapes of vnetprobe, {NODE_EXPORTER_SCRAPES} of node_exporter, a new connection each; serve at --interval 60s):"
    );
    println!(
        "    {:<34} {:>9} {:>9} {:>9} {:>10}",
        "", "p50 ms", "p99 ms", "max ms", "bytes"
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "    {name:<34} {:>9.2} {:>9.2} {:>9.2} {:>10}",
            s.p50, s.p99, s.max, s.bytes
        )
    };
    row("vnetprobe serve, plain", &plain);
    row("vnetprobe serve, gzip", &gzip);
    match &node {
        Some((bin, len, plain, gzip)) => {
            row(&format!("{bin} textfile, plain"), plain);
            row(&format!("{bin} textfile, gzip"), gzip);
            println!(
                "    (node_exporter serves the same {} series, {len} bytes with its own go_/process_)",
                same.lines().filter(|l| !l.starts_with('#')).count()
            );
        }
        None => println!(
            "    node_exporter: not installed (apt-get install prometheus-node-exporter) - no side-by-side figures"
        ),
    }
    println!("    uncompressed body of vnetprobe: {body_len} bytes");
    println!(
        "  one scraper alone:     median {:.2} ms, p99 {:.2} ms  (100 sequential scrapes)",
        ms(alone[49]),
        ms(alone[98])
    );
    println!(
        "  CPU per scrape:        {:.1} us plain, {:.1} us gzip (serve's CPU during the scrapes)",
        scrape_cpu / (SCRAPES + 4 * SCRAPERS) as f64 * 1e6,
        gzip_cpu / (SCRAPES + 4 * SCRAPERS) as f64 * 1e6
    );
    println!(
        "  probe connections seen by the loopback server: {}",
        accepted.load(Ordering::Relaxed)
    );

    drop(daemon);
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    let _ = std::fs::remove_dir_all(dir);
}

/// `vnetprobe serve` on the catalog, every `interval_s`: the daemon, its pid, its address and
/// a function that waits (at most 60 s) for a log line containing a text.
fn start(
    catalog: &std::path::Path,
    interval_s: u64,
) -> (Guard, u32, SocketAddr, impl Fn(&str) -> String) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--config",
            "/dev/null",
            "--listen",
            "127.0.0.1:0",
            "--log-level",
            "info",
        ])
        .env("VNETPROBE_DISCOVER", "0")
        .arg("--catalog")
        .arg(catalog)
        .args(["--interval", &format!("{interval_s}s")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the vnetprobe binary");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let daemon = Guard(child);
    let (lines_tx, lines) = mpsc::channel::<String>();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = move |what: &str| -> String {
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {what} in 60 s"));
            if line.contains(what) {
                return line;
            }
        }
    };
    let listening = next("listening on ");
    let addr: SocketAddr = listening
        [listening.find("://").unwrap() + 3..listening.find(';').unwrap()]
        .parse()
        .unwrap();
    (daemon, pid, addr, next)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency percentiles (ms) of one scrape configuration.
struct Stats {
    p50: f64,
    p99: f64,
    max: f64,
    bytes: usize,
}

/// `n` scrapes by ApacheBench with SCRAPERS in flight at once, each on a new connection: one
/// epoll client, as Prometheus's scrapers are goroutines rather than threads (50 client threads
/// on a 2-core machine measure the scheduler more than the server). A first round warms up.
fn measure(addr: SocketAddr, gzip: bool, n: usize) -> Stats {
    let bytes = scrape(addr, gzip).1;
    let csv = std::env::temp_dir().join(format!("vnetprobe-ab-{}.csv", std::process::id()));
    let run = |n: usize| {
        let mut ab = Command::new("ab");
        ab.args([
            "-q",
            "-l",
            "-s",
            "30",
            "-c",
            &SCRAPERS.to_string(),
            "-n",
            &n.to_string(),
        ]);
        if gzip {
            ab.args(["-H", "Accept-Encoding: gzip"]);
        }
        let out = ab
            .arg("-e")
            .arg(&csv)
            .arg(format!("http://{addr}/metrics"))
            .output()
            .expect("ab (apt-get install apache2-utils)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "ab: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("Failed requests:        0"),
            "ab saw failed requests: {text}"
        );
    };
    run(n.min(4 * SCRAPERS));
    run(n);
    // "Percentage served,Time in ms", then one line per percent from 0 to 100.
    let table = std::fs::read_to_string(&csv).unwrap();
    let _ = std::fs::remove_file(&csv);
    let at = |pct: usize| -> f64 {
        table
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{pct},"))?.trim().parse().ok())
            .unwrap()
    };
    Stats {
        p50: at(50),
        p99: at(99),
        max: at(100),
        bytes,
    }
}

/// The plain body of /metrics.
fn body(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    s.take(64 << 20).read_to_end(&mut raw).unwrap();
    let head = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let text = String::from_utf8_lossy(&raw[head..]).into_owned();
    // node_exporter answers HTTP/1.1 with chunked encoding: drop the chunk sizes.
    if raw[..head]
        .windows(7)
        .any(|w| w.eq_ignore_ascii_case(b"chunked"))
    {
        return dechunk(&raw[head..]);
    }
    text
}

fn dechunk(mut raw: &[u8]) -> String {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || raw.len() < eol + 4 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One GET /metrics on a new connection (asking for gzip or not): its latency and body size.
fn scrape(addr: SocketAddr, gzip: bool) -> (Duration, usize) {
    let start = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let encoding = if gzip {
        "Accept-Encoding: gzip\r\n"
    } else {
        ""
    };
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nHost: bench\r\n{encoding}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    s.take(64 << 20).read_to_end(&mut raw).unwrap();
    let took = start.elapsed();
    assert!(
        raw.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&raw[..raw.len().min(200)])
    );
    let head = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (took, raw.len() - head)
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let (utime, stime): (f64, f64) = (rest[11].parse().unwrap(), rest[12].parse().unwrap());
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (utime + stime) / ticks
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
