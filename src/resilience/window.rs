//! Sliding windows of call outcomes: the last N calls (count) or the calls
//! of the last N seconds (time, one bucket per second). Both are fixed-size
//! rings: memory does not grow with traffic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// The last `n` calls.
    Count(usize),
    /// The calls of the last `n` seconds.
    Time(u64),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub calls: usize,
    pub failures: usize,
    pub slow: usize,
}

impl Tally {
    fn add(&mut self, failed: bool, slow: bool) {
        self.calls += 1;
        self.failures += usize::from(failed);
        self.slow += usize::from(slow);
    }

    pub fn failure_rate(&self) -> f64 {
        percent(self.failures, self.calls)
    }

    pub fn slow_rate(&self) -> f64 {
        percent(self.slow, self.calls)
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

#[derive(Debug, Clone)]
pub enum Window {
    Count {
        size: usize,
        calls: VecDeque<(bool, bool)>,
    },
    Time {
        seconds: u64,
        /// (bucket start, tally), oldest first.
        buckets: VecDeque<(Instant, Tally)>,
    },
}

impl Window {
    pub fn new(kind: WindowKind) -> Self {
        match kind {
            WindowKind::Count(size) => Window::Count {
                size: size.max(1),
                calls: VecDeque::new(),
            },
            WindowKind::Time(seconds) => Window::Time {
                seconds: seconds.max(1),
                buckets: VecDeque::new(),
            },
        }
    }

    pub fn record(&mut self, now: Instant, failed: bool, slow: bool) {
        match self {
            Window::Count { size, calls } => {
                if calls.len() == *size {
                    calls.pop_front();
                }
                calls.push_back((failed, slow));
            }
            Window::Time { seconds, buckets } => {
                Self::expire(buckets, *seconds, now);
                match buckets.back_mut() {
                    Some((start, tally))
                        if now.saturating_duration_since(*start) < Duration::from_secs(1) =>
                    {
                        tally.add(failed, slow)
                    }
                    _ => {
                        let mut tally = Tally::default();
                        tally.add(failed, slow);
                        buckets.push_back((now, tally));
                    }
                }
            }
        }
    }

    fn expire(buckets: &mut VecDeque<(Instant, Tally)>, seconds: u64, now: Instant) {
        while let Some((start, _)) = buckets.front() {
            if now.saturating_duration_since(*start) >= Duration::from_secs(seconds) {
                buckets.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn tally(&mut self, now: Instant) -> Tally {
        match self {
            Window::Count { calls, .. } => {
                let mut t = Tally::default();
                for (failed, slow) in calls.iter() {
                    t.add(*failed, *slow);
                }
                t
            }
            Window::Time { seconds, buckets } => {
                Self::expire(buckets, *seconds, now);
                buckets.iter().fold(Tally::default(), |mut acc, (_, t)| {
                    acc.calls += t.calls;
                    acc.failures += t.failures;
                    acc.slow += t.slow;
                    acc
                })
            }
        }
    }

    pub fn reset(&mut self) {
        match self {
            Window::Count { calls, .. } => calls.clear(),
            Window::Time { buckets, .. } => buckets.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_keeps_the_last_calls() {
        let t0 = Instant::now();
        let mut w = Window::new(WindowKind::Count(3));
        w.record(t0, true, false);
        w.record(t0, false, true);
        w.record(t0, false, false);
        assert_eq!(
            w.tally(t0),
            Tally {
                calls: 3,
                failures: 1,
                slow: 1
            }
        );
        w.record(t0, false, false);
        assert_eq!(
            w.tally(t0),
            Tally {
                calls: 3,
                failures: 0,
                slow: 1
            }
        );
    }

    #[test]
    fn time_window_forgets_old_seconds() {
        let t0 = Instant::now();
        let mut w = Window::new(WindowKind::Time(2));
        w.record(t0, true, false);
        w.record(t0 + Duration::from_millis(500), true, false);
        w.record(t0 + Duration::from_millis(1500), false, false);
        assert_eq!(w.tally(t0 + Duration::from_millis(1600)).calls, 3);
        assert_eq!(
            w.tally(t0 + Duration::from_millis(2100)),
            Tally {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.tally(t0 + Duration::from_secs(10)).calls, 0);
    }
}
