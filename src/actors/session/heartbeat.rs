//! Heartbeat bookkeeping as a pure type, so the timeout rule is tested
//! without a socket or a clock.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Heartbeat {
    last_heard: Instant,
    timeout: Duration,
}

impl Heartbeat {
    pub fn new(now: Instant, timeout: Duration) -> Self {
        Heartbeat {
            last_heard: now,
            timeout,
        }
    }

    /// Any frame from the client (text, pong, ping) proves it is alive.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// True when the client has been silent for longer than the timeout.
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_heard) > self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn expires_only_after_silence() {
        let start = tokio::time::Instant::now().into_std();
        let mut hb = Heartbeat::new(start, Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(!hb.expired(tokio::time::Instant::now().into_std()));
        hb.heard(tokio::time::Instant::now().into_std());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!hb.expired(tokio::time::Instant::now().into_std()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(hb.expired(tokio::time::Instant::now().into_std()));
    }
}
