//! Probes: one module per protocol, each turning a `Target` into evidence and a verdict.
//! A probe never prints.

pub mod dns;
pub mod http;
pub mod peer;
pub mod route;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod ws;

use std::time::Duration;

use tokio::time::Instant;

pub use crate::outcome::{
    CertInfo, ErrorKind, Evidence, Layer, Outcome, Phase, ProbeError, ResponderEvidence, Status,
    TlsEvidence,
};

use crate::catalog::{Check, Direction, Expect, Host, Target, unset_reason};
use crate::net::echo::Transport;
use crate::net::proxy::Client;

/// The skip reason of every inbound row: nothing the node sends proves a rule for traffic to it.
pub const INBOUND_SKIP: &str = "inbound: cannot be observed from this node";
use crate::net::NetConfig;
use dns::{DnsCache, Resolved};

tokio::task_local! {
    /// The running target's own `timeout` from the catalog, for the duration of its probe.
    static TARGET_TIMEOUT: Duration;
}

/// Everything a probe needs from its run.
pub struct ProbeEnv {
    pub dns: DnsCache,
    /// The run's deadline of each network wait (DNS lookup, and the connection exchange); a
    /// probe reads `timeout()`, which honours its target's own `timeout`.
    pub timeout: Duration,
    pub net: NetConfig,
    /// The TLS trust, loaded on the first handshake of the run (see `net::tls`).
    pub(crate) tls: crate::net::tls::TrustCell,
    /// The run's confirmations of a reset after the ClientHello (one HTTP request per FQDN).
    pub(crate) firewall: crate::net::firewall::Asked,
}

impl ProbeEnv {
    pub fn new(dns: DnsCache, timeout: Duration, net: NetConfig) -> ProbeEnv {
        ProbeEnv {
            dns,
            timeout,
            net,
            tls: Default::default(),
            firewall: Default::default(),
        }
    }
}

/// Where a probe connects: an expanded host, the port of its check, and whose proxy route
/// applies (for TLS, HTTP and WebSocket).
#[derive(Debug, Clone, Copy)]
pub struct Dest<'a> {
    pub host: &'a str,
    pub port: u16,
    pub client: Client,
}

tokio::task_local! {
    /// The end of the running probe: `--timeout` after it started. Every wait of the probe
    /// (DNS, connect, proxy CONNECT, TLS, request) takes what is left of it, never a fresh one.
    static DEADLINE: Instant;
}

/// The running probe's deadline (a whole timeout from now outside a probe).
pub fn deadline(env: &ProbeEnv) -> Instant {
    DEADLINE
        .try_with(|d| *d)
        .unwrap_or_else(|_| Instant::now() + env.timeout)
}

/// What is left of the running probe's deadline.
pub fn remaining(env: &ProbeEnv) -> Duration {
    deadline(env).saturating_duration_since(Instant::now())
}

impl ProbeEnv {
    /// The wait for each network step of the running probe: its target's `timeout` from the
    /// catalog, else the run's. DNS answers are shared between targets and keep the run's.
    pub fn timeout(&self) -> Duration {
        TARGET_TIMEOUT.try_with(|t| *t).unwrap_or(self.timeout)
    }
}

/// Resolves a host through the run's shared cache, recording the evidence.
pub async fn resolve(
    host: &str,
    env: &ProbeEnv,
    ev: &mut Evidence,
) -> Result<Resolved, ProbeError> {
    ev.resolver = Some(env.dns.server().to_string());
    match env.dns.resolve_within(host, remaining(env)).await {
        Ok(r) => {
            r.record(ev);
            Ok(r)
        }
        Err((e, elapsed)) => {
            ev.phase(Phase::Dns, elapsed);
            Err(e)
        }
    }
}

/// Runs one target, all of it within one `--timeout`, and judges the result against its
/// expectation.
pub async fn run(target: &Target, env: &ProbeEnv) -> Outcome {
    let host = match &target.host {
        Host::Ready(host) => host.as_str(),
        Host::Unset { missing, .. } => return Outcome::skip(unset_reason(missing)),
    };
    if target.direction == Direction::Inbound {
        return Outcome::skip(INBOUND_SKIP);
    }
    let at = |port: &u16| Dest {
        host,
        port: *port,
        client: target.client,
    };
    let mut ev = Evidence::default();
    // Each protocol's future on the heap at its own size: a future holding any of them inline
    // would be as large as the largest (WebSocket through a proxy), moved and allocated for
    // every target, and that copying was most of a loopback run's CPU.
    let ev_ref = &mut ev;
    let probing: std::pin::Pin<Box<dyn Future<Output = Result<(), ProbeError>> + Send + '_>> =
        match &target.check {
            Check::Dns => Box::pin(dns::probe(host, target.expect, env, ev_ref)),
            Check::Tcp {
                port,
                responder: true,
            } => Box::pin(peer::probe(at(port), Transport::Tcp, env, ev_ref)),
            Check::Udp {
                port,
                responder: true,
                ..
            } => Box::pin(peer::probe(at(port), Transport::Udp, env, ev_ref)),
            Check::Tcp { port, .. } => Box::pin(tcp::probe(at(port), env, ev_ref)),
            Check::Udp { port, payload, .. } => {
                Box::pin(udp::probe(at(port), payload, target.expect, env, ev_ref))
            }
            Check::Tls { port } => Box::pin(tls::probe(at(port), env, ev_ref)),
            Check::Http {
                port,
                web,
                method,
                accept,
            } => {
                let ask = http::Ask {
                    web,
                    method: *method,
                    accept,
                };
                Box::pin(http::probe(at(port), ask, env, ev_ref))
            }
            Check::Ws { port, web } => Box::pin(ws::probe(at(port), web, env, ev_ref)),
        };
    let timeout = target.timeout.unwrap_or(env.timeout);
    let result = TARGET_TIMEOUT
        .scope(timeout, DEADLINE.scope(Instant::now() + timeout, probing))
        .await;
    judge(target, result, ev)
}

/// Applies the target's expectation to what the probe saw.
pub fn judge(target: &Target, result: Result<(), ProbeError>, evidence: Evidence) -> Outcome {
    let (status, error) = match (target.expect, result) {
        // A connect the firewall may have answered itself proves neither reach nor block.
        (Expect::Blocked, Ok(()))
            if matches!(target.check, Check::Tcp { .. }) && evidence.unverified.is_some() =>
        {
            let mut evidence = evidence;
            let why = evidence.unverified.take().unwrap_or_default();
            evidence.unverified = Some(format!(
                "connected, but {why}: it may still be blocked beyond the firewall"
            ));
            return Outcome {
                status: Status::Pass,
                error: None,
                skip_reason: None,
                evidence: Box::new(evidence),
            };
        }
        (Expect::Blocked, Ok(())) => {
            let what = evidence
                .peer
                .map(|p| p.to_string())
                .unwrap_or_else(|| target.endpoint());
            (
                Status::Fail,
                Some(ProbeError::new(
                    ErrorKind::UnexpectedlyReachable,
                    format!("{what} answered, but this path should be blocked"),
                )),
            )
        }
        // Storage answers a request that a service endpoint policy denies with 403; any other
        // status that is not a success proves neither reach nor block.
        (Expect::Blocked, Err(e))
            if e.kind == ErrorKind::HttpStatus && evidence.http_status != Some(403) =>
        {
            let code = evidence.http_status.unwrap_or_default();
            (
                Status::Fail,
                Some(ProbeError::new(
                    ErrorKind::HttpStatus,
                    format!(
                        "{} answered {code}: neither a success (reached) nor a 403 (denied), so the check proves nothing; name a publicly readable object",
                        target.endpoint()
                    ),
                )),
            )
        }
        (Expect::Blocked, Err(e)) if e.kind.is_blocking() || e.kind == ErrorKind::HttpStatus => {
            let mut evidence = evidence;
            evidence.note(match e.kind {
                ErrorKind::HttpStatus => {
                    "blocked as expected (HTTP 403: the request was denied, as a service endpoint policy does)".to_string()
                }
                kind => format!("blocked as expected ({kind})"),
            });
            return Outcome {
                status: Status::Pass,
                error: None,
                skip_reason: None,
                evidence: Box::new(evidence),
            };
        }
        (_, Ok(())) => (Status::Pass, None),
        (_, Err(e)) => (Status::Fail, Some(e)),
    };
    Outcome {
        status,
        error,
        skip_reason: None,
        evidence: Box::new(evidence),
    }
}
