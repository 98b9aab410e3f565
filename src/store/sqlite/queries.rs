//! Row mapping and the lookups both the writer and the readers need.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::domain::{
    Conversation, ConversationId, ConversationKind, MessageId, MessageKind, StoredMessage, TraceId,
    Username,
};
use crate::store::StoreError;
use crate::store::StoreResult;

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::backend(format!("corrupt {what} in the database: {value:?}"))
}

pub fn username(s: &str) -> StoreResult<Username> {
    Username::parse(s).map_err(|_| corrupt("username", s))
}

pub fn conversation_id(s: &str) -> StoreResult<ConversationId> {
    ConversationId::parse(s).map_err(|_| corrupt("conversation id", s))
}

pub fn members(conn: &Connection, id: ConversationId) -> StoreResult<Vec<Username>> {
    let mut stmt = conn.prepare_cached(
        "SELECT username FROM members WHERE conversation_id = ?1 ORDER BY username",
    )?;
    let rows = stmt.query_map(params![id.to_string()], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(username(&row?)?);
    }
    Ok(out)
}

/// Every member's read marker.
pub fn read_by(conn: &Connection, id: ConversationId) -> StoreResult<BTreeMap<Username, u64>> {
    let mut stmt = conn
        .prepare_cached("SELECT username, last_read_seq FROM members WHERE conversation_id = ?1")?;
    let rows = stmt.query_map(params![id.to_string()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (name, seq) = row?;
        out.insert(username(&name)?, seq as u64);
    }
    Ok(out)
}

pub fn conversation(conn: &Connection, id: ConversationId) -> StoreResult<Option<Conversation>> {
    let head = conn
        .prepare_cached("SELECT kind, name, last_seq FROM conversations WHERE id = ?1")?
        .query_row(params![id.to_string()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .optional()?;
    let Some((kind, name, last_seq)) = head else {
        return Ok(None);
    };
    Ok(Some(Conversation {
        id,
        kind: ConversationKind::parse(&kind).ok_or_else(|| corrupt("conversation kind", &kind))?,
        name,
        members: members(conn, id)?,
        last_seq: last_seq as u64,
    }))
}

pub const MESSAGE_COLUMNS: &str =
    "conversation_id, seq, message_id, sender, client_msg_id, kind, body, sent_at, trace_id";

pub fn message(row: &Row<'_>) -> StoreResult<StoredMessage> {
    let conv: String = row.get(0)?;
    let message_id: String = row.get(2)?;
    let sender: String = row.get(3)?;
    let kind: String = row.get(5)?;
    let trace: String = row.get(8)?;
    Ok(StoredMessage {
        conversation_id: conversation_id(&conv)?,
        seq: row.get::<_, i64>(1)? as u64,
        message_id: MessageId::parse(&message_id)
            .map_err(|_| corrupt("message id", &message_id))?,
        sender: username(&sender)?,
        client_msg_id: row.get(4)?,
        kind: MessageKind::parse(&kind).ok_or_else(|| corrupt("message kind", &kind))?,
        text: row.get(6)?,
        sent_at: row.get(7)?,
        trace_id: TraceId::parse(&trace).ok_or_else(|| corrupt("trace id", &trace))?,
    })
}

pub fn user_exists(conn: &Connection, user: &Username) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM users WHERE username = ?1")?
        .query_row(params![user.as_str()], |_| Ok(()))
        .optional()?
        .is_some())
}
