//! The one range of every numeric setting, enforced wherever the value comes from (flag,
//! environment or config file), so no source can hand the runner a value it cannot honour.

use std::ops::RangeInclusive;
use std::time::Duration;

/// `--timeout` / `timeout`: each network wait. Longer than a few minutes is no probe at all.
pub const TIMEOUT: RangeInclusive<Duration> = Duration::from_millis(1)..=Duration::from_secs(600);
/// `--interval` / `serve.interval`: time between the starts of two runs of `serve`.
pub const INTERVAL: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(24 * 3600);
/// `--concurrency` / `concurrency`: probes in flight at once.
pub const CONCURRENCY: RangeInclusive<usize> = 1..=4096;

/// Parses a duration (`5s`, `800ms`, `1m`) and checks it against `range`.
pub fn duration(raw: &str, range: &RangeInclusive<Duration>) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw).map_err(|e| format!("{e} (examples: 5s, 800ms, 1m)"))?;
    if range.contains(&d) {
        return Ok(d);
    }
    let show = |d: &Duration| humantime::format_duration(*d).to_string();
    Err(format!(
        "{raw:?} is out of range: from {} to {}",
        show(range.start()),
        show(range.end())
    ))
}

/// Checks a count against `range`.
pub fn count(n: u64, range: &RangeInclusive<usize>) -> Result<usize, String> {
    match usize::try_from(n) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "{n} is out of range: from {} to {}",
            range.start(),
            range.end()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_outside_their_range_are_refused() {
        assert_eq!(duration("5s", &TIMEOUT), Ok(Duration::from_secs(5)));
        for raw in ["0s", "11m", "18446744073709551615s", "584942417355y"] {
            let e = duration(raw, &TIMEOUT).unwrap_err();
            assert!(
                e.contains("out of range") || e.contains("examples"),
                "{raw}: {e}"
            );
        }
        assert!(duration("soon", &TIMEOUT).unwrap_err().contains("examples"));
        let e = duration("500ms", &INTERVAL).unwrap_err();
        assert!(e.contains("from 1s to 1day"), "{e}");
        assert!(duration("2days", &INTERVAL).is_err());
    }

    #[test]
    fn counts_outside_their_range_are_refused() {
        assert_eq!(count(32, &CONCURRENCY), Ok(32));
        for n in [0, 4097, 3_000_000_000_000_000_000, u64::MAX] {
            assert!(
                count(n, &CONCURRENCY)
                    .unwrap_err()
                    .contains("from 1 to 4096")
            );
        }
    }
}
