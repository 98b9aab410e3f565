//! Paging through the inbox (SPEC v2 "The inbox"): `limit` (1..=200,
//! default 50) and `before`, the `updatedAt` of the last item seen, the same
//! for `GET /api/conversations?limit=&before=` and the `conversations` frame.
//! `beforeId` (an extension) is the last item's `conversationId`: with it a
//! page starts exactly after that item, even among conversations last active
//! in the same millisecond; without it, after that millisecond.

use chrono::DateTime;

use crate::domain::ConversationId;

pub const DEFAULT_INBOX_LIMIT: u32 = 50;
pub const MAX_INBOX_LIMIT: u32 = 200;

/// A checked page request: the cursor is the last activity in Unix ms and,
/// maybe, the conversation at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxPaging {
    pub limit: u32,
    pub before: Option<(i64, Option<ConversationId>)>,
}

impl InboxPaging {
    /// Checks the raw fields; the error is a `bad_request` message.
    pub fn parse(
        limit: Option<u32>,
        before: Option<&str>,
        before_id: Option<&str>,
    ) -> Result<Self, String> {
        let limit = limit.unwrap_or(DEFAULT_INBOX_LIMIT);
        if !(1..=MAX_INBOX_LIMIT).contains(&limit) {
            return Err(format!("limit must be between 1 and {MAX_INBOX_LIMIT}"));
        }
        let before = match (before, before_id) {
            (None, None) => None,
            (None, Some(_)) => return Err("beforeId needs before".into()),
            (Some(at), id) => {
                let at = DateTime::parse_from_rfc3339(at)
                    .map_err(|_| "before must be an updatedAt (RFC 3339)".to_string())?
                    .timestamp_millis();
                let id = id
                    .map(|id| {
                        ConversationId::parse(id)
                            .map_err(|_| "beforeId must be a conversation id".to_string())
                    })
                    .transpose()?;
                Some((at, id))
            }
        };
        Ok(InboxPaging { limit, before })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_bounds_and_cursors() {
        let none = InboxPaging::parse(None, None, None).unwrap();
        assert_eq!(
            none,
            InboxPaging {
                limit: 50,
                before: None
            }
        );
        assert!(InboxPaging::parse(Some(0), None, None).is_err());
        assert!(InboxPaging::parse(Some(201), None, None).is_err());
        assert_eq!(
            InboxPaging::parse(Some(200), None, None).unwrap().limit,
            200
        );
        let at = InboxPaging::parse(None, Some("2001-09-09T01:46:40.123Z"), None).unwrap();
        assert_eq!(at.before, Some((1_000_000_000_123, None)));
        let id = ConversationId::new_random();
        let tie = InboxPaging::parse(
            None,
            Some("2001-09-09T01:46:40.123Z"),
            Some(&id.to_string()),
        );
        assert_eq!(tie.unwrap().before, Some((1_000_000_000_123, Some(id))));
        assert!(InboxPaging::parse(None, Some("yesterday"), None).is_err());
        assert!(InboxPaging::parse(None, None, Some(&id.to_string())).is_err());
        assert!(InboxPaging::parse(None, Some("2001-09-09T01:46:40Z"), Some("x")).is_err());
    }
}
