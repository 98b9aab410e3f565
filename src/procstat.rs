//! This process's resident memory and CPU time, read from /proc (Linux).
//! The server exports them on `/metrics` (memory, threads and descriptors
//! under the Prometheus process collector's names, CPU as
//! `parley_process_cpu_seconds`), so `parley load idle` (or any scraper)
//! can tell the memory per session and the idle CPU of a server in another
//! process.

use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessStats {
    pub resident_bytes: u64,
    /// User plus system time since the process started.
    pub cpu_seconds: f64,
    pub threads: u64,
    pub open_fds: u64,
}

/// `None` where /proc is not there to read.
pub fn read() -> Option<ProcessStats> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing parenthesis (field 3 is the first).
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    let (utime, stime, threads) = (ticks(14)?, ticks(15)?, ticks(20)?);
    let (page, hz) = constants();
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    Some(ProcessStats {
        resident_bytes: resident_pages * page,
        cpu_seconds: (utime + stime) as f64 / hz as f64,
        threads,
        open_fds,
    })
}

/// Page size and clock ticks per second, asked of the C library once.
fn constants() -> (u64, u64) {
    static C: OnceLock<(u64, u64)> = OnceLock::new();
    *C.get_or_init(|| {
        // SAFETY: sysconf only reads configuration values; it has no
        // preconditions and returns -1 for an unknown name.
        let (page, hz) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        (
            u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096),
            u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100),
        )
    })
}

/// Sets the process gauges just before `/metrics` renders them.
pub fn export() {
    let Some(s) = read() else { return };
    metrics::gauge!("process_resident_memory_bytes").set(s.resident_bytes as f64);
    metrics::gauge!("process_threads").set(s.threads as f64);
    metrics::gauge!("process_open_fds").set(s.open_fds as f64);
    // A gauge, though it only grows: the recorder's counters are integers,
    // and a gauge may not carry the `_total` of the usual counter's name.
    metrics::gauge!("parley_process_cpu_seconds").set(s.cpu_seconds);
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::read().expect("/proc is readable on Linux");
        assert!(s.resident_bytes > 1 << 20, "{s:?}");
        assert!(s.threads >= 1 && s.open_fds >= 3, "{s:?}");
    }
}
