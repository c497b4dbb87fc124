//! Renderers and `merge` on reports from real runs.

use std::process::Command;

use crate::support::*;

fn catalog(open: u16, closed: u16) -> String {
    format!(
        "[[target]]\nid = \"svc\"\nname = \"svc\"\nprotocol = \"tcp\"\nhost = \"127.0.0.1\"\nports = [{open}]\n\
         profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"Open <port> & retry\"\n\n\
         [[target]]\nid = \"opt\"\nname = \"opt\"\nprotocol = \"tcp\"\nhost = \"127.0.0.1\"\nports = [{closed}]\n\
         profiles = [\"internet\"]\nrequired = false\nwhy = \"w\"\nfix = \"optional\"\n"
    )
}

#[test]
fn merge_shows_which_node_fails_which_target() {
    let l = Listener::start();
    let dir = temp_dir("merge");
    let cat = write(&dir, "c.toml", &catalog(l.port, free_port()));
    let mut listener = Some(l);
    for node in ["node-a", "node-c", "node-b"] {
        if node == "node-b" {
            // The service goes away before the last node checks.
            drop(listener.take());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let out = run(&[
            "check",
            "--catalog",
            cat.to_str().unwrap(),
            "--timeout",
            "1s",
            "--output",
            "json",
        ]);
        let mut report = json(&out);
        report["node"] = serde_json::json!(node);
        write(&dir, &format!("{node}.json"), &report.to_string());
    }
    let files: Vec<String> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| dir.join(format!("{n}.json")).display().to_string())
        .collect();
    let mut args = vec!["merge"];
    args.extend(files.iter().map(String::as_str));
    let table = run(&args);
    assert_eq!(
        table.status.code(),
        Some(1),
        "node-b has a required failure"
    );
    let text = String::from_utf8_lossy(&table.stdout);
    let svc = text
        .lines()
        .find(|l| l.starts_with("svc "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(svc.contains("1/3: node-b (tcp_refused)"), "{svc}");
    let opt = text.lines().find(|l| l.starts_with("opt ")).unwrap();
    assert!(opt.contains("3/3"), "{opt}");

    args.extend(["--output", "json"]);
    let merged = json(&run(&args));
    assert_eq!(merged["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(merged["failing"][0]["id"], "svc", "required failures first");
    assert_eq!(merged["failing"][0]["failing"][0]["node"], "node-b");

    let garbage = write(&dir, "garbage.json", "{\"version\": 1,\n \"oops\": ");
    let out = run(&["merge", files[0].as_str(), garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("garbage.json:2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn junit_is_well_formed_xml_with_failures_and_escaping() {
    let l = Listener::start();
    let dir = temp_dir("junit");
    let cat = write(&dir, "c.toml", &catalog(l.port, free_port()));
    let out = run(&[
        "check",
        "--catalog",
        cat.to_str().unwrap(),
        "--timeout",
        "1s",
        "--output",
        "junit",
    ]);
    assert_eq!(out.status.code(), Some(0), "only the optional target fails");
    let xml = String::from_utf8(out.stdout).unwrap();
    // Python's XML parser is the judge of well-formedness.
    let parsed = feed(
        Command::new("python3").args([
            "-c",
            "import sys, xml.etree.ElementTree as E; r = E.fromstring(sys.stdin.read()); \
            cases = r.findall('.//testcase'); fails = r.findall('.//failure'); \
            print(len(cases), len(fails), fails[0].get('type'))",
        ]),
        &xml,
    );
    assert!(parsed.status.success(), "not XML:\n{xml}");
    assert_eq!(
        String::from_utf8_lossy(&parsed.stdout).trim(),
        "2 1 tcp_refused",
        "{xml}"
    );
}
