//! What a session does with each client frame.

use std::collections::{HashMap, VecDeque};

use actix::prelude::*;

use super::actor::SessionActor;
use crate::actors::conversation::ConvRequest;
use crate::actors::directory::introduce_direct;
use crate::actors::groups::start_group;
use crate::actors::{ChatError, ChatResult};
use crate::domain::{ConversationId, MessageKind, TraceContext, Username};
use crate::protocol::{
    parse_client_frame, ClientFrame, ClientRequest, ConversationView, ErrorCode, FrameError,
    MessageView, PaymentView, SendTarget, ServerFrame,
};
use crate::store::{AppendOutcome, HistoryQuery, Pair, Quota};
use crate::supervision::faults::Injected;
use crate::supervision::{Envelope, Responder, TraceScope};
use crate::traces::{self, ActorRef};

/// `to` usernames to their direct conversation, bounded: the least recently
/// inserted entry is evicted when full (a miss costs one store lookup).
pub struct DirectCache {
    map: HashMap<Username, ConversationId>,
    order: VecDeque<Username>,
    capacity: usize,
}

impl DirectCache {
    pub fn new(capacity: usize) -> Self {
        DirectCache {
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn get(&self, user: &Username) -> Option<ConversationId> {
        self.map.get(user).copied()
    }

    pub fn insert(&mut self, user: Username, id: ConversationId) {
        if self.map.insert(user.clone(), id).is_none() {
            self.order.push_back(user);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }
}

impl SessionActor {
    /// A client frame, its traceId (given or not) replaced by one of this
    /// user's unless it is theirs already: no hop of this session's can land
    /// in a stranger's trace.
    fn parse(&self, text: &str) -> Result<ClientFrame, FrameError> {
        self.parse_as(text, true)
    }

    /// `parse` for a frame refused unhandled: a client id it carries is
    /// honoured only if already this user's (never claimed by it).
    fn parse_refused(&self, text: &str) -> Result<ClientFrame, FrameError> {
        self.parse_as(text, false)
    }

    fn parse_as(&self, text: &str, claim: bool) -> Result<ClientFrame, FrameError> {
        let origins = &self.deps.origins;
        let admit = |id, given: bool| {
            let given = given.then_some(id);
            if claim {
                origins.admit(given, self.caller)
            } else {
                origins.admit_unclaimed(given, self.caller)
            }
        };
        match parse_client_frame(text, self.deps.settings.limits.history_default_limit) {
            Ok(mut f) => {
                (f.trace_id, f.trace_given) = admit(f.trace_id, f.trace_given);
                Ok(f)
            }
            Err(mut e) => {
                (e.trace_id, e.trace_given) = admit(e.trace_id, e.trace_given);
                Err(e)
            }
        }
    }

    pub(super) fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        let received = std::time::Instant::now();
        let frame = match self.parse(text) {
            Ok(f) => f,
            Err(e) => {
                let trace = TraceContext::new(e.trace_id);
                tracing::debug!(code = e.code.as_str(), trace_id = %e.trace_id, "bad frame: {}", e.message);
                self.push(
                    &ServerFrame::error(e.code, e.message, e.reference, e.trace_id),
                    trace,
                );
                return;
            }
        };
        let trace = TraceContext::new(frame.trace_id);
        if frame.trace_given {
            traces::keep(frame.trace_id, traces::Keep::Asked);
        }
        crate::telemetry::hot().frame_in(frame.request.kind());
        let received_event: &'static str = match &frame.request {
            ClientRequest::Send { .. } => "received send",
            other => other.kind(),
        };
        traces::hop(
            frame.trace_id,
            "session",
            ActorRef::Session(self.id),
            received_event,
            received.elapsed(),
        );
        // An info span (exported over OTLP) only when spans are exported: a
        // span per frame costs throughput that logs alone do not need.
        let span = if crate::telemetry::exporting() {
            let span = tracing::info_span!(
                "frame",
                kind = frame.request.kind(),
                trace_id = %frame.trace_id,
                user = %self.user
            );
            crate::telemetry::link_span(&span, frame.trace_id);
            span
        } else {
            tracing::debug_span!("frame", trace_id = %frame.trace_id, user = %self.user)
        };
        let _entered = span.enter();
        let _trace = TraceScope::retrace(frame.trace_id);
        self.current = Some((frame.reference.clone(), trace));
        if self.deps.faults.inject("session", || self.id.to_string()) == Injected::Stop {
            // A stopped session is not restarted (transient): the frame is
            // answered, then the socket is closed.
            self.current = None;
            let f = ServerFrame::error(
                ErrorCode::Internal,
                "the session was stopped (injected fault)",
                frame.reference,
                frame.trace_id,
            );
            self.push(&f, trace);
            return self.close(ctx, actix_ws::CloseCode::Error, "session stopped");
        }
        self.dispatch(frame.request, frame.reference, trace, ctx);
        self.current = None;
    }

    /// A frame over the session's rate: answered `rate_limited` (with the
    /// frame's ref and trace when it parses) and not handled.
    pub(super) fn refuse_rate(&mut self, msg: &super::actor::Inbound, trace: TraceContext) {
        metrics::counter!("parley_rate_limited_total", "what" => "frame").increment(1);
        let (reference, trace_id) = match msg {
            super::actor::Inbound::Text(text) => match self.parse_refused(text) {
                Ok(f) => (f.reference, f.trace_id),
                Err(e) => (e.reference, e.trace_id),
            },
            _ => (None, trace.trace_id),
        };
        let rate = self.deps.settings.limits.frames_per_sec;
        let f = ServerFrame::error(
            ErrorCode::RateLimited,
            format!("more than {rate} frames a second; this frame was not handled"),
            reference,
            trace_id,
        );
        self.push(&f, TraceContext::new(trace_id));
    }

    /// A frame that crashed this session repeatedly: answered, not handled.
    pub(super) fn refuse_poison(&mut self, text: &str) {
        tracing::warn!(session = %self.id, "refusing a poison frame");
        let (reference, trace_id) = match self.parse_refused(text) {
            Ok(f) => (f.reference, f.trace_id),
            Err(e) => (e.reference, e.trace_id),
        };
        let f = ServerFrame::error(
            ErrorCode::BadRequest,
            "this frame crashed the session repeatedly and is refused (poison message)",
            reference,
            trace_id,
        );
        self.push(&f, TraceContext::new(trace_id));
    }

    /// A responder that turns the answer into a frame for this session:
    /// `ok` builds the success frame (None: nothing to send), errors become
    /// `error` frames with the request's ref and traceId.
    fn responder<T: Send + 'static>(
        &self,
        reference: Option<String>,
        trace: TraceContext,
        ok: impl FnOnce(T, Option<String>, TraceContext) -> Option<ServerFrame> + Send + 'static,
    ) -> Responder<ChatResult<T>> {
        let handle = self.handle.clone();
        Responder::new(move |answer: ChatResult<T>| {
            let frame = match answer {
                Ok(v) => ok(v, reference, trace),
                Err(e) => Some(ServerFrame::error(
                    e.code(),
                    e.to_string(),
                    reference,
                    trace.trace_id,
                )),
            };
            if let (Some(h), Some(f)) = (handle, frame) {
                h.deliver(f.to_text(), trace);
            }
        })
    }

    fn dispatch(
        &mut self,
        request: ClientRequest,
        reference: Option<String>,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        let me = self.user.clone();
        match request {
            ClientRequest::Ping => self.push(
                &ServerFrame::Pong {
                    reference,
                    trace_id: trace.trace_id,
                },
                trace,
            ),
            ClientRequest::Send {
                target,
                text,
                client_msg_id,
            } => {
                let reply = self.responder(reference.clone(), trace, |o: AppendOutcome, r, t| {
                    Some(ServerFrame::ack(&o.message, r, t.trace_id))
                });
                let request = ConvRequest::Send {
                    sender: me.clone(),
                    client_msg_id,
                    text,
                    kind: MessageKind::Text,
                    reply,
                };
                match target {
                    SendTarget::Conversation(id) => self
                        .deps
                        .conversations
                        .route(id, Envelope::new(trace, request)),
                    SendTarget::To(to) if to == me => {
                        request.reject(ChatError::BadRequest("to must be another user".into()));
                    }
                    SendTarget::To(to) => match self.direct.get(&to) {
                        Some(id) => self
                            .deps
                            .conversations
                            .route(id, Envelope::new(trace, request)),
                        None => {
                            // Wait (blocking only this session's mailbox) so the
                            // session's later frames stay in order behind this one.
                            let store = self.deps.store.clone();
                            let max = self.deps.settings.limits.max_conversations_per_user;
                            let fut = async move {
                                // Started by this user, within their quota
                                // (checked in the store's own transaction).
                                let quota = Quota {
                                    user: me.clone(),
                                    max,
                                };
                                let pair = Pair {
                                    a: me,
                                    b: to.clone(),
                                    quota: Some(quota),
                                };
                                store
                                    .direct_conversation(pair)
                                    .await
                                    .map(|c| (to, c))
                                    .map_err(ChatError::from)
                            };
                            ctx.wait(fut.into_actor(self).map(move |res, act, _| match res {
                                Ok((to, c)) => {
                                    let id = c.id;
                                    introduce_direct(&act.deps.directory, c, trace);
                                    act.direct.insert(to, id);
                                    act.deps
                                        .conversations
                                        .route(id, Envelope::new(trace, request));
                                }
                                Err(e) => request.reject(e),
                            }));
                        }
                    },
                }
            }
            ClientRequest::Create { name, members } => {
                let reply = self.responder(reference, trace, |c: ConversationView, r, t| {
                    Some(ServerFrame::Created {
                        conversation: c,
                        reference: r,
                        trace_id: t.trace_id,
                    })
                });
                let (deps, session) = (self.deps.clone(), self.id);
                ctx.spawn(
                    async move {
                        let c =
                            start_group(&deps, &me, name, members, Some(session), trace).await?;
                        Ok(ConversationView::created(&c))
                    }
                    .into_actor(self)
                    .map(move |res, _, _| reply.respond(res)),
                );
            }
            ClientRequest::Invite {
                conversation_id,
                username,
            } => {
                let invited = username.clone();
                let reply = self.responder(reference, trace, move |pending, r, t| {
                    Some(ServerFrame::Invited {
                        conversation_id,
                        username: invited,
                        pending,
                        reference: r,
                        trace_id: t.trace_id,
                    })
                });
                let request = ConvRequest::Invite {
                    by: me,
                    user: username,
                    reply,
                };
                self.deps
                    .conversations
                    .route(conversation_id, Envelope::new(trace, request));
            }
            ClientRequest::Accept { conversation_id } => {
                let reply = self.responder(reference, trace, move |(), r, t| {
                    Some(ServerFrame::Accepted {
                        conversation_id,
                        reference: r,
                        trace_id: t.trace_id,
                    })
                });
                let request = ConvRequest::Accept { user: me, reply };
                self.deps
                    .conversations
                    .route(conversation_id, Envelope::new(trace, request));
            }
            ClientRequest::Decline { conversation_id } => {
                let reply = self.responder(reference, trace, move |(), r, t| {
                    Some(ServerFrame::Declined {
                        conversation_id,
                        reference: r,
                        trace_id: t.trace_id,
                    })
                });
                let request = ConvRequest::Decline { user: me, reply };
                self.deps
                    .conversations
                    .route(conversation_id, Envelope::new(trace, request));
            }
            ClientRequest::Leave { conversation_id } => {
                let reply = self.responder(reference, trace, move |(), r, t| {
                    Some(ServerFrame::Left {
                        conversation_id,
                        reference: r,
                        trace_id: t.trace_id,
                    })
                });
                let request = ConvRequest::Leave {
                    user: me,
                    session: Some(self.id),
                    reply,
                };
                self.deps
                    .conversations
                    .route(conversation_id, Envelope::new(trace, request));
            }
            ClientRequest::Read {
                conversation_id,
                seq,
            } => {
                let reply = self.responder(reference, trace, |(), _, _| None);
                let request = ConvRequest::Read {
                    user: me,
                    seq,
                    reply,
                };
                self.deps
                    .conversations
                    .route(conversation_id, Envelope::new(trace, request));
            }
            ClientRequest::Typing { conversation_id } => {
                let reply = self.responder(reference, trace, |(), _, _| None);
                let request = ConvRequest::Typing { user: me, reply };
                self.deps
                    .conversations
                    .route(conversation_id, Envelope::new(trace, request));
            }
            ClientRequest::History {
                conversation_id,
                after_seq,
                limit,
            } => {
                let reply = self.responder(
                    reference,
                    trace,
                    move |page: crate::store::HistoryPage, r, t| {
                        Some(ServerFrame::History {
                            conversation_id,
                            messages: page
                                .messages
                                .iter()
                                .map(|m| MessageView::new(m, &page.conversation))
                                .collect(),
                            has_more: page.has_more,
                            reference: r,
                            trace_id: t.trace_id,
                        })
                    },
                );
                let store = self.deps.store.clone();
                ctx.spawn(
                    async move {
                        let page = HistoryQuery {
                            reader: me,
                            id: conversation_id,
                            after_seq,
                            limit,
                        };
                        store.history(page).await.map_err(ChatError::from)
                    }
                    .into_actor(self)
                    .map(move |res, _, _| reply.respond(res)),
                );
            }
            ClientRequest::Conversations(paging) => {
                let reply = self.responder(
                    reference,
                    trace,
                    |(items, has_more): (Vec<ConversationView>, bool), r, t| {
                        Some(ServerFrame::Conversations {
                            items,
                            has_more,
                            reference: r,
                            trace_id: t.trace_id,
                        })
                    },
                );
                let store = self.deps.store.clone();
                ctx.spawn(
                    async move { Ok(crate::actors::inbox::page(&store, me, paging).await?) }
                        .into_actor(self)
                        .map(move |res, _, _| reply.respond(res)),
                );
            }
            ClientRequest::Pay {
                to,
                amount,
                idempotency_key,
            } => {
                // A new payment's frames (pending now, then each change) go to
                // every session of payer and payee; a repeated key is answered
                // here with the payment as it is; a refusal with an error.
                let reply = self.responder(
                    reference.clone(),
                    trace,
                    |(p, existed): (crate::domain::Payment, bool), r, t| {
                        existed.then(|| {
                            ServerFrame::Payment(PaymentView::new(&p, r).answering(t.trace_id))
                        })
                    },
                );
                let deps = self.deps.clone();
                ctx.spawn(
                    async move {
                        crate::payments::create(
                            &deps,
                            me,
                            to,
                            amount,
                            idempotency_key,
                            trace,
                            reference,
                        )
                        .await
                    }
                    .into_actor(self)
                    .map(move |res, _, _| reply.respond(res)),
                );
            }
        }
    }
}
