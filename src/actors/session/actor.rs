//! The session actor: lifecycle, heartbeats, closing.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_ws::{CloseCode, CloseReason};
use bytestring::ByteString;
use tokio::sync::mpsc;

use super::dispatch::DirectCache;
use super::handle::{Outbound, SessionHandle};
use super::heartbeat::Heartbeat;
use crate::actors::directory::{Joined, Left};
use crate::actors::Deps;
use crate::domain::{SessionId, TraceContext, Username};
use crate::limits::{FrameLimiter, Verdict};
use crate::protocol::{ErrorCode, ServerFrame};
use crate::supervision::{Envelope, Msg};

/// What the pump task reads from the socket.
pub enum Inbound {
    Text(ByteString),
    Binary,
    Ping(actix_web::web::Bytes),
    Pong,
    /// The client sent a close frame or the connection ended.
    Closed,
    /// A frame over `session.max_frame_bytes`.
    TooLarge,
    /// The peer broke the WebSocket protocol.
    ProtocolError(String),
}

impl Msg for Inbound {
    type Reply = ();
    const NAME: &'static str = "inbound";

    /// A client frame resent byte for byte is the same message.
    fn fingerprint(&self) -> Option<u64> {
        match self {
            Inbound::Text(t) => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(t.as_bytes(), &mut h);
                Some(std::hash::Hasher::finish(&h))
            }
            _ => None,
        }
    }
}

/// Orders from the rest of the server.
pub enum Control {
    /// The outbound queue overflowed.
    SlowConsumer,
    Close {
        code: CloseCode,
        reason: String,
    },
}

impl Msg for Control {
    type Reply = ();
    const NAME: &'static str = "control";
}

pub struct SessionActor {
    pub(super) id: SessionId,
    pub(super) user: Username,
    /// The user as trace ids know it: a frame's traceId is honoured only if
    /// it is this caller's (`traces::TraceOrigins`).
    pub(super) caller: crate::traces::Caller,
    pub(super) since: i64,
    /// The trace of the upgrade request (hello, presence, closing).
    pub(super) trace: TraceContext,
    pub(super) deps: Deps,
    pub(super) outbound: mpsc::Sender<Outbound>,
    /// A clone of the socket, used only to close it when the writer is stuck.
    ws: Option<actix_ws::Session>,
    writer: Option<tokio::task::JoinHandle<()>>,
    pub(super) handle: Option<SessionHandle>,
    heartbeat: Heartbeat,
    pub(super) direct: DirectCache,
    closing: bool,
    /// Restarts so far; the first incarnation greets and registers.
    incarnation: u32,
    /// The client frame being handled (its ref and trace), so a failure
    /// while handling it is answered with `internal`.
    pub(super) current: Option<(Option<String>, TraceContext)>,
    /// Frames per second (`limits.frames_per_sec`); kept across restarts.
    limiter: FrameLimiter,
}

impl SessionActor {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        id: SessionId,
        user: Username,
        since: i64,
        trace: TraceContext,
        deps: Deps,
        outbound: mpsc::Sender<Outbound>,
        ws: actix_ws::Session,
        writer: tokio::task::JoinHandle<()>,
    ) -> Self {
        let heartbeat = Heartbeat::new(Instant::now(), deps.settings.session.heartbeat_timeout);
        let direct = DirectCache::new(deps.settings.session.direct_cache);
        let l = &deps.settings.limits;
        let limiter = FrameLimiter::new(
            l.frames_per_sec,
            l.frame_burst,
            l.rate_limited_close_after,
            Instant::now(),
        );
        SessionActor {
            id,
            caller: deps.origins.caller(user.as_str()),
            user,
            since,
            trace,
            deps,
            outbound,
            ws: Some(ws),
            writer: Some(writer),
            handle: None,
            heartbeat,
            direct,
            closing: false,
            incarnation: 0,
            current: None,
            limiter,
        }
    }

    /// Queues a frame for this session's client.
    pub(super) fn push(&self, frame: &ServerFrame, trace: TraceContext) {
        if let Some(h) = &self.handle {
            h.deliver(frame.to_text(), trace);
        }
    }

    /// Closes after the frames already queued (a normal close).
    pub(super) fn close(&mut self, ctx: &mut Context<Self>, code: CloseCode, reason: &str) {
        if self.closing {
            return;
        }
        self.closing = true;
        let close = Outbound::Close(CloseReason {
            code,
            description: Some(reason.to_string()),
        });
        if self.outbound.try_send(close).is_err() {
            self.force_close(code, reason);
        }
        ctx.stop();
    }

    /// Closes now, dropping whatever is queued (a slow consumer): the writer
    /// is stopped and the close frame gets a bounded time to find room.
    fn force_close(&mut self, code: CloseCode, reason: &str) {
        self.closing = true;
        if let Some(w) = self.writer.take() {
            w.abort();
        }
        if let Some(ws) = self.ws.take() {
            let grace = self.deps.settings.session.slow_consumer_close_grace;
            let reason = CloseReason {
                code,
                description: Some(reason.to_string()),
            };
            actix_rt::spawn(async move {
                let _ = tokio::time::timeout(grace, ws.close(Some(reason))).await;
            });
        }
    }
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.deps.settings.session.mailbox);
        let handle = match &self.handle {
            Some(h) => h.clone(),
            None => {
                let h = SessionHandle {
                    id: self.id,
                    username: self.user.clone(),
                    since: self.since,
                    outbound: self.outbound.clone(),
                    control: ctx.address(),
                    overflowed: Arc::new(AtomicBool::new(false)),
                };
                self.handle = Some(h.clone());
                h
            }
        };
        // The hello is queued before the session enters the registry, so it
        // is the first frame; entering happens right after, in this same
        // call, so the client cannot act on its hello before it is there.
        if self.incarnation == 0 {
            let hello = ServerFrame::Hello {
                username: self.user.clone(),
                session_id: self.id,
                node: self.deps.settings.server.node_id.clone(),
                heartbeat_secs: self.deps.settings.session.heartbeat.as_secs(),
                trace_id: self.trace.trace_id,
            };
            self.push(&hello, self.trace);
        }
        // A restarted session is usually still registered (same handle);
        // after a hold of its subtree it comes back.
        let (count, new) = self.deps.registry.insert(handle.clone());
        if new {
            metrics::gauge!("parley_sessions_connected").increment(1.0);
            self.deps
                .directory
                .do_send(Envelope::new(self.trace, Joined { handle, count }));
        }
        let every = self.deps.settings.session.heartbeat;
        ctx.run_interval(every, |act, ctx| {
            if act.heartbeat.expired(Instant::now()) {
                tracing::info!(session = %act.id, user = %act.user, "heartbeat timeout");
                act.close(ctx, CloseCode::Policy, "heartbeat timeout");
            } else if act.outbound.try_send(Outbound::Ping).is_err() && !act.outbound.is_closed() {
                act.force_close(CloseCode::Policy, "slow consumer");
                ctx.stop();
            }
        });
        tracing::info!(session = %self.id, user = %self.user, trace_id = %self.trace.trace_id, "session started");
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(remaining) = self.deps.registry.remove(&self.user, self.id) {
            metrics::gauge!("parley_sessions_connected").decrement(1.0);
            let left = Left {
                user: self.user.clone(),
                remaining,
            };
            self.deps.directory.do_send(Envelope::new(self.trace, left));
        }
        tracing::info!(session = %self.id, user = %self.user, "session stopped");
    }
}

/// A restarted session keeps its socket, its queue and its registration
/// (the same address serves on); it answers the frame it failed on with
/// `internal` and starts again with fresh per-frame state.
impl Supervised for SessionActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.incarnation += 1;
        if let Some((reference, trace)) = self.current.take() {
            let f = ServerFrame::error(
                ErrorCode::Internal,
                "the session failed while handling this frame and was restarted; retry",
                reference,
                trace.trace_id,
            );
            self.push(&f, trace);
        }
        self.direct = DirectCache::new(self.deps.settings.session.direct_cache);
        self.heartbeat =
            Heartbeat::new(Instant::now(), self.deps.settings.session.heartbeat_timeout);
    }
}

impl Handler<Envelope<Inbound>> for SessionActor {
    type Result = ();

    fn handle(&mut self, env: Envelope<Inbound>, ctx: &mut Self::Context) {
        if self.closing {
            return;
        }
        let now = Instant::now();
        self.heartbeat.heard(now);
        if matches!(
            env.msg,
            Inbound::Text(_) | Inbound::Binary | Inbound::Ping(_)
        ) {
            match self.limiter.check(now) {
                Verdict::Allow => {}
                Verdict::Refuse => return self.refuse_rate(&env.msg, env.trace),
                Verdict::Close => {
                    metrics::counter!("parley_rate_limited_total", "what" => "session_closed")
                        .increment(1);
                    return self.close(ctx, CloseCode::Policy, "rate limit exceeded");
                }
            }
        }
        let scope = env.enter("session");
        if scope.poisoned() {
            if let Inbound::Text(text) = &env.msg {
                return self.refuse_poison(text);
            }
        }
        match env.msg {
            Inbound::Text(text) => self.on_text(&text, ctx),
            Inbound::Binary => {
                let f = ServerFrame::error(
                    ErrorCode::Unsupported,
                    "binary frames are not supported; send JSON text frames",
                    None,
                    env.trace.trace_id,
                );
                self.push(&f, env.trace);
            }
            Inbound::Ping(bytes) => {
                if self.outbound.try_send(Outbound::Pong(bytes)).is_err() {
                    self.force_close(CloseCode::Policy, "slow consumer");
                    ctx.stop();
                }
            }
            Inbound::Pong => {}
            Inbound::Closed => self.close(ctx, CloseCode::Normal, "bye"),
            Inbound::TooLarge => {
                let max = self.deps.settings.session.max_frame_bytes;
                self.close(
                    ctx,
                    CloseCode::Size,
                    &format!("frame larger than {max} bytes"),
                );
            }
            Inbound::ProtocolError(e) => {
                tracing::info!(error = %e, "websocket protocol error");
                self.close(ctx, CloseCode::Protocol, "protocol error");
            }
        }
    }
}

impl Handler<Envelope<Control>> for SessionActor {
    type Result = ();

    fn handle(&mut self, env: Envelope<Control>, ctx: &mut Self::Context) {
        let _scope = env.enter("session");
        match env.msg {
            Control::SlowConsumer => {
                tracing::warn!(session = %self.id, user = %self.user, "slow consumer: outbound queue full, closing");
                self.force_close(CloseCode::Policy, "slow consumer");
                ctx.stop();
            }
            Control::Close { code, reason } => self.close(ctx, code, &reason),
        }
    }
}
