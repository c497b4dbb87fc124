//! The integration tests, one binary (Cargo.toml: `autotests = false` and one `[[test]]`): each
//! file of tests/ is a module of it, and tests/support/ is what they share. One binary links the
//! crate once, and a test can use another module's helpers.
//!
//! Tests that need root (network namespaces, nftables, a mount namespace, the lab) are ignored
//! unless the `root-tests` feature is on; with it they fail when not run as root. `tests/run.sh`
//! runs everything: `cargo test --all-targets --features root-tests`, as root.
//!
//! Run one module or one test by its path: `cargo test --test tests discovery::`.

mod support;

mod azure_files;
mod check;
mod cli;
mod discovery;
mod exporter;
mod firewall;
mod fuzz;
mod hostile;
mod lab_scenarios;
mod library;
mod operator;
mod peer;
mod probe_proxy_web;
mod probe_udp_tls;
mod proxy_routes;
mod reports;
mod serve;
mod serve_attack;
mod trace_lab;

/// With `autotests = false` a new tests/NAME.rs builds nothing until it is declared here: each
/// file of tests/ but this one must be a module above.
#[test]
fn every_test_file_is_a_module() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let this = std::fs::read_to_string(dir.join("tests.rs")).unwrap();
    let mut missing: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".rs").map(str::to_string))
        .filter(|module| module != "tests" && !this.contains(&format!("\nmod {module};\n")))
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "tests/{{{}}}.rs: not a module of tests/tests.rs, so never built",
        missing.join(",")
    );
}
