//! The traced envelope: the only type that implements `actix::Message`, so no
//! mailbox can receive a message without its trace context.

use crate::domain::TraceContext;

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

    /// The span a handler enters, so every log line of the handler carries
    /// `trace_id`.
    pub fn span(&self, actor: &'static str) -> tracing::Span {
        tracing::debug_span!("handle", actor, msg = M::NAME, trace_id = %self.trace.trace_id)
    }
}

impl<M: Msg> actix::Message for Envelope<M> {
    type Result = M::Reply;
}
