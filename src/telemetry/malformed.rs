//! actix-http logs every request it cannot parse (and every connection it
//! drops on an I/O error) as an ERROR line from its HTTP/1 dispatcher, with
//! no limit: anyone can fill the log by sending garbage. This layer takes
//! those lines over: each is counted in `parley_http_malformed_total`, and
//! a reporter thread writes at most one WARN line per `EVERY` saying how
//! many arrived and the last one. (Not from inside the layer: `tracing`
//! drops events emitted while an event is being dispatched.) The original
//! lines are kept out of the log by `KeepOut`. Only its "stream error"
//! lines (a request that failed to parse, a connection that failed): the
//! dispatcher's other ERROR lines are server-side faults and stay.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// The module whose ERROR lines are taken over.
pub const DISPATCHER: &str = "actix_http::h1::dispatcher";

/// At most one summary line per this long.
const EVERY: Duration = Duration::from_secs(10);

/// Whether `meta` may be one of the lines this layer replaces.
fn is_dispatcher_error(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with(DISPATCHER)
}

/// Whether `event` is one of the lines this layer replaces, with its message.
fn replaced(event: &Event<'_>) -> Option<String> {
    if !is_dispatcher_error(event.metadata()) {
        return None;
    }
    let mut message = Message::default();
    event.record(&mut message);
    message.0.starts_with("stream error").then_some(message.0)
}

/// The filter of the log's own layer: everything but the replaced lines.
pub struct KeepOut;

impl<S: Subscriber> tracing_subscriber::layer::Filter<S> for KeepOut {
    fn enabled(&self, _: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _: &Context<'_, S>) -> bool {
        replaced(event).is_none()
    }
}

/// What arrived since the last summary (shared with the reporter).
#[derive(Debug, Default)]
struct Seen {
    since: AtomicU64,
    /// The last line's message, at most `MAX_LAST` bytes.
    last: Mutex<String>,
}

const MAX_LAST: usize = 512;

impl Seen {
    /// The count since the last call and the last message, if any arrived.
    fn take(&self) -> Option<(u64, String)> {
        let n = self.since.swap(0, Ordering::Relaxed);
        (n > 0).then(|| {
            let last = self.last.lock();
            (n, last.clone())
        })
    }
}

pub struct MalformedRequests {
    seen: Arc<Seen>,
}

impl MalformedRequests {
    /// The layer, and its reporter thread started (one per process: the
    /// subscriber is installed once).
    pub fn start() -> Self {
        let seen = Arc::new(Seen::default());
        let reporter = seen.clone();
        let started = std::thread::Builder::new()
            .name("parley-malformed-log".into())
            .spawn(move || loop {
                std::thread::sleep(EVERY);
                if let Some((since, last)) = reporter.take() {
                    tracing::warn!(
                        since,
                        last = %last,
                        "HTTP requests refused as malformed or dropped by their connection in the last {} s",
                        EVERY.as_secs()
                    );
                }
            });
        if let Err(e) = started {
            eprintln!("parley: no reporter of malformed requests: {e}");
        }
        MalformedRequests { seen }
    }
}

/// The event's `message`, as actix-http wrote it.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
            self.0.truncate(MAX_LAST);
        }
    }
}

impl<S: Subscriber> Layer<S> for MalformedRequests {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let Some(message) = replaced(event) else {
            return;
        };
        metrics::counter!("parley_http_malformed_total").increment(1);
        *self.seen.last.lock() = message;
        self.seen.since.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use parking_lot::Mutex;
    use std::io::Write;
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_dispatcher_s_lines_are_counted_and_kept_out_of_the_log() {
        let sink = Sink::default();
        let writer = sink.clone();
        let fmt = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .boxed()
            .with_filter(super::KeepOut);
        let layer = super::MalformedRequests::start();
        let seen = layer.seen.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("warn"))
            .with(layer)
            .with(fmt);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..3 {
                tracing::error!(target: "actix_http::h1::dispatcher", "stream error: bad {i}");
            }
            tracing::error!(target: "parley::other", "a real error");
            tracing::error!(target: "actix_http::h1::dispatcher", "Upgrade handler error: x");
        });
        let out = String::from_utf8(sink.0.lock().clone()).unwrap();
        assert!(!out.contains("stream error"), "{out}");
        assert!(out.contains("a real error"), "{out}");
        assert!(
            out.contains("Upgrade handler error"),
            "server faults stay: {out}"
        );
        assert_eq!(seen.take(), Some((3, "stream error: bad 2".to_string())));
        assert_eq!(seen.take(), None);
    }
}
