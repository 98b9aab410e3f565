//! Starting a group: the one place its rules live, for the WebSocket
//! `create` frame and `POST /api/conversations` alike. The creator is a
//! member; duplicates count once; at most `limits.max_group_members`; the
//! creator must have room to start one (`quota`); every member's sessions
//! are introduced to it.
//!
//! The group does not exist before the store commits it, so there is no
//! conversation actor to ask yet: this runs in the caller's task and talks
//! to the store directly (the rule that changes to an existing conversation
//! go through its actor is not at stake).

use super::directory::introduce;
use super::quota::room_to_start;
use super::{ChatError, ChatResult, Deps};
use crate::domain::{Conversation, SessionId, TraceContext, Username};

/// Creates the group `name` of `creator` and `members` (the creator is
/// added). `asking`: the session that asked, which gets its own answer and
/// no `conversation_added` (HTTP: none, so every session of the creator
/// hears of it).
pub async fn start_group(
    deps: &Deps,
    creator: &Username,
    name: String,
    mut members: Vec<Username>,
    asking: Option<SessionId>,
    trace: TraceContext,
) -> ChatResult<Conversation> {
    members.push(creator.clone());
    members.sort();
    members.dedup();
    let max = deps.settings.limits.max_group_members;
    if members.len() > max {
        return Err(ChatError::BadRequest(format!(
            "a group has at most {max} members"
        )));
    }
    let limits = &deps.settings.limits;
    room_to_start(
        &deps.store,
        creator,
        limits.max_conversations_per_user,
        None,
    )
    .await?;
    let conversation = deps.store.create_group(name, members).await?;
    let added = conversation.members.clone();
    introduce(&deps.directory, conversation.clone(), added, asking, trace);
    Ok(conversation)
}
