//! `check --wait DUR`: the network of a fresh node is often still coming up when its setup
//! script runs. Re-run the failing targets with backoff (1 s doubling to 15 s) until they pass
//! or DUR is over; the report holds each target's last attempt, its number of attempts and when
//! it became reachable.

use std::time::{Duration, Instant, SystemTime};

use crate::catalog::Expect;
use crate::outcome::Status;
use crate::plan::{Plan, UsageError};
use crate::progress::Progress;
use crate::report::{Report, WaitEntry};

const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(15);

/// The pause before attempt `n + 1` (n >= 1): 1 s, 2 s, 4 s, 8 s, then 15 s.
pub fn backoff(attempt: u32) -> Duration {
    FIRST_PAUSE
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(MAX_PAUSE)
}

/// Runs the plan; with `wait`, re-runs what fails until it passes or `wait` is over. The last
/// attempt starts at the end of `wait` at the latest and is bounded by its own probe caps.
pub async fn check(
    plan: &Plan,
    wait: Option<Duration>,
    progress: Option<&Progress>,
) -> Result<Report, UsageError> {
    let started = SystemTime::now();
    let clock = Instant::now();
    let observer = progress.map(Progress::observer);
    let mut finished = plan
        .run_targets(plan.targets.clone(), observer.clone())
        .await?;
    let Some(wait) = wait else {
        plan.trace(&mut finished).await;
        return Ok(plan.report(finished, started, clock.elapsed()));
    };
    let deadline = clock + wait;
    let mut attempts = vec![1u32; finished.len()];
    let mut reachable: Vec<Option<Duration>> = finished
        .iter()
        .map(|f| (f.outcome.status == Status::Pass).then_some(f.duration))
        .collect();
    let mut attempt = 1;
    loop {
        // A blocked path that answers will not close by waiting: only reachability is retried.
        let failing: Vec<usize> = finished
            .iter()
            .enumerate()
            .filter(|(_, f)| f.outcome.status == Status::Fail && f.target.expect != Expect::Blocked)
            .map(|(i, _)| i)
            .collect();
        let now = Instant::now();
        if failing.is_empty() || now >= deadline {
            break;
        }
        let next = now + backoff(attempt).min(deadline - now);
        log::info!(
            "--wait: {} target(s) failing after attempt {attempt}; the next in {} ms",
            failing.len(),
            (next - now).as_millis()
        );
        if let Some(p) = progress {
            p.note(
                format!(
                    "waiting for the network: {} of {} failing; attempt {}",
                    failing.len(),
                    finished.len(),
                    attempt + 1
                ),
                next,
            );
        }
        tokio::time::sleep_until(next.into()).await;
        attempt += 1;
        if let Some(p) = progress {
            p.restart(failing.len());
        }
        let offset = clock.elapsed();
        let targets = failing
            .iter()
            .map(|i| finished[*i].target.clone())
            .collect();
        let again = plan.run_targets(targets, observer.clone()).await?;
        for (i, f) in failing.iter().zip(again) {
            attempts[*i] += 1;
            if f.outcome.status == Status::Pass {
                reachable[*i] = Some(offset + f.duration);
            }
            finished[*i] = f;
        }
    }
    plan.trace(&mut finished).await;
    let mut report = plan.report(finished, started, clock.elapsed());
    for (i, r) in report.results.iter_mut().enumerate() {
        if r.status != Status::Skip {
            r.wait = Some(WaitEntry {
                attempts: attempts[i],
                reachable_after_ms: reachable[i]
                    .filter(|_| r.status == Status::Pass)
                    .map(|d| (d.as_secs_f64() * 100_000.0).round() / 100.0),
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_fifteen_seconds() {
        let pauses: Vec<u64> = (1..=7).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 15, 15, 15]);
        assert_eq!(backoff(u32::MAX), MAX_PAUSE);
    }
}
