//! Per-second series for the admin charts: for each key metric, one bucket
//! per second (count, sum, min, max) for the last day. Each series is a
//! fixed ring of 86,400 buckets, allocated on first use (about 1.7 MB), so
//! memory stays the same whatever the uptime.

use parking_lot::Mutex;
use std::sync::OnceLock;

use serde::Serialize;

pub const SECONDS: usize = 86_400;

/// The series kept, with what they measure.
pub const SERIES: &[(&str, &str)] = &[
    (
        "messages_committed",
        "chat messages committed (count per second)",
    ),
    (
        "delivery_ms",
        "time from a message's acceptance to its fan-out, milliseconds",
    ),
    (
        "delivery_p99_ms",
        "99th percentile of delivery_ms within each second (one value per second, within 9 %)",
    ),
    ("errors", "error answers sent (frames and HTTP), per second"),
    ("actor_restarts", "supervised actor restarts, per second"),
    ("store_commit_ms", "group-commit batch time, milliseconds"),
    ("payments_completed", "payments completed, per second"),
    ("payments_failed", "payments failed, per second"),
    (
        "breaker_open",
        "calls refused by an open circuit breaker, per second",
    ),
    (
        "redis_down",
        "cluster mode: 1 for each second Redis did not answer the heartbeat, else 0",
    ),
];

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Unix second this bucket holds; another second means it is stale.
    second: u32,
    count: u32,
    sum: f32,
    min: f32,
    max: f32,
}

/// One series: a ring of per-second buckets.
pub struct Ring {
    buckets: Vec<Bucket>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Unix seconds.
    pub t: u64,
    pub count: u32,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

impl Ring {
    fn new() -> Self {
        Ring {
            buckets: vec![Bucket::default(); SECONDS],
        }
    }

    pub fn record_at(&mut self, second: u64, value: f64) {
        let b = &mut self.buckets[(second % SECONDS as u64) as usize];
        let s = second as u32;
        if b.second != s || b.count == 0 {
            *b = Bucket {
                second: s,
                count: 0,
                sum: 0.0,
                min: f32::MAX,
                max: f32::MIN,
            };
        }
        let v = value as f32;
        b.count = b.count.saturating_add(1);
        b.sum += v;
        b.min = b.min.min(v);
        b.max = b.max.max(v);
    }

    /// The non-empty buckets of the `seconds` seconds up to `now`, oldest first.
    pub fn range(&self, now: u64, seconds: u64) -> Vec<Point> {
        let seconds = seconds.min(SECONDS as u64);
        (now + 1 - seconds.min(now + 1)..=now)
            .filter_map(|t| {
                let b = self.buckets[(t % SECONDS as u64) as usize];
                (b.second == t as u32 && b.count > 0).then(|| Point {
                    t,
                    count: b.count,
                    sum: f64::from(b.sum),
                    min: f64::from(b.min),
                    max: f64::from(b.max),
                })
            })
            .collect()
    }
}

fn rings() -> &'static Vec<OnceLock<Mutex<Ring>>> {
    static RINGS: OnceLock<Vec<OnceLock<Mutex<Ring>>>> = OnceLock::new();
    RINGS.get_or_init(|| SERIES.iter().map(|_| OnceLock::new()).collect())
}

fn now_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ring(name: &str) -> Option<&'static Mutex<Ring>> {
    let i = SERIES.iter().position(|(n, _)| *n == name)?;
    Some(rings()[i].get_or_init(|| Mutex::new(Ring::new())))
}

/// Series whose per-second 99th percentile is kept as a series of its own:
/// a bucket's min/max/sum cannot give a percentile, and the admin charts
/// plot p99 latency.
const QUANTILES: &[(&str, &str)] = &[("delivery_ms", "delivery_p99_ms")];

/// Adds a value to the current second of `name` (unknown names are ignored).
pub fn record(name: &str, value: f64) {
    let now = now_second();
    if let Some(r) = ring(name) {
        r.lock().record_at(now, value);
    }
    if let Some(i) = QUANTILES.iter().position(|(src, _)| *src == name) {
        let mut w = windows()[i].lock();
        // The second is read under the lock: a thread that read it earlier
        // must not reopen a second another thread has already flushed.
        let now = now_second();
        flush(&mut w, QUANTILES[i].1, now);
        w.observe(now, value);
    }
}

/// Moves a finished second's percentile into its series. The current
/// second is left open: its percentile is not known until it ends.
fn flush(w: &mut Window, series: &str, now: u64) {
    if w.second < now {
        if let (Some(p99), Some(r)) = (w.take_p99(), ring(series)) {
            r.lock().record_at(w.second, p99);
        }
    }
}

fn windows() -> &'static [Mutex<Window>] {
    static WINDOWS: OnceLock<Vec<Mutex<Window>>> = OnceLock::new();
    WINDOWS.get_or_init(|| {
        QUANTILES
            .iter()
            .map(|_| Mutex::new(Window::new()))
            .collect()
    })
}

/// The last `seconds` seconds of `name`; None for an unknown series.
pub fn read(name: &str, seconds: u64) -> Option<Vec<Point>> {
    let r = ring(name)?;
    let now = now_second();
    if let Some(i) = QUANTILES.iter().position(|(_, q)| *q == name) {
        let mut w = windows()[i].lock();
        flush(&mut w, name, now_second());
    }
    Some(r.lock().range(now, seconds))
}

/// One second of observations as a fixed log-scale histogram: eight
/// buckets per doubling from 1 µs (in ms) up to about 134 s, so a
/// percentile is within 9 % and the memory is 864 bytes whatever the rate.
struct Window {
    second: u64,
    total: u32,
    counts: [u32; WINDOW_BUCKETS],
}

const WINDOW_BUCKETS: usize = 8 * 27;
const WINDOW_FLOOR_MS: f64 = 0.001;

impl Window {
    fn new() -> Self {
        Window {
            second: 0,
            total: 0,
            counts: [0; WINDOW_BUCKETS],
        }
    }

    fn bucket(value: f64) -> usize {
        if value.is_nan() || value <= WINDOW_FLOOR_MS {
            return 0;
        }
        // Values past the last bucket are counted in it (saturating cast).
        ((value / WINDOW_FLOOR_MS).log2() * 8.0).floor().max(0.0) as usize
    }

    /// The upper edge of a bucket: a percentile never reads low.
    fn upper(bucket: usize) -> f64 {
        WINDOW_FLOOR_MS * ((bucket + 1) as f64 / 8.0).exp2()
    }

    fn observe(&mut self, second: u64, value: f64) {
        if second < self.second {
            // The clock went back: counted in the open second.
            return self.observe(self.second, value);
        }
        if second != self.second {
            *self = Window::new();
            self.second = second;
        }
        let b = Self::bucket(value).min(WINDOW_BUCKETS - 1);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.total = self.total.saturating_add(1);
    }

    /// The 99th percentile of the window, emptying it.
    fn take_p99(&mut self) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = (f64::from(self.total) * 0.99).ceil() as u32;
        let mut seen = 0u32;
        let mut found = WINDOW_BUCKETS - 1;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                found = i;
                break;
            }
        }
        let second = self.second;
        *self = Window::new();
        self.second = second;
        Some(Self::upper(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_fill_and_roll_over() {
        let mut r = Ring::new();
        let t0 = 1_800_000_000;
        r.record_at(t0, 2.0);
        r.record_at(t0, 6.0);
        r.record_at(t0 + 1, 1.0);
        let pts = r.range(t0 + 1, 60);
        assert_eq!(pts.len(), 2);
        assert_eq!(
            (pts[0].t, pts[0].count, pts[0].sum, pts[0].min, pts[0].max),
            (t0, 2, 8.0, 2.0, 6.0)
        );
        // A day later the same slot holds the new second only.
        let later = t0 + SECONDS as u64;
        r.record_at(later, 9.0);
        let pts = r.range(later, SECONDS as u64);
        assert_eq!(
            pts.iter().map(|p| p.t).collect::<Vec<_>>(),
            vec![t0 + 1, later]
        );
        assert_eq!(pts[1].count, 1);
        // Seconds outside the window are not shown.
        assert!(r.range(later + 5, 3).is_empty());
    }

    #[test]
    fn a_window_gives_the_99th_percentile_within_nine_percent() {
        let mut w = Window::new();
        assert_eq!(w.take_p99(), None);
        // 990 fast values and 10 slow ones: p99 is the last fast one.
        for i in 0..990 {
            w.observe(7, 1.0 + f64::from(i) / 1000.0);
        }
        for _ in 0..10 {
            w.observe(7, 250.0);
        }
        let p99 = w.take_p99().unwrap_or(0.0);
        assert!((1.989..=1.989 * 1.09).contains(&p99), "{p99}");
        // Taken means emptied.
        assert_eq!(w.take_p99(), None);
        // One slow value in a hundred moves p99 onto it.
        for _ in 0..98 {
            w.observe(8, 1.0);
        }
        w.observe(8, 40.0);
        w.observe(8, 40.0);
        let p99 = w.take_p99().unwrap_or(0.0);
        assert!((40.0..=40.0 * 1.09).contains(&p99), "{p99}");
        // Out-of-range values land in the end buckets, not out of bounds.
        w.observe(9, f64::INFINITY);
        w.observe(9, -3.0);
        assert!(w.take_p99().unwrap_or(0.0) > 100_000.0);
    }
}
