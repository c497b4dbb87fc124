//! Runs many probes concurrently under a bound, each with its own cap and all under one
//! overall deadline, so a run never hangs. DNS answers are shared through the run's cache.
//! A probe that panics is an `internal_error` on its own target, never a timeout.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::catalog::{Check, Expect, Target};
use crate::net::trace::Probe as TraceProbe;
use crate::outcome::{ErrorKind, HopKind, Outcome, ProbeError, Status, Trace, TraceEnd};
use crate::probe::{self, ProbeEnv};

/// How a run is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub concurrency: usize,
    /// Each probe's deadline: its DNS lookup, connect, proxy CONNECT, TLS and request share it.
    pub timeout: Duration,
}

impl Limits {
    /// A probe's own deadline ends it; this cap (1.2 times the timeout) is the safety net.
    pub fn probe_cap(&self) -> Duration {
        Self::cap(self.timeout)
    }

    /// A target's cap: from its own `timeout` when the catalog gives one.
    pub fn probe_cap_for(&self, target: &Target) -> Duration {
        Self::cap(target.timeout.unwrap_or(self.timeout))
    }

    fn cap(timeout: Duration) -> Duration {
        timeout + timeout / 5
    }

    /// The whole run: one probe cap per wave the concurrency allows, and a second to spare.
    pub fn run_deadline(&self, targets: usize) -> Duration {
        let waves = targets.div_ceil(self.concurrency.max(1)).max(1) as u32;
        self.probe_cap() * waves + Duration::from_secs(1)
    }
}

/// One target's result.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Shared with the plan: a run copies no target.
    pub target: Arc<Target>,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// Told when each probe starts and ends (the progress line); must not block.
pub trait Observer: Send + Sync {
    fn started(&self, index: usize, target: &Target);
    fn finished(&self, index: usize, outcome: &Outcome);
}

/// Runs every target; the results come back in the targets' order.
pub async fn run(targets: Vec<Arc<Target>>, env: Arc<ProbeEnv>, limits: Limits) -> Vec<Finished> {
    run_observed(targets, env, limits, None).await
}

/// `run`, telling `observer` as probes start and finish.
pub async fn run_observed(
    targets: Vec<Arc<Target>>,
    env: Arc<ProbeEnv>,
    limits: Limits,
    observer: Option<Arc<dyn Observer>>,
) -> Vec<Finished> {
    drive(targets, env, limits, observer, |target, env| async move {
        probe::run(&target, &env).await
    })
    .await
}

/// `run` with the probe as an argument: the seam where tests put a probe that misbehaves.
pub async fn run_with<P, F>(
    targets: Vec<Arc<Target>>,
    env: Arc<ProbeEnv>,
    limits: Limits,
    probe: P,
) -> Vec<Finished>
where
    P: Fn(Arc<Target>, Arc<ProbeEnv>) -> F,
    F: Future<Output = Outcome> + Send + 'static,
{
    drive(targets, env, limits, None, probe).await
}

async fn drive<P, F>(
    targets: Vec<Arc<Target>>,
    env: Arc<ProbeEnv>,
    limits: Limits,
    observer: Option<Arc<dyn Observer>>,
    probe: P,
) -> Vec<Finished>
where
    P: Fn(Arc<Target>, Arc<ProbeEnv>) -> F,
    F: Future<Output = Outcome> + Send + 'static,
{
    // A target with a longer `timeout` of its own extends the run by its extra cap, once.
    let extra = targets
        .iter()
        .map(|t| limits.probe_cap_for(t).saturating_sub(limits.probe_cap()))
        .max()
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + limits.run_deadline(targets.len()) + extra;
    let concurrency = limits.concurrency.max(1);
    // At most `concurrency` probes exist at any time, so memory follows the concurrency, not
    // the number of targets: the next one is started when one ends.
    let mut set = JoinSet::new();
    let mut task_of = HashMap::new();
    let mut next = 0;
    let mut results: Vec<Option<(Outcome, Duration)>> = vec![None; targets.len()];
    loop {
        while set.len() < concurrency && next < targets.len() {
            let (i, probing) = (next, probe(Arc::clone(&targets[next]), env.clone()));
            let cap = limits.probe_cap_for(&targets[i]);
            if let Some(o) = &observer {
                o.started(i, &targets[i]);
            }
            next += 1;
            let task = set.spawn(async move {
                let start = Instant::now();
                let outcome = tokio::time::timeout(cap, probing).await.ok();
                (i, outcome, start.elapsed())
            });
            task_of.insert(task.id(), i);
        }
        match tokio::time::timeout_at(deadline, set.join_next_with_id()).await {
            Ok(Some(Ok((id, (i, outcome, took))))) => {
                task_of.remove(&id);
                let outcome = outcome.unwrap_or_else(|| {
                    let why = format!(
                        "the probe took longer than its cap of {} ms",
                        limits.probe_cap_for(&targets[i]).as_millis()
                    );
                    timed_out(&targets[i], why)
                });
                if let Some(o) = &observer {
                    o.finished(i, &outcome);
                }
                results[i] = Some((outcome, took));
            }
            Ok(Some(Err(e))) => {
                let task = task_of.remove(&e.id());
                let why = match e.try_into_panic() {
                    Ok(payload) => panic_message(payload.as_ref()),
                    Err(e) => e.to_string(),
                };
                match task {
                    Some(i) => {
                        let target = &targets[i];
                        log::error!("the probe of {} failed: {why}", target.id);
                        let message = format!(
                            "the probe failed inside vnetprobe (a bug, please report it): {why}"
                        );
                        let outcome = internal(target, message);
                        if let Some(o) = &observer {
                            o.finished(i, &outcome);
                        }
                        results[i] = Some((outcome, Duration::ZERO));
                    }
                    None => log::error!("a probe task failed: {why}"),
                }
            }
            // Empty, and every target was started (the set is filled before each wait).
            Ok(None) => break,
            Err(_) => {
                set.abort_all();
                break;
            }
        }
    }
    targets
        .into_iter()
        .zip(results)
        .map(|(target, r)| {
            let (outcome, duration) = r.unwrap_or_else(|| {
                let why = "the run's overall deadline passed before this probe finished";
                (timed_out(&target, why.into()), Duration::ZERO)
            });
            Finished {
                target,
                outcome,
                duration,
            }
        })
        .collect()
}

/// What a panic carried, when it is text.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (
        payload.downcast_ref::<&str>(),
        payload.downcast_ref::<String>(),
    ) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".to_string(),
    }
}

/// A probe that failed inside this program: a failure whatever the expectation.
fn internal(target: &Target, message: String) -> Outcome {
    probe::judge(
        target,
        Err(ProbeError::new(ErrorKind::Internal, message)),
        Default::default(),
    )
}

/// A probe cut off by a deadline, judged like any other failure (a blocked path may pass).
fn timed_out(target: &Target, message: String) -> Outcome {
    probe::judge(
        target,
        Err(ProbeError::new(ErrorKind::Timeout, message)),
        Default::default(),
    )
}

/// Which results a run traces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceScope {
    /// `check --trace`: failures a trace can explain (`tcp_timeout`, `tls_reset_after_hello`,
    /// UDP silence), direct paths only.
    Failures,
    /// `probe trace`: the target, whatever its result.
    Every,
}

/// The most paths one run traces; the rest carry a warning. With at most
/// `net::trace::WINDOW` sockets per trace, this bounds the run's extra sockets too.
pub const MAX_TRACES: usize = 64;

/// The path a result asks to have traced: its address, port and first packet.
fn trace_path(f: &Finished, scope: TraceScope) -> Option<(SocketAddr, TraceProbe)> {
    let (t, o) = (&f.target, &f.outcome);
    let ev = &o.evidence;
    if ev.via_proxy.is_some() || o.status == Status::Skip || t.expect == Expect::Blocked {
        return None;
    }
    let probe = match &t.check {
        Check::Dns => return None,
        Check::Udp { payload, .. } => TraceProbe::Udp(payload.clone()),
        _ => TraceProbe::Tcp,
    };
    let wanted = match scope {
        TraceScope::Every => true,
        TraceScope::Failures => match (&o.error, &probe) {
            (Some(e), _) => TRACED_KINDS.contains(&e.kind),
            // UDP silence: a pass the node could not confirm.
            (None, TraceProbe::Udp(_)) => ev.unverified.is_some(),
            (None, TraceProbe::Tcp) => false,
        },
    };
    let ip = ev.peer.map(|p| p.ip()).or(ev.addresses.first().copied())?;
    let port = t.port()?;
    wanted.then(|| (SocketAddr::new(ip, port), probe))
}

/// The failures whose traces say where the packet stopped.
const TRACED_KINDS: &[ErrorKind] = &[ErrorKind::TcpTimeout, ErrorKind::TlsResetAfterHello];

/// Traces the paths of `finished` that `scope` selects: one trace per distinct address,
/// protocol and port (shared by every result on it), at most `MAX_TRACES`, all at once, so
/// the run takes at most `budget` more.
pub async fn trace(finished: &mut [Finished], budget: Duration, max_ttl: u8, scope: TraceScope) {
    let mut paths: BTreeMap<(SocketAddr, TraceProbe), Vec<usize>> = BTreeMap::new();
    for (i, f) in finished.iter().enumerate() {
        if let Some(path) = trace_path(f, scope) {
            paths.entry(path).or_default().push(i);
        }
    }
    let mut set = JoinSet::new();
    for (n, ((to, probe), members)) in paths.into_iter().enumerate() {
        if n >= MAX_TRACES {
            for i in members {
                finished[i].outcome.evidence.warnings.push(format!(
                    "not traced: a run traces at most {MAX_TRACES} paths"
                ));
            }
            continue;
        }
        set.spawn(async move {
            (
                members,
                crate::net::trace::trace(to, &probe, max_ttl, budget).await,
            )
        });
    }
    // Each trace keeps to its budget; this is the net under it.
    let deadline = tokio::time::Instant::now() + budget + Duration::from_millis(200);
    let mut traced_paths = Vec::new();
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, set.join_next()).await {
        match joined {
            Ok(done) => traced_paths.push(done),
            Err(e) => log::error!("a trace failed inside vnetprobe: {e}"),
        }
    }
    set.abort_all();
    for (members, traced) in traced_paths.iter() {
        log::debug!("trace of {}: {}", traced.to, traced.summary);
        let warning = rate_limited(traced, traced_paths.iter().map(|(_, t)| t));
        let traced = Box::new(traced.clone());
        for &i in members {
            let ev = &mut finished[i].outcome.evidence;
            ev.trace = Some(traced.clone());
            ev.warnings.extend(warning.clone());
        }
    }
}

/// A trace that no TTL answered, in a run where hop 1 answered another path's trace of the same
/// family: that router may have let the answer go to its ICMP rate limit (Linux: 1 s per
/// destination after a small burst), so the silence proves less than it seems.
fn rate_limited<'a>(t: &Trace, all: impl Iterator<Item = &'a Trace>) -> Option<String> {
    if t.ended != TraceEnd::NoHopAnswered {
        return None;
    }
    let first = all
        .filter(|o| o.to.is_ipv4() == t.to.is_ipv4())
        .flat_map(|o| o.hops.iter())
        .find(|h| h.ttl == 1 && h.kind == HopKind::TimeExceeded)?;
    Some(format!(
        "trace: no TTL was answered, though hop 1 {} answered another path's trace in this run; \
         its ICMP rate limit may have silenced it here",
        first.address
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Check, Expect, adhoc};
    use crate::outcome::Status;
    use crate::probe::dns::DnsCache;

    fn target(host: &str, expect: Expect) -> Arc<Target> {
        let check = Check::Tcp {
            port: 1,
            responder: false,
        };
        Arc::new(adhoc::target(host.into(), check, expect))
    }

    fn traced(to: &str, hop1: Option<&str>) -> Trace {
        let hops: Vec<crate::outcome::Hop> = hop1
            .map(|a| crate::outcome::Hop {
                ttl: 1,
                address: a.parse().unwrap(),
                rtt_ms: 0.3,
                kind: HopKind::TimeExceeded,
                icmp_type: Some(11),
                icmp_code: Some(0),
                meaning: "time exceeded".into(),
            })
            .into_iter()
            .collect();
        Trace {
            protocol: "tcp".into(),
            to: to.parse().unwrap(),
            probed_ttl: 16,
            ended: match hops.is_empty() {
                true => TraceEnd::NoHopAnswered,
                false => TraceEnd::SilentAfterHop,
            },
            at: hops.first().cloned(),
            hops,
            duration_ms: 1000.0,
            summary: "s".into(),
        }
    }

    #[test]
    fn silence_beside_a_hop_that_answered_another_trace_is_flagged() {
        let seen = traced("10.0.2.4:443", Some("10.0.1.4"));
        let dark = traced("10.0.2.5:443", None);
        let dark6 = traced("[fd00::5]:443", None);
        let all = [seen.clone(), dark.clone(), dark6.clone()];
        let w = rate_limited(&dark, all.iter()).expect("a warning");
        assert!(
            w.contains("hop 1 10.0.1.4 answered another path's trace"),
            "{w}"
        );
        assert_eq!(rate_limited(&seen, all.iter()), None, "it was answered");
        assert_eq!(rate_limited(&dark6, all.iter()), None, "another family");
        assert_eq!(rate_limited(&dark, [dark.clone()].iter()), None, "alone");
    }

    #[tokio::test]
    async fn a_panicking_probe_is_an_internal_error_on_its_own_target() {
        let timeout = Duration::from_millis(200);
        let dns = DnsCache::new(None, timeout).unwrap();
        let env = Arc::new(ProbeEnv::new(dns, timeout, Default::default()));
        let targets = vec![
            target("fine.test", Expect::Reachable),
            target("boom.test", Expect::Reachable),
            // A probe that panics proves nothing about a path: never a pass, even for "blocked".
            target("boom.test", Expect::Blocked),
        ];
        let limits = Limits {
            concurrency: 2,
            timeout,
        };
        let finished = run_with(targets, env, limits, |t, _| async move {
            if t.host.ready() == Some("boom.test") {
                panic!("port arithmetic overflowed");
            }
            Outcome {
                status: Status::Pass,
                error: None,
                skip_reason: None,
                evidence: Default::default(),
            }
        })
        .await;
        assert_eq!(finished[0].outcome.status, Status::Pass);
        for f in &finished[1..] {
            assert_eq!(f.outcome.status, Status::Fail, "{f:?}");
            let e = f.outcome.error.as_ref().unwrap();
            assert_eq!(e.kind, ErrorKind::Internal);
            assert!(e.message.contains("port arithmetic overflowed"), "{e}");
            assert!(!e.message.contains("deadline"), "{e}");
        }
    }
}
