//! Routes as the real clients take them: for a table of proxy variables, NO_PROXY values and
//! hosts, the real curl and a real Python requests call (Debian's python3-requests, what pip and
//! conda use) are run against a recording proxy on loopback, and vnetprobe must agree with them:
//! where both agree, every vnetprobe target goes that way; where they disagree, a curl-client
//! target goes curl's way, a pip-client target requests' way, and both say so in a warning.
//!
//! Every name resolves to 127.0.0.1 for the clients (curl `--resolve`, a patched getaddrinfo in
//! Python) and to nothing for vnetprobe (its DNS server is a closed loopback port), so a direct
//! attempt never leaves the machine. Needs curl and /usr/bin/python3 with requests
//! (tests/run.sh installs them); without them the test says SKIPPED, and fails with the
//! `root-tests` feature.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::*;
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

/// Sends one GET with Python requests; every name resolves to 127.0.0.1.
const REQUESTS_GET: &str = r#"
import socket, sys
real = socket.getaddrinfo
socket.getaddrinfo = lambda host, port, *a, **k: real("127.0.0.1", port, *a, **k)
import requests
try:
    requests.get(sys.argv[1], timeout=3)
except Exception:
    pass
"#;

/// A proxy that records connections and answers 502.
struct Recorder {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = hits.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                seen.fetch_add(1, Ordering::SeqCst);
                let mut conn = conn;
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 512];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Recorder { port, hits }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Connections made while `f` ran (it waits for the client to exit).
    fn count(&self, f: impl FnOnce()) -> usize {
        let before = self.hits.load(Ordering::SeqCst);
        f();
        std::thread::sleep(Duration::from_millis(30));
        self.hits.load(Ordering::SeqCst) - before
    }
}

/// Runs a client with exactly `env` (plus PATH), bounded in time.
fn run_client(mut cmd: Command, env: &[(String, String)]) {
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)));
    output_within(&mut cmd, Duration::from_secs(10));
}

fn curl_proxied(rec: &Recorder, env: &[(String, String)], url: &str) -> bool {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "--max-time", "3"]);
    for port in [80, 443, 8443] {
        cmd.args(["--resolve", &format!("*:{port}:127.0.0.1")]);
    }
    cmd.arg(url);
    rec.count(|| run_client(cmd, env)) > 0
}

fn requests_proxied(rec: &Recorder, env: &[(String, String)], url: &str) -> bool {
    let mut cmd = Command::new(PYTHON);
    cmd.args(["-c", REQUESTS_GET, url]);
    rec.count(|| run_client(cmd, env)) > 0
}

/// vnetprobe's route for the URL with each client: (curl target proxied, pip target proxied,
/// both warnings), from the JSON report, and the proxy's count of connections.
fn vnetprobe_routes(
    rec: &Recorder,
    env: &[(String, String)],
    url: &str,
) -> (bool, bool, Vec<String>, usize) {
    let (tls, rest) = match url.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some((_, rest)) => (false, rest),
        None => panic!("{url}"),
    };
    let authority = rest.split('/').next().unwrap();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.parse::<u16>().is_ok() => {
            (h.to_string(), p.parse::<u16>().unwrap())
        }
        _ => (authority.to_string(), if tls { 443 } else { 80 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let catalog = two_clients_catalog("routes", host, port, tls);
    let mut out = None;
    let hits = rec.count(|| {
        out = Some(
            command(&["check", "--catalog", catalog.to_str().unwrap()])
                .args(["--dns-server", "127.0.0.1:9", "--timeout", "300ms"])
                .args(["--output", "json", "--no-discover"])
                .envs(env.iter().map(|(k, v)| (k, v)))
                .output()
                .unwrap(),
        );
    });
    let out = out.unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let proxied = |id: &str| !result(&report, id)["via_proxy"].is_null();
    let warnings: Vec<String> = ["curl-route", "pip-route"]
        .iter()
        .flat_map(|id| {
            result(&report, id)["warnings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    (proxied("curl-route"), proxied("pip-route"), warnings, hits)
}

/// A catalog of one HTTP target per client, `curl-route` and `pip-route`, both to `host:port`.
fn two_clients_catalog(tag: &str, host: &str, port: u16, tls: bool) -> std::path::PathBuf {
    let target = |id: &str, client: &str| {
        format!(
            "[[target]]\nid = \"{id}\"\nname = \"{id}\"\nprotocol = \"http\"\nhost = \"{host}\"\n\
             ports = [{port}]\ntls = {tls}\nclient = \"{client}\"\nprofiles = [\"internet\"]\n\
             why = \"w\"\nfix = \"f\"\n"
        )
    };
    let text = format!(
        "{}{}",
        target("curl-route", "curl"),
        target("pip-route", "pip")
    );
    write(&temp_dir(tag), "c.toml", &text)
}

/// (proxy and NO_PROXY variables, with P standing for the recording proxy's URL; the URL)
const CASES: &[(&[(&str, &str)], &str)] = &[
    (&[("https_proxy", "P")], "https://www.example.com/"),
    (&[("HTTPS_PROXY", "P")], "https://www.example.com/"),
    (&[("http_proxy", "P")], "http://www.example.com/"),
    (&[("HTTP_PROXY", "P")], "http://www.example.com/"),
    (&[("ALL_PROXY", "P")], "https://www.example.com/"),
    (&[("all_proxy", "P")], "http://www.example.com/"),
    (
        &[("https_proxy", ""), ("ALL_PROXY", "P")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", ""), ("HTTPS_PROXY", "P")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "example.com")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "example.com")],
        "https://notexample.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "ample.com")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", ".example.com")],
        "https://example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "example.com.")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "EXAMPLE.COM")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "www.example.com")],
        "https://example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "*")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", " * ")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "*,example.com")],
        "https://other.org/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "*.example.com")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "a.org, example.com")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "a.org example.com")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "example.com:443")],
        "https://www.example.com/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "example.com:8443")],
        "https://www.example.com:8443/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "127.0.0.0/8")],
        "https://127.0.0.5/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "127.0.0.5")],
        "https://127.0.0.5/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "127.0.0.0/33")],
        "https://127.0.0.5/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "127.0.0.5:443")],
        "https://127.0.0.5/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "::1")],
        "https://[::1]/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "[::1]")],
        "https://[::1]/",
    ),
    (
        &[("HTTPS_PROXY", "P"), ("NO_PROXY", "example.com")],
        "https://www.example.com/",
    ),
    (
        &[
            ("HTTPS_PROXY", "P"),
            ("no_proxy", ""),
            ("NO_PROXY", "example.com"),
        ],
        "https://www.example.com/",
    ),
    (
        &[
            ("HTTPS_PROXY", "P"),
            ("NO_PROXY", "example.com"),
            ("no_proxy", "other.org"),
        ],
        "https://www.example.com/",
    ),
    (
        &[
            ("https_proxy", "P"),
            ("NO_PROXY", ".api.azureml.ms,.instances.azureml.ms"),
        ],
        "https://ci1.westeurope.instances.azureml.ms/",
    ),
    (
        &[("https_proxy", "P"), ("no_proxy", "azureml.ms")],
        "https://westeurope.api.notazureml.ms/",
    ),
];

#[test]
fn vnetprobe_routes_like_curl_and_pip() {
    let have_requests = Command::new(PYTHON)
        .args(["-c", "import requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    let what = "the proxy route differential";
    if !need("curl", what) || !need_that(have_requests, what, &format!("{PYTHON} with requests")) {
        return;
    }
    let rec = Recorder::start();
    let mut problems = Vec::new();
    let mut disagreements = 0;
    for (vars, url) in CASES {
        let env: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.replace('P', &rec.url())))
            .collect();
        let curl = curl_proxied(&rec, &env, url);
        let pip = requests_proxied(&rec, &env, url);
        let (ours_curl, ours_pip, warnings, hits) = vnetprobe_routes(&rec, &env, url);
        let case = format!("{vars:?} {url}: curl {curl}, requests {pip}");
        let expected_hits = usize::from(ours_curl) + usize::from(ours_pip);
        if hits != expected_hits {
            problems.push(format!(
                "{case}: vnetprobe reported {expected_hits} proxied, the proxy saw {hits}"
            ));
        }
        if curl == pip {
            if (ours_curl, ours_pip) != (curl, curl) || !warnings.is_empty() {
                problems.push(format!(
                    "{case}: both clients agree, vnetprobe curl/pip targets {ours_curl}/{ours_pip}, warnings {warnings:?}"
                ));
            }
        } else {
            disagreements += 1;
            let warned =
                warnings.len() == 2 && warnings.iter().all(|w| w.contains("Python requests"));
            if (ours_curl, ours_pip) != (curl, pip) || !warned {
                problems.push(format!(
                    "{case}: clients disagree, vnetprobe curl/pip targets {ours_curl}/{ours_pip}, warnings {warnings:?}"
                ));
            }
        }
    }
    eprintln!(
        "proxy routes: {} cases, {disagreements} where curl and Python requests differ",
        CASES.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The table must exercise the readings that differ, or it proves half of what it claims.
    assert!(
        disagreements >= 4,
        "only {disagreements} cases where the clients differ"
    );
}

/// On a compute instance the proxy lives in ~/.bashrc and in pip's and conda's files, not in
/// the environment a setup script or a unit starts with: with discovery on, vnetprobe reads
/// them under --node-root, follows each client's setting, and names the file.
#[test]
fn the_users_proxy_files_route_like_their_clients() {
    let rec = Recorder::start();
    let root = temp_dir("proxyfiles");
    let home = root.join("home/azureuser");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let catalog = two_clients_catalog("proxyfiles-catalog", "www.example.com", 443, true);
    // Discovery on, as on a node: it reads the proxy files under --node-root.
    let check = || {
        let out = command(&["check", "--catalog", catalog.to_str().unwrap()])
            .args([
                "--node-root",
                root.to_str().unwrap(),
                "--region",
                "westeurope",
            ])
            .args(["--dns-server", "127.0.0.1:9", "--timeout", "300ms"])
            .args(["--imds-endpoint", "http://127.0.0.1:9", "--output", "json"])
            .env_remove("VNETPROBE_DISCOVER")
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
    };
    let via = |r: &Value, id: &str| result(r, id)["via_proxy"].as_str().map(str::to_string);
    let note = |r: &Value, id: &str| {
        result(r, id)["note"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    // The shell profile's proxy, for both clients.
    std::fs::write(
        home.join(".bashrc"),
        format!("export https_proxy={}\n", rec.url()),
    )
    .unwrap();
    let mut report = Value::Null;
    let hits = rec.count(|| report = check());
    assert_eq!(hits, 2, "{report}");
    for id in ["curl-route", "pip-route"] {
        assert_eq!(
            via(&report, id).as_deref(),
            Some(rec.url().as_str()),
            "{report}"
        );
        assert!(note(&report, id).contains(".bashrc"), "{report}");
    }

    // NO_PROXY in the profile sends both direct; pip's own proxy setting still applies to pip.
    std::fs::write(
        home.join(".bashrc"),
        format!(
            "export https_proxy={}\nexport no_proxy=example.com\n",
            rec.url()
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/pip.conf"),
        format!("[global]\nproxy = {}\n", rec.url()),
    )
    .unwrap();
    let hits = rec.count(|| report = check());
    assert_eq!(hits, 1, "{report}");
    assert_eq!(via(&report, "curl-route"), None, "{report}");
    assert_eq!(
        via(&report, "pip-route").as_deref(),
        Some(rec.url().as_str()),
        "{report}"
    );
    assert!(
        note(&report, "pip-route").contains("etc/pip.conf"),
        "{report}"
    );
    let warnings = result(&report, "pip-route")["warnings"].to_string();
    assert!(warnings.contains("curl would go direct"), "{warnings}");
}
