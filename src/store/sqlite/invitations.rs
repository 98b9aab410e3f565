//! The `invitations` table: its writes (run by the writer, inside the op's
//! savepoint) and its reads, side by side.

use rusqlite::{params, Connection, OptionalExtension};

use super::queries;
use crate::domain::{now_ms, ConversationId, ConversationKind, Username};
use crate::store::NewInvitation;
use crate::store::StoreResult;
use crate::store::{Invitation, StoreError};

/// Records `user`'s invitation to the group `id` from `from`, or finds the
/// pending one (`false`); then keeps only the invitee's `max_pending`
/// newest.
pub fn invite(conn: &Connection, new: &NewInvitation) -> StoreResult<(Invitation, bool)> {
    let (id, user, from, max_pending) = (new.id, &new.user, &new.from, new.max_pending);
    let conv = queries::conversation(conn, id)?
        .ok_or_else(|| StoreError::NotFound("no such conversation".into()))?;
    if conv.kind != ConversationKind::Group {
        return Err(StoreError::BadRequest(
            "members of a direct conversation cannot change".into(),
        ));
    }
    if conv.is_member(user) {
        return Err(StoreError::Conflict(format!("{user} is already a member")));
    }
    if !queries::user_exists(conn, user)? {
        return Err(StoreError::NotFound(format!("no user named {user}")));
    }
    if let Some(pending) = invitation(conn, id, user)? {
        return Ok((pending, false));
    }
    let now = now_ms();
    insert(conn, id, user, from, now, max_pending)?;
    Ok((
        Invitation {
            conversation: conv,
            from: from.clone(),
            created_at: now,
        },
        true,
    ))
}

/// One new invitation, then the invitee's oldest past `max_pending` gone.
pub fn insert(
    conn: &Connection,
    id: ConversationId,
    user: &Username,
    from: &Username,
    at: i64,
    max_pending: usize,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO invitations (username, conversation_id, inviter, created_at)
         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
    )?
    .execute(params![user.as_str(), id.to_string(), from.as_str(), at])?;
    let keep = i64::try_from(max_pending).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "DELETE FROM invitations WHERE username = ?1 AND conversation_id IN (
             SELECT conversation_id FROM invitations WHERE username = ?1
             ORDER BY created_at DESC, conversation_id DESC LIMIT -1 OFFSET ?2)",
    )?
    .execute(params![user.as_str(), keep])?;
    Ok(())
}

/// Drops `user`'s invitation to `id`; whether there was one.
pub fn remove(conn: &Connection, id: ConversationId, user: &Username) -> StoreResult<bool> {
    let n = conn
        .prepare_cached("DELETE FROM invitations WHERE username = ?1 AND conversation_id = ?2")?
        .execute(params![user.as_str(), id.to_string()])?;
    Ok(n > 0)
}

pub fn invitation(
    conn: &Connection,
    id: ConversationId,
    user: &Username,
) -> StoreResult<Option<Invitation>> {
    let row: Option<(String, i64)> = conn
        .prepare_cached(
            "SELECT inviter, created_at FROM invitations
             WHERE username = ?1 AND conversation_id = ?2",
        )?
        .query_row(params![user.as_str(), id.to_string()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((from, created_at)) = row else {
        return Ok(None);
    };
    let Some(conversation) = queries::conversation(conn, id)? else {
        return Ok(None);
    };
    Ok(Some(Invitation {
        conversation,
        from: queries::username(&from)?,
        created_at,
    }))
}

/// Newest first.
pub fn invitations_of(conn: &Connection, user: &Username) -> StoreResult<Vec<Invitation>> {
    // One read transaction, so each invitation and its group agree.
    let tx = conn.unchecked_transaction()?;
    let rows = tx
        .prepare_cached(
            "SELECT conversation_id, inviter, created_at FROM invitations WHERE username = ?1
             ORDER BY created_at DESC, conversation_id DESC",
        )?
        .query_map(params![user.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, from, created_at) in rows {
        let id = queries::conversation_id(&id)?;
        if let Some(conversation) = queries::conversation(&tx, id)? {
            out.push(Invitation {
                conversation,
                from: queries::username(&from)?,
                created_at,
            });
        }
    }
    tx.commit()?;
    Ok(out)
}

/// Those of `candidates` who share with `inviter` a conversation they are
/// in of their own accord (`members.own`).
pub fn consenting(
    conn: &Connection,
    inviter: &Username,
    candidates: Vec<Username>,
) -> StoreResult<Vec<Username>> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM members theirs JOIN members mine ON mine.conversation_id = theirs.conversation_id
         WHERE theirs.username = ?1 AND theirs.own = 1 AND mine.username = ?2 LIMIT 1",
    )?;
    let mut out = Vec::new();
    for c in candidates {
        let found = stmt
            .query_row(params![c.as_str(), inviter.as_str()], |_| Ok(()))
            .optional()?;
        if found.is_some() {
            out.push(c);
        }
    }
    Ok(out)
}
