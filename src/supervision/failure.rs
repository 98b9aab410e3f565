//! Turning a panic into a failure report: message, location and the traceId
//! of the message being handled. The panic hook runs before unwinding, while
//! the handler's trace scope is still set, and leaves the report in a
//! thread-local for the runner that catches the unwind.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Once;

use crate::domain::{now_ms, TraceId};

/// Why a supervised actor failed.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub reason: String,
    pub location: Option<String>,
    pub trace_id: Option<TraceId>,
    /// Unix ms; shown as an RFC 3339 time.
    #[serde(serialize_with = "as_rfc3339")]
    pub at: i64,
    /// The failing message's fingerprint (see `Msg::fingerprint`).
    #[serde(skip)]
    pub fingerprint: Option<u64>,
}

fn as_rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::domain::rfc3339_ms(*ms))
}

thread_local! {
    static CURRENT_TRACE: Cell<Option<TraceId>> = const { Cell::new(None) };
    static CURRENT_FINGERPRINT: Cell<Option<u64>> = const { Cell::new(None) };
    /// The poison book of the runner polling on this thread right now.
    static POISON: RefCell<Option<Rc<RefCell<PoisonBook>>>> = const { RefCell::new(None) };
    static LAST_PANIC: RefCell<Option<Failure>> = const { RefCell::new(None) };
    static SUPERVISED_DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Sets the trace of the message being handled on this thread for as long
/// as it lives (handlers hold one through `Envelope::enter`).
pub struct TraceScope {
    previous: Option<TraceId>,
    previous_fingerprint: Option<u64>,
}

impl TraceScope {
    pub fn enter(trace: TraceId, fingerprint: Option<u64>) -> Self {
        TraceScope {
            previous: CURRENT_TRACE.with(|c| c.replace(Some(trace))),
            previous_fingerprint: CURRENT_FINGERPRINT.with(|c| c.replace(fingerprint)),
        }
    }

    /// A narrower trace inside a handler (a client frame's own traceId),
    /// keeping the message's fingerprint.
    pub fn retrace(trace: TraceId) -> Self {
        let fingerprint = CURRENT_FINGERPRINT.with(Cell::get);
        Self::enter(trace, fingerprint)
    }
}

impl Drop for TraceScope {
    fn drop(&mut self) {
        CURRENT_TRACE.with(|c| c.set(self.previous));
        CURRENT_FINGERPRINT.with(|c| c.set(self.previous_fingerprint));
    }
}

/// Crashes per message fingerprint for one actor, across its restarts.
/// Bounded: at most `CAPACITY` fingerprints, the oldest forgotten first.
pub struct PoisonBook {
    tries: u32,
    crashes: VecDeque<(u64, u32)>,
}

impl PoisonBook {
    const CAPACITY: usize = 256;

    pub fn new(tries: u32) -> Self {
        PoisonBook {
            tries,
            crashes: VecDeque::new(),
        }
    }

    /// Counts a crash; true when the message has now used up its tries.
    pub fn record(&mut self, fingerprint: u64) -> bool {
        let count = match self.crashes.iter_mut().find(|(f, _)| *f == fingerprint) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                if self.crashes.len() >= Self::CAPACITY {
                    self.crashes.pop_front();
                }
                self.crashes.push_back((fingerprint, 1));
                1
            }
        };
        count >= self.tries
    }

    pub fn is_poisoned(&self, fingerprint: u64) -> bool {
        self.crashes
            .iter()
            .any(|(f, n)| *f == fingerprint && *n >= self.tries)
    }
}

/// Whether the message being handled on this thread is poison for the
/// actor being polled.
pub fn is_poisoned(fingerprint: u64) -> bool {
    POISON.with(|p| {
        p.borrow()
            .as_ref()
            .is_some_and(|book| book.borrow().is_poisoned(fingerprint))
    })
}

fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-text payload".to_string()
    }
}

/// Installs the panic hook once. Panics inside supervised actors are logged
/// as failures (with trace_id) instead of the default stderr message; other
/// panics go to the previous hook unchanged.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let failure = Failure {
                reason: payload_text(info.payload()),
                location: info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column())),
                trace_id: CURRENT_TRACE.with(Cell::get),
                at: now_ms(),
                fingerprint: CURRENT_FINGERPRINT.with(Cell::get),
            };
            if SUPERVISED_DEPTH.with(Cell::get) > 0 {
                tracing::error!(
                    trace_id = failure.trace_id.map(|t| t.to_string()).unwrap_or_default(),
                    location = failure.location.as_deref().unwrap_or("?"),
                    "supervised actor panicked: {}",
                    failure.reason
                );
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(failure));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into a `Failure`.
pub fn supervised<R>(f: impl FnOnce() -> R) -> Result<R, Failure> {
    SUPERVISED_DEPTH.with(|d| d.set(d.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    SUPERVISED_DEPTH.with(|d| d.set(d.get() - 1));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| Failure {
                reason: payload_text(payload.as_ref()),
                location: None,
                trace_id: None,
                at: now_ms(),
                fingerprint: None,
            })
    })
}

/// As [`supervised`], with `book` as the poison book of the actor polled.
pub fn supervised_with<R>(
    book: &Rc<RefCell<PoisonBook>>,
    f: impl FnOnce() -> R,
) -> Result<R, Failure> {
    let previous = POISON.with(|p| p.replace(Some(book.clone())));
    let result = supervised(f);
    POISON.with(|p| *p.borrow_mut() = previous);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_failure_with_its_trace() {
        install_panic_hook();
        let trace = TraceId::random();
        let failure = supervised(|| {
            let _scope = TraceScope::enter(trace, Some(9));
            panic!("boom {}", 7);
        })
        .unwrap_err();
        assert_eq!(failure.reason, "boom 7");
        assert_eq!(failure.trace_id, Some(trace));
        assert_eq!(failure.fingerprint, Some(9));
        assert!(failure.location.unwrap().contains("failure.rs"));
        assert_eq!(supervised(|| 5).unwrap(), 5);
    }

    #[test]
    fn poison_after_the_configured_tries() {
        let mut book = PoisonBook::new(3);
        assert!(!book.record(1));
        assert!(!book.record(1));
        assert!(!book.is_poisoned(1));
        assert!(book.record(1));
        assert!(book.is_poisoned(1));
        assert!(!book.is_poisoned(2));
        for f in 100..(100 + PoisonBook::CAPACITY as u64) {
            book.record(f);
        }
        assert!(!book.is_poisoned(1), "bounded: the oldest is forgotten");
    }
}
