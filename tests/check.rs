//! `vnetprobe check` end to end against real servers: dnsmasq with Azure-like records, TCP
//! listeners and closed ports on loopback, and a black hole made with nftables in a namespace.

use crate::support::*;

const GUID: &str = "6f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b";

/// dnsmasq records that mimic Azure: a workspace name CNAMEd into the privatelink zone with a
/// private A record, one that answers publicly, NXDOMAIN inside the zone, a name without A/AAAA,
/// and forwarders to a SERVFAIL server and to a silent one.
fn azure_dns(servfail: &FakeDns, silent: &FakeDns) -> Dnsmasq {
    Dnsmasq::start(&format!(
        "local=/azureml.ms/\nlocal=/test/\n\
         cname={GUID}.workspace.westeurope.api.azureml.ms,{GUID}.workspace.westeurope.privatelink.api.azureml.ms\n\
         host-record={GUID}.workspace.westeurope.privatelink.api.azureml.ms,10.77.2.4\n\
         host-record=public.workspace.westeurope.api.azureml.ms,198.51.100.7\n\
         host-record=open.test,127.0.0.1\n\
         address=/multi.test/127.0.0.3\naddress=/multi.test/127.0.0.1\n\
         txt-record=txtonly.test,\"no address here\"\n\
         server=/servfail.test/127.0.0.1#{}\nserver=/silent.test/127.0.0.1#{}\n",
        servfail.addr.port(),
        silent.addr.port()
    ))
}

fn target(id: &str, protocol: &str, host: &str, ports: &str, extra: &str) -> String {
    let ports = if ports.is_empty() {
        String::new()
    } else {
        format!("ports = [{ports}]\n")
    };
    format!(
        "[[target]]\nid = \"{id}\"\nname = \"{id}\"\nprotocol = \"{protocol}\"\nhost = \"{host}\"\n{ports}\
         profiles = [\"internet\"]\nwhy = \"test\"\nfix = \"FIX-{id}\"\n{extra}\n"
    )
}

struct Fixture {
    _servfail: FakeDns,
    _silent: FakeDns,
    dns: Dnsmasq,
    listener: Listener,
    closed: u16,
    catalog: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let servfail = FakeDns::start(true);
    let silent = FakeDns::start(false);
    let dns = azure_dns(&servfail, &silent);
    let listener = Listener::start();
    let closed = free_port();
    let (open, closed_s) = (listener.port.to_string(), closed.to_string());
    let catalog = [
        target(
            "pe-ok",
            "dns",
            "{workspace_id}.workspace.{region}.{api_domain}",
            "",
            "expect = \"private\"",
        ),
        target(
            "pe-public",
            "dns",
            "public.workspace.{region}.api.azureml.ms",
            "",
            "expect = \"private\"",
        ),
        target("dns-nx", "dns", "missing.azureml.ms", "", ""),
        target("dns-servfail", "dns", "x.servfail.test", "", ""),
        target("dns-silent", "dns", "x.silent.test", "", ""),
        target("dns-nodata", "dns", "txtonly.test", "", ""),
        target("tcp-open", "tcp", "open.test", &open, ""),
        target("tcp-refused", "tcp", "open.test", &closed_s, ""),
        target("tcp-multi", "tcp", "multi.test", &open, ""),
        target("tcp-nx", "tcp", "nothere.test", &open, ""),
        target(
            "blocked-ok",
            "tcp",
            "127.0.0.1",
            &closed_s,
            "expect = \"blocked\"",
        ),
        target(
            "blocked-open",
            "tcp",
            "open.test",
            &open,
            "expect = \"blocked\"",
        ),
        target(
            "optional",
            "tcp",
            "open.test",
            &closed_s,
            "required = false",
        ),
        target(
            "needs-var",
            "tcp",
            "{storage_account}.blob.{storage_suffix}",
            "443",
            "",
        ),
        target("needs-nothing", "tcp", "open.test", &open, ""),
        target(
            "two-ports",
            "tcp",
            "open.test",
            &format!("{open}, {closed}"),
            "required = false",
        ),
    ]
    .concat();
    let dir = temp_dir("check");
    let catalog = write(&dir, "catalog.toml", &catalog);
    Fixture {
        _servfail: servfail,
        _silent: silent,
        dns,
        listener,
        closed,
        catalog,
    }
}

fn check(f: &Fixture, extra: &[&str]) -> std::process::Output {
    let dns = f.dns.addr.to_string();
    let catalog = f.catalog.to_string_lossy().to_string();
    let mut args = vec![
        "check",
        "--catalog",
        &catalog,
        "--dns-server",
        &dns,
        "--region",
        "westeurope",
        "--set",
    ];
    let ws = format!("workspace_id={GUID}");
    args.push(&ws);
    args.extend_from_slice(&["--timeout", "1s", "--output", "json"]);
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn every_dns_and_tcp_outcome_against_real_servers() {
    let f = fixture();
    let out = check(&f, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "required failures give exit 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json(&out);

    let pe = result(&report, "pe-ok");
    assert_eq!(pe["status"], "pass", "{pe}");
    assert_eq!(pe["addresses"][0], "10.77.2.4");
    assert_eq!(pe["private"], true);
    let chain: Vec<&str> = pe["cname_chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        chain[1],
        format!("{GUID}.workspace.westeurope.privatelink.api.azureml.ms"),
        "{chain:?}"
    );

    // (id, status, error kind)
    let table = [
        ("pe-public", "fail", "dns_not_private"),
        ("dns-nx", "fail", "dns_nxdomain"),
        ("dns-servfail", "fail", "dns_servfail"),
        ("dns-silent", "fail", "dns_timeout"),
        ("dns-nodata", "fail", "dns_no_records"),
        ("tcp-open", "pass", ""),
        ("tcp-refused", "fail", "tcp_refused"),
        ("tcp-multi", "pass", ""),
        ("tcp-nx", "fail", "dns_nxdomain"),
        ("blocked-ok", "pass", ""),
        ("blocked-open", "fail", "unexpectedly_reachable"),
        ("optional", "fail", "tcp_refused"),
        ("needs-var", "skip", ""),
    ];
    for (id, status, kind) in table {
        let r = result(&report, id);
        assert_eq!(r["status"], status, "{id}: {r}");
        assert_eq!(error_kind(r), kind, "{id}: {r}");
        if status == "fail" {
            let hint = r["hint"].as_str().unwrap_or_default();
            if kind.starts_with("dns_") && r["protocol"] != "dns" {
                // The path was never tried: resolver advice only, not the path's rule.
                assert!(
                    hint.contains("not tried") && !hint.contains("FIX-"),
                    "a name failure is fixed at the resolver: {r}"
                );
            } else {
                assert!(
                    hint.ends_with(&format!("FIX-{id}")),
                    "a failure carries its fix: {r}"
                );
            }
        } else {
            assert!(r["hint"].is_null(), "{id}: no fix unless failed");
        }
    }
    assert!(
        result(&report, "pe-public")["error"]["message"]
            .as_str()
            .unwrap()
            .contains("198.51.100.7")
    );
    assert_eq!(
        result(&report, "tcp-open")["peer"],
        format!("127.0.0.1:{}", f.listener.port)
    );
    assert_eq!(
        result(&report, "tcp-multi")["peer"],
        format!("127.0.0.1:{}", f.listener.port),
        "the next address is tried"
    );
    assert!(
        result(&report, "needs-var")["skip_reason"]
            .as_str()
            .unwrap()
            .contains("--set storage_account=")
    );
    let two = results(&report, "two-ports");
    assert_eq!(two.len(), 2, "one result per port");
    assert_eq!(
        (two[0]["status"].as_str(), two[1]["status"].as_str()),
        (Some("pass"), Some("fail"))
    );
    assert_eq!(two[1]["port"], f.closed);

    let s = &report["summary"];
    let count = |st: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == st)
            .count()
    };
    assert_eq!(s["pass"], count("pass"));
    assert_eq!(s["fail"], count("fail"));
    assert_eq!(s["skip"], count("skip"));
    assert_eq!(report["version"], 1);
    assert_eq!(report["context"]["region"], "westeurope");
    assert!(report["started_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn one_query_set_per_distinct_name() {
    let f = fixture();
    let out = check(&f, &["--only", "tcp-*"]);
    let report = json(&out);
    // open.test is shared by tcp-open and tcp-refused: one A and one AAAA query each for
    // open.test, multi.test and nothere.test.
    assert_eq!(report["results"].as_array().unwrap().len(), 4);
    let queries = f.dns.queries();
    let names: std::collections::BTreeSet<&str> = queries
        .iter()
        .filter_map(|l| l.split_whitespace().rev().nth(2))
        .collect();
    assert_eq!(names.len(), 3, "{queries:#?}");
    assert_eq!(
        queries.len(),
        6,
        "A and AAAA per distinct name, no repeats: {queries:#?}"
    );
}

#[test]
fn exit_codes_follow_the_contract() {
    let f = fixture();
    assert_eq!(
        check(&f, &["--only", "tcp-open"]).status.code(),
        Some(0),
        "all pass"
    );
    assert_eq!(
        check(&f, &["--only", "optional"]).status.code(),
        Some(0),
        "an optional failure does not fail"
    );
    let skip_and_pass = check(&f, &["--only", "needs-*"]);
    assert_eq!(
        skip_and_pass.status.code(),
        Some(0),
        "a skip is not a failure"
    );
    let summary = &json(&skip_and_pass)["summary"];
    assert_eq!(summary["required_skip"], 1, "{summary}");
    assert_eq!(
        check(&f, &["--only", "needs-*", "--strict"]).status.code(),
        Some(1),
        "--strict: a required target that was not checked fails"
    );
    let nothing = check(&f, &["--only", "needs-var"]);
    assert_eq!(
        nothing.status.code(),
        Some(2),
        "a run whose every target was skipped checked nothing"
    );
    assert!(
        String::from_utf8_lossy(&nothing.stderr).contains("nothing was checked"),
        "{nothing:?}"
    );
    let typo = check(&f, &["--only", "typo*"]);
    assert_eq!(typo.status.code(), Some(2), "zero selected targets");
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        stderr.contains("--only \"typo*\"") && stderr.contains("select no target"),
        "{stderr}"
    );
    assert_eq!(check(&f, &["--only", "tcp-refused"]).status.code(), Some(1));
    assert_eq!(
        check(&f, &["--only", "blocked-open"]).status.code(),
        Some(1),
        "reaching a blocked path fails"
    );
}

#[test]
fn table_output_shows_status_fix_and_summary() {
    let f = fixture();
    let dns = f.dns.addr.to_string();
    let catalog = f.catalog.to_string_lossy().to_string();
    let out = run(&[
        "check",
        "--catalog",
        &catalog,
        "--dns-server",
        &dns,
        "--region",
        "westeurope",
        "--timeout",
        "1s",
        "--only",
        "tcp-*",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "no colour when not a terminal:\n{text}"
    );
    let refused = text
        .lines()
        .find(|l| l.contains("tcp-refused"))
        .expect("a line per target");
    assert!(
        refused.contains("FAIL") && refused.contains("tcp_refused"),
        "{refused}"
    );
    // The fix under the failure (wrapped to the width), after what the evidence means.
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("fix: The connection was refused (a TCP reset)")
            && flat.contains("FIX-tcp-refused"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("summary: 2 pass, 2 fail, 0 skip"),
        "{text}"
    );
}

/// Runs `check --output json` on `catalog` inside a namespace made for the test, where traffic to
/// 127.0.0.2 matching `matching` is dropped on input. Input, not output: an output rule would
/// also hit the replies of loopback servers.
fn check_behind_black_hole(
    tag: &str,
    matching: &str,
    catalog: &str,
    args: &[&str],
) -> std::process::Output {
    let ns = Netns::create(tag);
    ns.nft(&format!(
        "table inet nsg {{ chain input {{ type filter hook input priority 0; ip daddr 127.0.0.2 {matching} drop; }}\n}}\n"
    ));
    let catalog = write(&temp_dir(tag), "c.toml", catalog);
    let mut full = vec![
        "check",
        "--catalog",
        catalog.to_str().unwrap(),
        "--output",
        "json",
    ];
    full.extend_from_slice(args);
    ns.vnetprobe(&full)
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn timeouts_and_unreachable_in_a_namespace_with_a_black_hole() {
    // Only port 9 of 127.0.0.2 is dropped: the SYN vanishes (an NSG deny).
    let catalog = [
        target("hole", "tcp", "127.0.0.2", "9", ""),
        target("noroute", "tcp", "192.0.2.1", "9", ""),
        target(
            "hole-blocked",
            "tcp",
            "127.0.0.2",
            "9",
            "expect = \"blocked\"",
        ),
    ]
    .concat();
    let out = check_behind_black_hole(
        "blackhole",
        "tcp dport 9",
        &catalog,
        &["--timeout", "500ms"],
    );
    let report = json(&out);
    assert_eq!(error_kind(result(&report, "hole")), "tcp_timeout");
    assert_eq!(
        error_kind(result(&report, "noroute")),
        "net_unreachable",
        "no route inside the namespace"
    );
    assert_eq!(
        result(&report, "hole-blocked")["status"],
        "pass",
        "a drop proves a blocked path"
    );
    assert!(
        result(&report, "hole-blocked")["note"]
            .as_str()
            .unwrap()
            .contains("blocked as expected")
    );
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (namespaces, nftables): run tests/run.sh, or cargo test --features root-tests as root"
)]
fn a_wave_of_black_holed_targets_each_reports_its_own_timeout() {
    // Behaviour, not speed: with 40 dropped targets and concurrency 40 the run's overall deadline
    // (one wave) must not cut any probe short: every probe reports its own tcp_timeout.
    let catalog: String = (1..=40)
        .map(|p| target(&format!("hole-{p}"), "tcp", "127.0.0.2", &p.to_string(), ""))
        .collect();
    let args = ["--timeout", "300ms", "--concurrency", "40"];
    let out = check_behind_black_hole("wave", "", &catalog, &args);
    let report = json(&out);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 40);
    for r in results {
        assert_eq!(error_kind(r), "tcp_timeout", "{r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no answer within"),
            "the probe's own deadline: {r}"
        );
    }
}
