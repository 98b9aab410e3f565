//! `limits.max_conversations_per_user` before a payment: the payment's saga
//! creates the payer's direct conversation with the payee only once money
//! has moved, so a payer who may not start another conversation is refused
//! before anything happens. Groups, direct conversations opened by a
//! message, and accepted invitations are checked exactly, in the store's
//! own transaction (`store::Quota`); this read-then-act check is for
//! payments only, so one payer's concurrent payments to new contacts may
//! pass it together.

use super::{ChatError, ChatResult};
use crate::domain::Username;
use crate::store::Store;

pub async fn room_to_start(
    store: &Store,
    user: &Username,
    max: usize,
    direct_with: Option<&Username>,
) -> ChatResult<()> {
    let started = store.started_count(user.clone()).await?;
    if started < max {
        return Ok(());
    }
    // A direct conversation that exists already is not a new one.
    let mine = store.conversations_of(user.clone()).await?;
    let exists = direct_with.is_some_and(|other| {
        mine.iter().any(|s| {
            let c = &s.conversation;
            c.kind == crate::domain::ConversationKind::Direct && c.members.contains(other)
        })
    });
    if exists {
        return Ok(());
    }
    Err(ChatError::Forbidden(crate::store::Quota::full_message(
        started, max,
    )))
}
