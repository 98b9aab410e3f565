//! New contacts. Presence is pushed when a user comes or goes, so two users
//! who come to share a conversation while both are connected would learn
//! nothing of each other: when users are made members (a group created with
//! them, an invitation, a direct conversation's first use) each member's
//! sessions on every node hear the current presence of those they now
//! share it with, and the users added to a group see the group at once
//! (`conversation_added`).
//!
//! The node where it happened tells its own sessions and publishes `added`;
//! every other node reads the conversation from the store and tells its own.

use actix::prelude::*;

use super::{presence_text, Directory};
use crate::domain::{
    Conversation, ConversationId, ConversationKind, SessionId, TraceContext, Username,
};
use crate::protocol::{ConversationView, ServerFrame};
use crate::store::redis::{EventKind, Status};
use crate::store::StoreError;
use crate::supervision::{Envelope, Msg};

/// Presence frames one session gets for one introduction, at most. A group
/// of a thousand created at once would otherwise queue 999 frames into each
/// member's outbound queue (`session.outbound_queue`, 1024 by default) in
/// one go, and close as slow consumers those who had a few frames queued
/// already. Online members go first; beyond the cap the rest are not told
/// (they are told when their status next changes, or at a reconnect).
const MAX_PRESENCE_PER_INTRODUCTION: usize = 256;

/// `added` were made members of `conversation` on this node (`except`: the
/// session whose `create` is answered with `created`).
pub struct Introduce {
    pub conversation: Conversation,
    pub added: Vec<Username>,
    pub except: Option<SessionId>,
}

impl Msg for Introduce {
    type Reply = ();
    const NAME: &'static str = "introduce";
}

/// Cluster mode: another node made `added` members of a conversation.
pub struct RemoteIntroduce {
    pub conversation_id: ConversationId,
    pub added: Vec<Username>,
    pub except: Option<SessionId>,
}

impl Msg for RemoteIntroduce {
    type Reply = ();
    const NAME: &'static str = "remote_introduce";
}

/// Tells the directory that `added` were made members of `conversation`.
/// A directory too far behind to take it (its mailbox is full) drops it:
/// the users then learn of each other at their next reconnect or message.
pub fn introduce(
    directory: &Addr<Directory>,
    conversation: Conversation,
    added: Vec<Username>,
    except: Option<SessionId>,
    trace: TraceContext,
) {
    let msg = Introduce {
        conversation,
        added,
        except,
    };
    if directory.try_send(Envelope::new(trace, msg)).is_err() {
        metrics::counter!("parley_mailbox_rejections_total", "queue" => "directory").increment(1);
        tracing::warn!(trace_id = %trace.trace_id, "new contacts not introduced: the directory is behind");
    }
}

/// A direct conversation was looked up to be used: on its first use (no
/// message yet) its two members are introduced. A conversation that failed
/// its first send is introduced again on the next, which repeats a presence
/// they already have.
pub fn introduce_direct(
    directory: &Addr<Directory>,
    conversation: Conversation,
    trace: TraceContext,
) {
    if conversation.last_seq == 0 {
        let members = conversation.members.clone();
        introduce(directory, conversation, members, None, trace);
    }
}

/// Who on this node learns whose presence: each connected member, paired
/// with the members that are new to them.
fn pairs(
    directory: &Directory,
    conversation: &Conversation,
    added: &[Username],
) -> Vec<(Username, Vec<Username>)> {
    conversation
        .members
        .iter()
        .filter(|m| directory.registry.is_online(m))
        .filter_map(|m| {
            let others: Vec<Username> = if added.contains(m) {
                conversation
                    .members
                    .iter()
                    .filter(|o| *o != m)
                    .cloned()
                    .collect()
            } else {
                added.iter().filter(|o| *o != m).cloned().collect()
            };
            (!others.is_empty()).then(|| (m.clone(), others))
        })
        .collect()
}

impl Directory {
    /// Tells this node's sessions: the group to those added, and to every
    /// member the presence of those new to them. Cluster mode reads the
    /// presence from Redis, holding the mailbox meanwhile so a presence
    /// change that comes after is told after this.
    fn introduce_here(
        &mut self,
        conversation: Conversation,
        added: Vec<Username>,
        except: Option<SessionId>,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        let added: Vec<Username> = added
            .into_iter()
            .filter(|u| conversation.is_member(u))
            .collect();
        if conversation.kind == ConversationKind::Group {
            let frame = ServerFrame::ConversationAdded {
                // A new group: nobody has read anything, as in `created`.
                // An invite: the others' markers are not at hand here.
                conversation: if conversation.last_seq == 0 {
                    ConversationView::created(&conversation)
                } else {
                    ConversationView::new(&conversation, Some(0))
                },
                trace_id: trace.trace_id,
            }
            .to_text();
            for user in &added {
                self.registry.for_each_session(user, |s| {
                    if Some(s.id) != except {
                        s.deliver(frame.clone(), trace);
                    }
                });
            }
        }
        let pairs = pairs(self, &conversation, &added);
        if pairs.is_empty() {
            return;
        }
        let Some(redis) = self.cluster.redis().cloned() else {
            let statuses = |others: &[Username]| -> Vec<Status> {
                others.iter().map(|o| self.status(o)).collect()
            };
            for (member, others) in &pairs {
                self.show(member, others, &statuses(others), trace);
            }
            return;
        };
        let mut needed: Vec<Username> = pairs.iter().flat_map(|(_, o)| o.clone()).collect();
        needed.sort();
        needed.dedup();
        ctx.wait(
            async move { redis.statuses(&needed).await.map(|s| (needed, s)) }
                .into_actor(self)
                .map(move |res, act, _| match res {
                    Ok((needed, statuses)) => {
                        for (member, others) in &pairs {
                            let of: Vec<Status> = others
                                .iter()
                                .map(|o| {
                                    needed
                                        .binary_search(o)
                                        .map_or(Status::Offline(None), |i| statuses[i])
                                })
                                .collect();
                            act.show(member, others, &of, trace);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "new contacts' presence not sent")
                    }
                }),
        );
    }

    /// Sends `member`'s sessions the presence of each of `others`; as for a
    /// new session, an offline user never seen (or long forgotten) is not
    /// told: the page knows nothing of them either way.
    fn show(&self, member: &Username, others: &[Username], of: &[Status], trace: TraceContext) {
        let known = || {
            others
                .iter()
                .zip(of)
                .filter(|(_, s)| **s != Status::Offline(None))
        };
        let frames: Vec<_> = known()
            .filter(|(_, s)| **s == Status::Online)
            .chain(known().filter(|(_, s)| **s != Status::Online))
            .take(MAX_PRESENCE_PER_INTRODUCTION)
            .map(|(o, s)| presence_text(o.clone(), *s, trace))
            .collect();
        if frames.is_empty() {
            return;
        }
        self.registry.for_each_session(member, |s| {
            for f in &frames {
                s.deliver(f.clone(), trace);
            }
        });
    }

    /// Cluster mode: tells the other nodes (fire and forget; a failure is
    /// logged and those nodes' users learn at their next reconnect).
    fn publish_added(
        &self,
        id: ConversationId,
        added: &[Username],
        except: Option<SessionId>,
        trace: TraceContext,
    ) {
        let what = EventKind::Added {
            conversation_id: id,
            users: added.to_vec(),
            session: except,
        };
        self.cluster
            .tell_others(what, trace.trace_id, "new members");
    }
}

impl Handler<Envelope<Introduce>> for Directory {
    type Result = ();

    fn handle(&mut self, env: Envelope<Introduce>, ctx: &mut Self::Context) {
        let _scope = env.enter("directory");
        let Introduce {
            conversation,
            added,
            except,
        } = env.msg;
        self.publish_added(conversation.id, &added, except, env.trace);
        self.introduce_here(conversation, added, except, env.trace, ctx);
    }
}

impl Handler<Envelope<RemoteIntroduce>> for Directory {
    type Result = ();

    fn handle(&mut self, env: Envelope<RemoteIntroduce>, ctx: &mut Self::Context) {
        let _scope = env.enter("directory");
        let RemoteIntroduce {
            conversation_id,
            added,
            except,
        } = env.msg;
        if self.registry.total() == 0 {
            // Nobody here to tell: no store read.
            return;
        }
        let store = self.store.clone();
        let trace = env.trace;
        // Spawned, not awaited with the mailbox held: a slow store would
        // otherwise stall every node's presence for each group created
        // anywhere. Only the statuses read in `introduce_here` needs the
        // mailbox held (so a newer change cannot be overtaken).
        ctx.spawn(
            async move { store.conversation(conversation_id).await }
                .into_actor(self)
                .map(move |res: Result<_, StoreError>, act, ctx| match res {
                    Ok(Some(conversation)) => {
                        act.introduce_here(conversation, added, except, trace, ctx)
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, conversation = %conversation_id, "new members not introduced here")
                    }
                }),
        );
    }
}
