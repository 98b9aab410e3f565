//! The supervision policy as pure values: strategies, restart types,
//! intensity and backoff. No clocks are read here; callers pass `now`, so
//! every rule is tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Which siblings restart with a failed child (Erlang/OTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    OneForOne,
    OneForAll,
    RestForOne,
}

impl Strategy {
    /// Indexes (in start order) of the children that restart when child
    /// `failed` of `count` fails.
    pub fn affected(self, failed: usize, count: usize) -> Vec<usize> {
        match self {
            Strategy::OneForOne => vec![failed],
            Strategy::OneForAll => (0..count).collect(),
            Strategy::RestForOne => (failed..count).collect(),
        }
    }
}

/// When a child that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    /// Always.
    Permanent,
    /// Only after an abnormal end (a panic).
    Transient,
    /// Never.
    Temporary,
}

impl RestartType {
    pub fn restarts(self, abnormal: bool) -> bool {
        match self {
            RestartType::Permanent => true,
            RestartType::Transient => abnormal,
            RestartType::Temporary => false,
        }
    }
}

/// At most `max_restarts` restarts within `window`; one more is an overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    pub max_restarts: u32,
    pub window: Duration,
}

/// The restarts within the current window, oldest first (bounded: never
/// more than `max_restarts + 1` entries).
#[derive(Debug, Clone)]
pub struct IntensityTracker {
    limit: Intensity,
    recent: VecDeque<Instant>,
}

impl IntensityTracker {
    pub fn new(limit: Intensity) -> Self {
        IntensityTracker {
            limit,
            recent: VecDeque::new(),
        }
    }

    /// Records a restart at `now`; false when it overflows the intensity.
    pub fn allow(&mut self, now: Instant) -> bool {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) >= self.limit.window {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        self.recent.push_back(now);
        if self.recent.len() as u32 > self.limit.max_restarts {
            self.recent.pop_front();
            false
        } else {
            true
        }
    }

    pub fn reset(&mut self) {
        self.recent.clear();
    }

    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

/// Exponential backoff with jitter: attempt n waits `base * 2^n`, capped at
/// `max`, minus up to `jitter` of itself (so synchronized failures spread
/// out); after `reset_after` without a failure it starts again from `base`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
    /// 0.0..=1.0
    pub jitter: f64,
    pub reset_after: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct BackoffState {
    attempt: u32,
    last_failure: Option<Instant>,
}

impl BackoffState {
    /// The delay before the next restart; `unit` in 0.0..1.0 is the random
    /// draw (injected for tests).
    pub fn next_delay(&mut self, policy: &Backoff, now: Instant, unit: f64) -> Duration {
        if let Some(last) = self.last_failure {
            if now.saturating_duration_since(last) >= policy.reset_after {
                self.attempt = 0;
            }
        }
        self.last_failure = Some(now);
        let factor = 2u32.saturating_pow(self.attempt.min(30));
        self.attempt = self.attempt.saturating_add(1);
        let full = policy.base.saturating_mul(factor).min(policy.max);
        let cut = policy.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        full.mul_f64(1.0 - cut)
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn strategies_pick_the_right_siblings() {
        assert_eq!(Strategy::OneForOne.affected(1, 4), vec![1]);
        assert_eq!(Strategy::OneForAll.affected(1, 4), vec![0, 1, 2, 3]);
        assert_eq!(Strategy::RestForOne.affected(1, 4), vec![1, 2, 3]);
        assert_eq!(Strategy::RestForOne.affected(3, 4), vec![3]);
    }

    #[test]
    fn restart_types() {
        assert!(RestartType::Permanent.restarts(false));
        assert!(RestartType::Permanent.restarts(true));
        assert!(!RestartType::Transient.restarts(false));
        assert!(RestartType::Transient.restarts(true));
        assert!(!RestartType::Temporary.restarts(true));
    }

    #[tokio::test(start_paused = true)]
    async fn intensity_counts_restarts_in_a_sliding_window() {
        let now = || tokio::time::Instant::now().into_std();
        let mut t = IntensityTracker::new(Intensity {
            max_restarts: 3,
            window: Duration::from_secs(10),
        });
        assert!(t.allow(now()));
        assert!(t.allow(now()));
        assert!(t.allow(now()));
        assert!(!t.allow(now()), "the fourth within the window overflows");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(t.allow(now()), "the old ones left the window");
        assert!(t.recent() <= 3);
        t.reset();
        assert_eq!(t.recent(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_caps_and_resets_after_quiet() {
        let now = || tokio::time::Instant::now().into_std();
        let policy = Backoff {
            base: ms(10),
            max: ms(100),
            jitter: 0.0,
            reset_after: Duration::from_secs(5),
        };
        let mut s = BackoffState::default();
        let delays: Vec<Duration> = (0..6).map(|_| s.next_delay(&policy, now(), 0.5)).collect();
        assert_eq!(
            delays,
            vec![ms(10), ms(20), ms(40), ms(80), ms(100), ms(100)]
        );
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            s.next_delay(&policy, now(), 0.5),
            ms(10),
            "quiet period resets"
        );
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = Backoff {
            base: ms(100),
            max: ms(1000),
            jitter: 0.5,
            reset_after: Duration::from_secs(60),
        };
        let t = Instant::now();
        for unit in [0.0, 0.25, 0.5, 0.999] {
            let mut s = BackoffState::default();
            let d = s.next_delay(&policy, t, unit);
            assert!(d <= ms(100) && d >= ms(50), "{d:?} for {unit}");
        }
        let mut s = BackoffState::default();
        assert_eq!(s.next_delay(&policy, t, 0.0), ms(100), "no draw, no cut");
    }
}
