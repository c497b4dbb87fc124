//! Fuzz-style tests that fit in CI: fixed-seed mutations of the catalog TOML, the config file,
//! the web config and merge's JSON reports. Each mutant must end in a contract exit code (0, 1
//! or 2) or a clean error, never a panic or a hang. A failure prints the mutant's seed and file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::*;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Fragments that tend to break parsers and validators.
fn tokens() -> Vec<Vec<u8>> {
    let mut t: Vec<Vec<u8>> = [
        "\"",
        "'",
        "[",
        "]",
        "[[",
        "]]",
        "{",
        "}",
        "=",
        ",",
        "\n",
        "#",
        "\\",
        "\"\"\"",
        ":",
        "- ",
        "  ",
        "0",
        "-1",
        "65536",
        "4294967296",
        "18446744073709551616",
        "3000000000000000000",
        "1e400",
        "nan",
        "inf",
        "true",
        "null",
        "\x1b[2J",
        "\u{202e}",
        "\0",
        "é",
        "{region}",
        "{nope}",
        "*",
        "..",
        "18446744073709551615s",
        "0s",
        "/dev/zero",
        "/",
        "@",
        "%",
        "http://u:p@127.0.0.1:1",
        "[target]",
        "[[target]]",
        "[profile.x]",
        "[serve]",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    t.push(vec![b'a'; 70_000]);
    t.push(vec![0xff, 0xfe]);
    t
}

/// One to four edits of `seed`: insert a token, delete or duplicate a range, drop a line's end,
/// swap two lines, truncate.
fn mutate(rng: &mut Rng, seed: &[u8], tokens: &[Vec<u8>]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 | 1 => {
                let t = &tokens[rng.below(tokens.len())];
                b.splice(at..at, t.iter().copied());
            }
            2 => {
                let end = (at + 1 + rng.below(40)).min(b.len());
                b.drain(at..end);
            }
            3 => {
                let end = (at + 1 + rng.below(200)).min(b.len());
                let copy = b[at..end].to_vec();
                let to = rng.below(b.len() + 1);
                b.splice(to..to, copy);
            }
            4 => {
                let lines: Vec<&[u8]> = b.split(|&c| c == b'\n').collect();
                let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                let mut lines: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
                lines.swap(i, j);
                b = lines.join(&b'\n');
            }
            _ => b.truncate(at),
        }
    }
    b
}

/// Runs `args` (with `{}` replaced by the mutant's path) on each mutant of `seed`, on two
/// threads; the exit code must be one of `allowed` and stderr must hold no panic. Returns how
/// many mutants ended with each allowed code.
fn fuzz_binary(
    tag: &str,
    seed: &[u8],
    n: u64,
    file: &str,
    args: &[&str],
    allowed: &[i32],
) -> Vec<usize> {
    let dir = temp_dir(tag);
    let tokens = tokens();
    let counts: Vec<_> = allowed
        .iter()
        .map(|_| std::sync::atomic::AtomicUsize::new(0))
        .collect();
    std::thread::scope(|s| {
        for lane in 0..2u64 {
            let (dir, tokens, counts) = (&dir, &tokens, &counts);
            s.spawn(move || {
                for i in (lane..n).step_by(2) {
                    let mut rng = Rng(0x5eed_0000 + i);
                    let path = dir.join(format!("{i}-{file}"));
                    std::fs::write(&path, mutate(&mut rng, seed, tokens)).unwrap();
                    let argv: Vec<&str> = args
                        .iter()
                        .map(|a| {
                            if *a == "{}" {
                                path.to_str().unwrap()
                            } else {
                                a
                            }
                        })
                        .collect();
                    let out = output_within(&mut command(&argv), Duration::from_secs(20));
                    let err = stderr(&out);
                    let code = out.status.code();
                    assert!(
                        code.is_some_and(|c| allowed.contains(&c)) && !err.contains("panicked"),
                        "{tag} mutant {i} ({}): exit {code:?}\n{err}",
                        path.display()
                    );
                    let slot = allowed.iter().position(|c| Some(*c) == code).unwrap();
                    counts[slot].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::fs::remove_file(&path).unwrap();
                }
            });
        }
    });
    std::fs::remove_dir_all(dir).unwrap();
    counts.into_iter().map(|c| c.into_inner()).collect()
}

fn embedded(file: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("probes")
            .join(file),
    )
    .unwrap()
}

#[test]
fn mutated_catalogs_exit_0_or_2() {
    let seed = [embedded("00-profiles.toml"), embedded("20-internet.toml")].concat();
    let args = [
        "catalog",
        "--config",
        "/dev/null",
        "--catalog",
        "{}",
        "--region",
        "westeurope",
    ];
    let counts = fuzz_binary("fuzz-catalog", &seed, 400, "c.toml", &args, &[0, 2]);
    // Both outcomes, or the mutations are too tame (or too wild) to test anything.
    assert!(counts.iter().all(|&c| c > 0), "exit 0 and 2: {counts:?}");
}

#[test]
fn mutated_config_files_exit_1_or_2() {
    // Every key the config file takes, with values that pass. The flags pin what is probed: one
    // DNS target whose server is a closed loopback port, so a valid mutant runs and fails fast
    // (exit 1) and an invalid one is a usage error (exit 2); no mutant can send traffic anywhere.
    let seed = b"cloud = \"public\"\nprofiles = [\"internet\"]\ndns-server = \"127.0.0.1:53\"\n\
timeout = \"2s\"\nconcurrency = 8\nallow-intercept = false\nproxy = \"http://u:p@127.0.0.1:3128\"\n\
no-proxy = true\nonly = \"*\"\ndiscover = false\nnode-root = \"/nonexistent\"\n\
[set]\nregion = \"westeurope\"\n[serve]\nlisten = \"127.0.0.1:0\"\ninterval = \"60s\"\n";
    let dir = temp_dir("fuzz-config-catalog");
    let catalog = write(
        &dir,
        "c.toml",
        "[[target]]\nid = \"fuzz-target\"\nname = \"n\"\nprotocol = \"dns\"\nhost = \"fuzz.invalid\"\n\
         profiles = [\"internet\"]\nwhy = \"w\"\nfix = \"f\"\n",
    );
    let args = [
        "check",
        "--config",
        "{}",
        "--catalog",
        catalog.to_str().unwrap(),
        "--profile",
        "internet",
        "--only",
        "fuzz-target",
        "--dns-server",
        "127.0.0.1:9",
        "--no-proxy",
        "--no-discover",
        "--timeout",
        "1s",
    ];
    let counts = fuzz_binary("fuzz-config", seed, 300, "config.toml", &args, &[1, 2]);
    assert!(counts.iter().all(|&c| c > 0), "exit 1 and 2: {counts:?}");
}

#[test]
fn mutated_reports_never_panic_merge() {
    let seed = refused_report().to_string().into_bytes();
    for output in ["table", "json"] {
        let args = ["merge", "--output", output, "{}"];
        let counts = fuzz_binary("fuzz-merge", &seed, 200, "r.json", &args, &[0, 1, 2]);
        assert!(counts[1] > 0 && counts[2] > 0, "exit 0, 1, 2: {counts:?}");
    }
}

/// A hostile value of a random type.
fn hostile(rng: &mut Rng) -> serde_json::Value {
    use serde_json::Value;
    match rng.below(8) {
        0 => Value::Null,
        1 => Value::from(-1),
        2 => Value::from(u64::MAX),
        3 => Value::from(1e300),
        4 => Value::from("x".repeat(70_000)),
        5 => Value::from("\x1b]0;t\x07\u{9b}\u{202e}"),
        6 => Value::Array(vec![Value::Null; 3]),
        _ => Value::Object(Default::default()),
    }
}

/// Replaces a random node of `v`, at most `depth` levels down, with a hostile value.
fn mutate_json(rng: &mut Rng, v: &mut serde_json::Value, depth: usize) {
    use serde_json::Value;
    if depth < 4 && (depth == 0 || rng.below(3) == 0) {
        *v = hostile(rng);
        return;
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            let k = m.keys().nth(rng.below(m.len())).unwrap().clone();
            mutate_json(rng, m.get_mut(&k).unwrap(), depth - 1);
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            mutate_json(rng, &mut a[i], depth - 1);
        }
        _ => *v = hostile(rng),
    }
}

#[test]
fn reports_with_hostile_values_never_panic_merge() {
    let seed = refused_report();
    let dir = temp_dir("fuzz-merge-values");
    let mut files: Vec<PathBuf> = Vec::new();
    for i in 0..150u64 {
        let mut rng = Rng(0xbad_0000 + i);
        let mut report = seed.clone();
        for _ in 0..1 + rng.below(3) {
            mutate_json(&mut rng, &mut report, 4);
        }
        files.push(write(&dir, &format!("{i}.json"), &report.to_string()));
    }
    for f in &files {
        for output in ["table", "json"] {
            let out = run(&["merge", "--output", output, f.to_str().unwrap()]);
            let err = stderr(&out);
            assert!(
                matches!(out.status.code(), Some(0..=2)) && !err.contains("panicked"),
                "{}: {err}",
                f.display()
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn mutated_web_configs_load_or_fail_cleanly() {
    use vnetprobe::serve::web_config::WebConfig;
    let dir = temp_dir("fuzz-web");
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    write(&dir, "cert.pem", &c.cert.pem());
    write(&dir, "key.pem", &c.signing_key.serialize_pem());
    let seed = b"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  \
client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: cert.pem\n  min_version: TLS12\n  \
max_version: TLS13\nbasic_auth_users:\n  alice: '$2b$04$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'\n  \
\"bob\": \"$2y$10$abcdefghijklmnopqrstuu\"\n";
    let tokens = tokens();
    let path = dir.join("web.yml");
    for i in 0..1000u64 {
        let mut rng = Rng(0x0eb_0000 + i);
        let text = String::from_utf8_lossy(&mutate(&mut rng, seed, &tokens)).into_owned();
        let loaded = std::panic::catch_unwind(|| WebConfig::parse(&path, &text).map(|_| ()));
        assert!(loaded.is_ok(), "web config mutant {i} panicked:\n{text}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
