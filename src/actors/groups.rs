//! Starting a group: the one place its rules live, for the WebSocket
//! `create` frame and `POST /api/conversations` alike. The creator is a
//! member; duplicates count once; at most `limits.max_group_members`; the
//! creator must have room to start one (`store::Quota`, checked in the
//! creating transaction); every member's sessions are introduced to it.
//!
//! Consent (SPEC v2 "Invitations"): of the users named, the creator's
//! contacts become members, those who share with the creator a
//! conversation they started or accepted themselves (`Store::consenting`);
//! anyone else gets an invitation, written with the group in one transaction, and
//! joins only by accepting it (`limits.group_consent`; off, all are
//! members, as in v1).
//!
//! The group does not exist before the store commits it, so there is no
//! conversation actor to ask yet: this runs in the caller's task and talks
//! to the store directly (the rule that changes to an existing conversation
//! go through its actor is not at stake).

use std::collections::HashSet;

use super::directory::introduce;
use super::invitations::tell_everywhere;
use super::{ChatError, ChatResult, Deps};
use crate::domain::{now_ms, Conversation, SessionId, TraceContext, Username};
use crate::store::{Invitation, Invitations, NewGroup, Quota};

/// Creates the group `name` of `creator` and `members` (the creator is
/// added). `asking`: the session that asked, which gets its own answer and
/// no `conversation_added` (HTTP: none, so every session of the creator
/// hears of it).
pub async fn start_group(
    deps: &Deps,
    creator: &Username,
    name: String,
    mut named: Vec<Username>,
    asking: Option<SessionId>,
    trace: TraceContext,
) -> ChatResult<Conversation> {
    named.push(creator.clone());
    named.sort();
    named.dedup();
    let limits = &deps.settings.limits;
    let max = limits.max_group_members;
    if named.len() > max {
        return Err(ChatError::BadRequest(format!(
            "a group has at most {max} members"
        )));
    }
    let (members, strangers) = if limits.group_consent {
        let others: Vec<Username> = named.iter().filter(|u| *u != creator).cloned().collect();
        let consenting: HashSet<Username> = deps
            .store
            .consenting(creator.clone(), others)
            .await?
            .into_iter()
            .collect();
        named
            .into_iter()
            .partition(|u| u == creator || consenting.contains(u))
    } else {
        (named, Vec::new())
    };
    let invite = (!strangers.is_empty()).then(|| Invitations {
        from: creator.clone(),
        to: strangers,
        at: now_ms(),
        max_pending: limits.max_invitations_per_user,
    });
    // The creator's quota is checked in the store's own transaction.
    let quota = Quota {
        user: creator.clone(),
        max: limits.max_conversations_per_user,
    };
    let conversation = deps
        .store
        .create_group(NewGroup {
            name,
            members,
            invite: invite.clone(),
            quota: Some(quota),
        })
        .await?;
    let added = conversation.members.clone();
    introduce(&deps.directory, conversation.clone(), added, asking, trace);
    if let Some(invite) = invite {
        let invitation = Invitation {
            conversation: conversation.clone(),
            from: invite.from,
            created_at: invite.at,
        };
        tell_everywhere(
            &deps.registry,
            &deps.cluster,
            &invite.to,
            &invitation,
            trace,
        );
    }
    Ok(conversation)
}
