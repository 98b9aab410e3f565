//! The handle others hold to push frames to a session without a mailbox hop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Addr;
use actix_ws::{CloseCode, CloseReason};
use bytestring::ByteString;
use tokio::sync::mpsc;

use super::actor::{Control, SessionActor};
use crate::domain::{SessionId, TraceContext, TraceId, Username};
use crate::supervision::Envelope;

/// What the writer task puts on the socket.
pub enum Outbound {
    /// A frame, with the trace that caused it and when it was queued (the
    /// writer records the delivery hop).
    Text(ByteString, TraceId, std::time::Instant),
    Ping,
    Pong(actix_web::web::Bytes),
    Close(CloseReason),
}

#[derive(Clone)]
pub struct SessionHandle {
    pub id: SessionId,
    pub username: Username,
    /// Unix ms of the upgrade.
    pub since: i64,
    pub(super) outbound: mpsc::Sender<Outbound>,
    pub(super) control: Addr<SessionActor>,
    /// Set once the queue overflowed, so the actor is told only once.
    pub(super) overflowed: Arc<AtomicBool>,
}

impl SessionHandle {
    /// Queues a frame for the client. When the queue is full the session is a
    /// slow consumer: the frame is dropped (it stays in history) and the
    /// session is told to close with 1008. Returns whether it was queued.
    pub fn deliver(&self, frame: ByteString, trace: TraceContext) -> bool {
        match self.outbound.try_send(Outbound::Text(
            frame,
            trace.trace_id,
            std::time::Instant::now(),
        )) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("parley_mailbox_rejections_total", "queue" => "session_outbound")
                    .increment(1);
                if !self.overflowed.swap(true, Ordering::AcqRel) {
                    self.control
                        .do_send(Envelope::new(trace, Control::SlowConsumer));
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the session to close with this code (admin, shutdown, limits).
    pub fn close(&self, code: CloseCode, reason: &str, trace: TraceContext) {
        self.control.do_send(Envelope::new(
            trace,
            Control::Close {
                code,
                reason: reason.to_string(),
            },
        ));
    }

    /// Frames waiting in the outbound queue.
    pub fn queued(&self) -> usize {
        self.outbound.max_capacity() - self.outbound.capacity()
    }
}
