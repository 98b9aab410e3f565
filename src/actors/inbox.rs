//! One page of a user's inbox, as the `conversations` frame and
//! `GET /api/conversations` both answer it: a read, so it goes to the store
//! directly (no actor owns the list).

use crate::domain::Username;
use crate::protocol::{ConversationView, InboxPaging};
use crate::store::{InboxCursor, InboxQuery, Store, StoreResult};

/// The page's conversations, newest activity first, and whether more follow.
pub async fn page(
    store: &Store,
    user: Username,
    paging: InboxPaging,
) -> StoreResult<(Vec<ConversationView>, bool)> {
    let query = InboxQuery {
        user,
        limit: paging.limit,
        before: paging
            .before
            .map(|(updated_at, id)| InboxCursor { updated_at, id }),
    };
    let page = store.inbox(query).await?;
    let items = page.items.iter().map(ConversationView::listed).collect();
    Ok((items, page.has_more))
}
