//! This process's figures on `/metrics`: memory, threads and descriptors
//! under the Prometheus process collector's names, CPU as
//! `parley_process_cpu_seconds`, so `parley load idle` (or any scraper) can
//! tell the memory per session and the idle CPU of a server in another
//! process. Reading /proc is `parley_procstat`'s job.

/// Sets the process gauges just before `/metrics` renders them.
pub fn export() {
    let Some(s) = parley_procstat::read() else {
        return;
    };
    metrics::gauge!("process_resident_memory_bytes").set(s.resident_bytes as f64);
    metrics::gauge!("process_threads").set(s.threads as f64);
    metrics::gauge!("process_open_fds").set(s.open_fds as f64);
    // A gauge, though it only grows: the recorder's counters are integers,
    // and a gauge may not carry the `_total` of the usual counter's name.
    metrics::gauge!("parley_process_cpu_seconds").set(s.cpu_seconds);
}
