//! `vnetprobe serve` under attack on loopback: reconnecting slowloris from other addresses and
//! from the scraper's own, plain, TLS and TLS with Basic auth, with scrapers that take 0, 20, 50
//! and 100 ms between their handshake and their request. A scraper that sends its request in
//! time is never the connection closed to make room. Every attack is bounded in connections and
//! time (tests/support/attack.rs).

use std::net::IpAddr;
use std::time::Duration;

use crate::serve::{Daemon, basic, tcp_catalog, tls_client, wait_for};
use crate::support::attack::{Flood, Slowloris, Wire, scrape};
use crate::support::{Scratch, free_port};

const DELAYS_MS: [u64; 4] = [0, 20, 50, 100];
const SCRAPES_PER_DELAY: usize = 3;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The scraper's address, and ten attacking ones beside it.
fn scraper() -> IpAddr {
    ip("127.0.0.1")
}

fn attackers() -> Vec<IpAddr> {
    (2..12).map(|i| ip(&format!("127.0.0.{i}"))).collect()
}

/// A daemon on loopback for the attack (one down target, a run an hour), with `web` as its web
/// config when given; waits for its first run.
fn daemon(dir: &Scratch, web: Option<&str>, wire: &Wire, auth: Option<&str>) -> Daemon {
    let catalog = dir.write("c.toml", &tcp_catalog(&[("down", free_port(), true)]));
    let mut args = vec![
        "--catalog".to_string(),
        catalog.to_str().unwrap().to_string(),
        "--interval".into(),
        "1h".into(),
    ];
    if let Some(web) = web {
        args.push("--web-config-file".into());
        args.push(dir.write("web.yml", web).to_str().unwrap().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start(&args);
    wait_for(Duration::from_secs(30), "the first run", || {
        (scrape(d.addr, scraper(), wire, Duration::ZERO, "/readyz", auth) == Ok(200)).then_some(())
    });
    d
}

/// Scrapes of /metrics from the scraper's address at each delay; the failures, described.
fn scrapes(d: &Daemon, wire: &Wire, auth: Option<&str>, delays: &[u64]) -> Vec<String> {
    let mut failed = Vec::new();
    for &ms in delays {
        for _ in 0..SCRAPES_PER_DELAY {
            let r = scrape(
                d.addr,
                scraper(),
                wire,
                Duration::from_millis(ms),
                "/metrics",
                auth,
            );
            if r != Ok(200) {
                failed.push(format!("{ms} ms: {r:?}"));
            }
        }
    }
    failed
}

/// The two attacks of the issue against one daemon, each with every scraper delay: 300
/// reconnecting connections from ten other addresses (past the 256 the daemon holds), and 100
/// from the scraper's own address (the default --listen 127.0.0.1 makes every local client one
/// peer).
fn survives_both_attacks(d: &Daemon, wire: &Wire, auth: Option<&str>, partial: &'static [u8]) {
    let mut failed = Vec::new();
    let spread = Slowloris::start(d.addr, &attackers(), 30, partial);
    spread.wait_for_connects(600);
    for f in scrapes(d, wire, auth, &DELAYS_MS) {
        failed.push(format!("beside ten attacking addresses, {f}"));
    }
    let rate = spread.rate();
    drop(spread);
    let same = Slowloris::start(d.addr, &[scraper()], 100, partial);
    same.wait_for_connects(100);
    for f in scrapes(d, wire, auth, &DELAYS_MS) {
        failed.push(format!("beside 100 from its own address, {f}"));
    }
    drop(same);
    assert!(
        failed.is_empty(),
        "{} of {} scrapes failed (the attack opened {rate:.0} connections/s): {failed:#?}\n{}",
        failed.len(),
        2 * DELAYS_MS.len() * SCRAPES_PER_DELAY,
        d.log()
    );
}

#[test]
fn reconnecting_slowloris_never_evicts_a_plain_scraper() {
    let dir = Scratch::new("attack-plain");
    let d = daemon(&dir, None, &Wire::Plain, None);
    survives_both_attacks(
        &d,
        &Wire::Plain,
        None,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
    );
}

/// A self-signed certificate for localhost in `dir`, the web config lines naming it, and a
/// client that trusts it.
fn tls(dir: &Scratch) -> (String, Wire) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    dir.write("cert.pem", &cert.cert.pem());
    dir.write("key.pem", &cert.signing_key.serialize_pem());
    (
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n".to_string(),
        Wire::Tls(tls_client(&cert)),
    )
}

#[test]
fn reconnecting_slowloris_never_evicts_a_tls_scraper() {
    let dir = Scratch::new("attack-tls");
    let (web, wire) = tls(&dir);
    let d = daemon(&dir, Some(&web), &wire, None);
    // Connections that never say hello.
    survives_both_attacks(&d, &wire, None, b"");
}

#[test]
fn reconnecting_slowloris_never_evicts_a_scraper_with_tls_and_basic_auth() {
    let dir = Scratch::new("attack-auth");
    let (mut web, wire) = tls(&dir);
    let hash = |password: &str, cost| {
        bcrypt::hash_with_salt(password, cost, [7; 16])
            .unwrap()
            .to_string()
    };
    web.push_str(&format!(
        "basic_auth_users:\n  prometheus: '{}'\n",
        hash("s3cret", 4)
    ));
    // Users whose first request waits on a bcrypt check at cost 10: a request in flight.
    for i in 0..4 {
        web.push_str(&format!("  slow{i}: '{}'\n", hash("slow", 10)));
    }
    let auth = basic("prometheus", "s3cret");
    let d = daemon(&dir, Some(&web), &wire, Some(&auth));
    survives_both_attacks(&d, &wire, Some(&auth), b"");

    // Past the 256 the daemon holds from the scraper's own address: requests whose answer waits
    // on bcrypt are never the ones closed.
    let flood = Slowloris::start(d.addr, &[scraper()], 300, b"");
    flood.wait_for_connects(600);
    let failed: Vec<String> = (0..4)
        .filter_map(|i| {
            let auth = basic(&format!("slow{i}"), "slow");
            let r = scrape(
                d.addr,
                scraper(),
                &wire,
                Duration::ZERO,
                "/metrics",
                Some(&auth),
            );
            (r != Ok(200)).then(|| format!("slow{i}: {r:?}"))
        })
        .collect();
    let rate = flood.rate();
    drop(flood);
    assert!(
        failed.is_empty(),
        "requests in flight were closed ({rate:.0} connections/s): {failed:?}"
    );
}

#[test]
fn wrong_passwords_cannot_queue_a_scraper_behind_them() {
    let dir = Scratch::new("attack-queue");
    let hash = bcrypt::hash_with_salt("right", 10, [7; 16])
        .unwrap()
        .to_string();
    let web = format!("basic_auth_users:\n  prometheus: '{hash}'\n");
    let d = daemon(&dir, Some(&web), &Wire::Plain, None);
    // 200 wrong passwords at once from ten addresses (each a bcrypt check at cost 10), then the
    // scraper's first, uncached, request from its own.
    let flood = Flood::start(d.addr, &attackers(), 20, &basic("prometheus", "wrong"));
    flood.wait_sent();
    let right = basic("prometheus", "right");
    let scraped = scrape(
        d.addr,
        scraper(),
        &Wire::Plain,
        Duration::ZERO,
        "/metrics",
        Some(&right),
    );
    let answers = flood.answers();
    let count = |status| answers.iter().filter(|s| **s == status).count();
    assert_eq!(scraped, Ok(200));
    assert_eq!(count(401) + count(429), answers.len(), "{answers:?}");
    // Before the bound every one waited its turn for bcrypt (401 all, 5.8 s for the scraper
    // at cost 10); now those past the queue's bound are answered 429 at once.
    assert!(count(429) >= answers.len() / 2, "{answers:?}");
    // A remembered password never waits, however full the queue.
    let flood = Flood::start(d.addr, &attackers(), 20, &basic("prometheus", "wrong"));
    flood.wait_sent();
    let again = scrape(
        d.addr,
        scraper(),
        &Wire::Plain,
        Duration::ZERO,
        "/metrics",
        Some(&right),
    );
    assert_eq!(again, Ok(200));
    drop(flood.answers());
}
