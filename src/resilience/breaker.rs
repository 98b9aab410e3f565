//! A circuit breaker with resilience4j's semantics, as a pure state machine:
//! every method takes `now`, so it is tested without sleeping.
//!
//! - closed: calls pass and are recorded in a sliding window; once the window
//!   holds `minimum_calls`, a failure rate or a slow-call rate at or above its
//!   threshold opens the breaker;
//! - open: calls are rejected at once until the open wait is over; the wait
//!   grows with each consecutive trip (`wait_multiplier`, capped at
//!   `max_wait`) minus up to `jitter` of itself;
//! - half_open: `half_open_calls` probes pass; when all have reported, the
//!   rates over them decide: closed again, or open with a longer wait;
//! - forced_open (reject everything) and disabled (pass everything, record
//!   nothing) are set by an operator and left only by an operator.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::window::{Tally, Window, WindowKind};

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub window: WindowKind,
    /// Percent, 0..=100.
    pub failure_rate_threshold: f64,
    /// Percent, 0..=100.
    pub slow_call_rate_threshold: f64,
    pub slow_call_duration: Duration,
    pub minimum_calls: usize,
    pub wait_open: Duration,
    pub wait_multiplier: f64,
    pub max_wait: Duration,
    /// 0.0..=1.0
    pub jitter: f64,
    pub half_open_calls: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
    ForcedOpen,
    Disabled,
}

/// How a call ended, as the caller judges it (5xx and timeouts are failures,
/// 4xx are not, by default: the caller decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// Leave to make one call; hand it back to [`Breaker::on_result`].
#[derive(Debug)]
#[must_use = "report the call's outcome with on_result"]
pub struct Permit {
    started: Instant,
    /// The breaker's generation when granted: a result from an older state
    /// (say, a closed-state call ending after a trip) is not counted.
    generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("the circuit breaker is open")]
    Open,
    #[error("the circuit breaker is forced open")]
    ForcedOpen,
    #[error("the circuit breaker is half open and its probes are taken")]
    ProbesTaken,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    /// Milliseconds since the breaker was created.
    pub at_ms: u64,
    /// The same moment on the wall clock (RFC 3339), for people; known
    /// once the owner has said when the breaker was created on that clock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub state: BreakerState,
    pub calls: usize,
    pub failures: usize,
    pub slow_calls: usize,
    pub failure_rate: f64,
    pub slow_call_rate: f64,
    pub rejected: u64,
    /// Consecutive trips (drives the open wait).
    pub trips: u32,
    /// Until the next half-open probe, when open.
    pub open_remaining_ms: Option<u64>,
    pub transitions: Vec<Transition>,
}

/// Transitions kept for the admin view.
const HISTORY: usize = 32;

#[derive(Debug, Clone)]
pub struct Breaker {
    config: BreakerConfig,
    state: BreakerState,
    window: Window,
    open_until: Option<Instant>,
    trips: u32,
    half_open_granted: usize,
    half_open_results: Tally,
    generation: u64,
    rejected: u64,
    created: Instant,
    /// The wall clock (ms since the epoch) at `created`, given by the owner
    /// (`set_wall_clock`): this type reads no clock of its own. Transitions
    /// are timed on the injected monotonic clock and only labelled with it.
    created_wall_ms: Option<i64>,
    transitions: VecDeque<Transition>,
}

impl Breaker {
    pub fn new(config: BreakerConfig, now: Instant) -> Self {
        Breaker {
            window: Window::new(config.window),
            config,
            state: BreakerState::Closed,
            open_until: None,
            trips: 0,
            half_open_granted: 0,
            half_open_results: Tally::default(),
            generation: 0,
            rejected: 0,
            created: now,
            created_wall_ms: None,
            transitions: VecDeque::new(),
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }
    /// Says when this breaker was created on the wall clock (ms since the
    /// epoch), so transitions can be shown at clock time.
    pub fn set_wall_clock(&mut self, created_wall_ms: i64) {
        self.created_wall_ms = Some(created_wall_ms);
    }

    /// Asks to make a call. Rejections are immediate.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, Rejected> {
        let granted = |b: &Breaker| {
            Ok(Permit {
                started: now,
                generation: b.generation,
            })
        };
        match self.state {
            BreakerState::Closed | BreakerState::Disabled => granted(self),
            BreakerState::ForcedOpen => {
                self.rejected += 1;
                Err(Rejected::ForcedOpen)
            }
            BreakerState::Open => {
                if self.open_until.is_some_and(|until| now >= until) {
                    self.move_to(BreakerState::HalfOpen, now, "open wait over".into());
                    self.try_acquire(now)
                } else {
                    self.rejected += 1;
                    Err(Rejected::Open)
                }
            }
            BreakerState::HalfOpen => {
                if self.half_open_granted < self.config.half_open_calls {
                    self.half_open_granted += 1;
                    granted(self)
                } else {
                    self.rejected += 1;
                    Err(Rejected::ProbesTaken)
                }
            }
        }
    }

    /// Reports how a permitted call ended; `unit` in 0.0..1.0 is the random
    /// draw for the open wait's jitter (injected for tests).
    pub fn on_result(&mut self, permit: Permit, outcome: Outcome, now: Instant, unit: f64) {
        if permit.generation != self.generation {
            return;
        }
        let failed = outcome == Outcome::Failure;
        let slow = now.saturating_duration_since(permit.started) >= self.config.slow_call_duration;
        match self.state {
            BreakerState::Closed => {
                self.window.record(now, failed, slow);
                let tally = self.window.tally(now);
                if tally.calls >= self.config.minimum_calls {
                    if let Some(reason) = self.over_threshold(&tally) {
                        self.trip(now, unit, reason);
                    }
                }
            }
            BreakerState::HalfOpen => {
                let t = &mut self.half_open_results;
                t.calls += 1;
                t.failures += usize::from(failed);
                t.slow += usize::from(slow);
                if t.calls >= self.config.half_open_calls {
                    let tally = *t;
                    match self.over_threshold(&tally) {
                        Some(reason) => self.trip(now, unit, format!("probes: {reason}")),
                        None => {
                            self.trips = 0;
                            self.move_to(BreakerState::Closed, now, "probes succeeded".into());
                        }
                    }
                }
            }
            // Results in these states change nothing.
            BreakerState::Open | BreakerState::ForcedOpen | BreakerState::Disabled => {}
        }
    }

    fn over_threshold(&self, t: &Tally) -> Option<String> {
        if t.failure_rate() >= self.config.failure_rate_threshold {
            Some(format!(
                "failure rate {:.1}% >= {:.1}% over {} calls",
                t.failure_rate(),
                self.config.failure_rate_threshold,
                t.calls
            ))
        } else if t.slow_rate() >= self.config.slow_call_rate_threshold {
            Some(format!(
                "slow-call rate {:.1}% >= {:.1}% over {} calls",
                t.slow_rate(),
                self.config.slow_call_rate_threshold,
                t.calls
            ))
        } else {
            None
        }
    }

    /// The open wait of the next trip: `wait_open * multiplier^trips`,
    /// capped, minus up to `jitter` of itself.
    fn open_wait(&self, unit: f64) -> Duration {
        let c = &self.config;
        let factor = c.wait_multiplier.max(1.0).powi(self.trips.min(30) as i32);
        let full = c.wait_open.mul_f64(factor).min(c.max_wait);
        full.mul_f64(1.0 - c.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0))
    }

    fn trip(&mut self, now: Instant, unit: f64, reason: String) {
        let wait = self.open_wait(unit);
        self.trips = self.trips.saturating_add(1);
        self.open_until = Some(now + wait);
        self.move_to(BreakerState::Open, now, reason);
    }

    /// An operator's order: forced_open, disabled or closed.
    pub fn force(&mut self, state: BreakerState, now: Instant) {
        if state != self.state {
            self.trips = 0;
            self.move_to(state, now, "forced by an operator".into());
        }
    }

    fn move_to(&mut self, to: BreakerState, now: Instant, reason: String) {
        let from = self.state;
        self.state = to;
        self.generation += 1;
        self.window.reset();
        self.half_open_granted = 0;
        self.half_open_results = Tally::default();
        if to != BreakerState::Open {
            self.open_until = None;
        }
        if self.transitions.len() == HISTORY {
            self.transitions.pop_front();
        }
        let at_ms = now.saturating_duration_since(self.created).as_millis() as u64;
        let wall = self
            .created_wall_ms
            .map(|w| w.saturating_add(i64::try_from(at_ms).unwrap_or(i64::MAX)));
        self.transitions.push_back(Transition {
            from,
            to,
            at_ms,
            at: wall.map(crate::domain::rfc3339_ms),
            reason,
        });
    }

    pub fn snapshot(&mut self, now: Instant) -> Snapshot {
        let tally = match self.state {
            BreakerState::HalfOpen => self.half_open_results,
            _ => self.window.tally(now),
        };
        Snapshot {
            state: self.state,
            calls: tally.calls,
            failures: tally.failures,
            slow_calls: tally.slow,
            failure_rate: tally.failure_rate(),
            slow_call_rate: tally.slow_rate(),
            rejected: self.rejected,
            trips: self.trips,
            open_remaining_ms: self
                .open_until
                .map(|u| u.saturating_duration_since(now).as_millis() as u64),
            transitions: self.transitions.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: WindowKind::Count(10),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(2),
            minimum_calls: 4,
            wait_open: Duration::from_secs(10),
            wait_multiplier: 2.0,
            max_wait: Duration::from_secs(60),
            jitter: 0.0,
            half_open_calls: 2,
        }
    }

    fn call(b: &mut Breaker, now: Instant, outcome: Outcome) {
        let p = b.try_acquire(now).expect("permitted");
        b.on_result(p, outcome, now, 0.0);
    }

    #[test]
    fn trips_only_after_the_minimum_number_of_calls() {
        let t = Instant::now();
        let mut b = Breaker::new(config(), t);
        for _ in 0..3 {
            call(&mut b, t, Outcome::Failure);
        }
        assert_eq!(b.state(), BreakerState::Closed, "3 calls < minimum 4");
        call(&mut b, t, Outcome::Failure);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.try_acquire(t).unwrap_err(), Rejected::Open);
        assert_eq!(b.snapshot(t).rejected, 1);
    }

    #[test]
    fn a_low_failure_rate_keeps_it_closed() {
        let t = Instant::now();
        let mut b = Breaker::new(config(), t);
        for i in 0..20 {
            call(
                &mut b,
                t,
                if i % 3 == 2 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
            );
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn slow_calls_trip_it_too() {
        let t = Instant::now();
        let mut cfg = config();
        cfg.slow_call_rate_threshold = 50.0;
        let mut b = Breaker::new(cfg, t);
        for _ in 0..4 {
            let p = b.try_acquire(t).unwrap();
            b.on_result(p, Outcome::Success, t + Duration::from_secs(3), 0.0);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert!(b.snapshot(t).transitions[0]
            .reason
            .contains("slow-call rate"));
    }

    #[test]
    fn half_open_probes_close_it_or_reopen_with_a_longer_wait() {
        let t = Instant::now();
        let mut b = Breaker::new(config(), t);
        for _ in 0..4 {
            call(&mut b, t, Outcome::Failure);
        }
        let t1 = t + Duration::from_secs(10);
        assert!(
            b.try_acquire(t1 - Duration::from_millis(1)).is_err(),
            "still open"
        );
        // Two probes pass, a third is refused.
        let p1 = b.try_acquire(t1).unwrap();
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let p2 = b.try_acquire(t1).unwrap();
        assert_eq!(b.try_acquire(t1).unwrap_err(), Rejected::ProbesTaken);
        b.on_result(p1, Outcome::Failure, t1, 0.0);
        b.on_result(p2, Outcome::Failure, t1, 0.0);
        assert_eq!(b.state(), BreakerState::Open);
        // The second trip waits twice as long.
        assert_eq!(b.snapshot(t1).open_remaining_ms, Some(20_000));
        let t2 = t1 + Duration::from_secs(20);
        let p1 = b.try_acquire(t2).unwrap();
        let p2 = b.try_acquire(t2).unwrap();
        b.on_result(p1, Outcome::Success, t2, 0.0);
        b.on_result(p2, Outcome::Success, t2, 0.0);
        assert_eq!(b.state(), BreakerState::Closed);
        let s = b.snapshot(t2);
        assert_eq!(s.trips, 0);
        let path: Vec<_> = s.transitions.iter().map(|t| t.to).collect();
        assert_eq!(
            path,
            vec![
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Open,
                BreakerState::HalfOpen,
                BreakerState::Closed
            ]
        );
    }

    #[test]
    fn the_open_wait_is_capped_and_jittered() {
        let t = Instant::now();
        let mut cfg = config();
        cfg.jitter = 0.5;
        let mut b = Breaker::new(cfg, t);
        b.trips = 10;
        assert_eq!(b.open_wait(0.0), Duration::from_secs(60), "capped");
        assert_eq!(b.open_wait(0.5), Duration::from_secs(45));
        assert!(b.open_wait(0.999) >= Duration::from_secs(30));
    }

    #[test]
    fn forced_and_disabled_states() {
        let t = Instant::now();
        let mut b = Breaker::new(config(), t);
        b.force(BreakerState::ForcedOpen, t);
        assert_eq!(b.try_acquire(t).unwrap_err(), Rejected::ForcedOpen);
        b.force(BreakerState::Disabled, t);
        for _ in 0..10 {
            call(&mut b, t, Outcome::Failure);
        }
        assert_eq!(b.state(), BreakerState::Disabled, "disabled never trips");
        b.force(BreakerState::Closed, t);
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn a_result_from_before_a_transition_is_not_counted() {
        let t = Instant::now();
        let mut b = Breaker::new(config(), t);
        let late = b.try_acquire(t).unwrap();
        for _ in 0..4 {
            call(&mut b, t, Outcome::Failure);
        }
        let t1 = t + Duration::from_secs(10);
        let probe = b.try_acquire(t1).unwrap();
        b.on_result(late, Outcome::Failure, t1, 0.0);
        assert_eq!(
            b.state(),
            BreakerState::HalfOpen,
            "the stale failure changed nothing"
        );
        b.on_result(probe, Outcome::Success, t1, 0.0);
        assert_eq!(b.snapshot(t1).calls, 1);
    }

    #[test]
    fn a_time_window_forgets_old_failures() {
        let t = Instant::now();
        let mut cfg = config();
        cfg.window = WindowKind::Time(5);
        let mut b = Breaker::new(cfg, t);
        for _ in 0..3 {
            call(&mut b, t, Outcome::Failure);
        }
        // Five seconds later those failures have left the window.
        call(&mut b, t + Duration::from_secs(6), Outcome::Failure);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
