//! Per-second series for the admin charts: for each key metric, one bucket
//! per second (count, sum, min, max) for the last day. Each series is a
//! fixed ring of 86,400 buckets, allocated on first use (about 1.7 MB), so
//! memory stays the same whatever the uptime.

use std::sync::{Mutex, OnceLock};

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

/// Adds a value to the current second of `name` (unknown names are ignored).
pub fn record(name: &str, value: f64) {
    if let Some(r) = ring(name) {
        r.lock()
            .unwrap_or_else(|p| p.into_inner())
            .record_at(now_second(), value);
    }
}

/// The last `seconds` seconds of `name`; None for an unknown series.
pub fn read(name: &str, seconds: u64) -> Option<Vec<Point>> {
    let r = ring(name)?;
    let now = now_second();
    Some(
        r.lock()
            .unwrap_or_else(|p| p.into_inner())
            .range(now, seconds),
    )
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
}
