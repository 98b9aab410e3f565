//! The traced envelope: the only type that implements `actix::Message`, so no
//! mailbox can receive a message without its trace context.

use super::failure::TraceScope;
use crate::domain::TraceContext;

/// See [`Envelope::enter`].
pub struct HandlerScope {
    _trace: TraceScope,
    _span: tracing::span::EnteredSpan,
}

/// A message an actor can receive inside an [`Envelope`].
pub trait Msg: Send + 'static {
    type Reply: Send + 'static;
    /// A short name for logs and traces.
    const NAME: &'static str;
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
    pub fn enter(&self, actor: &'static str) -> HandlerScope {
        let span =
            tracing::debug_span!("handle", actor, msg = M::NAME, trace_id = %self.trace.trace_id);
        HandlerScope {
            _trace: TraceScope::enter(self.trace.trace_id),
            _span: span.entered(),
        }
    }
}

impl<M: Msg> actix::Message for Envelope<M> {
    type Result = M::Reply;
}
