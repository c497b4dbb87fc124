//! Discovery end to end: the real binary against a fake Instance Metadata Service on loopback,
//! fixture node roots with `.nbvm` files, and Azure ML environment variables, asserting on
//! `vnetprobe context --output json` (and `check`/`catalog` where discovery changes them).
//! No test reaches 169.254.169.254: each passes a loopback `--imds-endpoint` or disables discovery.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Scratch, cases, command, stderr};

const VALID: &str = r#"{"compute":{"location":"westeurope","azEnvironment":"AzurePublicCloud","name":"vm1","vmId":"x"},"network":{"interface":[]}}"#;
const GUID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const MLFLOW: &str = "azureml://northeurope.api.azureml.ms/mlflow/v1.0/subscriptions/0f8fad5b-d9cb-469f-a165-70867728950e/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-mlflow";

/// An IMDS endpoint where nothing listens (the discard port on loopback): refused at once.
const CLOSED: &str = "http://127.0.0.1:9";

/// How the fake IMDS answers.
#[derive(Clone, Copy)]
enum Behaviour {
    Json(&'static str),
    /// The valid answer, after this long.
    Slow(Duration),
    /// Bytes that are not HTTP.
    Garbage,
    NotFound,
}

/// A fake Instance Metadata Service on loopback that counts connections and keeps the request
/// heads it saw. Bounded: it stops accepting after 30 s or 16 connections.
struct FakeImds {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeImds {
    fn start(behaviour: Behaviour) -> FakeImds {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (connections.clone(), requests.clone());
        thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(30) && count.load(Ordering::SeqCst) < 16 {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let seen = seen.clone();
                        thread::spawn(move || serve(stream, behaviour, &seen));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeImds {
            addr,
            connections,
            requests,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: &Mutex<Vec<String>>) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    seen.lock()
        .unwrap()
        .push(String::from_utf8_lossy(&head).into_owned());
    let ok = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let answer = match behaviour {
        Behaviour::Json(body) => ok(body),
        Behaviour::Slow(wait) => {
            thread::sleep(wait);
            ok(VALID)
        }
        Behaviour::Garbage => "SSH-2.0-OpenSSH_9.2\r\n\r\n".to_string(),
        Behaviour::NotFound => {
            "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found".to_string()
        }
    };
    let _ = stream.write_all(answer.as_bytes());
}

/// A node root whose `/mnt/azmnt/.nbvm` holds `text`.
fn node_root(tag: &str, text: &str) -> Scratch {
    let d = Scratch::new(tag);
    std::fs::create_dir_all(d.0.join("mnt/azmnt")).unwrap();
    std::fs::write(d.0.join("mnt/azmnt/.nbvm"), text).unwrap();
    d
}

/// Runs the binary with discovery on, `env` and no config file (unless `args` name one), so
/// neither this machine's variables nor /etc/vnetprobe/config.toml can leak in.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(args);
    cmd.env_remove("VNETPROBE_DISCOVER")
        .envs(env.iter().copied());
    if !args.contains(&"--config") {
        cmd.args(["--config", "/dev/null"]);
    }
    cmd.output().unwrap()
}

/// `context --output json` as var -> (value, source).
fn context(args: &[&str], env: &[(&str, &str)]) -> (BTreeMap<String, (String, String)>, String) {
    let mut all = vec!["context", "--output", "json"];
    all.extend_from_slice(args);
    let out = run(&all, env);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let map = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, e)| {
            (
                k.clone(),
                (
                    e["value"].as_str().unwrap().to_string(),
                    e["source"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    (map, stderr(&out))
}

fn pair(m: &BTreeMap<String, (String, String)>, k: &str) -> (String, String) {
    m.get(k)
        .cloned()
        .unwrap_or_else(|| panic!("{k} missing from {m:?}"))
}

fn p(value: &str, source: &str) -> (String, String) {
    (value.to_string(), source.to_string())
}

// ---- IMDS ----

/// A `context` run with the fake IMDS answering one way (or nothing listening), and what it
/// must find.
struct Imds {
    /// How the fake IMDS answers; None: nothing listens at the endpoint (refused at once).
    answer: Option<Behaviour>,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// The region and its source, if any.
    region: Option<(&'static str, &'static str)>,
    /// The cloud and its source.
    cloud: (&'static str, &'static str),
    /// A warning that names the Instance Metadata Service; otherwise no warning at all.
    warns: bool,
    /// Connections the fake IMDS accepted.
    connections: usize,
}

/// What a case does not say: asked once, nothing found, quiet.
const ASKED: Imds = Imds {
    answer: None,
    args: &[],
    env: &[],
    region: None,
    cloud: ("public", "default"),
    warns: false,
    connections: 1,
};

/// An answer that warns and is ignored.
const fn ignored(answer: Behaviour) -> Imds {
    Imds {
        answer: Some(answer),
        warns: true,
        ..ASKED
    }
}

/// An answer that gives this region and cloud.
const fn found(body: &'static str, region: &'static str, cloud: &'static str) -> Imds {
    Imds {
        answer: Some(Behaviour::Json(body)),
        region: Some((region, "imds")),
        cloud: (cloud, "imds"),
        ..ASKED
    }
}

fn imds(name: &str, case: Imds) {
    let fake = case.answer.map(FakeImds::start);
    let url = fake.as_ref().map_or(CLOSED.to_string(), FakeImds::url);
    let mut args = vec!["--imds-endpoint", url.as_str()];
    args.extend_from_slice(case.args);
    let (ctx, err) = context(&args, case.env);
    let region = ctx.get("region").map(|(v, s)| (v.as_str(), s.as_str()));
    assert_eq!(region, case.region, "{name}: {ctx:?}");
    assert_eq!(pair(&ctx, "cloud"), p(case.cloud.0, case.cloud.1), "{name}");
    if case.warns {
        assert!(
            err.contains("WARN") && err.contains("Instance Metadata Service"),
            "{name}: {err}"
        );
    } else {
        assert!(!err.contains("WARN"), "{name}: {err}");
    }
    let Some(fake) = fake else { return };
    assert_eq!(fake.connections(), case.connections, "{name}");
    // Each request is a GET of the instance document with the header Azure requires.
    for head in fake.requests.lock().unwrap().iter() {
        let head = head.to_ascii_lowercase();
        assert!(
            head.starts_with("get /metadata/instance?api-version=2021-02-01 http/1.1\r\n"),
            "{name}: {head}"
        );
        assert!(head.contains("\r\nmetadata: true\r\n"), "{name}: {head}");
    }
}

const DEAD_PROXY: &str = "http://127.0.0.1:1";
const USGOV: &str =
    r#"{"compute":{"location":"usgovvirginia","azEnvironment":"AzureUSGovernmentCloud"}}"#;

// One test per way the IMDS answers (see `cases!`).
cases! { imds;
    imds_answer_gives_region_and_cloud: found(VALID, "westeurope", "public"),
    imds_sovereign_cloud: found(USGOV, "usgovvirginia", "usgov"),
    imds_is_asked_directly_even_with_a_proxy_set: Imds {
        env: &[("HTTP_PROXY", DEAD_PROXY), ("http_proxy", DEAD_PROXY), ("ALL_PROXY", DEAD_PROXY)],
        ..found(VALID, "westeurope", "public")
    },
    imds_slower_than_the_deadline_is_ignored: Imds {
        answer: Some(Behaviour::Slow(Duration::from_secs(4))),
        ..ASKED
    },
    imds_garbage_warns_and_is_ignored: ignored(Behaviour::Garbage),
    imds_404_warns_and_is_ignored: ignored(Behaviour::NotFound),
    imds_html_warns_and_is_ignored: ignored(Behaviour::Json("<html>hello</html>")),
    imds_wrong_types_warn_and_are_ignored:
        ignored(Behaviour::Json(r#"{"compute":{"location":42}}"#)),
    imds_bad_region_warns_and_is_ignored:
        ignored(Behaviour::Json(r#"{"compute":{"location":"West Europe!"}}"#)),
    imds_unknown_cloud_warns_and_is_ignored:
        ignored(Behaviour::Json(r#"{"compute":{"azEnvironment":"AzureStackCloud"}}"#)),
    imds_missing_fields_are_fine: Imds {
        answer: Some(Behaviour::Json(r#"{"compute":{}}"#)),
        ..ASKED
    },
    imds_refused_is_quiet: ASKED,
    imds_not_asked_when_a_flag_gives_the_region: Imds {
        args: &["--region", "swedencentral"],
        region: Some(("swedencentral", "flag")),
        cloud: ("public", "default"),
        connections: 0,
        ..found(VALID, "westeurope", "public")
    },
    imds_not_asked_when_mlflow_gives_the_region: Imds {
        env: &[("MLFLOW_TRACKING_URI", MLFLOW)],
        region: Some(("northeurope", "mlflow")),
        cloud: ("public", "mlflow"),
        connections: 0,
        ..found(VALID, "westeurope", "public")
    },
}

// ---- node files ----

#[test]
fn nbvm_fixture_gives_instance_workspace_and_region() {
    let root = node_root(
        "nbvm",
        "# written by the fixture\ninstance=ci-alice\nworkspace=ws-nbvm\nworkspace_id=0F8FAD5B-D9CB-469F-A165-70867728950E\nlocation=francecentral\nsomething_else=1\n",
    );
    let imds = FakeImds::start(Behaviour::Json(VALID));
    let (ctx, err) = context(
        &[
            "--imds-endpoint",
            &imds.url(),
            "--node-root",
            root.0.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(pair(&ctx, "instance"), p("ci-alice", "nbvm"));
    assert_eq!(pair(&ctx, "workspace_name"), p("ws-nbvm", "nbvm"));
    assert_eq!(pair(&ctx, "workspace_id"), p(GUID, "nbvm"));
    assert_eq!(pair(&ctx, "region"), p("francecentral", "nbvm"));
    assert_eq!(
        pair(&ctx, "notebook_label"),
        p(&format!("ml-ws-nbvm-francecentral-{GUID}"), "derived")
    );
    assert!(!err.contains("WARN"), "{err}");
    assert_eq!(
        imds.connections(),
        0,
        "region known from .nbvm: IMDS has nothing to add"
    );
}

#[test]
fn nbvm_malformed_lines_warn_with_file_and_line() {
    let root = node_root(
        "bad",
        "instance=ci ok?\nthis line has no equals sign\nworkspace=ws-good\n",
    );
    let (ctx, err) = context(
        &[
            "--imds-endpoint",
            CLOSED,
            "--node-root",
            root.0.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(pair(&ctx, "workspace_name"), p("ws-good", "nbvm"));
    assert!(!ctx.contains_key("instance"), "{ctx:?}");
    let nbvm = root.0.join("mnt/azmnt/.nbvm").display().to_string();
    assert!(
        err.contains(&format!("{nbvm}:1: instance \"ci ok?\" ignored")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{nbvm}:2: expected key=value")),
        "{err}"
    );
}

#[test]
fn nbvm_that_is_not_text_or_too_big_is_ignored() {
    let root = Scratch::new("binary");
    std::fs::create_dir_all(root.0.join("mnt/azmnt")).unwrap();
    std::fs::write(
        root.0.join("mnt/azmnt/.nbvm"),
        [0xffu8, 0xfe, 0x00, b'=', 0x80],
    )
    .unwrap();
    let args = [
        "--imds-endpoint",
        CLOSED,
        "--node-root",
        root.0.to_str().unwrap(),
    ];
    let (ctx, err) = context(&args, &[]);
    assert!(!ctx.contains_key("instance"));
    assert!(err.contains("not UTF-8"), "{err}");
    std::fs::write(
        root.0.join("mnt/azmnt/.nbvm"),
        format!("instance=big\n{}", "#".repeat(70_000)),
    )
    .unwrap();
    let (ctx, err) = context(&args, &[]);
    assert!(!ctx.contains_key("instance"));
    assert!(err.contains("larger than"), "{err}");
}

#[test]
fn bad_node_root_or_imds_endpoint_is_a_usage_error() {
    let out = run(
        &["context", "--node-root", "/nonexistent/vnetprobe-root"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--node-root \"/nonexistent/vnetprobe-root\": not a directory"),
        "{}",
        stderr(&out)
    );
    let out = run(
        &["context", "--imds-endpoint", "http://metadata.example"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--imds-endpoint"), "{}", stderr(&out));
    let dir = Scratch::new("badcfg");
    let cfg = dir.write(
        "c.toml",
        "# comment\nimds-endpoint = \"https://169.254.169.254\"\n",
    );
    let out = run(&["context", "--config", cfg.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(":2: field `imds-endpoint`"),
        "{}",
        stderr(&out)
    );
}

// ---- environment ----

#[test]
fn compute_instance_variables() {
    let env = [
        ("CI_NAME", "ci-bob"),
        ("CI_WORKSPACE", "ws-ci"),
        ("CI_RESOURCE_GROUP", "rg-ci"),
    ];
    let (ctx, _) = context(&["--imds-endpoint", CLOSED], &env);
    assert_eq!(pair(&ctx, "instance"), p("ci-bob", "ci"));
    assert_eq!(pair(&ctx, "workspace_name"), p("ws-ci", "ci"));
    assert_eq!(pair(&ctx, "resource_group"), p("rg-ci", "ci"));
    // A build system's CI_NAME alone is not a compute instance.
    let (ctx, _) = context(
        &["--imds-endpoint", CLOSED],
        &[("CI_NAME", "codeship"), ("CI_RESOURCE_GROUP", "rg")],
    );
    assert!(
        !ctx.contains_key("instance") && !ctx.contains_key("resource_group"),
        "{ctx:?}"
    );
}

#[test]
fn mlflow_tracking_uri() {
    let imds = FakeImds::start(Behaviour::Json(VALID));
    let (ctx, _) = context(
        &["--imds-endpoint", &imds.url()],
        &[("MLFLOW_TRACKING_URI", MLFLOW)],
    );
    assert_eq!(pair(&ctx, "region"), p("northeurope", "mlflow"));
    assert_eq!(pair(&ctx, "cloud"), p("public", "mlflow"));
    assert_eq!(pair(&ctx, "workspace_name"), p("ws-mlflow", "mlflow"));
    assert_eq!(pair(&ctx, "resource_group"), p("rg-ml", "mlflow"));
    assert_eq!(pair(&ctx, "subscription"), p(GUID, "mlflow"));
}

#[test]
fn job_variables() {
    let env = [
        ("AZUREML_ARM_WORKSPACE_NAME", "ws-job"),
        ("AZUREML_WORKSPACE_ID", GUID),
        ("AZUREML_SERVICE_ENDPOINT", "https://eastus2.api.azureml.ms"),
        (
            "AZ_BATCH_ACCOUNT_URL",
            "https://amlbatch01.eastus2.batch.azure.com",
        ),
        ("MLFLOW_TRACKING_URI", MLFLOW),
    ];
    let (ctx, _) = context(&["--imds-endpoint", CLOSED], &env);
    assert_eq!(pair(&ctx, "workspace_name"), p("ws-job", "job"));
    assert_eq!(pair(&ctx, "workspace_id"), p(GUID, "job"));
    assert_eq!(
        pair(&ctx, "region"),
        p("eastus2", "job"),
        "the job's own variables beat MLflow's"
    );
    assert_eq!(
        pair(&ctx, "batch_account"),
        p("amlbatch01.eastus2.batch.azure.com", "batch")
    );
    assert_eq!(
        pair(&ctx, "notebook_label"),
        p(&format!("ml-ws-job-eastus2-{GUID}"), "derived")
    );
}

#[test]
fn malformed_variables_warn_and_never_crash() {
    let env = [
        ("AZUREML_WORKSPACE_ID", "not-a-guid"),
        ("AZUREML_SERVICE_ENDPOINT", "eastus2"),
        ("CI_NAME", "bad name"),
        ("CI_WORKSPACE", "ws-ok"),
        (
            "MLFLOW_TRACKING_URI",
            "azureml://user:hunter2@westeurope.api.azureml.ms/x",
        ),
        ("AZ_BATCH_ACCOUNT_URL", "https://"),
    ];
    let (ctx, err) = context(&["--imds-endpoint", CLOSED], &env);
    for k in ["workspace_id", "region", "instance", "batch_account"] {
        assert!(!ctx.contains_key(k), "{k}: {ctx:?}");
    }
    for key in [
        "AZUREML_WORKSPACE_ID",
        "AZUREML_SERVICE_ENDPOINT",
        "CI_NAME",
        "MLFLOW_TRACKING_URI",
        "AZ_BATCH_ACCOUNT_URL",
    ] {
        assert!(err.contains(key), "{key}: {err}");
    }
    assert!(!err.contains("hunter2"), "a credential leaked: {err}");
}

#[test]
fn precedence_flag_env_file_then_discovery() {
    let dir = Scratch::new("prec");
    let cfg = dir.write(
        "c.toml",
        "[set]\nworkspace_name = \"ws-file\"\ninstance = \"ci-file\"\n",
    );
    let root = node_root(
        "prec",
        "instance=ci-nbvm\nworkspace=ws-nbvm\nregion=uksouth\n",
    );
    let env = [
        ("VNETPROBE_WORKSPACE_NAME", "ws-env"),
        ("MLFLOW_TRACKING_URI", MLFLOW),
        ("CI_RESOURCE_GROUP", "rg-ci"),
        ("CI_NAME", "ci-env"),
        ("CI_WORKSPACE", "ws-ci"),
    ];
    let args = [
        "--config",
        cfg.to_str().unwrap(),
        "--node-root",
        root.0.to_str().unwrap(),
        "--imds-endpoint",
        CLOSED,
        "--set",
        "acr=flagacr",
    ];
    let (ctx, _) = context(&args, &env);
    assert_eq!(pair(&ctx, "acr"), p("flagacr", "flag"));
    assert_eq!(pair(&ctx, "workspace_name"), p("ws-env", "env"));
    assert_eq!(pair(&ctx, "instance"), p("ci-file", "file"));
    assert_eq!(
        pair(&ctx, "resource_group"),
        p("rg-ci", "ci"),
        "ci beats nbvm and mlflow"
    );
    assert_eq!(
        pair(&ctx, "region"),
        p("uksouth", "nbvm"),
        "nbvm beats mlflow"
    );
    assert_eq!(pair(&ctx, "subscription"), p(GUID, "mlflow"));
}

// ---- switching discovery off ----

#[test]
fn every_way_to_switch_discovery_off() {
    let imds = FakeImds::start(Behaviour::Json(VALID));
    let root = node_root("off", "instance=ci-nbvm\n");
    let dir = Scratch::new("off");
    let cfg = dir.write("c.toml", "discover = false\n");
    let base = [
        "--imds-endpoint",
        &imds.url(),
        "--node-root",
        root.0.to_str().unwrap(),
    ];
    let env = [("CI_WORKSPACE", "ws-ci"), ("MLFLOW_TRACKING_URI", MLFLOW)];
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (vec!["--no-discover"], vec![]),
        (vec![], vec![("VNETPROBE_DISCOVER", "0")]),
        (vec![], vec![("VNETPROBE_DISCOVER", "off")]),
        (vec!["--config", cfg.to_str().unwrap()], vec![]),
    ];
    for (extra, more_env) in cases {
        let mut args = base.to_vec();
        args.extend(extra.iter());
        let mut e = env.to_vec();
        e.extend(more_env.iter());
        let (ctx, _) = context(&args, &e);
        assert_eq!(
            ctx.keys().collect::<Vec<_>>(),
            ["cloud", "private_endpoints"],
            "{extra:?} {more_env:?}: {ctx:?}"
        );
    }
    assert_eq!(imds.connections(), 0);
    // VNETPROBE_DISCOVER=1 overrides the file's `discover = false`.
    let mut args = base.to_vec();
    args.extend(["--config", cfg.to_str().unwrap()]);
    let (ctx, _) = context(&args, &[("VNETPROBE_DISCOVER", "1")]);
    assert_eq!(pair(&ctx, "instance"), p("ci-nbvm", "nbvm"));
    let out = run(
        &["context", "--no-discover"],
        &[("VNETPROBE_DISCOVER", "maybe")],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "the flag wins; the variable is not read"
    );
    let out = run(&["context"], &[("VNETPROBE_DISCOVER", "maybe")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("VNETPROBE_DISCOVER=\"maybe\""),
        "{}",
        stderr(&out)
    );
}

// ---- check and catalog ----

const CATALOG: &str = r#"
[profile.no-public-ip]
description = "outbound"
default = true

[profile.private-endpoint]
description = "private names"
default = true

[profile.packages]
description = "opt-in"

[[target]]
id = "tundra"
name = "tundra"
protocol = "dns"
host = "{region}.tundra.{aml_domain}"
profiles = ["no-public-ip"]
why = "w"
fix = "f"

[[target]]
id = "instance"
name = "compute instance"
protocol = "dns"
host = "{instance}.{region}.instances.{aml_domain}"
profiles = ["no-public-ip"]
why = "w"
fix = "f"

[[target]]
id = "pe-workspace"
name = "workspace private endpoint"
protocol = "dns"
host = "{workspace_id}.workspace.{region}.{api_domain}"
profiles = ["private-endpoint"]
why = "w"
fix = "f"

[[target]]
id = "pypi"
name = "pypi"
protocol = "dns"
host = "pypi.org"
profiles = ["packages"]
why = "w"
fix = "f"
"#;

#[test]
fn check_no_discover_never_contacts_imds() {
    let dir = Scratch::new("check");
    let catalog = dir.write("c.toml", CATALOG);
    let imds = FakeImds::start(Behaviour::Json(VALID));
    let args = |extra: &'static [&'static str]| {
        let mut a = vec![
            "check".to_string(),
            "--catalog".into(),
            catalog.display().to_string(),
            "--only".into(),
            "nothing-matches".into(),
            "--imds-endpoint".into(),
            imds.url(),
            "--output".into(),
            "json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run_args = |a: Vec<String>, env: &[(&str, &str)]| {
        let refs: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        run(&refs, env)
    };
    // The glob selects nothing (exit 2) after discovery would have run: IMDS stays untouched.
    for out in [
        run_args(args(&["--no-discover"]), &[]),
        run_args(args(&[]), &[("VNETPROBE_DISCOVER", "0")]),
    ] {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("select no target"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        imds.connections(),
        0,
        "discovery was off: IMDS must not be contacted"
    );

    // The control: the same check with discovery asks IMDS exactly once, and the report says so.
    // Its one target needs a variable nobody gives: nothing is checked (exit 2), but the report
    // that shows why is still printed.
    let mut control = args(&[]);
    let only = control.iter().position(|a| a == "nothing-matches").unwrap();
    control[only] = "pe-workspace".into();
    control.extend(["--profile".to_string(), "private-endpoint".to_string()]);
    let out = run_args(control, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing was checked"),
        "{}",
        stderr(&out)
    );
    assert_eq!(imds.connections(), 1);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["context"]["region"], "westeurope");
    assert_eq!(report["context_sources"]["region"], "imds");
    assert_eq!(report["context_sources"]["cloud"], "imds");
}

fn catalog_ids(args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut all = vec!["catalog", "--output", "json", "--imds-endpoint", CLOSED];
    all.extend_from_slice(args);
    let out = run(&all, env);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn profiles_follow_the_discovered_context() {
    let dir = Scratch::new("auto");
    let catalog = dir.write("c.toml", CATALOG);
    let c = catalog.to_str().unwrap();
    // A plain node: no instance, no workspace id: neither instance names nor private endpoints.
    assert_eq!(
        catalog_ids(&["--catalog", c, "--region", "westeurope"], &[]),
        ["tundra"]
    );
    // A compute instance: its names join.
    assert_eq!(
        catalog_ids(
            &["--catalog", c],
            &[
                ("CI_NAME", "ci1"),
                ("CI_WORKSPACE", "ws"),
                ("MLFLOW_TRACKING_URI", MLFLOW)
            ]
        ),
        ["tundra", "instance"]
    );
    // A job that knows its workspace id: the private-endpoint names join.
    let job = [
        ("AZUREML_WORKSPACE_ID", GUID),
        ("AZUREML_SERVICE_ENDPOINT", "https://eastus.api.azureml.ms"),
    ];
    assert_eq!(
        catalog_ids(&["--catalog", c], &job),
        ["tundra", "pe-workspace"]
    );
    // Asking for profiles turns the choice off: skipped targets stay listed.
    assert_eq!(
        catalog_ids(
            &[
                "--catalog",
                c,
                "--region",
                "westeurope",
                "--profile",
                "no-public-ip",
                "--profile",
                "packages"
            ],
            &[]
        ),
        ["tundra", "instance", "pypi"]
    );
}

/// The inbound rows of the public-ip profile cannot be observed from the node; their hint is
/// the Network Watcher command that verifies the rule from Azure's side, filled from IMDS
/// (asked for the node's identity even when the region is given).
#[test]
fn inbound_rows_carry_the_command_filled_from_imds() {
    let imds = FakeImds::start(Behaviour::Json(
        r#"{"compute":{"location":"westeurope","azEnvironment":"AzurePublicCloud","name":"vm1",
        "subscriptionId":"0f8fad5b-d9cb-469f-a165-70867728950e","resourceGroupName":"rg-nodes"},
        "network":{"interface":[{"ipv4":{"ipAddress":[{"privateIpAddress":"10.0.1.5","publicIpAddress":"20.1.2.3"}]}}]}}"#,
    ));
    let out = run(
        &[
            "catalog",
            "--profile",
            "public-ip",
            "--region",
            "westeurope",
            "--imds-endpoint",
            &imds.url(),
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        imds.connections(),
        1,
        "IMDS is asked for the node's identity"
    );
    let targets: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let fix = |id: &str| {
        targets.iter().find(|t| t["id"] == id).unwrap()["fix"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let flow = fix("inbound-aml-44224");
    for want in [
        "az network watcher test-ip-flow",
        &format!("--subscription {GUID}"),
        "--resource-group rg-nodes",
        "--vm vm1",
        "--local 10.0.1.5:44224",
        "<AML_ADDRESS>",
    ] {
        assert!(flow.contains(want), "{want:?} in {flow}");
    }
    let hop = fix("inbound-aml-route");
    assert!(
        hop.contains("show-next-hop") && hop.contains("--source-ip 10.0.1.5"),
        "{hop}"
    );
    // Without the profile and with the region known, IMDS is not asked.
    let out = run(
        &[
            "catalog",
            "--region",
            "westeurope",
            "--imds-endpoint",
            &imds.url(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(imds.connections(), 1);
}
