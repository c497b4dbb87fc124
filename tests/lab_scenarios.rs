//! End to end in vplab, a simulated Azure VNet in network namespaces (tests/lab): each failure
//! scenario of the Azure ML network docs is applied to the lab, `vnetprobe check` runs inside the
//! compute namespace, and its JSON must name the right targets, error kinds and fixes.
//!
//! Needs root, `ip netns` and the lab's tools (tests/lab/install-deps.sh): ignored without the
//! `root-tests` feature, and with it a missing prerequisite fails the test.
//! VNETPROBE_LAB_SCENARIOS=healthy,udp-reject runs a subset.
//!
//! The scenarios share one lab, so they run one after another inside a single test; the lab guard
//! tears everything down when the test ends, also on a panic, and the end checks nothing is left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{bin, clean_env, require_root, say, try_output_within};

/// The simulated workspace (tests/lab/lib.sh LAB_VARIABLES; the lab's DNS knows its names).
const WORKSPACE_ID: &str = "6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
const PROFILES: &[&str] = &[
    "no-public-ip",
    "internet",
    "private-endpoint",
    "packages",
    "vscode",
    "exfiltration",
];
/// NO_PROXY as the Azure ML docs advise: private-endpoint names never go to the proxy (the
/// workspace's, and its key vault, registry and Data Lake endpoint).
const NO_PROXY_PRIVATE: &str = ".api.azureml.ms,.instances.azureml.ms,.instances.azureml.net,\
     .instances.ml.azure.ms,.notebooks.azure.net,.vault.azure.net,.azurecr.io,.dfs.core.windows.net";
/// The workspace private-endpoint names (hosts.tsv `zone=aml`).
fn workspace_names() -> Vec<String> {
    vec![
        format!("{WORKSPACE_ID}.workspace.westeurope.api.azureml.ms"),
        format!("{WORKSPACE_ID}.workspace.westeurope.cert.api.azureml.ms"),
        format!("ml-ws1-westeurope-{WORKSPACE_ID}.westeurope.notebooks.azure.net"),
        "ci1.westeurope.instances.azureml.ms".into(),
        "ci1.westeurope.instances.azureml.net".into(),
        "ci1.westeurope.instances.ml.azure.ms".into(),
    ]
}

type Check = Result<(), String>;

// --- processes, each with a deadline ----------------------------------------------------------

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut Command, deadline: Duration) -> Result<Ran, String> {
    let out = try_output_within(cmd, deadline)?;
    Ok(Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    run(Command::new(program).args(args), Duration::from_secs(10)).is_ok_and(|r| r.code == Some(0))
}

fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab")
}

/// The lab's state dir, as tests/lab/lib.sh chooses it.
fn state_dir() -> PathBuf {
    std::env::var_os("VPLAB_STATE").map_or_else(|| PathBuf::from("/run/vplab"), PathBuf::from)
}

fn script(name: &str, args: &[&str], deadline: Duration) -> Check {
    let r = run(
        Command::new("bash")
            .arg(lab_dir().join(name))
            .args(args)
            // The peered VNet's responder is this build's `vnetprobe listen`.
            .env("VNETPROBE", bin()),
        deadline,
    )?;
    if r.code == Some(0) {
        Ok(())
    } else {
        Err(format!(
            "{name} {args:?} failed ({:?}):\n{}",
            r.code, r.stderr
        ))
    }
}

// --- the lab ------------------------------------------------------------------------------------

/// Why the lab cannot run here (as root), if it cannot.
fn missing_prerequisite() -> Option<String> {
    if !succeeds("ip", &["netns", "list"]) {
        return Some("`ip netns` does not work".into());
    }
    let missing: Vec<&str> = [
        "ss", "nft", "dnsmasq", "squid", "openssl", "python3", "setsid",
    ]
    .into_iter()
    .filter(|tool| !succeeds("sh", &["-c", &format!("command -v {tool}")]))
    .collect();
    (!missing.is_empty())
        .then(|| format!("missing {} (tests/lab/install-deps.sh)", missing.join(", ")))
}

/// The lab while it is up; dropping it runs down.sh, whatever happened before.
struct Lab {
    env: BTreeMap<String, String>,
}

impl Lab {
    fn up() -> Result<Lab, String> {
        script("up.sh", &[], Duration::from_secs(60))?;
        let path = state_dir().join("lab.env");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let env = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Lab { env })
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("lab.env has no {key}"))
    }

    fn scenario(&self, name: &str) -> Check {
        script("scenario.sh", &[name], Duration::from_secs(30))
    }

    /// `vnetprobe check` in the compute namespace with the lab's variables, the clean environment
    /// plus `env` (discovery on, as tests/lab/vnetprobe.sh runs it), the given profiles and extra
    /// arguments.
    fn check(
        &self,
        profiles: &[&str],
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Result<Report, String> {
        self.check_vars(profiles, env, extra, None)
    }

    /// The default profiles with one lab variable left out, as on a node that cannot know it.
    fn check_without(&self, variable: &str, extra: &[&str]) -> Result<Report, String> {
        self.check_vars(&[], &[], extra, Some(variable))
    }

    fn check_vars(
        &self,
        profiles: &[&str],
        env: &[(&str, &str)],
        extra: &[&str],
        without: Option<&str>,
    ) -> Result<Report, String> {
        let (mut cmd, shown) = self.command("json", profiles, env, extra, without);
        let r = run(&mut cmd, Duration::from_secs(30))?;
        let json: Value = serde_json::from_str(&r.stdout).map_err(|e| {
            format!(
                "[check{shown}] exit {:?}, stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                r.code,
                cut(&r.stdout),
                cut(&r.stderr)
            )
        })?;
        Ok(Report {
            code: r.code,
            json,
            shown,
        })
    }

    /// `vnetprobe check` in the compute namespace, and what sets the run apart for messages.
    fn command(
        &self,
        output: &str,
        profiles: &[&str],
        env: &[(&str, &str)],
        extra: &[&str],
        without: Option<&str>,
    ) -> (Command, String) {
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            self.get("COMPUTE_NS"),
            bin(),
            "check",
            "--output",
            output,
            "--timeout",
            "2s",
        ]);
        // The lab's DNS server, unless the caller names another (the firewall's DNS proxy).
        if !extra.contains(&"--dns-server") {
            cmd.args(["--dns-server", self.get("DNS_SERVER")]);
        }
        for variable in self.get("VARIABLES").split_whitespace() {
            if without.is_some_and(|w| variable.starts_with(&format!("{w}="))) {
                continue;
            }
            cmd.args(["--set", variable]);
        }
        for p in profiles {
            cmd.args(["--profile", p]);
        }
        clean_env(cmd.args(extra))
            .env_remove("VNETPROBE_DISCOVER")
            .env("VNETPROBE_PUBLIC_ROOTS", self.get("PUBLIC_ROOTS"))
            .envs(env.iter().copied());
        let shown: String = env
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .chain(extra.iter().map(|a| format!(" {a}")))
            .chain(without.map(|w| format!(" (without {w})")))
            .collect();
        (cmd, shown)
    }

    /// `check --output fix` must equal tests/lab/golden/SCENARIO.fix. VNETPROBE_BLESS=1 writes
    /// the golden file instead; a mismatch leaves the actual plan in target/lab-golden/.
    fn fix_plan_matches(&self, scenario: &str, profiles: &[&str], env: &[(&str, &str)]) -> Check {
        self.fix_plan_matches_with(scenario, profiles, env, &[])
    }

    fn fix_plan_matches_with(
        &self,
        scenario: &str,
        profiles: &[&str],
        env: &[(&str, &str)],
        extra: &[&str],
    ) -> Check {
        let (mut cmd, shown) = self.command("fix", profiles, env, extra, None);
        let r = run(&mut cmd, Duration::from_secs(30))?;
        let golden = lab_dir().join("golden").join(format!("{scenario}.fix"));
        if std::env::var("VNETPROBE_BLESS").as_deref() == Ok("1") {
            std::fs::create_dir_all(golden.parent().unwrap()).map_err(|e| e.to_string())?;
            std::fs::write(&golden, &r.stdout).map_err(|e| e.to_string())?;
            return Ok(());
        }
        let want = std::fs::read_to_string(&golden)
            .map_err(|e| format!("{}: {e} (VNETPROBE_BLESS=1 writes it)", golden.display()))?;
        if r.stdout == want {
            return Ok(());
        }
        let actual = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/lab-golden")
            .join(format!("{scenario}.fix"));
        let _ = std::fs::create_dir_all(actual.parent().unwrap());
        let _ = std::fs::write(&actual, &r.stdout);
        Err(format!(
            "[check --output fix{shown}] differs from {} (actual in {}; stderr {})",
            golden.display(),
            actual.display(),
            cut(&r.stderr)
        ))
    }

    fn dns_log_len(&self) -> u64 {
        std::fs::metadata(self.get("DNS_LOG"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// `query[A] NAME from COMPUTE_IP` lines written since `from` (a byte offset), per name.
    fn dns_queries_since(&self, from: u64) -> BTreeMap<String, usize> {
        let log = std::fs::read(self.get("DNS_LOG")).unwrap_or_default();
        let tail =
            String::from_utf8_lossy(log.get(from as usize..).unwrap_or_default()).into_owned();
        let from_compute = format!(" from {}", self.get("COMPUTE_IP"));
        let mut counts = BTreeMap::new();
        for line in tail.lines().filter(|l| l.ends_with(&from_compute)) {
            if let Some(rest) = line.split("query[A] ").nth(1) {
                let name = rest.split(' ').next().unwrap_or_default().to_string();
                *counts.entry(name).or_insert(0) += 1;
            }
        }
        counts
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = script("down.sh", &[], Duration::from_secs(60)) {
            say(&format!("lab: teardown failed: {e}"));
        }
    }
}

fn cut(s: &str) -> String {
    match s.char_indices().nth(4000) {
        Some((end, _)) => format!("{}... ({} bytes)", &s[..end], s.len()),
        None => s.to_string(),
    }
}

/// What is left of the lab on this host: namespaces, links, processes, state.
fn leftovers(pids: &[u32]) -> Vec<String> {
    let mut left = Vec::new();
    if let Ok(r) = run(
        Command::new("ip").args(["netns", "list"]),
        Duration::from_secs(10),
    ) {
        left.extend(
            r.stdout
                .lines()
                .filter(|l| l.starts_with("vplab-"))
                .map(|l| format!("namespace {l}")),
        );
    }
    if let Ok(r) = run(
        Command::new("ip").args(["-o", "link", "show"]),
        Duration::from_secs(10),
    ) {
        left.extend(
            r.stdout
                .lines()
                .filter_map(|l| l.split(": ").nth(1))
                .filter(|n| n.starts_with("vpl-"))
                .map(|n| format!("link {n}")),
        );
    }
    left.extend(
        pids.iter()
            .filter(|p| running(**p))
            .map(|p| format!("pid {p}")),
    );
    let state = state_dir();
    // Any process still started with the state dir on its command line, pid file or not.
    let marker = format!("{}/", state.display());
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&marker) && running(pid) && !pids.contains(&pid) {
            left.push(format!("pid {pid} ({})", cmdline.trim()));
        }
    }
    for path in [
        state.as_path(),
        Path::new("/etc/netns/vplab-compute"),
        Path::new("/etc/netns/vplab-fw"),
        Path::new("/etc/netns/vplab-azure"),
    ] {
        if path.exists() {
            left.push(path.display().to_string());
        }
    }
    left
}

/// Whether a process runs; an exited one waiting as a zombie for init to reap it does not.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn lab_pids() -> Vec<u32> {
    std::fs::read_dir(state_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
        .collect()
}

// --- the report and what a scenario expects of it ------------------------------------------------

struct Report {
    code: Option<i32>,
    json: Value,
    shown: String,
}

fn text<'a>(r: &'a Value, key: &str) -> &'a str {
    // Evidence fields are flattened into the result; accept them nested under "evidence" too.
    r.get(key)
        .or_else(|| r.get("evidence").and_then(|e| e.get(key)))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn kind(r: &Value) -> &str {
    r.get("error")
        .and_then(|e| e.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn label(r: &Value) -> String {
    match r.get("port").and_then(Value::as_u64) {
        Some(p) => format!("{} ({}:{p})", text(r, "id"), text(r, "host")),
        None => format!("{} ({})", text(r, "id"), text(r, "host")),
    }
}

fn describe(r: &Value) -> String {
    let err = r
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let note = text(r, "note");
    format!(
        "{} {} {} {err} {note}",
        label(r),
        text(r, "status"),
        kind(r)
    )
}

/// Which results a failure expectation is about.
enum Select {
    Id(&'static str),
    IdPort(&'static str, u16),
    IdPrefix(&'static str),
    Host(String),
}

impl Select {
    fn matches(&self, r: &Value) -> bool {
        let id = text(r, "id");
        match self {
            Select::Id(want) => id == *want,
            Select::IdPort(want, port) => {
                id == *want && r.get("port").and_then(Value::as_u64) == Some(u64::from(*port))
            }
            Select::IdPrefix(prefix) => id.starts_with(prefix),
            Select::Host(host) => text(r, "host") == host,
        }
    }

    fn show(&self) -> String {
        match self {
            Select::Id(id) | Select::IdPrefix(id) => id.to_string(),
            Select::IdPort(id, port) => format!("{id}:{port}"),
            Select::Host(host) => host.clone(),
        }
    }
}

/// Results selected by `select` must fail with one of `kinds`, and their hint must mention one of
/// `hint` (case-insensitive; empty: not checked).
struct Fails {
    select: Select,
    kinds: &'static [&'static str],
    hint: &'static [&'static str],
}

fn fails(select: Select, kinds: &'static [&'static str], hint: &'static [&'static str]) -> Fails {
    Fails {
        select,
        kinds,
        hint,
    }
}

const TIMED_OUT: &[&str] = &["tcp_timeout", "timeout"];

impl Report {
    fn results(&self) -> Vec<&Value> {
        self.json
            .get("results")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    }

    fn context(&self, what: &str) -> String {
        format!("[check{}] {what}", self.shown)
    }

    fn get(&self, id: &str, port: Option<u16>) -> Result<&Value, String> {
        self.results()
            .into_iter()
            .find(|r| {
                text(r, "id") == id
                    && port
                        .is_none_or(|p| r.get("port").and_then(Value::as_u64) == Some(u64::from(p)))
            })
            .ok_or_else(|| self.context(&format!("no result for {id} {port:?}")))
    }

    fn passes(&self, id: &str, port: Option<u16>) -> Result<&Value, String> {
        let r = self.get(id, port)?;
        if text(r, "status") == "pass" {
            Ok(r)
        } else {
            Err(self.context(&format!("{} should pass", describe(r))))
        }
    }

    /// The exit code, and exactly these failures: every expectation matches at least one failed
    /// result with the right kind and hint, and no other result failed.
    fn fails_exactly(&self, code: i32, expected: &[Fails]) -> Check {
        let results = self.results();
        if results.is_empty() {
            return Err(self.context(&format!("no results (exit {:?})", self.code)));
        }
        let mut problems = Vec::new();
        if self.code != Some(code) {
            problems.push(format!("exit {:?}, expected {code}", self.code));
        }
        for want in expected {
            let hits: Vec<&&Value> = results.iter().filter(|r| want.select.matches(r)).collect();
            if hits.is_empty() {
                problems.push(format!("no result matches {}", want.select.show()));
            }
            for r in hits {
                let hint = text(r, "hint").to_lowercase();
                if text(r, "status") != "fail" || !want.kinds.contains(&kind(r)) {
                    problems.push(format!("{} should fail with {:?}", describe(r), want.kinds));
                } else if !want.hint.is_empty()
                    && !want.hint.iter().any(|h| hint.contains(&h.to_lowercase()))
                {
                    problems.push(format!(
                        "{}: hint should mention one of {:?}: {:?}",
                        label(r),
                        want.hint,
                        text(r, "hint")
                    ));
                }
            }
        }
        for r in &results {
            if text(r, "status") == "fail" && !expected.iter().any(|w| w.select.matches(r)) {
                problems.push(format!("unexpected failure: {}", describe(r)));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.context(&problems.join("\n  ")))
        }
    }
}

impl Report {
    /// A `causes` entry of this kind whose message and fix mention `says`, covering at least
    /// `min` targets.
    fn has_cause(&self, kind: &str, min: usize, says: &[&str]) -> Check {
        let causes = self.json["causes"].as_array().cloned().unwrap_or_default();
        let found = causes.iter().any(|c| {
            let text = format!("{} {}", c["message"], c["fix"]);
            c["kind"] == kind
                && c["targets"].as_array().is_some_and(|t| t.len() >= min)
                && says.iter().all(|s| text.contains(s))
        });
        ensure(found, || {
            self.context(&format!(
                "no {kind} cause over {min}+ targets saying {says:?}: {}",
                json_text(self.json.get("causes"))
            ))
        })
    }
}

fn ensure(ok: bool, what: impl FnOnce() -> String) -> Check {
    if ok { Ok(()) } else { Err(what()) }
}

/// Every check of a scenario runs, and all their problems are reported together.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn check(&mut self, c: Check) {
        if let Err(e) = c {
            self.0.push(e);
        }
    }

    fn done(self) -> Check {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0.join("\n  "))
        }
    }
}

fn json_text(v: Option<&Value>) -> String {
    v.map(Value::to_string).unwrap_or_default()
}

// --- the scenarios --------------------------------------------------------------------------------

fn healthy(lab: &Lab) -> Check {
    let log_from = lab.dns_log_len();
    let r = lab.check(PROFILES, &[], &[])?;
    let mut p = Problems::default();
    p.check(ensure(r.json["causes"] == Value::Array(vec![]), || {
        r.context(&format!("causes in a healthy run: {}", r.json["causes"]))
    }));
    p.check(r.fails_exactly(0, &[]));
    // Every host of these profiles resolves and answers in the lab: nothing is skipped, and
    // nothing passes unconfirmed (the lab's tundra echoes, its instance upgrades).
    p.check(ensure(
        r.json["summary"]["unverified"] == 0 && r.json["summary"]["required_skip"] == 0,
        || r.context(&format!("summary {}", r.json["summary"])),
    ));
    let skipped: Vec<String> = r
        .results()
        .into_iter()
        .filter(|res| text(res, "status") == "skip")
        .map(|res| format!("{} ({})", label(res), text(res, "skip_reason")))
        .collect();
    p.check(ensure(skipped.is_empty(), || {
        r.context(&format!("unexpected skips: {}", skipped.join("; ")))
    }));
    p.check(r.passes("pe-workspace-api-dns", None).and_then(|ws| {
        let (chain, addrs) = (
            json_text(ws.get("cname_chain")),
            json_text(ws.get("addresses")),
        );
        ensure(
            chain.contains("privatelink.api.azureml.ms") && addrs == r#"["10.77.2.4"]"#,
            || {
                r.context(&format!(
                    "workspace name: CNAME chain {chain}, addresses {addrs}"
                ))
            },
        )
    }));
    // The lab's CA stands in for the public web PKI (VNETPROBE_PUBLIC_ROOTS).
    p.check(r.passes("entra-graph-tls", Some(443)).and_then(|g| {
        let trusted = json_text(g.get("tls").and_then(|t| t.get("trusted_by")));
        ensure(trusted == r#""public""#, || {
            r.context(&format!("graph.windows.net trusted_by {trusted}"))
        })
    }));
    for (id, port) in [
        ("aml-tundra-udp", 5831),
        ("aml-instance-ws", 443),
        ("exfil-storage-http", 443),
        ("batch-account-tls", 443),
        ("entra-msgraph-tls", 443),
        ("acr-data-tls", 443),
    ] {
        p.check(r.passes(id, Some(port)).map(drop));
    }
    // One lookup per name per run: targets that share a host share its answer.
    let repeated: Vec<String> = lab
        .dns_queries_since(log_from)
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(name, n)| format!("{name} x{n}"))
        .collect();
    p.check(ensure(repeated.is_empty(), || {
        r.context(&format!(
            "names looked up more than once: {}",
            repeated.join(", ")
        ))
    }));
    p.done()
}

fn udp_reject(lab: &Lab) -> Check {
    let mut p = Problems::default();
    p.check(lab.check(PROFILES, &[], &[])?.fails_exactly(
        1,
        &[fails(
            Select::IdPort("aml-tundra-udp", 5831),
            &["udp_rejected"],
            &["UDP 5831"],
        )],
    ));
    p.check(lab.fix_plan_matches("udp-reject", PROFILES, &[]));
    p.done()
}

fn udp_drop(lab: &Lab) -> Check {
    let r = lab.check(PROFILES, &[], &[])?;
    let mut p = Problems::default();
    p.check(r.fails_exactly(0, &[]));
    p.check(r.passes("aml-tundra-udp", Some(5831)).and_then(|udp| {
        let note = text(udp, "note");
        ensure(note.contains("open|filtered"), || {
            r.context(&format!("tundra note {note:?}, expected open|filtered"))
        })
    }));
    p.done()
}

fn instance_ports_blocked(lab: &Lab) -> Check {
    let r = lab.check(PROFILES, &[], &[])?;
    let mut p = Problems::default();
    p.check(r.fails_exactly(
        1,
        &[
            fails(
                Select::IdPort("aml-instance-tcp", 8787),
                &["tcp_refused"],
                &["8787"],
            ),
            fails(
                Select::IdPort("aml-instance-tcp", 18881),
                &["tcp_refused"],
                &["18881"],
            ),
            fails(
                Select::Id("aml-instance-tls-rstudio"),
                &["tcp_refused"],
                &["8787"],
            ),
            fails(
                Select::Id("aml-instance-tls-intellisense"),
                &["tcp_refused"],
                &["18881"],
            ),
        ],
    ));
    p.check(r.passes("aml-instance-ws", Some(443)).map(drop));
    p.check(r.has_cause(
        "tcp_refused",
        3,
        &["AzureMachineLearning", "TCP 8787", "TCP 18881"],
    ));
    p.check(lab.fix_plan_matches("instance-ports-blocked", PROFILES, &[]));
    p.done()
}

fn dns_not_linked(lab: &Lab) -> Check {
    let r = lab.check(PROFILES, &[], &[])?;
    let not_private: &[&str] = &["dns_not_private"];
    let mut p = Problems::default();
    p.check(r.fails_exactly(
        1,
        &[
            fails(
                Select::Id("pe-workspace-api-dns"),
                not_private,
                &["privatelink.api.azureml.ms"],
            ),
            fails(
                Select::Id("pe-workspace-cert-dns"),
                not_private,
                &["privatelink.api.azureml.ms"],
            ),
            fails(
                Select::Id("pe-notebooks-dns"),
                not_private,
                &["privatelink.notebooks.azure.net"],
            ),
            fails(
                Select::Id("pe-instance-dns"),
                not_private,
                &["privatelink.api.azureml.ms"],
            ),
        ],
    ));
    p.check(r.get("pe-workspace-api-dns", None).and_then(|ws| {
        let addrs = json_text(ws.get("addresses"));
        ensure(addrs.contains("198.51.100.14"), || {
            r.context(&format!("workspace addresses {addrs}"))
        })
    }));
    p.check(r.has_cause("dns_not_private", 4, &["10.77.3.53", "privatelink"]));
    p.check(lab.fix_plan_matches("dns-not-linked", PROFILES, &[]));
    p.done()
}

fn custom_dns_no_forward(lab: &Lab) -> Check {
    let r = lab.check(PROFILES, &[], &[])?;
    // DNS targets must point at the forwarder; the other probes of these names fail on DNS too.
    let mut expected: Vec<Fails> = [
        "pe-workspace-api-dns",
        "pe-workspace-cert-dns",
        "pe-notebooks-dns",
        "pe-instance-dns",
    ]
    .into_iter()
    .map(|id| fails(Select::Id(id), &["dns_nxdomain"], &["168.63.129.16"]))
    .collect();
    expected.extend(workspace_names().into_iter().map(|h| {
        fails(
            Select::Host(h),
            &["dns_nxdomain"],
            &["not tried", "168.63.129.16"],
        )
    }));
    let mut p = Problems::default();
    p.check(r.fails_exactly(1, &expected));
    // One cause, the resolver; and no hint of a DNS failure asks for a network rule.
    p.check(r.has_cause("dns_nxdomain", 10, &["10.77.3.53", "168.63.129.16"]));
    for res in r.results() {
        let hint = text(res, "hint");
        if kind(res).starts_with("dns_") && (hint.contains("NSG") || hint.contains("Rule needed")) {
            p.check(Err(r.context(&format!(
                "{}: DNS hint names a rule: {hint}",
                label(res)
            ))));
        }
    }
    p.check(lab.fix_plan_matches("custom-dns-no-forward", PROFILES, &[]));
    p.done()
}

fn proxy_ok(lab: &Lab) -> Check {
    let proxy = lab.get("PROXY_URL");
    let r = lab.check(
        PROFILES,
        &[("HTTPS_PROXY", proxy), ("NO_PROXY", NO_PROXY_PRIVATE)],
        &[],
    )?;
    let mut p = Problems::default();
    p.check(r.fails_exactly(0, &[]));
    let proxy_host = proxy.trim_start_matches("http://");
    for (id, proxied) in [
        ("pkg-pypi", true),
        ("entra-graph-tls", true),
        ("aml-instance-ws", false),
    ] {
        p.check(r.passes(id, Some(443)).and_then(|res| {
            let via = text(res, "via_proxy");
            ensure(via.contains(proxy_host) == proxied, || {
                r.context(&format!(
                    "{id}: via_proxy {via:?}, should go through the proxy: {proxied}"
                ))
            })
        }));
    }
    // The control: without the proxy the package repositories are closed.
    let direct = lab.check(&["packages"], &[], &[])?;
    p.check(direct.fails_exactly(1, &[fails(Select::IdPrefix("pkg-"), TIMED_OUT, &[])]));
    p.done()
}

fn proxy_no_noproxy(lab: &Lab) -> Check {
    // Lower case, as ~/.bashrc on a compute instance usually has it; curl reads both.
    let env = [("https_proxy", lab.get("PROXY_URL"))];
    let r = lab.check(PROFILES, &env, &[])?;
    let mut p = Problems::default();
    p.check(r.has_cause(
        "proxy_denied",
        5,
        &[
            "10.77.4.8:3128",
            ".instances.azureml.ms",
            ".vault.azure.net",
            "NO_PROXY",
        ],
    ));
    p.check(lab.fix_plan_matches("proxy-no-noproxy", PROFILES, &env));
    p.check(r.fails_exactly(
        1,
        &[
            fails(
                Select::Id("aml-instance-ws"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            fails(
                Select::Id("aml-instance-tls-rstudio"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            fails(
                Select::Id("aml-instance-tls-intellisense"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            // The instance's other spellings, and the workspace's other private endpoints, go to
            // the proxy the same way.
            fails(
                Select::Id("pe-workspace-api-tls"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            fails(
                Select::Id("aml-instance-net-tls"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            fails(
                Select::Id("aml-instance-mlazure-tls"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            fails(
                Select::Id("pe-notebooks-tls"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            fails(Select::Id("keyvault-tls"), &["proxy_denied"], &["NO_PROXY"]),
            fails(
                Select::Id("acr-registry-tls"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
            fails(Select::Id("acr-data-tls"), &["proxy_denied"], &["NO_PROXY"]),
            fails(
                Select::Id("storage-dfs-tls"),
                &["proxy_denied"],
                &["NO_PROXY"],
            ),
        ],
    ));
    p.done()
}

/// The application rules deny these FQDNs (tests/lab/lib.sh APPFW_DENY, and all HTTP).
const APPFW_DENIED: [(&str, u16); 3] = [
    ("sa1.queue.core.windows.net", 443),
    ("ab1.westeurope.batch.azure.com", 443),
    ("login.microsoftonline.com", 80),
];

/// A hub Azure Firewall: it completes every TCP handshake on 80/443 itself, resets a denied
/// ClientHello, answers a denied HTTP request with 470, and is the compute's DNS server.
fn azure_firewall(lab: &Lab) -> Check {
    let dns: &[&str] = &["--dns-server", lab.get("FW_DNS_SERVER")];
    let profiles = &[
        "no-public-ip",
        "internet",
        "private-endpoint",
        "packages",
        "vscode",
    ];
    let r = lab.check(profiles, &[], dns)?;
    let mut p = Problems::default();
    let reset: &[&str] = &["tls_reset_after_hello"];
    let app_rule: &[&str] = &["application rule", "NSG rule does not help", "Action: Deny"];
    p.check(r.fails_exactly(
        1,
        &[
            fails(Select::Id("storage-queue-tls"), reset, app_rule),
            fails(Select::Id("batch-account-tls"), reset, app_rule),
            fails(
                Select::Id("entra-login-http"),
                &["firewall_denied"],
                &["application rule", "Http:80", "No rule matched"],
            ),
        ],
    ));
    // Each denial is confirmed as the firewall's by its own 470 on port 80.
    for (host, port) in APPFW_DENIED {
        let hit = r
            .results()
            .into_iter()
            .find(|res| text(res, "host") == host && res["port"] == port);
        p.check(
            hit.ok_or_else(|| r.context(&format!("no result for {host}:{port}")))
                .and_then(|res| {
                    ensure(
                        res["firewall"]["deny"] == "Action: Deny; Reason: No rule matched"
                            && res["firewall"]["no_rule_matched"] == true,
                        || r.context(&format!("{host}: no firewall evidence: {}", describe(res))),
                    )
                }),
        );
    }
    // Allowed FQDNs on 443 pass by their TLS handshake through the same firewall.
    for id in [
        "storage-blob-tls",
        "storage-table-tls",
        "entra-login-tls",
        "aml-api-tls",
    ] {
        p.check(r.passes(id, Some(443)).map(drop));
    }
    // One cause, before the per-target failures, naming the firewall once.
    p.check(r.has_cause(
        "firewall_denied",
        3,
        &[
            "3 FQDNs denied by an application-rule firewall",
            "Https:443",
            "Http:80",
        ],
    ));
    let causes = r.json["causes"].as_array().cloned().unwrap_or_default();
    p.check(ensure(causes.len() == 1, || {
        r.context(&format!(
            "one cause expected: {}",
            json_text(r.json.get("causes"))
        ))
    }));
    // The plan: policy application rules for exactly the denied FQDNs.
    p.check(lab.fix_plan_matches_with("azure-firewall", profiles, &[], dns));
    p.done()
}

/// Public-IP compute behind the same firewall: the plan routes both service tags around it.
fn forced_tunnel_public_ip(lab: &Lab) -> Check {
    let dns: &[&str] = &["--dns-server", lab.get("FW_DNS_SERVER")];
    let profiles = &["public-ip", "internet"];
    let r = lab.check(profiles, &[], dns)?;
    let mut p = Problems::default();
    p.check(r.get("inbound-aml-route", Some(44224)).and_then(|res| {
        let fix = text(res, "hint");
        ensure(
            fix.contains("--address-prefix AzureMachineLearning")
                && fix.contains("--address-prefix BatchNodeManagement")
                && fix.contains("Routes take only the global tags"),
            || r.context(&format!("inbound-aml-route names both routes: {fix}")),
        )
    }));
    p.check(lab.fix_plan_matches_with("forced-tunnel-public-ip", profiles, &[], dns));
    p.done()
}

fn tls_intercept(lab: &Lab) -> Check {
    let ca = lab.get("INSPECTION_CA");
    let intercepted: &[&str] = &["tls_intercepted"];
    let remedy: &[&str] = &["inspection", "intercept", "--ca-file"];
    let names_issuer = |r: &Report, res: &Value| {
        ensure(
            res.to_string().contains("Contoso TLS Inspection CA"),
            || {
                r.context(&format!(
                    "{} does not name Contoso TLS Inspection CA",
                    label(res)
                ))
            },
        )
    };
    let mut p = Problems::default();
    let r = lab.check(PROFILES, &[], &["--ca-file", ca])?;
    p.check(r.fails_exactly(
        1,
        &[
            fails(Select::IdPrefix("pkg-"), intercepted, remedy),
            fails(Select::IdPrefix("vscode-"), intercepted, remedy),
        ],
    ));
    p.check(
        r.get("pkg-pypi", Some(443))
            .and_then(|res| names_issuer(&r, res)),
    );
    p.check(r.has_cause("tls_intercepted", 10, &["Contoso TLS Inspection CA"]));

    // Accepting the inspection is a setting: the same run passes, still naming the issuer.
    let allowed = lab.check(PROFILES, &[], &["--ca-file", ca, "--allow-intercept"])?;
    p.check(allowed.fails_exactly(0, &[]));
    p.check(
        allowed
            .passes("pkg-pypi", Some(443))
            .and_then(|res| names_issuer(&allowed, res)),
    );

    // Without the inspection CA nothing trusts the chain.
    let untrusted = lab.check(&["packages"], &[], &[])?;
    p.check(untrusted.fails_exactly(
        1,
        &[fails(Select::IdPrefix("pkg-"), &["tls_untrusted"], &[])],
    ));
    p.done()
}

/// With `--trace` the dropped SMB path is traced: the firewall namespace answers TTL 1 as a
/// router (time exceeded from its compute-side address) and drops what it would forward, so
/// the trail goes silent after hop 1. A passing target is not traced.
fn smb_blocked(lab: &Lab) -> Check {
    let r = lab.check(PROFILES, &[], &["--trace"])?;
    let mut p = Problems::default();
    p.check(lab.fix_plan_matches("smb-blocked", PROFILES, &[]));
    p.check(r.fails_exactly(
        1,
        &[fails(Select::Id("storage-file-smb"), TIMED_OUT, &["445"])],
    ));
    p.check(r.passes("storage-file-tls", Some(443)).and_then(|res| {
        ensure(res.get("trace").is_none_or(Value::is_null), || {
            r.context(&format!("a passing target was traced: {}", res["trace"]))
        })
    }));
    p.check(r.get("storage-file-smb", Some(445)).and_then(|res| {
        let t = &res["trace"];
        // tests/lab/lib.sh FW_COMPUTE_IP: the firewall's address on the compute subnet.
        let fw = "10.77.1.1";
        let hops: Vec<(u64, &str, &str)> = t["hops"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| {
                (
                    h["ttl"].as_u64().unwrap_or(0),
                    h["address"].as_str().unwrap_or(""),
                    h["kind"].as_str().unwrap_or(""),
                )
            })
            .collect();
        let ok = t["protocol"] == "tcp"
            && t["to"].as_str().is_some_and(|to| to.ends_with(":445"))
            && t["ended"] == "silent_after_hop"
            && t["at"]["address"] == fw
            && hops == [(1, fw, "time_exceeded")]
            && t["summary"]
                .as_str()
                .is_some_and(|s| s.contains("silent after hop 1 10.77.1.1"));
        ensure(ok, || {
            r.context(&format!(
                "storage-file-smb: want silent after hop 1 {fw}, trace {t}"
            ))
        })
    }));
    p.done()
}

fn exfil_open(lab: &Lab) -> Check {
    let mut p = Problems::default();
    p.check(lab.check(PROFILES, &[], &[])?.fails_exactly(
        1,
        &[fails(
            Select::Id("exfil-storage-http"),
            &["unexpectedly_reachable"],
            &["service endpoint policy"],
        )],
    ));
    p.check(lab.fix_plan_matches("exfil-open", PROFILES, &[]));
    p.done()
}

/// The policy denies the request with 403 while TCP and TLS to the account still work: that is
/// the block, and only a request could show it.
fn exfil_policy(lab: &Lab) -> Check {
    let r = lab.check(PROFILES, &[], &[])?;
    let mut p = Problems::default();
    p.check(r.fails_exactly(0, &[]));
    p.check(r.passes("exfil-storage-http", Some(443)).and_then(|res| {
        let (status, note) = (json_text(res.get("http_status")), text(res, "note"));
        ensure(status == "403" && note.contains("denied"), || {
            r.context(&format!("exfil: status {status}, note {note:?}"))
        })
    }));
    p.done()
}

/// Storage reached through a service endpoint (public answers, the VNet allowed) is a correct
/// setup: the default run passes and reports the public answers; holding blob to a private
/// endpoint (`private_endpoints`) fails it, naming the zone.
fn storage_service_endpoint(lab: &Lab) -> Check {
    let r = lab.check(&[], &[], &[])?;
    let mut p = Problems::default();
    p.check(r.fails_exactly(0, &[]));
    p.check(r.passes("pe-storage-blob-dns", None).and_then(|res| {
        let private = json_text(res.get("private"));
        ensure(private == "false", || {
            r.context(&format!(
                "blob answered private={private}, expected a public answer"
            ))
        })
    }));
    p.check(r.passes("storage-blob-tls", Some(443)).map(drop));
    p.check(r.passes("storage-file-smb", Some(445)).map(drop));
    let held = lab.check(
        &[],
        &[],
        &["--set", "private_endpoints=workspace,keyvault,acr,blob"],
    )?;
    p.check(held.fails_exactly(
        1,
        &[fails(
            Select::Id("pe-storage-blob-dns"),
            &["dns_not_private"],
            &["privatelink.blob.core.windows.net"],
        )],
    ));
    p.done()
}

fn batch_blocked(lab: &Lab) -> Check {
    let r = lab.check(&[], &[], &[])?;
    let mut p = Problems::default();
    p.check(lab.fix_plan_matches("batch-blocked", &[], &[]));
    p.check(r.fails_exactly(
        1,
        &[fails(
            Select::IdPort("batch-account-tls", 443),
            TIMED_OUT,
            &["BatchNodeManagement"],
        )],
    ));
    // Without the account the row is a required skip that says how to supply it, never a pass.
    let unknown = lab.check_without("batch_account", &[])?;
    p.check(unknown.get("batch-account-tls", Some(443)).and_then(|res| {
        let reason = text(res, "skip_reason");
        ensure(
            text(res, "status") == "skip" && reason.contains("batch_account"),
            || unknown.context(&format!("batch-account-tls: {}", describe(res))),
        )
    }));
    p.check(ensure(
        unknown.json["summary"]["required_skip"] == 1,
        || unknown.context(&format!("summary {}", unknown.json["summary"])),
    ));
    p.done()
}

/// UDP silence passes unconfirmed; --strict fails it.
fn udp_silent_strict(lab: &Lab) -> Check {
    let r = lab.check(&[], &[], &[])?;
    let mut p = Problems::default();
    p.check(r.fails_exactly(0, &[]));
    p.check(r.passes("aml-tundra-udp", Some(5831)).and_then(|udp| {
        ensure(udp.get("unverified") == Some(&Value::Bool(true)), || {
            r.context(&format!("tundra should be unverified: {}", describe(udp)))
        })
    }));
    p.check(ensure(r.json["summary"]["unverified"] == 1, || {
        r.context(&format!("summary {}", r.json["summary"]))
    }));
    let strict = lab.check(&[], &[], &["--strict"])?;
    p.check(strict.fails_exactly(
        1,
        &[fails(
            Select::IdPort("aml-tundra-udp", 5831),
            &["unverified"],
            &["Network Watcher"],
        )],
    ));
    p.done()
}

/// Inbound rules are rows the report shows as not observable, with the rule to verify; they
/// never count as checked, and --strict does not fail them.
fn inbound_public_ip(lab: &Lab) -> Check {
    let mut p = Problems::default();
    for extra in [&[][..], &["--strict"][..]] {
        let r = lab.check(&["public-ip"], &[], extra)?;
        p.check(r.fails_exactly(0, &[]));
        for id in ["inbound-aml-44224", "inbound-aml-route", "inbound-ssh-22"] {
            p.check(r.get(id, None).and_then(|res| {
                let (reason, hint) = (text(res, "skip_reason"), text(res, "hint"));
                ensure(
                    text(res, "status") == "skip"
                        && reason == "inbound: cannot be observed from this node"
                        && text(res, "direction") == "inbound"
                        && (hint.contains("test-ip-flow") || hint.contains("show-next-hop")),
                    || r.context(&format!("{id}: {}; hint {hint:?}", describe(res))),
                )
            }));
        }
        p.check(ensure(r.json["summary"]["required_skip"] == 0, || {
            r.context(&format!(
                "inbound rows are not required skips: {}",
                r.json["summary"]
            ))
        }));
    }
    p.done()
}

/// The workspace's private endpoint (HTTPS, and UDP for the echo) and the storage account's SMB
/// in the peered VNet, checked against the responder there: broken peering, then healthy.
fn peered_vnet(lab: &Lab) -> Check {
    let workspace = format!("{}:tcp/443,udp/5831", lab.get("PEER_WORKSPACE"));
    let storage = format!("{}:tcp/445", lab.get("PEER_STORAGE"));
    let args = [
        "--only",
        "no-catalog-target",
        "--peer",
        &workspace,
        "--peer",
        &storage,
        "--key-file",
        lab.get("PEER_KEY"),
    ];
    let mut p = Problems::default();
    let broken = lab.check(&[], &[], &args)?;
    p.check(broken.fails_exactly(
        1,
        &[fails(Select::IdPrefix("peer-"), TIMED_OUT, &["peering"])],
    ));
    lab.scenario("healthy")?;
    let healed = lab.check(&[], &[], &args)?;
    p.check(healed.fails_exactly(0, &[]));
    let confirmed = healed
        .results()
        .iter()
        .filter(|r| r["responder"]["authenticated"] == true)
        .count();
    p.check(ensure(confirmed == 3, || {
        healed.context(&format!(
            "{confirmed} of 3 peer paths confirmed by an authenticated echo"
        ))
    }));
    p.done()
}

// --- azure-files (issue 21) ---------------------------------------------------------------------

/// The fw's address on the compute subnet (tests/lab/lib.sh FW_COMPUTE_IP): the lab's default
/// route, the exported routes' VirtualAppliance.
const LAB_FW: &str = "10.77.1.1";

/// The lab's own rules and routes exported as `az` would (tests/lab/azure-export.sh): every
/// failure's result names the fw rule that causes it, every pass a rule that allows it, and the
/// inbound rows are judged from the same files.
fn azure_files(lab: &Lab) -> Check {
    let dir = state_dir().join("azure-export");
    let dir_text = dir.display().to_string();
    script("azure-export.sh", &[&dir_text], Duration::from_secs(30))?;
    let file = |name: &str| dir.join(name).display().to_string();
    let (tags, nsg, routes) = (
        file("service-tags.json"),
        file("nsg.json"),
        file("routes.json"),
    );
    let files = [
        "--service-tags",
        tags.as_str(),
        "--nsg",
        nsg.as_str(),
        "--routes",
        routes.as_str(),
    ];
    let r = lab.check(PROFILES, &[], &files)?;
    let mut p = Problems::default();
    p.check(r.fails_exactly(
        1,
        &[
            fails(
                Select::IdPort("aml-tundra-udp", 5831),
                &["udp_rejected"],
                &["The NSG denies it: rule DenyAzureMachineLearningUdp (300) of NSG vplab-compute-nsg."],
            ),
            fails(
                Select::Id("storage-file-smb"),
                TIMED_OUT,
                &["The NSG denies it: rule DenySmbOutBound (120) of NSG vplab-compute-nsg."],
            ),
            fails(
                Select::IdPort("batch-account-tls", 443),
                TIMED_OUT,
                &["The NSG denies it: rule DenyBatchNodeManagement (320) of NSG vplab-compute-nsg."],
            ),
        ],
    ));
    // The files match the lab: every failure is a Deny, every probed pass an Allow, and each
    // took the lab's default route to the fw.
    for res in r.results() {
        let (status, access) = (text(res, "status"), text(&res["rules"], "access"));
        if status == "skip" || res.get("rules").is_none_or(Value::is_null) {
            continue;
        }
        let want = match (status, text(res, "expect")) {
            ("fail", "blocked") | ("pass", "reachable") => "Allow",
            _ => "Deny",
        };
        p.check(ensure(access == want, || {
            r.context(&format!(
                "{}: the exported rules say {access} ({}), the lab {status}",
                describe(res),
                text(&res["rules"], "rule")
            ))
        }));
        let hop = text(&res["route"], "next_hop");
        p.check(ensure(hop == LAB_FW, || {
            r.context(&format!("{}: route {}", label(res), res["route"]))
        }));
    }
    p.check(r.has_cause("forced_tunnel", 2, &[LAB_FW]));
    p.check(ensure(
        r.json["context"]["service_tags_file"] == tags.as_str()
            && r.json["context"]["vnet_prefixes"] == "10.77.1.0/24",
        || r.context(&format!("context {}", r.json["context"])),
    ));
    // The inbound rows of public-IP compute: the lab lets nothing into the compute subnet
    // (DenyAllInBound), and its default route takes AzureMachineLearning's replies to the fw.
    let inbound = lab.check(&["public-ip"], &[], &files)?;
    for (id, kind_wanted, says) in [
        (
            "inbound-aml-44224",
            "nsg_denied",
            "rule DenyAllInBound (65500)",
        ),
        (
            "inbound-ssh-22",
            "nsg_denied",
            "rule DenyAllInBound (65500)",
        ),
        ("inbound-aml-route", "route_not_internet", LAB_FW),
    ] {
        p.check(inbound.get(id, None).and_then(|res| {
            let message = text(&res["error"], "message");
            ensure(
                text(res, "status") == "fail" && kind(res) == kind_wanted && message.contains(says),
                || inbound.context(&format!("{id}: {}", describe(res))),
            )
        }));
    }
    p.done()
}

// --- end azure-files ------------------------------------------------------------------------------

/// A scenario's expectations, run after scenario.sh applied it.
type Scenario = fn(&Lab) -> Check;

const SCENARIOS: &[(&str, Scenario)] = &[
    ("healthy", healthy),
    ("udp-reject", udp_reject),
    ("udp-drop", udp_drop),
    ("instance-ports-blocked", instance_ports_blocked),
    ("dns-not-linked", dns_not_linked),
    ("custom-dns-no-forward", custom_dns_no_forward),
    ("proxy-ok", proxy_ok),
    ("azure-firewall", azure_firewall),
    ("forced-tunnel-public-ip", forced_tunnel_public_ip),
    ("proxy-no-noproxy", proxy_no_noproxy),
    ("tls-intercept", tls_intercept),
    ("smb-blocked", smb_blocked),
    ("exfil-open", exfil_open),
    ("exfil-policy", exfil_policy),
    ("storage-service-endpoint", storage_service_endpoint),
    ("batch-blocked", batch_blocked),
    ("udp-silent-strict", udp_silent_strict),
    ("inbound-public-ip", inbound_public_ip),
    ("peered-vnet", peered_vnet),
    ("azure-files", azure_files), // issue 21
];

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn lab_scenarios() {
    require_root("the lab");
    if let Some(why) = missing_prerequisite() {
        panic!("the lab cannot run here: {why}");
    }
    let only = std::env::var("VNETPROBE_LAB_SCENARIOS").ok();
    let selected: Vec<_> = SCENARIOS
        .iter()
        .filter(|(name, _)| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|s| s.trim() == *name))
        })
        .collect();
    assert!(
        !selected.is_empty(),
        "VNETPROBE_LAB_SCENARIOS={only:?} names no scenario"
    );

    let mut failed = Vec::new();
    let pids;
    {
        let lab = Lab::up().unwrap_or_else(|e| panic!("lab did not come up: {e}"));
        pids = lab_pids();
        for (name, scenario) in selected {
            let start = Instant::now();
            let outcome = lab.scenario(name).and_then(|()| scenario(&lab));
            match outcome {
                Ok(()) => say(&format!(
                    "lab: {name:<24} ok ({:.1}s)",
                    start.elapsed().as_secs_f64()
                )),
                Err(e) => {
                    say(&format!(
                        "lab: {name:<24} FAILED ({:.1}s)\n  {e}",
                        start.elapsed().as_secs_f64()
                    ));
                    failed.push(name.to_string());
                }
            }
        }
    } // the lab guard tears down here
    let left = leftovers(&pids);
    assert!(left.is_empty(), "the lab left things behind: {left:?}");
    assert!(
        failed.is_empty(),
        "lab scenarios failed: {}",
        failed.join(", ")
    );
}
