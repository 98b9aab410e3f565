//! One actor per active conversation. It holds the membership and the last
//! committed seq (loaded from the store before its first message), checks
//! every request against the membership, sends messages to the store and fans
//! each committed message out to every session of every member, in seq order.
//!
//! The store assigns seq inside the commit, so seq stays gap-free even when a
//! commit fails; commit outcomes come back as `Committed` messages through
//! this actor's own mailbox in commit order, which keeps fan-out in seq order
//! without the actor ever waiting on a commit.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use actix::prelude::*;

mod core;
mod delivery;
mod membership;
mod remote;

use self::core::{Commit, Delivery};

use super::conversations::ConversationRouter;
use super::registry::SessionRegistry;
use super::{ChatError, ChatResult};
use crate::cluster::ClusterHandle;
use crate::config::Settings;
use crate::domain::{
    now_ms, Conversation, ConversationId, MessageId, MessageKind, SessionId, TraceContext, Username,
};
use crate::protocol::ServerFrame;
use crate::store::redis::EventKind;
use crate::store::{AppendOutcome, Completion, NewMessage, Store, StoreError};
use crate::supervision::faults::{Faults, Injected};
use crate::supervision::{Envelope, Msg, Responder};
use crate::traces::{self, ActorRef};
use std::sync::Arc;

/// Requests from sessions and HTTP handlers.
pub enum ConvRequest {
    Send {
        sender: Username,
        client_msg_id: String,
        text: String,
        kind: MessageKind,
        reply: Responder<ChatResult<AppendOutcome>>,
    },
    /// `reply`: whether `user` got an invitation rather than the membership.
    Invite {
        by: Username,
        user: Username,
        reply: Responder<ChatResult<bool>>,
    },
    /// `user` accepts their invitation to this group.
    Accept {
        user: Username,
        reply: Responder<ChatResult<()>>,
    },
    /// `user` declines it.
    Decline {
        user: Username,
        reply: Responder<ChatResult<()>>,
    },
    Leave {
        user: Username,
        /// The session that asked (it gets `left`, not `member_left`).
        session: Option<SessionId>,
        reply: Responder<ChatResult<()>>,
    },
    Read {
        user: Username,
        seq: u64,
        reply: Responder<ChatResult<()>>,
    },
    Typing {
        user: Username,
        reply: Responder<ChatResult<()>>,
    },
    /// Cluster mode: an event from the cluster channel (a committed message
    /// from any node, or a membership change, read or typing from another).
    Remote { event: EventKind, origin: String },
    /// Cluster mode: the channel was lost and is back; fetch what was missed.
    CatchUp,
}

impl Msg for ConvRequest {
    type Reply = ();
    const NAME: &'static str = "conversation_request";

    /// The same request resent (a retry after `internal`) has the same
    /// fingerprint, so a request that keeps crashing the actor is refused.
    fn fingerprint(&self) -> Option<u64> {
        let mut h = DefaultHasher::new();
        match self {
            ConvRequest::Send {
                sender,
                client_msg_id,
                ..
            } => ("send", sender, client_msg_id).hash(&mut h),
            ConvRequest::Invite { by, user, .. } => ("invite", by, user).hash(&mut h),
            ConvRequest::Accept { user, .. } => ("accept", user).hash(&mut h),
            ConvRequest::Decline { user, .. } => ("decline", user).hash(&mut h),
            ConvRequest::Leave { user, .. } => ("leave", user).hash(&mut h),
            ConvRequest::Read { user, seq, .. } => ("read", user, seq).hash(&mut h),
            // Ephemeral and never retried, or not from a client: not worth tracking.
            ConvRequest::Typing { .. } | ConvRequest::Remote { .. } | ConvRequest::CatchUp => {
                return None
            }
        }
        Some(h.finish())
    }
}

impl ConvRequest {
    /// Answers the request with an error without handling it.
    pub fn reject(self, e: ChatError) {
        match self {
            ConvRequest::Send { reply, .. } => reply.respond(Err(e)),
            ConvRequest::Invite { reply, .. } => reply.respond(Err(e)),
            ConvRequest::Accept { reply, .. }
            | ConvRequest::Decline { reply, .. }
            | ConvRequest::Leave { reply, .. }
            | ConvRequest::Read { reply, .. }
            | ConvRequest::Typing { reply, .. } => reply.respond(Err(e)),
            // Nobody waits for these; what they carried is in the store, and
            // the gap is fetched when the next message arrives.
            ConvRequest::Remote { .. } | ConvRequest::CatchUp => {}
        }
    }
}

/// A commit outcome, routed back through the mailbox (see the module doc).
pub struct Committed {
    message_id: MessageId,
    outcome: Result<AppendOutcome, StoreError>,
    reply: Responder<ChatResult<AppendOutcome>>,
    /// When the conversation accepted the message (for the trace).
    accepted: Instant,
}

impl Msg for Committed {
    type Reply = ();
    const NAME: &'static str = "committed";
}

/// For the admin view: what this actor holds.
pub struct Describe;

/// A conversation actor's state, for operators.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationStatus {
    pub conversation_id: ConversationId,
    pub state: &'static str,
    pub kind: Option<&'static str>,
    /// The group's name (a direct conversation's is `alice,bob`); none until loaded.
    pub name: Option<String>,
    pub members: Vec<Username>,
    pub members_online: Vec<Username>,
    pub last_seq: u64,
    /// The last seq fanned out to this node's sessions.
    pub delivered_seq: Option<u64>,
    /// Messages waiting for a gap to be fetched or an ack to go out.
    pub held: usize,
    pub inflight: usize,
    pub idle_ms: u64,
}

impl Msg for Describe {
    type Reply = ConversationStatus;
    const NAME: &'static str = "describe";
}

/// Sent to itself once retiring: nobody can route here any more, so when
/// this arrives every request ever routed here has been handled.
pub struct Stop {
    /// The incarnation that asked; a later incarnation ignores it.
    incarnation: u32,
}

impl Msg for Stop {
    type Reply = ();
    const NAME: &'static str = "stop";
}

enum State {
    Loading,
    Ready(Conversation),
    Missing,
    /// The store could not be read; every request gets `unavailable`.
    Failed(String),
}

pub struct ConversationActor {
    id: ConversationId,
    settings: Arc<Settings>,
    store: Store,
    registry: SessionRegistry,
    router: ConversationRouter,
    faults: Arc<Faults>,
    state: State,
    /// Appends sent to the store whose `Committed` has not come back yet.
    inflight: usize,
    /// The highest read receipt fanned out per member since this actor
    /// started (at most one entry per member), so receipts never go back.
    read_marks: HashMap<Username, u64>,
    last_activity: Instant,
    /// Set once the router has marked this actor retiring.
    retiring: bool,
    /// Restarts so far (see `Stop`).
    incarnation: u32,
    stopping: bool,
    /// Cluster mode: messages are delivered from the cluster channel (every
    /// node's commits, in seq order), and events are published here.
    cluster: ClusterHandle,
    /// What is delivered, held, fetched or reloaded (see core.rs); it
    /// survives restarts.
    delivery: Delivery,
}

impl ConversationActor {
    pub fn new(
        id: ConversationId,
        settings: Arc<Settings>,
        store: Store,
        registry: SessionRegistry,
        router: ConversationRouter,
        faults: Arc<Faults>,
    ) -> Self {
        let cluster = ClusterHandle::of(&store);
        ConversationActor {
            delivery: Delivery::new(id, cluster.is_shared(), None),
            cluster,
            id,
            settings,
            store,
            registry,
            router,
            faults,
            state: State::Loading,
            inflight: 0,
            read_marks: HashMap::new(),
            last_activity: Instant::now(),
            retiring: false,
            incarnation: 0,
            stopping: false,
        }
    }

    /// Where the predecessor of this actor left off.
    pub fn delivered_up_to(mut self, seq: Option<u64>) -> Self {
        self.delivery = Delivery::new(self.id, self.cluster.is_shared(), seq);
        self
    }

    /// Pushes one frame to every session of every member (`skip`: not to this user).
    fn fan_out(
        &self,
        conv: &Conversation,
        frame: &ServerFrame,
        trace: TraceContext,
        skip: Option<&Username>,
    ) {
        let text = frame.to_text();
        for member in &conv.members {
            if Some(member) == skip {
                continue;
            }
            self.registry.for_each_session(member, |session| {
                session.deliver(text.clone(), trace);
            });
        }
    }

    fn retire(&mut self, ctx: &mut Context<Self>) {
        if !self.retiring && self.router.begin_retire(self.id, &ctx.address()) {
            self.retiring = true;
            let stop = Stop {
                incarnation: self.incarnation,
            };
            ctx.address()
                .do_send(Envelope::new(TraceContext::random(), stop));
        }
    }

    fn handle_request(&mut self, req: ConvRequest, trace: TraceContext, ctx: &mut Context<Self>) {
        if matches!(req, ConvRequest::Remote { .. } | ConvRequest::CatchUp)
            && matches!(self.state, State::Failed(_) | State::Loading)
        {
            // Not delivered here (this actor retires): the successor
            // catches up, before the next message shows the gap.
            self.router.mark_lagging(self.id);
        }
        let conv = match &self.state {
            State::Ready(c) => c,
            State::Missing => {
                return req.reject(ChatError::NotFound("no such conversation".into()))
            }
            State::Failed(e) => {
                return req.reject(ChatError::Unavailable(format!(
                    "conversation unavailable: {e}"
                )))
            }
            State::Loading => {
                return req.reject(ChatError::Internal("conversation not loaded".into()))
            }
        };
        match req {
            ConvRequest::Remote { event, origin } => self.on_remote(event, &origin, trace, ctx),
            ConvRequest::CatchUp => self.catch_up(ctx),
            ConvRequest::Send {
                sender,
                client_msg_id,
                text,
                kind,
                reply,
            } => {
                if !conv.is_member(&sender) {
                    return reply.respond(Err(ChatError::not_member()));
                }
                if self.inflight >= self.settings.conversations.max_inflight {
                    return reply.respond(Err(ChatError::RateLimited(
                        "too many messages waiting to be stored in this conversation; retry".into(),
                    )));
                }
                self.inflight += 1;
                let me = ctx.address();
                let message_id = MessageId::new_v7();
                // Its message waits for its ack (see `Delivery::appending`).
                self.delivery.appending(message_id);
                let message = NewMessage {
                    conversation_id: self.id,
                    message_id,
                    sender,
                    client_msg_id,
                    kind,
                    text,
                    sent_at: now_ms(),
                    trace_id: trace.trace_id,
                };
                let accepted = Instant::now();
                // Runs on the writer thread, in commit order; dropped unanswered
                // (the writer failed mid-batch) it still reports back, with
                // `StoreError::Lost`, so `inflight` comes down. If this actor
                // is gone the envelope is dropped and `reply` answers `internal`.
                self.store.append_then(
                    message,
                    Completion::new(move |outcome| {
                        me.do_send(Envelope::new(
                            trace,
                            Committed {
                                message_id,
                                outcome,
                                reply,
                                accepted,
                            },
                        ));
                    }),
                );
            }
            ConvRequest::Typing { user, reply } => {
                if !conv.is_member(&user) {
                    return reply.respond(Err(ChatError::not_member()));
                }
                let frame = ServerFrame::Typing {
                    conversation_id: self.id,
                    username: user.clone(),
                    trace_id: trace.trace_id,
                };
                self.fan_out(conv, &frame, trace, Some(&user));
                reply.respond(Ok(()));
                self.publish(
                    EventKind::Typing {
                        conversation_id: self.id,
                        username: user,
                    },
                    trace,
                );
            }
            ConvRequest::Read { user, seq, reply } => {
                if !conv.is_member(&user) {
                    return reply.respond(Err(ChatError::not_member()));
                }
                if seq == 0 || seq > conv.last_seq {
                    return reply.respond(Err(ChatError::BadRequest(format!(
                        "seq must be between 1 and {} (the last message)",
                        conv.last_seq
                    ))));
                }
                if self.read_marks.get(&user).is_some_and(|&m| m >= seq) {
                    return reply.respond(Ok(()));
                }
                self.read_marks.insert(user.clone(), seq);
                let frame = ServerFrame::Read {
                    conversation_id: self.id,
                    username: user.clone(),
                    seq,
                    trace_id: trace.trace_id,
                };
                self.fan_out(conv, &frame, trace, Some(&user));
                self.publish(
                    EventKind::Read {
                        conversation_id: self.id,
                        username: user.clone(),
                        seq,
                    },
                    trace,
                );
                let store = self.store.clone();
                let id = self.id;
                // The marker is advisory (unread counts); the receipt is sent
                // already, so its write need not hold the mailbox.
                actix_rt::spawn(async move {
                    if let Err(e) = store.set_read(id, user, seq).await {
                        tracing::warn!(error = %e, trace_id = %trace.trace_id, "read marker not stored");
                    }
                });
                reply.respond(Ok(()));
            }
            ConvRequest::Invite { by, user, reply } => {
                self.invite(conv, by, user, reply, trace, ctx)
            }
            ConvRequest::Accept { user, reply } => self.accept(user, reply, trace, ctx),
            ConvRequest::Decline { user, reply } => self.decline(user, reply, ctx),
            ConvRequest::Leave {
                user,
                session,
                reply,
            } => self.leave(conv, user, session, reply, trace, ctx),
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.conversations.mailbox);
        // After a restart that interrupted a retirement, take the entry back
        // (a first start has nothing to take back: no write lock for it).
        if self.incarnation > 0 {
            self.router.revive(self.id, &ctx.address());
        }
        let store = self.store.clone();
        let id = self.id;
        // Recover state before the first message is handled.
        ctx.wait(
            async move { store.conversation(id).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.state = match res {
                        Ok(Some(c)) => State::Ready(c),
                        Ok(None) => State::Missing,
                        Err(e) => State::Failed(e.to_string()),
                    };
                    if let State::Ready(c) = &act.state {
                        let (last_seq, members) = (c.last_seq, c.members.clone());
                        act.note_routed();
                        let actions = act.delivery.loaded(last_seq, &members);
                        act.apply(actions, ctx);
                    } else {
                        // Answer what is queued, then go: nothing to keep in memory.
                        act.retire(ctx);
                    }
                }),
        );
        let idle = self.settings.conversations.idle_stop;
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        ctx.run_interval(every, move |act, ctx| {
            // Nothing may be waiting to go out: held messages would be lost.
            if act.settled() && act.last_activity.elapsed() >= idle {
                act.retire(ctx);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        // Retired, or stopped otherwise (a `stop` fault drops what is
        // queued, commit outcomes included): the successor starts where
        // this one left off, so what it did not deliver is fetched when the
        // successor's first message shows the gap.
        self.note_routed();
        let handover = self.delivery.handover();
        if let Some(seq) = handover.remember {
            self.router.remember(self.id, seq);
        }
        if handover.lagging {
            self.router.mark_lagging(self.id);
        }
        if self.retiring {
            self.router.retired(self.id);
        }
    }
}

/// A restart starts from fresh state: everything is dropped and `started`
/// reloads membership and the last seq from the store before the next
/// message. Appends already handed to the store still report back as
/// `Committed` and are acked and fanned out by the new incarnation.
impl Supervised for ConversationActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.state = State::Loading;
        self.inflight = 0;
        self.read_marks.clear();
        self.last_activity = Instant::now();
        self.retiring = false;
        self.stopping = false;
        self.incarnation += 1;
        // Delivery state is kept (see core.rs); a fetch in flight
        // belonged to the failed incarnation.
        self.delivery.restarted();
        // A supervisor's restart runs `stopped` first, which left this
        // actor's position for a successor; it serves on instead.
        self.router.forget(self.id);
    }
}

impl Handler<Envelope<ConvRequest>> for ConversationActor {
    type Result = ();

    fn handle(&mut self, env: Envelope<ConvRequest>, ctx: &mut Self::Context) {
        let scope = env.enter("conversation");
        if scope.poisoned() {
            tracing::warn!(conversation = %self.id, "refusing a poison request");
            return env.msg.reject(ChatError::BadRequest(
                "this request crashed the conversation repeatedly and is refused (poison message)"
                    .into(),
            ));
        }
        if self.faults.inject("conversation", || self.id.to_string()) == Injected::Stop {
            return ctx.stop();
        }
        self.last_activity = Instant::now();
        self.handle_request(env.msg, env.trace, ctx);
    }
}

impl Handler<Envelope<Committed>> for ConversationActor {
    type Result = ();

    fn handle(&mut self, env: Envelope<Committed>, ctx: &mut Self::Context) {
        let _scope = env.enter("conversation");
        self.inflight = self.inflight.saturating_sub(1);
        let Committed {
            message_id,
            outcome,
            reply,
            accepted,
        } = env.msg;
        let commit = match outcome {
            Ok(outcome) => {
                let fresh = !outcome.duplicate;
                let message = outcome.message.clone();
                // The sender's ack is queued before the message frame, so the
                // sending session always sees `ack` then `message`.
                reply.respond(Ok(outcome));
                if fresh {
                    let hot = crate::telemetry::hot();
                    hot.messages_committed.increment(1);
                    let delivery = accepted.elapsed();
                    hot.delivery_seconds.record(delivery.as_secs_f64());
                    crate::series::record("messages_committed", 1.0);
                    crate::series::record("delivery_ms", delivery.as_secs_f64() * 1000.0);
                    traces::hop(
                        env.trace.trace_id,
                        "conversation",
                        ActorRef::Conversation(self.id),
                        format!("sequenced seq {}", message.seq),
                        accepted.elapsed(),
                    );
                    if self.cluster.is_shared() {
                        // The sender may already mark it read.
                        if let State::Ready(conv) = &mut self.state {
                            conv.last_seq = conv.last_seq.max(message.seq);
                        }
                    }
                    Commit::Fresh(message, env.trace)
                } else {
                    Commit::Duplicate(message, env.trace)
                }
            }
            Err(e) => {
                reply.respond(Err(e.into()));
                Commit::Failed
            }
        };
        let actions = self.delivery.committed(message_id, commit);
        self.apply(actions, ctx);
    }
}

impl Handler<Envelope<Stop>> for ConversationActor {
    type Result = ();

    fn handle(&mut self, env: Envelope<Stop>, ctx: &mut Self::Context) {
        if env.msg.incarnation != self.incarnation {
            // Sent by an incarnation that failed while retiring; this one
            // took the entry back (`revive`) and serves on.
            return;
        }
        self.stopping = true;
        self.maybe_stop(ctx);
    }
}

impl Handler<Envelope<Describe>> for ConversationActor {
    type Result = MessageResult<Envelope<Describe>>;

    fn handle(&mut self, _: Envelope<Describe>, _: &mut Self::Context) -> Self::Result {
        let (state, conv) = match &self.state {
            State::Loading => ("loading", None),
            State::Ready(c) => ("ready", Some(c)),
            State::Missing => ("missing", None),
            State::Failed(_) => ("failed", None),
        };
        let members = conv.map(|c| c.members.clone()).unwrap_or_default();
        let members_online = members
            .iter()
            .filter(|m| self.registry.is_online(m))
            .cloned()
            .collect();
        MessageResult(ConversationStatus {
            conversation_id: self.id,
            state: if self.retiring { "retiring" } else { state },
            kind: conv.map(|c| c.kind.as_str()),
            name: conv.map(|c| c.name.clone()),
            members,
            members_online,
            last_seq: conv.map_or(0, |c| c.last_seq),
            delivered_seq: self.delivery.delivered(),
            held: self.delivery.held(),
            inflight: self.inflight,
            idle_ms: self.last_activity.elapsed().as_millis() as u64,
        })
    }
}
