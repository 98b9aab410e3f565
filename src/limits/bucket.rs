//! Frames per second per session: a token bucket (`rate` tokens a second,
//! at most `burst` saved up). A frame that finds the bucket empty is refused
//! with `rate_limited` and not handled. Refusals are strikes; a second with
//! no refusal clears them, so a client that slows down is forgiven, and one
//! that keeps sending over the limit reaches `close_after` strikes and is
//! disconnected (sustained abuse).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle the frame.
    Allow,
    /// Answer `rate_limited` and drop the frame.
    Refuse,
    /// Refused too often without a pause: close the connection.
    Close,
}

#[derive(Debug)]
pub struct FrameLimiter {
    /// Tokens added per second; 0 turns the limit off.
    rate: f64,
    burst: f64,
    close_after: u32,
    tokens: f64,
    refilled: Instant,
    strikes: u32,
    last_refusal: Option<Instant>,
}

/// A refusal this long after the previous one starts a new count.
const FORGIVE_AFTER: Duration = Duration::from_secs(1);

impl FrameLimiter {
    pub fn new(rate: u32, burst: u32, close_after: u32, now: Instant) -> Self {
        FrameLimiter {
            rate: f64::from(rate),
            burst: f64::from(burst.max(1)),
            close_after: close_after.max(1),
            tokens: f64::from(burst.max(1)),
            refilled: now,
            strikes: 0,
            last_refusal: None,
        }
    }

    pub fn check(&mut self, now: Instant) -> Verdict {
        if self.rate == 0.0 {
            return Verdict::Allow;
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        let forgiven = self
            .last_refusal
            .is_some_and(|t| now.saturating_duration_since(t) > FORGIVE_AFTER);
        if forgiven {
            self.strikes = 0;
        }
        self.last_refusal = Some(now);
        self.strikes += 1;
        if self.strikes >= self.close_after {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_then_refusals() {
        let t0 = Instant::now();
        let mut l = FrameLimiter::new(10, 5, 100, t0);
        for _ in 0..5 {
            assert_eq!(l.check(t0), Verdict::Allow);
        }
        assert_eq!(l.check(t0), Verdict::Refuse);
        // A tenth of a second refills one token.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(l.check(t1), Verdict::Allow);
        assert_eq!(l.check(t1), Verdict::Refuse);
        // A long pause refills at most the burst.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(l.check(t2), Verdict::Allow);
        }
        assert_eq!(l.check(t2), Verdict::Refuse);
    }

    #[test]
    fn sustained_abuse_closes_and_a_pause_forgives() {
        let t0 = Instant::now();
        let mut l = FrameLimiter::new(10, 1, 3, t0);
        assert_eq!(l.check(t0), Verdict::Allow);
        assert_eq!(l.check(t0), Verdict::Refuse);
        assert_eq!(l.check(t0), Verdict::Refuse);
        // Two seconds without a refusal: the strikes are forgiven.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(l.check(t1), Verdict::Allow);
        assert_eq!(l.check(t1), Verdict::Refuse);
        assert_eq!(l.check(t1), Verdict::Refuse);
        assert_eq!(l.check(t1), Verdict::Close);
    }

    #[test]
    fn rate_zero_is_no_limit() {
        let t0 = Instant::now();
        let mut l = FrameLimiter::new(0, 1, 1, t0);
        for _ in 0..10_000 {
            assert_eq!(l.check(t0), Verdict::Allow);
        }
    }
}
