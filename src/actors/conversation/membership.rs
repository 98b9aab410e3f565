//! Membership changes: invite, accept, decline, leave. Each waits for its
//! commit before the next request is handled (`ctx.wait`), so every later
//! request sees it.
//!
//! Consent (SPEC v2 "Invitations"): a member may add a contact at once,
//! someone who shares with them a conversation the contact started or
//! accepted (`Store::consenting`: a direct message they were sent is not
//! consent); anyone else gets an invitation
//! and becomes a member only by accepting it, so no stranger can put a user
//! into conversations (and fill their quota).

use actix::prelude::*;

use super::{ConversationActor, State};
use crate::actors::invitations::tell_everywhere;
use crate::actors::{ChatError, ChatResult};
use crate::domain::{Conversation, SessionId, TraceContext, Username};
use crate::protocol::ServerFrame;
use crate::store::{Invitation, Join, Leave, NewInvitation, Quota};
use crate::supervision::Responder;

/// What an invite did.
enum Invited {
    /// A contact: a member now.
    Joined(Conversation),
    /// An invitation, new (`true`) or pending already.
    Pending(Invitation, bool),
}

impl ConversationActor {
    /// `reply`: whether `user` got an invitation rather than the membership.
    pub(super) fn invite(
        &self,
        conv: &Conversation,
        by: Username,
        user: Username,
        reply: Responder<ChatResult<bool>>,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        if !conv.is_member(&by) {
            return reply.respond(Err(ChatError::not_member()));
        }
        let store = self.store.clone();
        let limits = &self.settings.limits;
        let (max, max_pending) = (limits.max_group_members, limits.max_invitations_per_user);
        let consent = limits.group_consent;
        let id = self.id;
        let invitee = user.clone();
        ctx.wait(
            async move {
                let contact = consent
                    && !store
                        .consenting(by.clone(), vec![user.clone()])
                        .await?
                        .is_empty();
                if !consent || contact {
                    // Given by a contact: not the invitee's own (no quota).
                    let join = Join {
                        id,
                        user,
                        max_members: max,
                        trace: trace.trace_id,
                        quota: None,
                    };
                    let updated = store.add_member(join).await?;
                    Ok(Invited::Joined(updated))
                } else {
                    let invite = NewInvitation {
                        id,
                        user,
                        from: by,
                        max_pending,
                    };
                    let (invitation, new) = store.invite(invite).await?;
                    Ok(Invited::Pending(invitation, new))
                }
            }
            .into_actor(self)
            .map(move |res: ChatResult<Invited>, act, _| match res {
                Ok(Invited::Joined(updated)) => {
                    // The inviter's `invited` first, then everyone's `member_joined`.
                    reply.respond(Ok(false));
                    act.joined(updated, invitee, trace);
                }
                Ok(Invited::Pending(invitation, new)) => {
                    reply.respond(Ok(true));
                    if new {
                        tell_everywhere(
                            &act.registry,
                            &act.cluster,
                            std::slice::from_ref(&invitee),
                            &invitation,
                            trace,
                        );
                    }
                }
                Err(e) => reply.respond(Err(e)),
            }),
        );
    }

    /// `user` takes up their invitation: a member now, if they have room to
    /// join one more conversation (joining is their own act, so it counts).
    pub(super) fn accept(
        &self,
        user: Username,
        reply: Responder<ChatResult<()>>,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        let store = self.store.clone();
        let limits = &self.settings.limits;
        let (max, max_conversations) =
            (limits.max_group_members, limits.max_conversations_per_user);
        let id = self.id;
        let joined = user.clone();
        ctx.wait(
            async move {
                // One store transaction: the invitation must be there and
                // is used up, the quota is checked and counted, the join
                // is made (`NotFound` without an invitation).
                let quota = Quota {
                    user: user.clone(),
                    max: max_conversations,
                };
                let join = Join {
                    id,
                    user,
                    max_members: max,
                    trace: trace.trace_id,
                    quota: Some(quota),
                };
                Ok(store.add_member(join).await?)
            }
            .into_actor(self)
            .map(move |res: ChatResult<Conversation>, act, _| match res {
                Ok(updated) => {
                    reply.respond(Ok(()));
                    act.joined(updated, joined, trace);
                }
                Err(e) => reply.respond(Err(e)),
            }),
        );
    }

    pub(super) fn decline(
        &self,
        user: Username,
        reply: Responder<ChatResult<()>>,
        ctx: &mut Context<Self>,
    ) {
        let store = self.store.clone();
        let id = self.id;
        ctx.wait(
            async move { store.decline(id, user).await }
                .into_actor(self)
                .map(move |res, _, _| {
                    reply.respond(match res {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(ChatError::NotFound(
                            "no invitation to this conversation".into(),
                        )),
                        Err(e) => Err(e.into()),
                    })
                }),
        );
    }

    pub(super) fn leave(
        &self,
        conv: &Conversation,
        user: Username,
        session: Option<SessionId>,
        reply: Responder<ChatResult<()>>,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        if !conv.is_member(&user) {
            return reply.respond(Err(ChatError::not_member()));
        }
        let store = self.store.clone();
        let id = self.id;
        let left = user.clone();
        ctx.wait(
            async move {
                let leave = Leave {
                    id,
                    user,
                    trace: trace.trace_id,
                    session,
                };
                store.remove_member(leave).await
            }
            .into_actor(self)
            .map(move |res, act, _| match res {
                Ok(updated) => {
                    // The leaver's `left` first; then the remaining
                    // members and the leaver's other sessions hear of it.
                    reply.respond(Ok(()));
                    let frame = ServerFrame::MemberLeft {
                        conversation_id: act.id,
                        username: left.clone(),
                        trace_id: trace.trace_id,
                    };
                    act.fan_out(&updated, &frame, trace, None);
                    act.read_marks.remove(&left);
                    let text = frame.to_text();
                    act.registry.for_each_session(&left, |s| {
                        if Some(s.id) != session {
                            s.deliver(text.clone(), trace);
                        }
                    });
                    act.delivery.members_changed(&updated.members);
                    act.state = State::Ready(updated);
                }
                Err(e) => reply.respond(Err(e.into())),
            }),
        );
    }

    /// `joined` is a member of `updated` now: everyone hears of it, the new
    /// member and the others learn each other's presence, and the group
    /// shows in the new member's sessions.
    fn joined(&mut self, updated: Conversation, joined: Username, trace: TraceContext) {
        let frame = ServerFrame::MemberJoined {
            conversation_id: self.id,
            username: joined.clone(),
            trace_id: trace.trace_id,
        };
        self.fan_out(&updated, &frame, trace, None);
        self.delivery.members_changed(&updated.members);
        crate::actors::directory::introduce(
            self.router.directory(),
            updated.clone(),
            vec![joined],
            None,
            trace,
        );
        self.state = State::Ready(updated);
    }
}
