//! Read-only queries, run on pooled read connections.

use rusqlite::{params, Connection, OptionalExtension};

use super::payments::{payment_row, PAYMENT_COLUMNS};
use super::queries::{self, MESSAGE_COLUMNS};
use crate::domain::{Payment, PaymentStatus, Username};
use crate::store::StoreResult;
use crate::store::{ConversationSummary, HistoryPage, StoreError, UserRecord};
use crate::store::{HistoryQuery, InboxPage, InboxQuery};

pub fn user(conn: &Connection, name: &Username) -> StoreResult<Option<UserRecord>> {
    Ok(conn
        .prepare_cached(
            "SELECT password_hash, balance, created_at, admin FROM users WHERE username = ?1",
        )?
        .query_row(params![name.as_str()], |r| {
            Ok(UserRecord {
                username: name.clone(),
                password_hash: r.get(0)?,
                balance: r.get(1)?,
                created_at: r.get(2)?,
                admin: r.get(3)?,
            })
        })
        .optional()?)
}

pub fn conversations_of(
    conn: &Connection,
    user: &Username,
) -> StoreResult<Vec<ConversationSummary>> {
    // One read transaction, so each conversation's members and read markers
    // agree; rolled back when dropped on any error, so a pooled connection
    // is never left inside one.
    let tx = conn.unchecked_transaction()?;
    let list = conversations_in_tx(&tx, user)?;
    tx.commit()?;
    Ok(list)
}

/// A member's conversation with its last activity: the newest message's
/// time (one primary-key lookup), else when it was made.
const LISTED: &str = "SELECT m.conversation_id AS id, m.last_read_seq AS last_read,
        COALESCE(msg.sent_at, c.created_at) AS updated, c.created_at AS created
    FROM members m
    JOIN conversations c ON c.id = m.conversation_id
    LEFT JOIN messages msg ON msg.conversation_id = c.id AND msg.seq = c.last_seq
    WHERE m.username = ?1";

fn conversations_in_tx(
    conn: &Connection,
    user: &Username,
) -> StoreResult<Vec<ConversationSummary>> {
    let sql = format!("SELECT id, last_read, updated FROM ({LISTED}) ORDER BY created, id");
    let rows = listed(conn, &sql, params![user.as_str()])?;
    summaries(conn, rows)
}

/// See `Store::inbox`. Reads `limit + 1` rows: the extra one only says that
/// more follow.
pub fn inbox(conn: &Connection, q: &InboxQuery) -> StoreResult<InboxPage> {
    let tx = conn.unchecked_transaction()?;
    // No cursor: before everything. A cursor without an id: before that
    // millisecond; with one: before that conversation within it.
    let (before, tie) = match q.before {
        None => (i64::MAX, None),
        Some(c) => (c.updated_at, c.id.map(|id| id.to_string())),
    };
    let sql = format!(
        "SELECT id, last_read, updated FROM ({LISTED})
         WHERE updated < ?2 OR (updated = ?2 AND ?3 IS NOT NULL AND id < ?3)
         ORDER BY updated DESC, id DESC LIMIT ?4"
    );
    let fetch = i64::from(q.limit) + 1;
    let mut rows = listed(&tx, &sql, params![q.user.as_str(), before, tie, fetch])?;
    let has_more = rows.len() > q.limit as usize;
    rows.truncate(q.limit as usize);
    let items = summaries(&tx, rows)?;
    tx.commit()?;
    Ok(InboxPage { items, has_more })
}

type Listed = (String, i64, i64);

fn listed(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> StoreResult<Vec<Listed>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt
        .query_map(params, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<Listed>, _>>()?;
    Ok(rows)
}

/// Each listed conversation with its members and read markers (two lookups each).
fn summaries(conn: &Connection, rows: Vec<Listed>) -> StoreResult<Vec<ConversationSummary>> {
    let mut out = Vec::with_capacity(rows.len());
    for (id, last_read, updated) in rows {
        let id = queries::conversation_id(&id)?;
        if let Some(conversation) = queries::conversation(conn, id)? {
            out.push(ConversationSummary {
                read_by: queries::read_by(conn, id)?,
                conversation,
                last_read_seq: last_read as u64,
                updated_at: updated,
            });
        }
    }
    Ok(out)
}

pub fn history(conn: &Connection, q: &HistoryQuery) -> StoreResult<HistoryPage> {
    // One read transaction, so the membership check and the page agree
    // (rolled back when dropped on any error, as above).
    let tx = conn.unchecked_transaction()?;
    let page = history_in_tx(&tx, q)?;
    tx.commit()?;
    Ok(page)
}

fn history_in_tx(conn: &Connection, q: &HistoryQuery) -> StoreResult<HistoryPage> {
    let (user, id, after_seq, limit) = (&q.reader, q.id, q.after_seq, q.limit);
    let Some(conversation) = queries::conversation(conn, id)? else {
        return Err(StoreError::NotFound("no such conversation".into()));
    };
    if !conversation.is_member(user) {
        return Err(StoreError::NotMember);
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
    ))?;
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let mut rows = stmt.query(params![id.to_string(), after, i64::from(limit) + 1])?;
    let mut messages = Vec::with_capacity(limit as usize);
    while let Some(row) = rows.next()? {
        messages.push(queries::message(row)?);
    }
    Ok(HistoryPage::from_overfetch(conversation, messages, limit))
}

pub fn contacts_of(conn: &Connection, user: &Username) -> StoreResult<Vec<Username>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT other.username FROM members mine
         JOIN members other ON other.conversation_id = mine.conversation_id
         WHERE mine.username = ?1 AND other.username <> ?1",
    )?;
    let rows = stmt
        .query_map(params![user.as_str()], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter().map(|s| queries::username(s)).collect()
}

/// Payments newest first: all, by status, or only those whose saga is not
/// finished (`unfinished`, for resuming).
pub fn payments(
    conn: &Connection,
    status: Option<PaymentStatus>,
    unfinished: bool,
    limit: usize,
) -> StoreResult<Vec<Payment>> {
    let filter = if unfinished {
        "WHERE step NOT IN ('done', 'released')"
    } else if status.is_some() {
        "WHERE status = ?2"
    } else {
        ""
    };
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments {filter} ORDER BY id DESC LIMIT ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut rows = match (unfinished, status) {
        (false, Some(st)) => stmt.query(params![limit, st.as_str()])?,
        _ => stmt.query(params![limit])?,
    };
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(payment_row(row)?);
    }
    Ok(out)
}

/// The payer's payment with this idempotency key, if any.
pub fn payment_by_key(
    conn: &Connection,
    payer: &Username,
    key: &str,
) -> StoreResult<Option<Payment>> {
    conn.prepare_cached(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE payer = ?1 AND idempotency_key = ?2"
    ))?
    .query_row(params![payer.as_str(), key], |r| Ok(payment_row(r)))
    .optional()?
    .transpose()
}
