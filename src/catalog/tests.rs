use super::*;
use crate::context::{ConfigFile, Context};

fn load(text: &str) -> Result<Catalog, CatalogError> {
    Catalog::from_sources([("probes/t.toml".to_string(), text.to_string())])
}

const OK: &str = r#"
[profile.lab]
description = "a test profile"
default = true

[[target]]
id = "aml-instance-tcp"
name = "Compute instance"
protocol = "tcp"
host = "{instance}.{region}.instances.{aml_domain}"
ports = [443, 8787]
profiles = ["lab"]
why = "w"
fix = "f"

[[target]]
id = "pe-workspace"
name = "Workspace private endpoint"
protocol = "dns"
host = "{workspace_id}.workspace.{region}.{api_domain}"
profiles = ["private-endpoint"]
expect = "private"
why = "w"
fix = "f"

[[target]]
id = "pkg-pypi"
name = "PyPI"
protocol = "http"
host = "pypi.org"
ports = [443]
profiles = ["packages"]
clouds = ["public"]
path = "/simple/{region}/"
accept = ["2xx", 400, "404"]
why = "w"
fix = "f"
"#;

fn ctx(pairs: &[(&str, &str)], cloud: Option<Cloud>) -> Context {
    let vars: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Context::build(cloud, &vars, &Default::default(), &ConfigFile::default()).unwrap()
}

#[test]
fn expands_one_target_per_port() {
    let c = load(OK).unwrap();
    let t = c.expand(
        &ctx(&[("region", "westeurope"), ("instance", "ci1")], None),
        &["lab".into()],
        None,
    );
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].endpoint(), "ci1.westeurope.instances.azureml.ms:443");
    assert_eq!(t[1].port(), Some(8787));
    assert!(t.iter().all(|t| t.host.ready().is_some()));
}

#[test]
fn missing_variable_becomes_a_skip_naming_the_flag() {
    let c = load(OK).unwrap();
    let t = c.expand(
        &ctx(&[("region", "westeurope")], None),
        &["private-endpoint".into()],
        None,
    );
    assert_eq!(t.len(), 1);
    let Host::Unset { missing, shown } = &t[0].host else {
        panic!("{:?}", t[0].host)
    };
    assert_eq!(missing, &["workspace_id"]);
    assert!(!shown.contains('{'), "no template text in a host: {shown}");
    let reason = unset_reason(missing);
    assert!(reason.contains("--set workspace_id="), "{reason}");
}

#[test]
fn default_profiles_and_globs_select() {
    let c = load(OK).unwrap();
    assert_eq!(c.default_profiles(), vec!["lab".to_string()]);
    let all = c.expand(&ctx(&[("region", "r")], None), &[], None);
    assert_eq!(
        all.len(),
        4,
        "no profile filter: every target, one per port"
    );
    let only = c.expand(&ctx(&[("region", "r")], None), &[], Some("pkg-*"));
    assert_eq!(
        only.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["pkg-pypi"]
    );
}

#[test]
fn clouds_restrict_targets_and_switch_suffixes() {
    let c = load(OK).unwrap();
    let cx = ctx(
        &[("region", "usgovvirginia"), ("workspace_id", "g")],
        Some(Cloud::Usgov),
    );
    let t = c.expand(&cx, &[], None);
    assert!(
        t.iter().all(|t| t.id != "pkg-pypi"),
        "public-only target dropped for usgov"
    );
    let pe = t.iter().find(|t| t.id == "pe-workspace").unwrap();
    assert_eq!(
        pe.host.ready(),
        Some("g.workspace.usgovvirginia.api.ml.azure.us")
    );
}

#[test]
fn http_extras_are_parsed() {
    let c = load(OK).unwrap();
    let t = c.expand(
        &ctx(&[("region", "westeurope")], None),
        &["packages".into()],
        None,
    );
    let Check::Http { web, accept, .. } = &t[0].check else {
        panic!("{:?}", t[0].check)
    };
    assert_eq!(web.path, "/simple/westeurope/");
    assert!(accept.iter().any(|m| m.matches(400)));
    assert!(accept.iter().any(|m| m.matches(204)));
    assert!(accept.iter().any(|m| m.matches(404)));
    assert!(!accept.iter().any(|m| m.matches(500)));
}

/// Each bad catalog, and what its error must name: (text, line, field or message part).
#[test]
fn bad_catalogs_name_file_line_and_field() {
    let base = |extra: &str| {
        format!(
            "[[target]]\nid = \"a\"\nname = \"n\"\nprotocol = \"tcp\"\nhost = \"h\"\nports = [1]\nprofiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n{extra}"
        )
    };
    let cases: Vec<(String, usize, &str)> = vec![
        (base("prots = [2]\n"), 10, "prots"),
        (
            base("").replace("ports = [1]", "ports = [70000]"),
            6,
            "70000",
        ),
        (base("").replace("ports = [1]", "ports = [0]"), 6, "ports"),
        (
            base("").replace("host = \"h\"", "host = \"{regoin}.x\""),
            5,
            "unknown variable {regoin}",
        ),
        (
            base("").replace("[\"internet\"]", "[\"intenret\"]"),
            7,
            "unknown profile \"intenret\"",
        ),
        (base("").replace("\"tcp\"", "\"sctp\""), 4, "sctp"),
        (base("").replace("id = \"a\"", "id = \"Bad Id\""), 2, "id"),
        (base("expect = \"private\"\n"), 10, "expect"),
        (base("accept = [\"9xx\"]\n"), 10, "accept"),
        (base("payload = \"hex:0\"\n"), 10, "payload"),
        (
            base("private_endpoint = \"blob\"\n"),
            10,
            "private_endpoint",
        ),
        (base("required = [\"mars\"]\n"), 10, "mars"),
        (
            base("required_with_private_endpoint = \"wokrspace\"\n"),
            10,
            "required_with_private_endpoint",
        ),
        (
            base("direction = \"inbound\"\n").replace("\"tcp\"", "\"tls\""),
            2,
            "direction",
        ),
        (base("").replace("ports = [1]\n", ""), 2, "ports"),
        (
            format!("{}{}", base(""), base("")),
            11,
            "duplicate target id \"a\"",
        ),
    ];
    for (text, line, needle) in cases {
        let err = load(&text).expect_err(&text).to_string();
        assert!(
            err.starts_with(&format!("probes/t.toml:{line}")),
            "want line {line}: {err}"
        );
        assert!(err.contains(needle), "want {needle:?} in: {err}");
    }
}

/// A field belongs to the protocols that use it: on any other it is refused at its own line,
/// naming the protocols that take it; on its own it is accepted (or its value judged).
#[test]
fn fields_belong_to_their_protocols() {
    let table = |protocol: &str, extra: &str| {
        let ports = match protocol == "dns" || extra.starts_with("ports") {
            true => "",
            false => "ports = [1]\n",
        };
        format!(
            "[[target]]\nid = \"a\"\nname = \"n\"\nprotocol = \"{protocol}\"\nhost = \"h\"\n{ports}\
             profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n{extra}\n"
        )
    };
    let cases: &[(&str, &str, &[&str])] = &[
        ("ports = [53]", "tcp, udp, tls, http and ws", &["dns"]),
        (
            "path = \"/x\"",
            "http and ws",
            &["dns", "tcp", "udp", "tls"],
        ),
        ("tls = false", "http and ws", &["dns", "tcp", "udp", "tls"]),
        (
            "method = \"HEAD\"",
            "http",
            &["dns", "tcp", "udp", "tls", "ws"],
        ),
        (
            "accept = [200]",
            "http",
            &["dns", "tcp", "udp", "tls", "ws"],
        ),
        (
            "payload = \"hex:00\"",
            "udp",
            &["dns", "tcp", "tls", "http", "ws"],
        ),
        (
            "responder = true",
            "tcp and udp",
            &["dns", "tls", "http", "ws"],
        ),
    ];
    let all = ["dns", "tcp", "udp", "tls", "http", "ws"];
    for &(extra, takes, refused) in cases {
        let field = extra.split(' ').next().unwrap();
        for protocol in all {
            let text = table(protocol, extra);
            match load(&text) {
                Err(e) if refused.contains(&protocol) => {
                    assert_eq!(e.field.as_deref(), Some(field), "{protocol}: {e}");
                    assert!(
                        e.message
                            .contains(&format!("applies to {takes} targets only")),
                        "{e}"
                    );
                    let line = text.lines().position(|l| l.starts_with(field)).unwrap() + 1;
                    assert_eq!(e.line, Some(line), "{protocol}: {e}");
                }
                Ok(_) if !refused.contains(&protocol) => {}
                other => panic!("{protocol} with {extra}: {other:?}"),
            }
        }
    }
    // On its own protocol a bad value is still judged.
    for (protocol, extra, field) in [
        ("http", "accept = [\"9xx\"]", "accept"),
        ("http", "method = \"POST\"", "method"),
        ("udp", "payload = \"hex:0\"", "payload"),
        ("ws", "path = \"x\"", "path"),
    ] {
        let e = load(&table(protocol, extra)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert_eq!(e.line, Some(10), "{e}");
    }
}

/// A host or path that needs an unset variable is skipped with every variable it needs, and
/// nothing of the template is left in the host people read.
#[test]
fn unset_hosts_and_paths_name_every_missing_variable() {
    let text = "[[target]]\nid = \"x\"\nname = \"n\"\nprotocol = \"http\"\nhost = \"{exfil_host}\"\n\
        ports = [443]\npath = \"{exfil_path}\"\nprofiles = [\"exfiltration\"]\nexpect = \"blocked\"\n\
        why = \"w\"\nfix = \"f\"\n\
        [[target]]\nid = \"y\"\nname = \"n\"\nprotocol = \"dns\"\nhost = \"{instance}.{region}.example\"\n\
        profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n";
    let c = load(text).unwrap();
    let t = c.expand(&ctx(&[], None), &[], None);
    assert_eq!(t[0].host.missing(), ["exfil_host", "exfil_path"]);
    assert_eq!(t[0].host.shown(), "<exfil_host>");
    assert_eq!(t[1].host.missing(), ["instance", "region"]);
    assert_eq!(t[1].host.shown(), "<instance>.<region>.example");
    assert_eq!(t[1].endpoint(), "<instance>.<region>.example");
    let reason = unset_reason(t[1].host.missing());
    assert!(
        reason.contains("--set instance=") && reason.contains("--region"),
        "{reason}"
    );
    let t = c.expand(
        &ctx(
            &[
                ("exfil_url", "https://other.blob.core.windows.net/c/b"),
                ("region", "r"),
                ("instance", "i"),
            ],
            None,
        ),
        &[],
        None,
    );
    assert_eq!(t[0].host.ready(), Some("other.blob.core.windows.net"));
    let Check::Http { web, port: 443, .. } = &t[0].check else {
        panic!("{:?}", t[0].check)
    };
    assert_eq!(web.path, "/c/b");
    assert_eq!(t[1].host.ready(), Some("i.r.example"));
    assert_eq!(t[1].check, Check::Dns);
}

#[test]
fn globs() {
    assert!(glob_match("aml-*", "aml-tundra-udp"));
    assert!(glob_match("*-udp", "aml-tundra-udp"));
    assert!(glob_match("a?l-*", "aml-x"));
    assert!(glob_match("*", ""));
    assert!(!glob_match("aml-*", "pe-aml"));
    assert!(!glob_match("aml", "aml-x"));
}

#[test]
fn embedded_catalog_loads() {
    let c = Catalog::embedded().expect("the embedded catalog is valid");
    assert!(!c.is_empty());
    for p in ["no-public-ip", "internet", "private-endpoint"] {
        assert!(
            c.default_profiles().iter().any(|d| d == p),
            "{p} is a default profile"
        );
    }
}

const DEPLOYMENT_CHOICES: &str = r#"
[[target]]
id = "pe-blob"
name = "blob"
protocol = "dns"
host = "{storage_account}.blob.{storage_suffix}"
profiles = ["private-endpoint"]
expect = "private"
private_endpoint = "blob"
why = "w"
fix = "f"

[[target]]
id = "rstudio"
name = "RStudio"
protocol = "tls"
host = "{instance}.{region}.instances.{aml_domain}"
ports = [8787]
profiles = ["no-public-ip"]
required = ["public"]
required_with_private_endpoint = "workspace"
why = "w"
fix = "f"

[[target]]
id = "inbound"
name = "in"
protocol = "tcp"
host = "{node}"
ports = [44224]
direction = "inbound"
profiles = ["public-ip"]
why = "w"
fix = "f"
"#;

fn find<'a>(targets: &'a [Target], id: &str) -> &'a Target {
    targets.iter().find(|t| t.id == id).expect(id)
}

#[test]
fn storage_is_held_private_only_when_listed() {
    let c = load(DEPLOYMENT_CHOICES).unwrap();
    let by_default = c.expand(&ctx(&[("storage_account", "sa1")], None), &[], None);
    assert_eq!(find(&by_default, "pe-blob").expect, Expect::Reachable);
    let listed = c.expand(
        &ctx(
            &[
                ("storage_account", "sa1"),
                ("private_endpoints", "workspace,blob"),
            ],
            None,
        ),
        &[],
        None,
    );
    assert_eq!(find(&listed, "pe-blob").expect, Expect::Private);
}

#[test]
fn required_in_some_clouds_only() {
    let c = load(DEPLOYMENT_CHOICES).unwrap();
    let vars = [("region", "x1"), ("instance", "ci1")];
    assert!(find(&c.expand(&ctx(&vars, None), &[], None), "rstudio").required);
    let gov = c.expand(&ctx(&vars, Some(Cloud::Usgov)), &[], None);
    let rstudio = find(&gov, "rstudio");
    assert!(!rstudio.required);
    assert_eq!(rstudio.host.ready(), Some("ci1.x1.instances.azureml.us"));
}

#[test]
fn required_only_with_the_private_endpoint_it_names() {
    let c = load(DEPLOYMENT_CHOICES).unwrap();
    let with = |pe: &str| {
        let vars = [
            ("region", "x1"),
            ("instance", "ci1"),
            ("private_endpoints", pe),
        ];
        find(&c.expand(&ctx(&vars, None), &[], None), "rstudio").required
    };
    assert!(with("workspace,blob"));
    assert!(!with("blob"));
    assert!(!with("none"));
    // The default list holds the workspace.
    let vars = [("region", "x1"), ("instance", "ci1")];
    assert!(find(&c.expand(&ctx(&vars, None), &[], None), "rstudio").required);
}

#[test]
fn inbound_rows_name_this_node() {
    let c = load(DEPLOYMENT_CHOICES).unwrap();
    let t = c.expand(&ctx(&[], None), &[], None);
    let inbound = find(&t, "inbound");
    assert_eq!(inbound.direction, Direction::Inbound);
    assert_eq!(
        inbound.host.ready().map(str::to_string),
        crate::context::node_name().or(Some("localhost".into()))
    );
}

#[test]
fn no_sovereign_profile_without_targets() {
    let c = Catalog::embedded().unwrap();
    assert!(c.check_profiles(&["sovereign".into()]).is_err());
    for p in c.profile_names() {
        let targets = c.expand(&ctx(&[], None), std::slice::from_ref(&p), None);
        assert!(!targets.is_empty(), "profile {p} has no target");
    }
}

#[test]
fn lines_count_like_a_scan_and_a_duplicate_names_both_lines() {
    let text = "a\nbb\n\nccc\n";
    let lines = crate::input::Lines::new(text);
    for offset in 0..=text.len() + 3 {
        let scanned = text.as_bytes()[..offset.min(text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        assert_eq!(lines.of(offset), scanned, "offset {offset}");
    }
    let target = OK.split("[[target]]").nth(1).unwrap();
    let text = format!("{OK}\n[[target]]{target}");
    let e = load(&text).unwrap_err().to_string();
    let first = 1 + OK[..OK.find("id = \"aml-instance-tcp\"").unwrap()]
        .matches('\n')
        .count();
    assert!(
        e.contains(&format!("first defined at probes/t.toml:{first}")),
        "{e}"
    );
    // Of several duplicates, the first written twice is named, at its second place.
    let table = |id: &str| {
        format!(
            "[[target]]\nid = \"{id}\"\nname = \"n\"\nprotocol = \"tcp\"\nhost = \"h\"\nports = [1]\n\
             profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n"
        )
    };
    let text: String = ["z", "b", "b", "z", "b"].map(table).concat();
    let e = load(&text).unwrap_err();
    assert_eq!((e.line, e.field.as_deref()), (Some(20), Some("id")), "{e}");
    assert!(
        e.message
            .contains("\"b\" (first defined at probes/t.toml:11)"),
        "{e}"
    );
}

#[test]
fn large_files_are_parsed_a_table_at_a_time_with_true_line_numbers() {
    let text = "# head\n[profile.p]\ndescription = \"\"\"\n[[target]] inside a string\n\"\"\"\n\n\
                [[target]]\nid = \"a\"\n\n  [[target]]\nid = \"b\"\n";
    let cut: Vec<(usize, bool)> = super::sections::sections(text)
        .iter()
        .map(|s| (s.first_line, s.is_target()))
        .collect();
    assert_eq!(cut, [(1, false), (2, false), (7, true), (10, true)]);
    // An error in a later table names its line in the file, not in the table.
    let bad =
        format!("{OK}\n[[target]]\nid = \"late\"\nname = \"n\"\nprotocol = \"tcp\"\nbogus = 1\n");
    let line = bad.lines().position(|l| l == "bogus = 1").unwrap() + 1;
    let e = load(&bad).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("probes/t.toml:{line}")),
        "want line {line}: {e}"
    );
}

#[test]
fn a_target_may_have_its_own_timeout_within_bounds() {
    let with = |t: &str| {
        OK.replacen(
            "fix = \"f\"\n",
            &format!("fix = \"f\"\ntimeout = \"{t}\"\n"),
            1,
        )
    };
    let c = load(&with("10s")).unwrap();
    let t = c.expand(
        &ctx(&[("region", "r"), ("instance", "ci1")], None),
        &["lab".into()],
        None,
    );
    assert!(
        t.iter()
            .all(|t| t.timeout == Some(std::time::Duration::from_secs(10)))
    );
    for bad in ["soon", "0s", "1h"] {
        let e = load(&with(bad)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("timeout"), "{bad}: {e:?}");
        assert_eq!(e.line, Some(15), "{bad}: {e:?}");
    }
}
