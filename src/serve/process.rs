//! The `process_*` metrics that Prometheus client libraries export (CPU, memory, file
//! descriptors, start time), read from /proc on every scrape: they are about the scrape's now.

use std::fmt::Write;

/// Clock ticks per second and the page size, for /proc/self/stat.
fn sysconf(name: libc::c_int) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 { v as f64 } else { 1.0 }
}

/// /proc/self/stat, opened once: every scrape reads it again from offset 0, which makes the
/// kernel render it anew, without a path lookup and an open per scrape.
static STAT: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();

/// The fields of /proc/self/stat after the command name (the first is field 3, the state).
fn stat_fields() -> Option<Vec<String>> {
    use std::os::unix::fs::FileExt;
    let file = STAT
        .get_or_init(|| std::fs::File::open("/proc/self/stat").ok())
        .as_ref()?;
    // The line is a few hundred bytes; proc(5) fields are bounded.
    let mut buf = [0u8; 2048];
    let n = file.read_at(&mut buf, 0).ok()?;
    let stat = std::str::from_utf8(&buf[..n]).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Open file descriptors: since Linux 6.2 the size of /proc/self/fd is their count (one stat
/// instead of listing the directory on every scrape); older kernels report 0 there, so list it.
fn open_fds() -> usize {
    match std::fs::metadata("/proc/self/fd") {
        Ok(m) if m.len() > 0 => m.len() as usize,
        _ => std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count())
            .unwrap_or(0),
    }
}

fn field(fields: &[String], n: usize) -> f64 {
    // Field n of proc(5) is at index n - 3 here.
    fields
        .get(n - 3)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0.0)
}

/// When this process started, in seconds since the epoch (boot time + start ticks).
pub fn start_time_seconds() -> f64 {
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let fields = stat_fields().unwrap_or_default();
    boot + field(&fields, 22) / sysconf(libc::_SC_CLK_TCK)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

/// The process families in the text format.
pub fn render(start_time: f64) -> String {
    let mut out = String::with_capacity(1024);
    let fields = stat_fields().unwrap_or_default();
    let ticks = sysconf(libc::_SC_CLK_TCK);
    family(
        &mut out,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        (field(&fields, 14) + field(&fields, 15)) / ticks,
    );
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    let max_fds = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur as f64,
        _ => 0.0,
    };
    family(
        &mut out,
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        max_fds,
    );
    let open = open_fds();
    family(
        &mut out,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        open as f64,
    );
    family(
        &mut out,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        field(&fields, 24) * sysconf(libc::_SC_PAGESIZE),
    );
    family(
        &mut out,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        start_time,
    );
    family(
        &mut out,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        field(&fields, 23),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_families_have_live_values() {
        let start = start_time_seconds();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            start > now - 86_400.0 * 365.0 && start <= now + 1.0,
            "{start}"
        );
        let text = render(start);
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(value("process_resident_memory_bytes") > 1e6);
        assert!(value("process_open_fds") >= 3.0);
        // Both ways of counting agree, up to the descriptors that the other tests running in
        // this process open and close meanwhile (a directory size in bytes would be far off).
        let listed = std::fs::read_dir("/proc/self/fd").unwrap().count();
        assert!(
            open_fds().abs_diff(listed) <= 32,
            "{} vs {listed}",
            open_fds()
        );
        assert!(value("process_max_fds") >= value("process_open_fds"));
        assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    }
}
