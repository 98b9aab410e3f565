//! This process's resident memory, CPU time, threads and open descriptors,
//! read from /proc (Linux). Its own crate because two programs need it: the
//! server exports the figures on `/metrics`, and the load tool (a client of
//! the server, not part of it) measures itself beside the server it loads.

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

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let s = super::read().expect("/proc is readable on Linux");
        assert!(s.resident_bytes > 1 << 20, "{s:?}");
        assert!(s.threads >= 1 && s.open_fds >= 3, "{s:?}");
    }
}
