//! The traced envelope: the only type that implements `actix::Message`, so no
//! mailbox can receive a message without its trace context.

use super::failure::{is_poisoned, TraceScope};
use crate::domain::TraceContext;

/// See [`Envelope::enter`].
pub struct HandlerScope {
    poisoned: bool,
    _trace: TraceScope,
    _span: tracing::span::EnteredSpan,
}

impl HandlerScope {
    /// The message crashed its actor too often: refuse it (with an error
    /// reply), do not handle it.
    pub fn poisoned(&self) -> bool {
        self.poisoned
    }
}

/// A message an actor can receive inside an [`Envelope`].
pub trait Msg: Send + 'static {
    type Reply: Send + 'static;
    /// A short name for logs and traces.
    const NAME: &'static str;

    /// Identifies this message across redeliveries (a client resending the
    /// same request), so one that keeps crashing its actor can be refused as
    /// poison. None: never treated as poison.
    fn fingerprint(&self) -> Option<u64> {
        None
    }
}

pub struct Envelope<M: Msg> {
    pub trace: TraceContext,
    pub msg: M,
}

impl<M: Msg> Envelope<M> {
    pub fn new(trace: TraceContext, msg: M) -> Self {
        Envelope { trace, msg }
    }

    /// What a handler holds while it runs: a span carrying `trace_id` (so
    /// every log line of the handler shows it) and the thread's current trace
    /// (so a panic report names the message that caused it).
    ///
    /// When the message is poison (it crashed this actor
    /// `supervision.poison_tries` times already) [`HandlerScope::poisoned`]
    /// says so, and the handler refuses it instead of handling it.
    pub fn enter(&self, actor: &'static str) -> HandlerScope {
        let span =
            tracing::debug_span!("handle", actor, msg = M::NAME, trace_id = %self.trace.trace_id);
        let fingerprint = self.msg.fingerprint();
        HandlerScope {
            poisoned: fingerprint.is_some_and(is_poisoned),
            _trace: TraceScope::enter(self.trace.trace_id, fingerprint),
            _span: span.entered(),
        }
    }
}

impl<M: Msg> actix::Message for Envelope<M> {
    type Result = M::Reply;
}
