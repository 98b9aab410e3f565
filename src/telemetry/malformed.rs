//! actix-http logs every request it cannot parse (and every connection it
//! drops on an I/O error) as an ERROR line from its HTTP/1 dispatcher, with
//! no limit: anyone can fill the log by sending garbage. This layer takes
//! those lines over: each is counted in `parley_http_malformed_total`, and
//! at most one WARN line per `EVERY` says how many arrived and the last one.
//! The original lines are kept out of the log by `is_dispatcher_error`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The module whose ERROR lines are taken over.
pub const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// At most one summary line per this long.
const EVERY: Duration = Duration::from_secs(10);

/// Whether `meta` is one of the lines this layer replaces.
pub fn is_dispatcher_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with(DISPATCHER)
}

/// When the last summary was written, and what arrived since.
#[derive(Debug)]
struct Window {
    last_line: Option<Instant>,
    since: u64,
}

/// Decides when a summary is due: the first event at once, then at most one
/// line per `every`, carrying the count since the previous line.
#[derive(Debug)]
pub struct RateLimit {
    every: Duration,
    window: Mutex<Window>,
}

impl RateLimit {
    pub fn new(every: Duration) -> Self {
        RateLimit {
            every,
            window: Mutex::new(Window {
                last_line: None,
                since: 0,
            }),
        }
    }

    /// Counts one event; `Some(n)` when a line is due now, saying `n` events
    /// (this one included) since the last line.
    pub fn hit(&self, now: Instant) -> Option<u64> {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        w.since += 1;
        let due = w
            .last_line
            .is_none_or(|at| now.saturating_duration_since(at) >= self.every);
        if !due {
            return None;
        }
        w.last_line = Some(now);
        Some(std::mem::take(&mut w.since))
    }
}

pub struct MalformedRequests {
    limit: RateLimit,
    total: AtomicU64,
}

impl Default for MalformedRequests {
    fn default() -> Self {
        MalformedRequests {
            limit: RateLimit::new(EVERY),
            total: AtomicU64::new(0),
        }
    }
}

/// The event's `message`, as actix-http wrote it.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for MalformedRequests {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if !is_dispatcher_error(event.metadata()) {
            return;
        }
        metrics::counter!("parley_http_malformed_total").increment(1);
        let total = self.total.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(since) = self.limit.hit(Instant::now()) {
            let mut last = Message::default();
            event.record(&mut last);
            tracing::warn!(
                since,
                total,
                last = %last.0,
                "HTTP requests refused as malformed or dropped by the connection (at most one line per {} s)",
                EVERY.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_at_once_then_at_most_one_per_period_with_the_count_since() {
        let t0 = Instant::now();
        let r = RateLimit::new(Duration::from_secs(10));
        assert_eq!(r.hit(t0), Some(1));
        for i in 1..=500 {
            assert_eq!(r.hit(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(r.hit(t0 + Duration::from_secs(10)), Some(501));
        assert_eq!(r.hit(t0 + Duration::from_secs(11)), None);
        assert_eq!(r.hit(t0 + Duration::from_secs(25)), Some(2));
    }
}
