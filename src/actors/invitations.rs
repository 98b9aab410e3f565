//! Telling invitees of an invitation: the `invitation` frame to their
//! sessions on this node, and the cluster event that has every other node
//! do the same. One place for a new group's invitations (`groups.rs`) and an
//! invite (`conversation/membership.rs`); another node's conversation actor,
//! given the event, tells its own sessions with `tell_here`.

use super::registry::SessionRegistry;
use crate::cluster::ClusterHandle;
use crate::domain::{rfc3339_ms, TraceContext, Username};
use crate::protocol::{ConversationView, ServerFrame};
use crate::store::redis::EventKind;
use crate::store::Invitation;

/// `invitation` to each invitee's sessions here and on every other node.
pub fn tell_everywhere(
    registry: &SessionRegistry,
    cluster: &ClusterHandle,
    invitees: &[Username],
    invitation: &Invitation,
    trace: TraceContext,
) {
    let text = frame(invitation, trace).to_text();
    for user in invitees {
        registry.for_each_session(user, |s| {
            s.deliver(text.clone(), trace);
        });
        cluster.tell_others(
            EventKind::Invitation {
                conversation_id: invitation.conversation.id,
                username: user.clone(),
                from: invitation.from.clone(),
                created_at: invitation.created_at,
            },
            trace.trace_id,
            "invitation",
        );
    }
}

/// `invitation` to the invitee's sessions on this node only.
pub fn tell_here(
    registry: &SessionRegistry,
    invitee: &Username,
    invitation: &Invitation,
    trace: TraceContext,
) {
    let text = frame(invitation, trace).to_text();
    registry.for_each_session(invitee, |s| {
        s.deliver(text.clone(), trace);
    });
}

fn frame(invitation: &Invitation, trace: TraceContext) -> ServerFrame {
    ServerFrame::Invitation {
        conversation: ConversationView::new(&invitation.conversation, None),
        from: invitation.from.clone(),
        created_at: rfc3339_ms(invitation.created_at),
        trace_id: trace.trace_id,
    }
}
