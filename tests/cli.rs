//! The command line as a contract: bad input exits 2 with a message naming the culprit and
//! never a panic; the embedded catalog covers the requirements; pipes close quietly.

use std::io::Read;
use std::process::Stdio;

use crate::support::*;

#[test]
fn bad_flags_and_values_exit_2_naming_the_flag() {
    assert_usage_error(&["check", "--bogus"], &["--bogus"]);
    assert_usage_error(&["check", "--set", "region"], &["--set", "KEY=VALUE"]);
    assert_usage_error(
        &["check", "--set", "regoin=westeurope"],
        &["--set", "regoin"],
    );
    assert_usage_error(
        &["check", "--profile", "nope"],
        &["--profile", "unknown profile \"nope\""],
    );
    assert_usage_error(&["check", "--timeout", "soon"], &["--timeout"]);
    assert_usage_error(&["check", "--timeout", "0s"], &["--timeout"]);
    assert_usage_error(&["check", "--concurrency", "0"], &["--concurrency"]);
    assert_usage_error(&["check", "--cloud", "mars"], &["--cloud"]);
    assert_usage_error(&["check", "--dns-server", "dns.local"], &["--dns-server"]);
    // exporter-toolkit's spellings are serve's flags under another name: checked alike.
    assert_usage_error(&["serve", "--web.listen-address", "nowhere"], &["--listen"]);
    assert_usage_error(
        &["serve", "--web.config.file", "/nonexistent.yml"],
        &["/nonexistent.yml"],
    );
    assert_usage_error(&["check", "--app-rule-port", "0"], &["--app-rule-port"]);
    assert_usage_error(&["check", "--output", "xml"], &["--output"]);
    assert_usage_error(&["check", "--ca-file", "/nonexistent.pem"], &["--ca-file"]);
    assert_usage_error(&["probe", "tcp", "example.org"], &["HOST:PORT"]);
    assert_usage_error(&["probe", "tcp", "example.org:99999"], &["bad port"]);
    assert_usage_error(&["probe", "tcp", "a b:80"], &["not a host name"]);
    assert_usage_error(&["probe", "http", "ftp://x/"], &["scheme"]);
    assert_usage_error(&["frobnicate"], &["frobnicate"]);
    // A selection that checks nothing is not a pass.
    assert_usage_error(
        &["check", "--profile", "sovereign"],
        &["--profile", "unknown profile \"sovereign\""],
    );
    assert_usage_error(
        &["check", "--only", "typo*", "--no-discover"],
        &["--only \"typo*\"", "select no target"],
    );
    assert_usage_error(
        &["catalog", "--only", "typo*"],
        &["--only \"typo*\"", "select no target"],
    );
    assert_usage_error(
        &["check", "--set", "other_storage_account=sa2"],
        &["--set", "exfil_url"],
    );
    assert_usage_error(
        &[
            "check",
            "--set",
            "exfil_url=https://sa2.blob.core.windows.net/",
        ],
        &["--set", "name an object"],
    );
    assert_usage_error(
        &["check", "--set", "private_endpoints=blob,cosmos"],
        &["--set", "cosmos"],
    );
}

#[test]
fn environment_and_config_values_are_checked_like_flags() {
    let out = command(&["check"])
        .env("VNETPROBE_REGION", "West Europe")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("VNETPROBE_REGION") && err.contains("did you mean \"westeurope\""),
        "{err}"
    );
    let dir = temp_dir("values");
    let cfg = write(
        &dir,
        "c.toml",
        "[set]\nstorage_account = \"sa1.blob.core.windows.net\"\n",
    );
    assert_usage_error(
        &["check", "--config", cfg.to_str().unwrap()],
        &[
            "c.toml:2",
            "set.storage_account",
            "3 to 24 letters and digits",
        ],
    );
}

#[test]
fn bad_config_files_name_file_line_and_field() {
    let dir = temp_dir("badconfig");
    let typo = write(&dir, "typo.toml", "cloud = \"public\"\ntimeuot = \"5s\"\n");
    assert_usage_error(
        &["check", "--config", typo.to_str().unwrap()],
        &["typo.toml:2", "timeuot"],
    );
    let var = write(
        &dir,
        "var.toml",
        "[set]\nregion = \"westeurope\"\nworkspace = \"x\"\n",
    );
    assert_usage_error(
        &["catalog", "--config", var.to_str().unwrap()],
        &["var.toml:3", "set.workspace"],
    );
    let dur = write(&dir, "dur.toml", "\n\ntimeout = \"fast\"\n");
    assert_usage_error(
        &["check", "--config", dur.to_str().unwrap()],
        &["dur.toml:3", "timeout"],
    );
    let missing = dir.join("missing.toml");
    assert_usage_error(
        &["check", "--config", missing.to_str().unwrap()],
        &["missing.toml"],
    );
}

#[test]
fn bad_catalogs_name_file_line_and_field() {
    let dir = temp_dir("badcatalog");
    let base = "[[target]]\nid = \"a\"\nname = \"n\"\nprotocol = \"tcp\"\nhost = \"h.test\"\nports = [1]\nprofiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n";
    let cases = [
        (
            "typo.toml",
            format!("{base}fxi = \"x\"\n"),
            vec!["typo.toml:10", "fxi"],
        ),
        (
            "port.toml",
            base.replace("[1]", "[65536]"),
            vec!["port.toml:6"],
        ),
        (
            "dup.toml",
            format!("{base}{base}"),
            vec!["dup.toml:11", "duplicate target id \"a\""],
        ),
        (
            "var.toml",
            base.replace("h.test", "{nope}.test"),
            vec!["var.toml:5", "unknown variable {nope}"],
        ),
        (
            "profile.toml",
            base.replace("internet", "interweb"),
            vec!["profile.toml:7", "unknown profile"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = write(&dir, name, &text);
        assert_usage_error(&["check", "--catalog", path.to_str().unwrap()], &needles);
    }
    let empty = temp_dir("emptycatalog");
    assert_usage_error(
        &["check", "--catalog", empty.to_str().unwrap()],
        &["no *.toml"],
    );
}

/// `catalog --output json` over every profile of the embedded catalog, with `args`.
fn catalog_of_every_profile(args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["catalog", "--output", "json"];
    for profile in vnetprobe::catalog::BUILTIN_PROFILES {
        all.extend(["--profile", profile]);
    }
    all.extend_from_slice(args);
    let out = run(&all);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every host and port that sections 1 to 4 of the requirements name, with the variables set.
#[test]
fn embedded_catalog_covers_the_requirements() {
    let targets = catalog_of_every_profile(&[
        "--region",
        "westeurope",
        "--set",
        "storage_account=sa1",
        "--set",
        "instance=ci1",
        "--set",
        "workspace_id=6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "--set",
        "workspace_name=ws1",
        "--set",
        "acr=acr1",
        "--set",
        "keyvault=kv1",
    ]);
    let has = |host: &str, port: Option<u16>| {
        targets
            .iter()
            .any(|t| t["host"] == host && (port.is_none() || t["port"] == serde_json::json!(port)))
    };
    let id = "6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";
    let want: Vec<(String, Option<u16>)> = vec![
        ("ci1.westeurope.instances.azureml.ms".into(), Some(443)),
        ("ci1.westeurope.instances.azureml.ms".into(), Some(8787)),
        ("ci1.westeurope.instances.azureml.ms".into(), Some(18881)),
        ("westeurope.tundra.azureml.ms".into(), Some(5831)),
        ("westeurope.batch.azure.com".into(), None),
        ("westeurope.service.batch.azure.com".into(), None),
        ("graph.windows.net".into(), Some(443)),
        ("sa1.blob.core.windows.net".into(), Some(443)),
        ("sa1.queue.core.windows.net".into(), Some(443)),
        ("sa1.table.core.windows.net".into(), Some(443)),
        ("sa1.file.core.windows.net".into(), Some(445)),
        ("login.microsoftonline.com".into(), Some(443)),
        ("login.microsoftonline.com".into(), Some(80)),
        ("westeurope.api.azureml.ms".into(), Some(443)),
        ("westeurope.experiments.azureml.net".into(), Some(443)),
        ("ml.azure.com".into(), Some(443)),
        ("management.azure.com".into(), Some(443)),
        ("automlresources-prod.azureedge.net".into(), Some(443)),
        ("mcr.microsoft.com".into(), Some(443)),
        ("westeurope.data.mcr.microsoft.com".into(), Some(443)),
        ("dc.applicationinsights.azure.com".into(), Some(443)),
        ("dc.services.visualstudio.com".into(), Some(443)),
        (format!("{id}.workspace.westeurope.api.azureml.ms"), None),
        (
            format!("{id}.workspace.westeurope.cert.api.azureml.ms"),
            None,
        ),
        (
            format!("ml-ws1-westeurope-{id}.westeurope.notebooks.azure.net"),
            None,
        ),
        ("sa1.dfs.core.windows.net".into(), None),
        ("kv1.vault.azure.net".into(), None),
        ("acr1.azurecr.io".into(), None),
        ("acr1.westeurope.data.azurecr.io".into(), None),
        ("repo.anaconda.com".into(), Some(443)),
        ("conda.anaconda.org".into(), Some(443)),
        ("pypi.org".into(), Some(443)),
        ("files.pythonhosted.org".into(), Some(443)),
        ("cloud.r-project.org".into(), Some(443)),
        ("download.pytorch.org".into(), Some(443)),
        ("www.tensorflow.org".into(), Some(443)),
        ("code.visualstudio.com".into(), Some(443)),
        ("update.code.visualstudio.com".into(), Some(443)),
        ("marketplace.visualstudio.com".into(), Some(443)),
        ("vscode.blob.core.windows.net".into(), Some(443)),
        ("raw.githubusercontent.com".into(), Some(443)),
        ("graph.microsoft.com".into(), Some(443)),
        ("dc.applicationinsights.microsoft.com".into(), Some(443)),
        ("kv1.vault.azure.net".into(), Some(443)),
        ("acr1.azurecr.io".into(), Some(443)),
        ("acr1.westeurope.data.azurecr.io".into(), Some(443)),
        (
            format!("ml-ws1-westeurope-{id}.westeurope.notebooks.azure.net"),
            Some(443),
        ),
        ("az764295.vo.msecnd.net".into(), Some(443)),
        ("vscode.download.prss.microsoft.com".into(), Some(443)),
    ];
    let missing: Vec<_> = want.iter().filter(|(h, p)| !has(h, *p)).collect();
    assert!(missing.is_empty(), "the catalog lacks {missing:?}");
    for t in &targets {
        for key in [
            "id", "name", "protocol", "host", "profiles", "required", "expect",
        ] {
            assert!(!t[key].is_null(), "{key} in {t}");
        }
        assert!(t.get("port").is_some(), "port key (null for dns) in {t}");
    }
    let tundra = targets
        .iter()
        .find(|t| t["id"] == "aml-tundra-udp")
        .expect("the tundra target");
    assert_eq!(tundra["protocol"], "udp");
    // The inbound rules are rows, marked as such, on the public-IP profile.
    for (id, port) in [("inbound-aml-44224", 44224), ("inbound-ssh-22", 22)] {
        let row = targets
            .iter()
            .find(|t| t["id"] == id)
            .unwrap_or_else(|| panic!("no {id}"));
        assert_eq!(
            (row["direction"].as_str(), row["port"].as_u64()),
            (Some("inbound"), Some(port)),
            "{row}"
        );
    }
}

/// probes/README.md maps every requirement row to catalog ids: every id it names exists, and
/// every id of the embedded catalog is named (so no row and no target goes unexplained).
#[test]
fn the_requirement_table_names_every_target_and_only_real_ones() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/probes/README.md")).unwrap();
    let table = readme
        .split("## Every requirement and what checks it")
        .nth(1)
        .expect("the requirement table section");
    let targets = catalog_of_every_profile(&[]);
    let ids: std::collections::BTreeSet<&str> =
        targets.iter().filter_map(|t| t["id"].as_str()).collect();
    // `a-{b,c}-d` names a-b-d and a-c-d; `a-*-d` every id of that shape.
    let expand = |token: &str| -> Vec<String> {
        match (token.find('{'), token.find('}')) {
            (Some(open), Some(close)) => token[open + 1..close]
                .split(',')
                .map(|alt| format!("{}{alt}{}", &token[..open], &token[close + 1..]))
                .collect(),
            _ => vec![token.to_string()],
        }
    };
    let mut named = Vec::new();
    for token in table.split('`').skip(1).step_by(2) {
        let looks_like_id = token.contains('-')
            && !token.starts_with('-')
            && token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-{},*".contains(&b));
        if looks_like_id {
            named.extend(expand(token));
        }
    }
    let matches = |pattern: &str, id: &str| match pattern.split_once('*') {
        Some((head, tail)) => id.starts_with(head) && id.ends_with(tail),
        None => pattern == id,
    };
    let unknown: Vec<&String> = named
        .iter()
        .filter(|n| !ids.iter().any(|id| matches(n, id)))
        .filter(|n| !["no-public-ip", "public-ip"].contains(&n.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "the table names ids the catalog lacks: {unknown:?}"
    );
    let unnamed: Vec<&&str> = ids
        .iter()
        .filter(|id| !named.iter().any(|n| matches(n, id)))
        .collect();
    assert!(
        unnamed.is_empty(),
        "catalog ids missing from the table: {unnamed:?}"
    );
}

#[test]
fn sovereign_clouds_switch_every_suffix() {
    for (cloud, tundra, login, storage) in [
        (
            "usgov",
            "usgovvirginia.tundra.azureml.us",
            "login.microsoftonline.us",
            "sa1.blob.core.usgovcloudapi.net",
        ),
        (
            "china",
            "usgovvirginia.tundra.azureml.cn",
            "login.chinacloudapi.cn",
            "sa1.blob.core.chinacloudapi.cn",
        ),
    ] {
        let out = run(&[
            "catalog",
            "--cloud",
            cloud,
            "--region",
            "usgovvirginia",
            "--set",
            "storage_account=sa1",
            "--output",
            "json",
        ]);
        let targets: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let hosts: Vec<&str> = targets.iter().filter_map(|t| t["host"].as_str()).collect();
        for want in [tundra, login, storage] {
            assert!(
                hosts.contains(&want),
                "{cloud}: {want} missing from {hosts:?}"
            );
        }
        assert!(
            !hosts.iter().any(|h| h.ends_with("azureml.ms")
                || h.ends_with(".core.windows.net") && h.starts_with("sa1")),
            "{cloud}: public suffixes left: {hosts:?}"
        );
    }
}

#[test]
fn closed_stdout_exits_quietly() {
    let mut child = command(&["catalog", "--region", "westeurope"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "nothing on stderr for a closed pipe: {err}");
}

#[test]
fn help_states_the_default_profiles_and_exit_codes() {
    let out = run(&["check", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "no-public-ip, internet and",
        "private-endpoint",
        "Exit codes",
        "--dns-server",
        "--only",
    ] {
        assert!(help.contains(needle), "{needle} in help:\n{help}");
    }
}

#[test]
fn probe_tcp_reports_like_check() {
    let l = Listener::start();
    let out = run(&[
        "probe",
        "tcp",
        &format!("127.0.0.1:{}", l.port),
        "--output",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!(report["results"].as_array().unwrap().len(), 1);
    assert_eq!(report["results"][0]["status"], "pass");
    let closed = free_port();
    let out = run(&[
        "probe",
        "tcp",
        &format!("127.0.0.1:{closed}"),
        "--timeout",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("tcp_refused"));
}

#[test]
fn probe_dns_against_dnsmasq() {
    let dns = Dnsmasq::start(
        "host-record=pe.privatelink.test,10.1.2.3\nhost-record=pub.test,198.51.100.9\n",
    );
    let server = dns.addr.to_string();
    let ok = run(&[
        "probe",
        "dns",
        "pe.privatelink.test",
        "--expect",
        "private",
        "--dns-server",
        &server,
        "--output",
        "json",
    ]);
    assert_eq!(json(&ok)["results"][0]["status"], "pass");
    let bad = run(&[
        "probe",
        "dns",
        "pub.test",
        "--expect",
        "private",
        "--dns-server",
        &server,
        "--output",
        "json",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(error_kind(&json(&bad)["results"][0]), "dns_not_private");
}

/// `context` shows the settings a check would take without reading the files they name: a key
/// file that is not there yet is shown with its line, and only a command that uses it fails.
#[test]
fn context_names_files_without_reading_them() {
    let dir = Scratch::new("settings-files");
    let cfg = dir.write("c.toml", "[listen]\nkey-file = \"/nonexistent/peer.key\"\n");
    let cfg = cfg.to_str().unwrap();
    let out = run(&["context", "--settings", "--output", "json", "--config", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        json(&out)["key-file"],
        serde_json::json!({"value": "/nonexistent/peer.key", "origin": "file", "from": format!("{cfg}:2")})
    );
    assert_usage_error(
        &["check", "--config", cfg],
        &[&format!("{cfg}:2: field `listen.key-file`")],
    );
}

/// `vnetprobe context` shows each setting with where it came from: a flag, a `VNETPROBE_*`
/// variable, a config file line or the default; a proxy's password never.
#[test]
fn context_shows_where_each_setting_came_from() {
    let dir = Scratch::new("settings-origin");
    let cfg = dir.write(
        "c.toml",
        "concurrency = 8\n\ntimeout = \"3s\"\nproxy = \"http://u:hunter2@127.0.0.1:3128\"\n",
    );
    let cfg = cfg.to_str().unwrap();
    let settings = |args: &[&str]| {
        let mut all = vec!["context", "--settings", "--output", "json"];
        all.extend_from_slice(args);
        let out = run(&all);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
        json(&out)
    };
    // The contract of `context --output json`: keyed by variable, nothing else.
    let variables = json(&run(&["context", "--output", "json", "--config", cfg]));
    let keys: Vec<&String> = variables.as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| variables[k.as_str()]["source"].is_string()),
        "{variables}"
    );
    let from_file = settings(&["--config", cfg]);
    assert_eq!(
        from_file["timeout"],
        serde_json::json!({"value": "3s", "origin": "file", "from": format!("{cfg}:3")})
    );
    assert_eq!(from_file["concurrency"]["from"], format!("{cfg}:1"));
    assert_eq!(from_file["proxy"]["value"], "http://u:***@127.0.0.1:3128");
    // clean_env switches discovery off with VNETPROBE_DISCOVER=0.
    assert_eq!(
        from_file["discover"],
        serde_json::json!({"value": "false", "origin": "env", "from": "VNETPROBE_DISCOVER"})
    );

    let from_flags = settings(&["--config", cfg, "--timeout", "2s", "--no-discover"]);
    assert_eq!(
        from_flags["timeout"],
        serde_json::json!({"value": "2s", "origin": "flag", "from": "--timeout"})
    );
    assert_eq!(from_flags["discover"]["from"], "--no-discover");

    let defaults = settings(&[]);
    assert_eq!(
        defaults["timeout"],
        serde_json::json!({"value": "5s", "origin": "default"})
    );
    assert_eq!(
        defaults["dns-server"],
        serde_json::json!({"value": null, "origin": "default"})
    );

    let table = run(&["context", "--config", cfg]);
    let table = String::from_utf8_lossy(&table.stdout);
    let line = table.lines().find(|l| l.starts_with("timeout "));
    assert_eq!(
        line.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["timeout", "3s", "file", &format!("{cfg}:3")]),
        "{table}"
    );
}
