//! `limits.max_conversations_per_user`: a user may start a conversation (a
//! group, or a direct one with someone new) only while they are in fewer
//! than that many. Groups others add them to are not refused (they did not
//! ask), but count towards the limit for their own next start.
//!
//! Checked before the store creates anything, so one user's concurrent
//! starts may pass together and exceed it by the number in flight.

use super::{ChatError, ChatResult};
use crate::domain::Username;
use crate::store::Store;

pub async fn room_to_start(
    store: &Store,
    user: &Username,
    max: usize,
    direct_with: Option<&Username>,
) -> ChatResult<()> {
    let mine = store.conversations_of(user.clone()).await?;
    if mine.len() < max {
        return Ok(());
    }
    // A direct conversation that exists already is not a new one.
    let exists = direct_with.is_some_and(|other| {
        mine.iter().any(|s| {
            let c = &s.conversation;
            c.kind == crate::domain::ConversationKind::Direct && c.members.contains(other)
        })
    });
    if exists {
        return Ok(());
    }
    Err(ChatError::Forbidden(format!(
        "you are in {} conversations; a user in {max} or more may not start another (leave one first)",
        mine.len()
    )))
}
