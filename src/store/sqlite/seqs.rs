//! The writer's view of each conversation's last seq, so an append is a
//! single INSERT: the `conversations.last_seq` column is written once per
//! batch per conversation instead of once per message. Values become
//! "committed" only after their transaction commits; a rollback forgets the
//! pending ones. Bounded: the committed map is cleared when it would pass
//! `CAPACITY` entries (a miss costs one primary-key read).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use crate::domain::ConversationId;
use crate::store::StoreError;
use crate::store::StoreResult;

const CAPACITY: usize = 65_536;

#[derive(Default)]
pub struct Seqs {
    committed: HashMap<ConversationId, i64>,
    pending: HashMap<ConversationId, i64>,
}

impl Seqs {
    /// The last seq of `id`, as this transaction sees it.
    pub fn last(&mut self, conn: &Connection, id: ConversationId) -> StoreResult<i64> {
        if let Some(s) = self.pending.get(&id).or_else(|| self.committed.get(&id)) {
            return Ok(*s);
        }
        let stored: Option<i64> = conn
            .prepare_cached("SELECT last_seq FROM conversations WHERE id = ?1")?
            .query_row(params![id.to_string()], |r| r.get(0))
            .optional()?;
        let stored = stored.ok_or_else(|| StoreError::NotFound("no such conversation".into()))?;
        self.committed.insert(id, stored);
        Ok(stored)
    }

    pub fn advance(&mut self, id: ConversationId, seq: i64) {
        self.pending.insert(id, seq);
    }

    /// Writes the pending values into `conversations` (inside the
    /// transaction), so queries in it see the current last seq.
    pub fn write_through(&self, conn: &Connection) -> StoreResult<()> {
        for (id, seq) in &self.pending {
            conn.prepare_cached("UPDATE conversations SET last_seq = ?2 WHERE id = ?1")?
                .execute(params![id.to_string(), seq])?;
        }
        Ok(())
    }

    /// The transaction committed.
    pub fn commit(&mut self) {
        if self.committed.len() + self.pending.len() > CAPACITY {
            self.committed.clear();
        }
        self.committed.extend(self.pending.drain());
    }

    /// The transaction rolled back.
    pub fn rollback(&mut self) {
        self.pending.clear();
    }
}
