//! Name resolution through hickory (never libc): one lookup per distinct name per run, the CNAME
//! chain recorded, every address classified private or public.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::{Resolver, TokioResolver};
use tokio::sync::OnceCell;

use super::{ErrorKind, Evidence, Phase, ProbeEnv, ProbeError};
use crate::catalog::Expect;

/// RFC 1918, RFC 6598 (shared address space), loopback, link-local, ULA: addresses a private
/// endpoint or an internal service can have. Everything else counts as public.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private_v4(v4),
            None => {
                let seg0 = v6.segments()[0];
                v6.is_loopback()
                    || (seg0 & 0xfe00) == 0xfc00
                    || (seg0 & 0xffc0) == 0xfe80
                    || v6 == Ipv6Addr::UNSPECIFIED
            }
        },
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || (a == 100 && (64..128).contains(&b))
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub addrs: Vec<IpAddr>,
    pub cname_chain: Vec<String>,
    pub elapsed: Duration,
}

impl Resolved {
    pub fn all_private(&self) -> bool {
        self.addrs.iter().all(|a| is_private(*a))
    }

    /// Puts the answer into a probe's evidence.
    pub fn record(&self, ev: &mut Evidence) {
        ev.phase(Phase::Dns, self.elapsed);
        ev.addresses = self.addrs.clone();
        ev.private = Some(self.all_private());
        ev.cname_chain = self.cname_chain.clone();
    }
}

pub type DnsAnswer = Result<Resolved, (ProbeError, Duration)>;

/// The resolver of one run: answers are shared by every target on the same name, and nothing
/// is cached across runs (a new `DnsCache` per run).
pub struct DnsCache {
    resolver: TokioResolver,
    timeout: Duration,
    /// The server(s) for reports: `--dns-server`, or resolv.conf's nameservers.
    label: String,
    answers: Mutex<HashMap<String, Arc<OnceCell<DnsAnswer>>>>,
    lookups: AtomicUsize,
}

impl DnsCache {
    /// A resolver on `server`, or on the system's resolv.conf when None.
    pub fn new(server: Option<SocketAddr>, timeout: Duration) -> Result<DnsCache, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(sa) => {
                let mut conn = ConnectionConfig::udp();
                conn.port = sa.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = sa.port();
                let ns = NameServerConfig::new(sa.ip(), true, vec![conn, tcp]);
                Resolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), provider)
            }
            None => Resolver::builder(provider)
                .map_err(|e| format!("reading the system DNS configuration: {e}"))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.cache_size = 0;
        // One retry inside the deadline: a lost UDP datagram should not fail a probe.
        opts.timeout = (timeout / 2).max(Duration::from_millis(50));
        opts.attempts = 1;
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.preserve_intermediates = true;
        opts.use_hosts_file = if server.is_some() {
            ResolveHosts::Never
        } else {
            ResolveHosts::Always
        };
        let resolver = builder
            .build()
            .map_err(|e| format!("building the DNS resolver: {e}"))?;
        let label = match server {
            Some(sa) => sa.to_string(),
            None => system_nameservers(),
        };
        Ok(DnsCache {
            resolver,
            timeout,
            label,
            answers: Mutex::new(HashMap::new()),
            lookups: AtomicUsize::new(0),
        })
    }

    /// Distinct names looked up so far in this run.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Which server answers: "127.0.0.1:5353", or the system's ("10.0.0.4 (resolv.conf)").
    pub fn server(&self) -> &str {
        &self.label
    }

    /// `resolve`, waiting at most `wait` (what is left of the caller's deadline) for the answer,
    /// which may be another probe's lookup of the same name.
    pub async fn resolve_within(&self, host: &str, wait: Duration) -> DnsAnswer {
        match tokio::time::timeout(wait, self.resolve(host)).await {
            Ok(answer) => answer,
            Err(_) => Err((
                ProbeError::new(
                    ErrorKind::DnsTimeout,
                    format!(
                        "{host}: no DNS answer from {} within the probe's deadline",
                        self.server()
                    ),
                ),
                wait,
            )),
        }
    }

    /// Resolves `host` once per run; concurrent callers wait for the same answer.
    pub async fn resolve(&self, host: &str) -> DnsAnswer {
        let bare = crate::address::bare(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Resolved {
                addrs: vec![ip],
                cname_chain: vec![],
                elapsed: Duration::ZERO,
            });
        }
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        let cell = {
            let mut map = self.answers.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        cell.get_or_init(|| self.lookup(key)).await.clone()
    }

    async fn lookup(&self, name: String) -> DnsAnswer {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        // A trailing dot keeps search domains out of it: one name, one query set.
        let fqdn = if name.contains('.') {
            format!("{name}.")
        } else {
            name.clone()
        };
        let result =
            tokio::time::timeout(self.timeout, self.resolver.lookup_ip(fqdn.as_str())).await;
        let elapsed = start.elapsed();
        let lookup = match result {
            Err(_) => {
                return Err((
                    ProbeError::new(
                        ErrorKind::DnsTimeout,
                        format!(
                            "{name}: no DNS answer from {} within {} ms",
                            self.server(),
                            self.timeout.as_millis()
                        ),
                    ),
                    elapsed,
                ));
            }
            Ok(Err(e)) => return Err((classify(&name, &e, self.server()), elapsed)),
            Ok(Ok(l)) => l,
        };
        let mut cname_chain = vec![name.clone()];
        for record in lookup.as_lookup().answers() {
            if let RData::CNAME(c) = &record.data {
                let target = c.0.to_string().trim_end_matches('.').to_ascii_lowercase();
                if !cname_chain.contains(&target) {
                    cname_chain.push(target);
                }
            }
        }
        if cname_chain.len() == 1 {
            cname_chain.clear();
        }
        let mut addrs: Vec<IpAddr> = lookup.iter().collect();
        addrs.dedup();
        if addrs.is_empty() {
            return Err((
                ProbeError::new(
                    ErrorKind::DnsNoRecords,
                    format!("{name}: no A or AAAA record"),
                ),
                elapsed,
            ));
        }
        Ok(Resolved {
            addrs,
            cname_chain,
            elapsed,
        })
    }
}

/// The nameservers of /etc/resolv.conf, for messages: "10.0.0.4, 10.0.0.5 (resolv.conf)".
fn system_nameservers() -> String {
    use std::io::Read;
    let mut text = String::new();
    let read = std::fs::File::open("/etc/resolv.conf")
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text));
    let servers: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .filter(|ip| ip.parse::<IpAddr>().is_ok())
        .take(3)
        .collect();
    match (read, servers.is_empty()) {
        (Ok(_), false) => format!("{} (resolv.conf)", servers.join(", ")),
        _ => "the system resolver".into(),
    }
}

fn classify(name: &str, e: &NetError, server: &str) -> ProbeError {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(nr))
            if nr.response_code == ResponseCode::NXDomain =>
        {
            ProbeError::new(
                ErrorKind::DnsNxdomain,
                format!("{name}: NXDOMAIN from {server}"),
            )
        }
        NetError::Dns(DnsError::NoRecordsFound(_)) => ProbeError::new(
            ErrorKind::DnsNoRecords,
            format!("{name}: the name exists but has no A or AAAA record"),
        ),
        NetError::Dns(DnsError::ResponseCode(code)) => ProbeError::new(
            ErrorKind::DnsServfail,
            format!("{name}: {server} answered {code}"),
        ),
        NetError::Timeout => ProbeError::new(
            ErrorKind::DnsTimeout,
            format!("{name}: no DNS answer from {server}"),
        ),
        other => ProbeError::new(ErrorKind::DnsServfail, format!("{name}: {other}")),
    }
}

/// The DNS probe proper: resolve, then hold the answer to the target's expectation.
pub async fn probe(
    host: &str,
    expect: Expect,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<(), ProbeError> {
    let resolved = super::resolve(host, env, ev).await?;
    let chain = if resolved.cname_chain.is_empty() {
        "no CNAME".to_string()
    } else {
        format!("CNAME chain {}", resolved.cname_chain.join(" -> "))
    };
    match expect {
        Expect::Private => {
            let public: Vec<String> = resolved
                .addrs
                .iter()
                .filter(|a| !is_private(**a))
                .map(|a| a.to_string())
                .collect();
            if !public.is_empty() {
                let via = if resolved
                    .cname_chain
                    .iter()
                    .any(|c| c.contains(".privatelink.") || c.starts_with("privatelink."))
                {
                    ""
                } else {
                    " and no privatelink zone in the answer"
                };
                return Err(ProbeError::new(
                    ErrorKind::DnsNotPrivate,
                    format!(
                        "{host} resolves to public {} ({chain}{via})",
                        public.join(", ")
                    ),
                ));
            }
            ev.note(match resolved.cname_chain.last() {
                Some(last) => format!("private via {last}"),
                None => "private (no CNAME)".to_string(),
            });
        }
        Expect::Public => {
            let private: Vec<String> = resolved
                .addrs
                .iter()
                .filter(|a| is_private(**a))
                .map(|a| a.to_string())
                .collect();
            if !private.is_empty() {
                return Err(ProbeError::new(
                    ErrorKind::DnsNotPublic,
                    format!(
                        "{host} resolves to private {} ({chain})",
                        private.join(", ")
                    ),
                ));
            }
        }
        Expect::Reachable | Expect::Blocked => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for private in [
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.169.254",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(
                is_private(private.parse().unwrap()),
                "{private} should be private"
            );
        }
        for public in [
            "20.50.1.2",
            "172.32.0.1",
            "100.128.0.1",
            "198.51.100.7",
            "8.8.8.8",
            "2001:db8::1",
            "::ffff:20.1.1.1",
        ] {
            assert!(
                !is_private(public.parse().unwrap()),
                "{public} should be public"
            );
        }
    }
}
