use super::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn parse(text: &str) -> Result<WebConfig, String> {
    WebConfig::parse(Path::new("/etc/vnetprobe/web.yml"), text)
}

fn header(user: &str, password: &str) -> Vec<u8> {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
    .into_bytes()
}

impl BasicAuth {
    async fn allows(&self, header: Option<&[u8]>) -> bool {
        self.check(header, "127.0.0.1".parse().unwrap()).await == Verdict::Allowed
    }
}

#[tokio::test]
async fn basic_auth_checks_bcrypt_hashes() {
    let hash = bcrypt::hash_with_salt("s3cret", 4, [7; 16])
        .unwrap()
        .to_string();
    let cfg = parse(&format!("basic_auth_users:\n  alice: {hash}\n")).unwrap();
    let auth = cfg.auth.unwrap();
    assert!(cfg.tls.is_none());
    assert!(auth.allows(Some(&header("alice", "s3cret"))).await);
    assert!(
        auth.allows(Some(&header("alice", "s3cret"))).await,
        "remembered"
    );
    assert!(!auth.allows(Some(&header("alice", "wrong"))).await);
    assert!(!auth.allows(Some(&header("bob", "s3cret"))).await);
    assert!(!auth.allows(None).await);
    assert!(!auth.allows(Some(b"Bearer abc")).await);
    assert!(!auth.allows(Some(b"Basic !!!")).await);
}

#[test]
fn errors_name_file_and_line() {
    let cases = [
        (
            "basic_auth_users:\n  alice: $2y$10$short\n",
            ":2: user \"alice\": not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert_file: a\n  cert_fiel: b\n",
            ":3: unknown key `cert_fiel` in tls_server_config (supported: cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version)",
        ),
        (
            "\nhttp_server_config:\n  http2: false\n",
            ":2: `http_server_config` is an exporter-toolkit setting",
        ),
        (
            "tls_server_config:\n  cert_file: a.crt\n",
            ":2: tls_server_config needs both cert_file and key_file (key_file is missing)",
        ),
        (
            "tls_server_config:\n",
            ":1: indented `key: value` lines (a mapping) are needed here",
        ),
        (
            "tls_server_config:\n  cert_file: none.crt\n  key_file: none.key\n",
            ":2: cert_file /etc/vnetprobe/none.crt",
        ),
        (
            "basic_auth_users: alice\n",
            ":1: indented `key: value` lines (a mapping) are needed here",
        ),
        (
            "basic_auth_users:\n  - alice\n",
            ":2: indented `key: value` lines (a mapping)",
        ),
        (
            "oops: 1\n",
            ":1: unknown key `oops` (supported: tls_server_config, basic_auth_users)",
        ),
    ];
    for (text, want) in cases {
        let e = parse(text)
            .err()
            .unwrap_or_else(|| panic!("{text:?} parsed"));
        assert!(e.starts_with("/etc/vnetprobe/web.yml:"), "{e}");
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

/// What a YAML parser has to get right: comments, quoting, a `#` inside a word, flow
/// mappings, a directive and a `---`.
#[tokio::test]
async fn comments_quotes_and_nested_mappings() {
    let hash = bcrypt::hash_with_salt("pw", 4, [3; 16])
        .unwrap()
        .to_string();
    let doc = format!(
        "%YAML 1.2\n---\n# web config\nbasic_auth_users: # the users\n  \"al ice\": \"{hash}\"  # quoted\n  'bo''b': '{hash}'\n  carol: {hash} # plain\n  d#ve: {hash}\n"
    );
    let auth = parse(&doc).unwrap().auth.unwrap();
    for user in ["al ice", "bo'b", "carol", "d#ve"] {
        assert!(auth.allows(Some(&header(user, "pw"))).await, "{user}");
    }
    let flow = format!("basic_auth_users: {{erin: '{hash}'}}\n");
    let auth = parse(&flow).unwrap().auth.unwrap();
    assert!(auth.allows(Some(&header("erin", "pw"))).await);
}

#[test]
fn empty_documents_mean_plain_http_without_auth() {
    for text in [
        "",
        "\n\n",
        "# nothing\n\n",
        "---\n",
        "---\n# only a comment\n",
    ] {
        let cfg = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(cfg.tls.is_none() && cfg.auth.is_none(), "{text:?}");
    }
}

#[test]
fn yaml_outside_the_accepted_shape_is_an_error_with_its_line() {
    let cases = [
        ("basic_auth_users:\n  alice: [x, y]\n", 2, "a single value"),
        ("basic_auth_users:\n  alice:\n", 2, "a value is needed"),
        (
            "tls_server_config:\n  cert_file:\n    x: y\n",
            3,
            "a single value",
        ),
        ("basic_auth_users:\n\talice: x\n", 2, "tab"),
        (
            "basic_auth_users:\n  alice: x\n  alice: y\n",
            3,
            "duplicate",
        ),
        ("basic_auth_users:\n  alice: 'open\n", 2, "unclosed"),
        ("basic_auth_users: \"\\q\"\n", 1, "escape"),
        ("just text\n", 1, "a mapping"),
        ("- a\n- b\n", 1, "a mapping"),
        (
            "basic_auth_users:\n---\nbasic_auth_users:\n",
            2,
            "one YAML document",
        ),
        (
            "basic_auth_users: &u\n  alice: x\ntls_server_config: *u\n",
            3,
            "unknown key `alice` in tls_server_config",
        ),
    ];
    for (doc, want_line, words) in cases {
        let e = parse(doc).err().unwrap_or_else(|| panic!("{doc:?} parsed"));
        let prefix = format!("/etc/vnetprobe/web.yml:{want_line}: ");
        assert!(e.starts_with(&prefix), "{doc:?}: {e}");
        assert!(e.contains(words), "{doc:?}: {e}");
    }
}

#[test]
fn hostile_documents_are_refused_quickly() {
    let laughs = {
        let mut doc = String::from("basic_auth_users:\n  a: &a x\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
            .iter()
            .zip("bcdefghi".chars())
        {
            let refs = vec![format!("*{prev}"); 9].join(", ");
            doc.push_str(&format!("  {name}: &{name} [{refs}]\n"));
        }
        doc
    };
    let many_aliases = {
        let mut doc = format!(
            "basic_auth_users:\n  u0: &h '{}'\n",
            "$2y$04$".to_string() + &"a".repeat(53)
        );
        for i in 1..=500 {
            doc.push_str(&format!("  u{i}: *h\n"));
        }
        doc
    };
    let deep_block = {
        let mut doc = String::from("tls_server_config:\n");
        for depth in 1..2000 {
            doc.push_str(&format!("{}k{depth}:\n", "  ".repeat(depth)));
        }
        doc
    };
    let cases = [
        (
            "flow nesting",
            format!("basic_auth_users: {}", "[".repeat(100_000)),
        ),
        ("flow nesting at the top", "{".repeat(100_000)),
        ("block nesting", deep_block),
        ("billion laughs", laughs),
        ("many aliases", many_aliases),
        ("many documents", "---\n".repeat(10_000)),
    ];
    for (what, doc) in cases {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(|| parse(&doc).map(|_| ()));
        let e = outcome
            .unwrap_or_else(|_| panic!("{what}: panicked"))
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: {:?}",
            started.elapsed()
        );
        assert!(e.starts_with("/etc/vnetprobe/web.yml:"), "{what}: {e}");
        eprintln!("{what}: {e}");
    }
}

/// A folder holding a self-signed cert.pem and key.pem for localhost.
fn cert_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnetprobe-webcfg-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), c.signing_key.serialize_pem()).unwrap();
    dir
}

#[test]
fn tls_settings_are_checked() {
    let dir = cert_dir("tls");
    let file = dir.join("web.yml");
    let tls = |extra: &str| {
        WebConfig::parse(
            &file,
            &format!("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n{extra}"),
        )
    };
    assert!(
        tls("").unwrap().tls.is_some(),
        "paths are relative to the web config's folder"
    );
    assert!(tls("  min_version: TLS13\n").is_ok());
    assert!(
        tls("  client_ca_file: cert.pem\n").is_ok(),
        "a client CA alone means RequireAndVerifyClientCert"
    );
    assert!(
        tls("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: cert.pem\n").is_ok()
    );
    let cases = [
        (
            "  min_version: TLS13\n  max_version: TLS12\n",
            ":5: max_version is below min_version",
        ),
        (
            "  min_version: TLS10\n",
            ":4: min_version TLS10: vnetprobe speaks TLS 1.2 and 1.3 only",
        ),
        (
            "  max_version: 1.3\n",
            ":4: max_version \"1.3\": use TLS12 or TLS13",
        ),
        (
            "  client_auth_type: RequireAndVerifyClientCert\n",
            ":4: client_auth_type RequireAndVerifyClientCert needs client_ca_file",
        ),
        (
            "  client_auth_type: RequireAnyClientCert\n",
            ":4: client_auth_type RequireAnyClientCert (client certificates without verification) is not supported",
        ),
        (
            "  client_auth_type: Maybe\n",
            ":4: client_auth_type \"Maybe\"",
        ),
        ("  client_ca_file: key.pem\n", ":4: client_ca_file"),
        (
            "  cipher_suites: x\n",
            ":4: `cipher_suites` is an exporter-toolkit setting that vnetprobe does not support",
        ),
        (
            "  min_version: [TLS12]\n",
            ":4: a single value is needed here",
        ),
    ];
    for (extra, want) in cases {
        let e = tls(extra)
            .err()
            .unwrap_or_else(|| panic!("{extra:?} was accepted"));
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    let swapped = WebConfig::parse(
        &file,
        "tls_server_config:\n  cert_file: key.pem\n  key_file: cert.pem\n",
    );
    assert!(
        swapped.err().unwrap().contains(":2: cert_file"),
        "a key is not a certificate"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_hash_is_never_echoed() {
    for text in [
        "basic_auth_users:\n  alice: hunter2\n",
        "basic_auth_users: hunter2\n",
        "basic_auth_users:\n  alice: [hunter2]\n",
        "basic_auth_users:\n  alice: {hunter2: x}\n",
        "basic_auth_users:\n  alice: 'hunter2\n",
    ] {
        let e = parse(text).err().unwrap();
        assert!(!e.contains("hunter2"), "{e}");
    }
}

#[test]
fn empty_users_mean_no_auth() {
    assert!(parse("basic_auth_users:\n").unwrap().auth.is_none());
    assert!(parse("# nothing\n").unwrap().auth.is_none());
}

#[test]
fn an_unknown_user_is_checked_at_the_largest_cost_in_the_file() {
    let hash = |cost| {
        bcrypt::hash_with_salt("pw", cost, [5; 16])
            .unwrap()
            .to_string()
    };
    // The first user (in name order) is the cheap one, as in the tester's file.
    let doc = format!(
        "basic_auth_users:\n  a: '{}'\n  b: '{}'\n",
        hash(4),
        hash(6)
    );
    let auth = parse(&doc).unwrap().auth.unwrap();
    let parts: bcrypt::HashParts = auth.unknown.parse().unwrap();
    assert_eq!(parts.get_cost(), 6);
    // A real check, that fails: an error would return at once and give the name away.
    assert!(matches!(bcrypt::verify("pw", &auth.unknown), Ok(false)));
    assert!(matches!(bcrypt::verify("", &unmatchable(4)), Ok(false)));
}

#[tokio::test]
async fn unchecked_credentials_queue_within_bounds_and_a_remembered_one_never_waits() {
    let hash = bcrypt::hash_with_salt("pw", 4, [5; 16])
        .unwrap()
        .to_string();
    let auth = parse(&format!("basic_auth_users:\n  prom: '{hash}'\n"))
        .unwrap()
        .auth
        .unwrap();
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
    assert!(auth.allows(Some(&header("prom", "pw"))).await);
    // One address holds its share; others fill the rest of the queue.
    let mut held: Vec<Ticket> = (0..PENDING_PER_SHARE)
        .map(|_| auth.ticket(ip("10.0.0.1")).unwrap())
        .collect();
    assert!(auth.ticket(ip("10.0.0.1")).is_none(), "past its share");
    assert_eq!(
        auth.check(Some(&header("prom", "wrong")), ip("10.0.0.1"))
            .await,
        Verdict::Busy
    );
    // Addresses that already have one pending stop at half the queue; the rest is for
    // addresses with none.
    let mut i = 2;
    while let Some(t) = auth.ticket(ip(&format!("10.0.1.{i}"))) {
        held.push(t);
        if held.len() < PENDING_CAP / 2
            && let Some(t) = auth.ticket(ip(&format!("10.0.1.{i}")))
        {
            held.push(t);
        }
        i += 1;
    }
    assert_eq!(held.len(), PENDING_CAP);
    assert!(auth.ticket(ip("10.0.1.2")).is_none());
    for (user, password) in [("prom", "wrong"), ("nobody", "pw")] {
        assert_eq!(
            auth.check(Some(&header(user, password)), ip("10.0.2.1"))
                .await,
            Verdict::Busy,
            "{user}"
        );
    }
    // The remembered password is answered without a check.
    assert_eq!(
        auth.check(Some(&header("prom", "pw")), ip("10.0.2.1"))
            .await,
        Verdict::Allowed
    );
    drop(held);
    assert_eq!(
        auth.check(Some(&header("prom", "wrong")), ip("10.0.0.1"))
            .await,
        Verdict::Denied
    );
    let p = auth.pending.lock().unwrap();
    assert_eq!(
        (p.total, p.by_share.len()),
        (0, 0),
        "every ticket given back"
    );
}
