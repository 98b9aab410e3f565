//! What a run measures while it runs: counters, latency histograms (the
//! whole run and the current second), a per-second timeline and the
//! progress line. Connection tasks record into a local `Batch` and hand it
//! over every ~100 ms, so they do not take a lock per frame.

use parking_lot::{Mutex, MutexGuard};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::histogram::Histogram;

#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub delivered: AtomicU64,
    pub errors: AtomicU64,
    pub connected: AtomicU64,
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Seconds since the measured phase began.
    pub t: f64,
    pub sent_per_sec: f64,
    pub acked_per_sec: f64,
    pub delivered_per_sec: f64,
    pub errors_per_sec: f64,
    pub connected: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Default)]
struct Histograms {
    total: Histogram,
    second: Histogram,
    ack: Histogram,
}

pub struct Recorder {
    /// Stamps in message texts count microseconds from here.
    pub epoch: Instant,
    pub counters: Counters,
    histograms: Mutex<Histograms>,
    timeline: Mutex<Vec<Point>>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            epoch: Instant::now(),
            counters: Counters::default(),
            histograms: Mutex::new(Histograms::default()),
            timeline: Mutex::new(Vec::new()),
        })
    }

    pub fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }

    pub fn now_micros(&self) -> u64 {
        self.micros(Instant::now())
    }

    fn histograms(&self) -> MutexGuard<'_, Histograms> {
        // A panicking connection task cannot leave a histogram half-updated
        // in a way that matters to counting: take the data as it is.
        self.histograms.lock()
    }

    fn flush(&self, batch: &mut Batch) {
        let mut h = self.histograms();
        for &us in &batch.latency {
            h.total.record(us);
            h.second.record(us);
        }
        for &us in &batch.ack {
            h.ack.record(us);
        }
        drop(h);
        batch.latency.clear();
        batch.ack.clear();
        batch.flushed = Instant::now();
    }

    pub fn latency(&self) -> Histogram {
        self.histograms().total.clone()
    }

    pub fn ack_latency(&self) -> Histogram {
        self.histograms().ack.clone()
    }

    pub fn timeline(&self) -> Vec<Point> {
        self.timeline.lock().clone()
    }

    /// Samples the counters once a second into the timeline and redraws the
    /// progress line, until the task is aborted. `planned` is the measured
    /// phase's length, for the bar.
    pub fn ticker(
        self: &Arc<Self>,
        label: String,
        planned: Duration,
        quiet: bool,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let tty = std::io::stderr().is_terminal();
            let mut last = [0u64; 4];
            let mut tick = tokio::time::interval_at(
                (start + Duration::from_secs(1)).into(),
                Duration::from_secs(1),
            );
            // After a stall, tick late rather than in a burst of near-empty
            // seconds; rates divide by the time that really passed.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_at = start;
            let mut printed = 0u64;
            loop {
                tick.tick().await;
                let c = &me.counters;
                let now = [
                    c.sent.load(Ordering::Relaxed),
                    c.acked.load(Ordering::Relaxed),
                    c.delivered.load(Ordering::Relaxed),
                    c.errors.load(Ordering::Relaxed),
                ];
                let prev = std::mem::replace(&mut last, now);
                let at = Instant::now();
                let elapsed = at
                    .duration_since(std::mem::replace(&mut last_at, at))
                    .as_secs_f64()
                    .max(0.001);
                let d = |i: usize| now[i].saturating_sub(prev[i]) as f64 / elapsed;
                let second = std::mem::take(&mut me.histograms().second);
                let ms = |us: u64| us as f64 / 1000.0;
                let point = Point {
                    t: start.elapsed().as_secs_f64().round(),
                    sent_per_sec: d(0),
                    acked_per_sec: d(1),
                    delivered_per_sec: d(2),
                    errors_per_sec: d(3),
                    connected: c.connected.load(Ordering::Relaxed),
                    p50_ms: ms(second.percentile(50.0)),
                    p99_ms: ms(second.percentile(99.0)),
                    max_ms: ms(second.percentile(100.0)),
                };
                let line = progress_line(&label, start.elapsed(), planned, &point);
                me.timeline.lock().push(point);
                if quiet {
                    continue;
                }
                if tty {
                    eprint!("\r{line}\x1b[K");
                    let _ = std::io::stderr().flush();
                } else if printed.is_multiple_of(10) {
                    // Logs, not a terminal: a line every ten seconds.
                    eprintln!("{line}");
                }
                printed += 1;
            }
        })
    }
}

/// Ends the progress line so the summary starts on a line of its own.
pub fn end_progress(quiet: bool) {
    if !quiet && std::io::stderr().is_terminal() {
        eprintln!();
    }
}

fn progress_line(label: &str, elapsed: Duration, planned: Duration, p: &Point) -> String {
    const WIDTH: usize = 24;
    let done = if planned.is_zero() {
        1.0
    } else {
        (elapsed.as_secs_f64() / planned.as_secs_f64()).min(1.0)
    };
    let filled = (done * WIDTH as f64) as usize;
    format!(
        "{label} [{}{}] {:>4}s/{}s  conn {:>6}  sent {:>8}/s  acked {:>8}/s  delivered {:>9}/s  p99 {:>7.2} ms  errors {}/s",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        elapsed.as_secs(),
        planned.as_secs(),
        p.connected,
        p.sent_per_sec,
        p.acked_per_sec,
        p.delivered_per_sec,
        p.p99_ms,
        p.errors_per_sec,
    )
}

/// A connection task's unflushed latencies (µs).
pub struct Batch {
    latency: Vec<u64>,
    ack: Vec<u64>,
    flushed: Instant,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            latency: Vec::with_capacity(256),
            ack: Vec::new(),
            flushed: Instant::now(),
        }
    }
}

impl Batch {
    pub fn delivery(&mut self, rec: &Recorder, us: u64) {
        self.latency.push(us);
        self.maybe_flush(rec);
    }

    pub fn ack(&mut self, rec: &Recorder, us: u64) {
        self.ack.push(us);
        self.maybe_flush(rec);
    }

    fn maybe_flush(&mut self, rec: &Recorder) {
        if self.latency.len() + self.ack.len() >= 256
            || self.flushed.elapsed() > Duration::from_millis(100)
        {
            rec.flush(self);
        }
    }

    pub fn finish(&mut self, rec: &Recorder) {
        rec.flush(self);
    }
}
