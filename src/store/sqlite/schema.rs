//! Schema and connection settings. Versioned with `PRAGMA user_version` so a
//! later change can migrate an existing file.

use std::time::Duration;

use rusqlite::Connection;

use crate::config::Synchronous;
use crate::store::StoreError;
use crate::store::StoreResult;

const VERSION: i64 = 4;

pub fn configure_writer(conn: &Connection, synchronous: Synchronous) -> StoreResult<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::backend(format!(
            "cannot switch the database to WAL mode (got {mode})"
        )));
    }
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    // temp_store: statement and savepoint journals stay in memory.
    // wal_autocheckpoint = 16384 pages (64 MiB): commits leave checkpoints to
    // the checkpoint thread (see checkpoint.rs) unless the WAL outgrows that,
    // which only sustained writes racing every background pass can cause (a
    // WAL restarts only when a checkpoint has caught up as a write begins);
    // then the writer checkpoints between commits, as SQLite does by default.
    // journal_size_limit: a WAL that grew is cut back to 64 MiB at restart.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = 16384; PRAGMA journal_size_limit = 67108864;"
    ))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(())
}

pub fn migrate(conn: &Connection) -> StoreResult<()> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > VERSION {
        return Err(StoreError::backend(format!(
            "the database has schema version {version}, newer than this build ({VERSION})"
        )));
    }
    // Each step in a transaction of its own with the version it reaches, so
    // a file is always at one version; a failed step rolls back (the
    // transaction is dropped uncommitted) and the next start tries it again.
    for (to, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", to)?;
        tx.commit()?;
    }
    Ok(())
}

/// The schema steps, in order: step `n` takes a file from version `n - 1` to `n`.
const MIGRATIONS: [&str; VERSION as usize] = [V1, V2, V3, V4];

/// Admin rights granted on the host (`parley admin grant`).
const V4: &str = "
ALTER TABLE users ADD COLUMN admin INTEGER NOT NULL DEFAULT 0;
";

/// Users, conversations, members, messages.
const V1: &str = "
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    balance INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('direct', 'group')),
    name TEXT NOT NULL,
    direct_key TEXT UNIQUE,
    last_seq INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS members (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    username TEXT NOT NULL REFERENCES users(username),
    joined_at INTEGER NOT NULL,
    last_read_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, username)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members(username, conversation_id);
CREATE TABLE IF NOT EXISTS messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    sender TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    sent_at INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS messages_dedup ON messages(conversation_id, sender, client_msg_id);";

/// Payments and their saga log.
const V2: &str = "
CREATE TABLE IF NOT EXISTS payments (
    id TEXT PRIMARY KEY,
    payer TEXT NOT NULL REFERENCES users(username),
    payee TEXT NOT NULL REFERENCES users(username),
    amount INTEGER NOT NULL CHECK (amount > 0),
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    step TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    UNIQUE (payer, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS payments_by_step ON payments(step);
CREATE TABLE IF NOT EXISTS payment_steps (
    payment_id TEXT NOT NULL REFERENCES payments(id),
    step TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (payment_id, step)
) WITHOUT ROWID;";

/// Invitations (SPEC v2): pending, not memberships; and which memberships
/// their user started or accepted (`own`, the conversation quota: rows from
/// before count as own).
const V3: &str = "
ALTER TABLE members ADD COLUMN own INTEGER NOT NULL DEFAULT 1;
CREATE INDEX IF NOT EXISTS members_own ON members(username) WHERE own = 1;
CREATE TABLE IF NOT EXISTS invitations (
    username TEXT NOT NULL REFERENCES users(username),
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    inviter TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (username, conversation_id)
) WITHOUT ROWID;";

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap_or(-1)
    }

    #[test]
    fn a_file_of_an_older_version_is_brought_up_to_date_keeping_its_rows() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        // A file as version 2 left it, with a member from before `own`.
        conn.execute_batch(V1).expect("v1");
        conn.execute_batch(V2).expect("v2");
        conn.pragma_update(None, "user_version", 2)
            .expect("version");
        conn.execute_batch(
            "INSERT INTO users VALUES ('alice', 'h', 0, 0);
             INSERT INTO conversations (id, kind, name, created_at) VALUES ('c', 'group', 'g', 0);
             INSERT INTO members (conversation_id, username, joined_at) VALUES ('c', 'alice', 0);",
        )
        .expect("rows");
        migrate(&conn).expect("migrate");
        assert_eq!(version(&conn), VERSION);
        let own: i64 = conn
            .query_row(
                "SELECT own FROM members WHERE username = 'alice'",
                [],
                |r| r.get(0),
            )
            .expect("own");
        assert_eq!(own, 1, "memberships from before count as the user's own");
        migrate(&conn).expect("a second run changes nothing");
        assert_eq!(version(&conn), VERSION);
    }

    /// CVE-2025-6965 is fixed from SQLite 3.50.2; the bundled one is linked.
    #[test]
    fn the_linked_sqlite_has_the_cve_2025_6965_fix() {
        assert!(
            rusqlite::version_number() >= 3_050_002,
            "SQLite {} is older than 3.50.2",
            rusqlite::version()
        );
    }

    #[test]
    fn a_file_of_a_newer_version_is_refused_untouched() {
        let conn = Connection::open_in_memory().expect("in-memory database");
        conn.pragma_update(None, "user_version", VERSION + 1)
            .expect("version");
        let refused = migrate(&conn);
        assert!(
            matches!(refused, Err(StoreError::Backend { .. })),
            "{refused:?}"
        );
        assert_eq!(version(&conn), VERSION + 1);
    }
}
