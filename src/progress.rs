//! The live progress line of `check` on a terminal's stderr: targets done of the total, failures
//! so far, and the slowest target still waiting; cleared before the report is printed. Only
//! drawn when stderr is a terminal and the output is the table (see `app`), never with --quiet.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::catalog::Target;
use crate::outcome::{Outcome, Status};
use crate::runner::Observer;

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(100);
/// Erase the whole line and return to its start.
pub const CLEAR: &str = "\r\x1b[2K";

#[derive(Default)]
struct Counts {
    total: usize,
    done: usize,
    failed: usize,
    /// Probes in flight: index -> (target id, start).
    waiting: BTreeMap<usize, (String, Instant)>,
    /// Shown when nothing is in flight (between the attempts of `--wait`), with a countdown
    /// to the instant: "{note} in N s".
    note: Option<(String, Instant)>,
    stop: bool,
}

struct Shared {
    counts: Mutex<Counts>,
    wake: Condvar,
}

impl Observer for Shared {
    fn started(&self, index: usize, target: &Target) {
        let mut c = self.counts.lock().expect("progress lock");
        c.waiting.insert(index, (target.id.clone(), Instant::now()));
    }

    fn finished(&self, index: usize, outcome: &Outcome) {
        let mut c = self.counts.lock().expect("progress lock");
        c.waiting.remove(&index);
        c.done += 1;
        c.failed += usize::from(outcome.status == Status::Fail);
    }
}

/// The line for `counts` at `now`, at most `width - 1` columns (so it never wraps).
fn line(c: &Counts, now: Instant, width: usize) -> String {
    let mut s = if c.waiting.is_empty()
        && let Some((note, at)) = &c.note
    {
        let secs = at.saturating_duration_since(now).as_secs_f64().ceil();
        format!("vnetprobe: {note} in {secs:.0} s")
    } else {
        let mut s = format!("vnetprobe: {}/{} done", c.done, c.total);
        if c.failed > 0 {
            s.push_str(&format!(", {} failed", c.failed));
        }
        if let Some((id, since)) = c.waiting.values().min_by_key(|(_, since)| *since) {
            let secs = now.saturating_duration_since(*since).as_secs_f64();
            s.push_str(&format!(" · waiting {secs:.1} s on {id}"));
            if c.waiting.len() > 1 {
                s.push_str(&format!(" (+{} more)", c.waiting.len() - 1));
            }
        }
        s
    };
    let max = width.saturating_sub(1);
    if s.chars().count() > max {
        s = s.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
    }
    s
}

/// A progress line drawn on stderr by a thread of its own until `finish`.
pub struct Progress {
    shared: Arc<Shared>,
    drawer: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts drawing for a run of `total` targets, `width` columns wide.
    pub fn start(total: usize, width: usize) -> Progress {
        let shared = Arc::new(Shared {
            counts: Mutex::new(Counts {
                total,
                ..Counts::default()
            }),
            wake: Condvar::new(),
        });
        let drawing = shared.clone();
        let drawer = std::thread::spawn(move || {
            loop {
                // The lock is not held while writing: a slow terminal must not stall probes.
                let text = {
                    let counts = drawing.counts.lock().expect("progress lock");
                    if counts.stop {
                        break;
                    }
                    line(&counts, Instant::now(), width)
                };
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "{CLEAR}{text}");
                let _ = err.flush();
                drop(err);
                let counts = drawing.counts.lock().expect("progress lock");
                if counts.stop {
                    break;
                }
                let _ = drawing.wake.wait_timeout(counts, TICK);
            }
        });
        Progress {
            shared,
            drawer: Some(drawer),
        }
    }

    /// What the runner tells as probes start and finish.
    pub fn observer(&self) -> Arc<dyn Observer> {
        self.shared.clone()
    }

    /// A new attempt of `total` targets (`check --wait`).
    pub fn restart(&self, total: usize) {
        let mut c = self.shared.counts.lock().expect("progress lock");
        (c.total, c.done, c.failed, c.note) = (total, 0, 0, None);
        c.waiting.clear();
    }

    /// The line to show while nothing runs: `note` and a countdown to `at`.
    pub fn note(&self, note: String, at: Instant) {
        self.shared.counts.lock().expect("progress lock").note = Some((note, at));
        self.shared.wake.notify_one();
    }

    /// Stops drawing and erases the line, so the report starts on a clean line.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.counts.lock().expect("progress lock").stop = true;
        self.shared.wake.notify_one();
        if let Some(d) = self.drawer.take() {
            let _ = d.join();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "{CLEAR}");
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_the_slowest_target_still_waiting() {
        let now = Instant::now();
        let mut c = Counts {
            total: 52,
            done: 37,
            failed: 2,
            ..Counts::default()
        };
        c.waiting
            .insert(3, ("fast".into(), now - Duration::from_millis(200)));
        c.waiting.insert(
            9,
            (
                "aml-instance-tls-rstudio".into(),
                now - Duration::from_millis(3100),
            ),
        );
        assert_eq!(
            line(&c, now, 120),
            "vnetprobe: 37/52 done, 2 failed · waiting 3.1 s on aml-instance-tls-rstudio (+1 more)"
        );
        let narrow = line(&c, now, 40);
        assert_eq!(narrow.chars().count(), 39, "{narrow}");
        assert!(narrow.ends_with('…'));
        c.waiting.clear();
        c.note = Some((
            "3 failing; attempt 2".into(),
            now + Duration::from_millis(3500),
        ));
        assert_eq!(line(&c, now, 80), "vnetprobe: 3 failing; attempt 2 in 4 s");
    }
}
