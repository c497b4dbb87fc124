//! Runs many probes concurrently under a bound, each with its own cap and all under one
//! overall deadline, so a run never hangs. DNS answers are shared through the run's cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::catalog::Target;
use crate::probe::{self, ErrorKind, Outcome, ProbeEnv, ProbeError};

/// How a run is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub concurrency: usize,
    /// The deadline of each network wait; a probe is capped at twice this (lookup + exchange).
    pub timeout: Duration,
}

impl Limits {
    pub fn probe_cap(&self) -> Duration {
        Self::cap(self.timeout)
    }

    /// A target's cap: from its own `timeout` when the catalog gives one.
    pub fn probe_cap_for(&self, target: &Target) -> Duration {
        Self::cap(target.spec.timeout.unwrap_or(self.timeout))
    }

    fn cap(timeout: Duration) -> Duration {
        timeout * 2 + Duration::from_millis(250)
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
    pub target: Target,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// Told when each probe starts and ends (the progress line); must not block.
pub trait Observer: Send + Sync {
    fn started(&self, index: usize, target: &Target);
    fn finished(&self, index: usize, outcome: &Outcome);
}

/// Runs every target; the results come back in the targets' order.
pub async fn run(targets: Vec<Target>, env: Arc<ProbeEnv>, limits: Limits) -> Vec<Finished> {
    run_observed(targets, env, limits, None).await
}

/// `run`, telling `observer` as probes start and finish.
pub async fn run_observed(
    targets: Vec<Target>,
    env: Arc<ProbeEnv>,
    limits: Limits,
    observer: Option<Arc<dyn Observer>>,
) -> Vec<Finished> {
    // A target with a longer `timeout` of its own extends the run by its extra cap, once.
    let extra = targets
        .iter()
        .map(|t| limits.probe_cap_for(t).saturating_sub(limits.probe_cap()))
        .max()
        .unwrap_or_default();
    let deadline = tokio::time::Instant::now() + limits.run_deadline(targets.len()) + extra;
    let permits = Arc::new(Semaphore::new(limits.concurrency.max(1)));
    let mut set = JoinSet::new();
    for (i, target) in targets.iter().cloned().enumerate() {
        let (env, permits, observer) = (env.clone(), permits.clone(), observer.clone());
        let cap = limits.probe_cap_for(&target);
        set.spawn(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .expect("semaphore never closed");
            if let Some(o) = &observer {
                o.started(i, &target);
            }
            let start = Instant::now();
            let outcome = match tokio::time::timeout(cap, probe::run(&target, &env)).await {
                Ok(o) => o,
                Err(_) => timed_out(
                    &target,
                    format!(
                        "the probe took longer than its cap of {} ms",
                        cap.as_millis()
                    ),
                ),
            };
            if let Some(o) = &observer {
                o.finished(i, &outcome);
            }
            (i, outcome, start.elapsed())
        });
    }
    let mut results: Vec<Option<(Outcome, Duration)>> = vec![None; targets.len()];
    loop {
        match tokio::time::timeout_at(deadline, set.join_next()).await {
            Ok(Some(Ok((i, outcome, took)))) => results[i] = Some((outcome, took)),
            Ok(Some(Err(e))) => crate::log::error(&format!("a probe task failed: {e}")),
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

/// A probe cut off by a deadline, judged like any other failure (a blocked path may pass).
fn timed_out(target: &Target, message: String) -> Outcome {
    probe::judge(
        target,
        Err(ProbeError::new(ErrorKind::Timeout, message)),
        Default::default(),
    )
}
