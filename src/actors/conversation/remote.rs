//! Cluster mode: what other nodes tell this conversation through the
//! cluster channel, and what this one tells them.

use actix::prelude::*;

use super::{ConversationActor, State};
use crate::domain::TraceContext;
use crate::protocol::ServerFrame;
use crate::store::redis::EventKind;
use crate::traces::{self, ActorRef};

impl ConversationActor {
    pub(super) fn on_remote(
        &mut self,
        event: EventKind,
        origin: &str,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        let id = self.id;
        match event {
            EventKind::Message(message) => {
                traces::hop(
                    trace.trace_id,
                    "conversation",
                    ActorRef::Conversation(id),
                    format!("received seq {} committed on {origin}", message.seq),
                    std::time::Duration::ZERO,
                );
                self.note_routed();
                let actions = self.delivery.remote(message, trace);
                self.apply(actions, ctx);
            }
            EventKind::MemberJoined { username, .. } => {
                let State::Ready(conv) = &mut self.state else {
                    return;
                };
                if let Err(at) = conv.members.binary_search(&username) {
                    conv.members.insert(at, username.clone());
                }
                self.delivery.members_changed(&conv.members);
                let frame = ServerFrame::MemberJoined {
                    conversation_id: id,
                    username,
                    trace_id: trace.trace_id,
                };
                if let State::Ready(conv) = &self.state {
                    self.fan_out(conv, &frame, trace, None);
                }
            }
            EventKind::MemberLeft {
                username, session, ..
            } => {
                let State::Ready(conv) = &mut self.state else {
                    return;
                };
                if let Ok(at) = conv.members.binary_search(&username) {
                    conv.members.remove(at);
                }
                self.delivery.members_changed(&conv.members);
                self.read_marks.remove(&username);
                let frame = ServerFrame::MemberLeft {
                    conversation_id: id,
                    username: username.clone(),
                    trace_id: trace.trace_id,
                };
                if let State::Ready(conv) = &self.state {
                    self.fan_out(conv, &frame, trace, None);
                }
                let text = frame.to_text();
                self.registry.for_each_session(&username, |s| {
                    if Some(s.id) != session {
                        s.deliver(text.clone(), trace);
                    }
                });
            }
            EventKind::Read { username, seq, .. } => {
                if self.read_marks.get(&username).is_some_and(|&m| m >= seq) {
                    return;
                }
                self.read_marks.insert(username.clone(), seq);
                let frame = ServerFrame::Read {
                    conversation_id: id,
                    username: username.clone(),
                    seq,
                    trace_id: trace.trace_id,
                };
                if let State::Ready(conv) = &self.state {
                    self.fan_out(conv, &frame, trace, Some(&username));
                }
            }
            EventKind::Typing { username, .. } => {
                let frame = ServerFrame::Typing {
                    conversation_id: id,
                    username: username.clone(),
                    trace_id: trace.trace_id,
                };
                if let State::Ready(conv) = &self.state {
                    self.fan_out(conv, &frame, trace, Some(&username));
                }
            }
            EventKind::Invitation {
                username,
                from,
                created_at,
                ..
            } => {
                let State::Ready(conv) = &self.state else {
                    return;
                };
                let invitation = crate::store::Invitation {
                    conversation: conv.clone(),
                    from,
                    created_at,
                };
                crate::actors::invitations::tell_here(
                    &self.registry,
                    &username,
                    &invitation,
                    trace,
                );
            }
            // Presence and new members go to the directory and payments to
            // the node's relay, never here.
            EventKind::Presence { .. } | EventKind::Payment { .. } | EventKind::Added { .. } => {}
        }
    }

    /// The cluster channel was lost: the core catches up (see
    /// `Delivery::catch_up`).
    pub(super) fn catch_up(&mut self, ctx: &mut Context<Self>) {
        self.note_routed();
        let actions = self.delivery.catch_up();
        self.apply(actions, ctx);
    }

    /// Tells the other nodes (cluster mode; a no-op with SQLite). Fire and
    /// forget: these events are advisory, and a failure is logged.
    pub(super) fn publish(&self, what: EventKind, trace: TraceContext) {
        self.cluster
            .tell_others(what, trace.trace_id, "cluster event");
    }
}
