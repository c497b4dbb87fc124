//! `serve` as an exporter people already know: /metrics gzip-encoded for a real client (curl),
//! the process metrics, one start-up line at the default level in text, logfmt or JSON, and the
//! status page rendered by a real browser (headless Chromium from Debian's packages), whose DOM
//! the test asserts on and whose screenshots it keeps in target/test-artifacts/.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::*;

/// A `serve` on an ephemeral loopback port, killed on drop.
struct Serve {
    _child: Reaper,
    addr: String,
    /// The first stderr line: the start-up line.
    first_line: String,
    _dir: PathBuf,
}

fn catalog(open: u16, closed: u16) -> String {
    let target = |id: &str, host: &str, port: u16, fix: &str| {
        format!(
            "[[target]]\nid = \"{id}\"\nname = \"{id}\"\nprotocol = \"tcp\"\nhost = \"{host}\"\nports = [{port}]\n\
             profiles = [\"internet\"]\nrequired = true\nwhy = \"test\"\nfix = \"{fix}\"\n\n"
        )
    };
    [
        target("open-tcp", "127.0.0.1", open, "none needed"),
        target(
            "closed-tcp",
            "127.0.0.1",
            closed,
            "Open port <b>closed</b> & retry.",
        ),
        target(
            "needs-batch",
            "{batch_account}",
            443,
            "set the batch account",
        ),
    ]
    .concat()
}

impl Serve {
    fn start(extra: &[&str]) -> Serve {
        let open = Listener::start();
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = temp_dir("exporter");
        let cat = write(&dir, "c.toml", &catalog(open.port, closed));
        std::mem::forget(open); // accepts until the test process ends (bounded at 300 s)
        let mut child = command(&["serve", "--config", "/dev/null", "--listen", "127.0.0.1:0"])
            .arg("--catalog")
            .arg(&cat)
            .args(["--interval", "30s"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let child = Reaper(child);
        let first_line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("serve logs a start-up line at the default level");
        let at = first_line.find("http://").expect("the address") + 7;
        let addr = first_line[at..at + first_line[at..].find(';').unwrap()].to_string();
        let serve = Serve {
            _child: child,
            addr,
            first_line,
            _dir: dir,
        };
        // Ready once the first run finished.
        let deadline = Instant::now() + Duration::from_secs(20);
        while serve.curl(&["-o", "/dev/null", "-w", "%{http_code}", "/readyz"]) != "200" {
            assert!(Instant::now() < deadline, "serve never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        serve
    }

    /// curl with `args`; the last argument is a path on the daemon.
    fn curl(&self, args: &[&str]) -> String {
        let (path, rest) = args.split_last().unwrap();
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(rest)
            .arg(format!("http://{}{path}", self.addr))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

#[test]
fn metrics_are_gzip_for_curl_and_carry_the_process_families() {
    if !need("curl", "gzip decoded by a real client") {
        return;
    }
    let serve = Serve::start(&[]);
    let headers = serve.curl(&["--compressed", "-D", "-", "-o", "/dev/null", "/metrics"]);
    let lower = headers.to_ascii_lowercase();
    assert!(lower.contains("content-encoding: gzip"), "{headers}");
    assert!(lower.contains("vary: accept-encoding"), "{headers}");
    let decoded = serve.curl(&["--compressed", "/metrics"]);
    let plain_headers = serve.curl(&["-D", "-", "-o", "/dev/null", "/metrics"]);
    assert!(
        !plain_headers
            .to_ascii_lowercase()
            .contains("content-encoding"),
        "{plain_headers}"
    );
    let plain = serve.curl(&["/metrics"]);
    let families = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split([' ', '{']).next().map(str::to_string))
            .collect()
    };
    assert_eq!(
        families(&decoded),
        families(&plain),
        "the same series either way"
    );
    for want in [
        "vnetprobe_probe_success{",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
        "vnetprobe_build_info{revision=",
    ] {
        assert!(decoded.contains(want), "{want} in {decoded}");
    }
    // What curl received compressed is much smaller than the text.
    let size = serve.curl(&[
        "-H",
        "Accept-Encoding: gzip",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "/metrics",
    ]);
    assert!(
        size.parse::<usize>().unwrap() < plain.len(),
        "{size} vs {}",
        plain.len()
    );
    if have("promtool") {
        assert_promtool_clean(&decoded, "/metrics as curl decoded it");
    }
}

#[test]
fn serve_says_where_and_what_in_one_line_in_each_format() {
    let text = Serve::start(&[]);
    for field in [
        "listening on http://",
        "address=",
        "interval=30s",
        "targets=3",
        "web_config=off",
    ] {
        assert!(
            text.first_line.contains(field),
            "{field} in {}",
            text.first_line
        );
    }
    let logfmt = Serve::start(&["--log-format", "logfmt"]);
    assert!(
        logfmt.first_line.starts_with("ts=")
            && logfmt
                .first_line
                .contains(" level=info msg=\"listening on http://"),
        "{}",
        logfmt.first_line
    );
    let json = Serve::start(&["--log-format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json.first_line).expect("a JSON line");
    assert_eq!(v["level"], "info");
    assert_eq!(v["targets"], "3");
    assert_eq!(v["web_config"], "off");
    assert_eq!(v["address"], json.addr);
}

/// Where screenshots go: target/test-artifacts/.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium with `args` on `url`, bounded in time.
fn chromium(profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut s).ok();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    std::process::Output {
        status,
        stdout: reader.join().unwrap(),
        stderr: Vec::new(),
    }
}

#[test]
fn the_status_page_renders_in_chromium() {
    if !need("chromium", "the status page in a real browser") {
        return;
    }
    let serve = Serve::start(&[]);
    let profile = temp_dir("chromium-profile");
    let dom = chromium(&profile, &["--dump-dom"], &serve.url("/"));
    assert!(dom.status.success());
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    // The rendered DOM: the verdict, the counts, the cause, a row per target coloured by status.
    for want in [
        "<title>vnetprobe · 1 pass, 1 fail, 1 skip</title>",
        "<meta http-equiv=\"refresh\" content=\"30\">",
        "id=\"verdict\">1 required target(s) failing</p>",
        "<li data-count=\"pass\"><b>1</b> pass</li>",
        "<div class=\"cause\" data-kind=\"tcp_refused\">",
        "<tr class=\"status-fail\" data-target=\"closed-tcp\" data-kind=\"tcp_refused\">",
        "<tr class=\"status-pass\" data-target=\"open-tcp\"",
        "<tr class=\"status-skip\" data-target=\"needs-batch\"",
        "Open port &lt;b&gt;closed&lt;/b&gt; &amp; retry.</span>",
        "needs batch_account: set --set batch_account=",
    ] {
        assert!(
            dom.contains(want),
            "{want:?} not in the rendered DOM:\n{dom}"
        );
    }
    assert!(!dom.contains("<b>closed</b>"), "catalog text is escaped");
    for external in ["src=\"http", "href=\"http", "<link", "<script"] {
        assert!(!dom.contains(external), "an external asset: {external}");
    }
    // Screenshots as artifacts: a phone and a desktop.
    for (name, size) in [
        ("status-page-phone.png", "390,900"),
        ("status-page-desktop.png", "1280,800"),
    ] {
        let path = artifacts().join(name);
        let _ = std::fs::remove_file(&path);
        let shot = chromium(
            &profile,
            &[
                &format!("--window-size={size}"),
                &format!("--screenshot={}", path.display()),
            ],
            &serve.url("/"),
        );
        assert!(shot.status.success());
        let png = std::fs::read(&path).unwrap_or_default();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 5_000,
            "{} is not a screenshot",
            path.display()
        );
        eprintln!("screenshot: {}", path.display());
    }
    let _ = std::fs::remove_dir_all(profile);
}
