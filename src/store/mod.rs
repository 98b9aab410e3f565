//! The store: one cloneable handle in front of the backend that keeps users,
//! conversations and history. Only this module knows SQL (and, later, Redis
//! keys). Nothing here blocks the caller's thread: writes go to one writer
//! thread with group commit, reads run on the blocking pool.
//!
//! What "committed" means: a write's completion runs only after the
//! transaction holding it has committed. With `storage.sqlite_synchronous =
//! "full"` (the default) that commit has been fsynced to the WAL.

mod error;
mod sqlite;
mod types;

use std::path::Path;

pub use error::StoreError;
pub use sqlite::SqliteOptions;
pub use types::{
    AppendOutcome, Completion, ConversationSummary, HistoryPage, NewMessage, NewUser, UserRecord,
};

use crate::config::StorageSettings;
use crate::domain::{
    Conversation, ConversationId, Payment, PaymentId, PaymentStatus, SagaStep, TraceId, Username,
};
use crate::supervision::{ChildId, Supervisor};

/// The store handle. Cheap to clone; every clone talks to the same backend.
#[derive(Clone)]
pub struct Store {
    backend: sqlite::SqliteStore,
}

impl Store {
    /// Opens (creating when missing) the embedded SQLite store. With a
    /// supervisor, the writer thread reports failed batches to it.
    pub fn open_sqlite(
        path: &Path,
        settings: &StorageSettings,
        supervision: Option<(Supervisor, ChildId)>,
    ) -> Result<Store, StoreError> {
        let backend = sqlite::SqliteStore::open(path, SqliteOptions::from(settings), supervision)?;
        Ok(Store { backend })
    }

    // ---- writes (through the single writer, group-committed) ----

    /// `Conflict` when the username is taken.
    pub async fn create_user(&self, user: NewUser) -> Result<(), StoreError> {
        self.backend.create_user(user).await
    }

    /// A group with these members (the creator included by the caller).
    /// `NotFound` naming the first member that has no account.
    pub async fn create_group(
        &self,
        name: String,
        members: Vec<Username>,
    ) -> Result<Conversation, StoreError> {
        self.backend.create_group(name, members).await
    }

    /// The direct conversation of two users, created on first use.
    pub async fn direct_conversation(
        &self,
        a: Username,
        b: Username,
    ) -> Result<Conversation, StoreError> {
        self.backend.direct_conversation(a, b).await
    }

    /// Adds a member to a group; `Conflict` if already one, `BadRequest` when
    /// the group would exceed `max_members`.
    pub async fn add_member(
        &self,
        id: ConversationId,
        user: Username,
        max_members: usize,
    ) -> Result<Conversation, StoreError> {
        self.backend.add_member(id, user, max_members).await
    }

    /// Removes a member; `NotMember` if they are not one.
    pub async fn remove_member(
        &self,
        id: ConversationId,
        user: Username,
    ) -> Result<Conversation, StoreError> {
        self.backend.remove_member(id, user).await
    }

    /// Appends a message: dedup by (conversation, sender, clientMsgId), else
    /// the next seq. `done` runs on the writer thread after the commit, in
    /// commit order, so callers that forward it to a mailbox see seq order.
    pub fn append_then(&self, message: NewMessage, done: Completion<AppendOutcome>) {
        self.backend.append_then(message, done)
    }

    pub async fn append(&self, message: NewMessage) -> Result<AppendOutcome, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.append_then(
            message,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the write was lost: the store writer failed".into(),
            ))
        })
    }

    /// Moves a member's read marker forward (never back).
    pub async fn set_read(
        &self,
        id: ConversationId,
        user: Username,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.backend.set_read(id, user, seq).await
    }

    /// A new payment with the payer's funds held in the same transaction
    /// (`InsufficientFunds` otherwise, nothing held), or the payer's
    /// existing one with that idempotency key (`true`).
    pub async fn create_payment(
        &self,
        payer: Username,
        payee: Username,
        amount: i64,
        key: String,
        trace: TraceId,
    ) -> Result<(Payment, bool), StoreError> {
        self.backend
            .create_payment(payer, payee, amount, key, trace)
            .await
    }

    /// Moves a payment's saga to `to` with the money that step moves.
    pub async fn advance_payment(
        &self,
        id: PaymentId,
        to: SagaStep,
        reason: Option<String>,
    ) -> Result<Payment, StoreError> {
        self.backend.advance_payment(id, to, reason).await
    }

    /// Tops up a wallet; returns the new balance.
    pub async fn credit(&self, user: Username, amount: i64) -> Result<i64, StoreError> {
        self.backend.credit(user, amount).await
    }

    pub async fn payment(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        self.backend.payment(id).await
    }

    /// The payer's payment with this idempotency key, if any.
    pub async fn payment_by_key(
        &self,
        payer: Username,
        key: String,
    ) -> Result<Option<Payment>, StoreError> {
        self.backend.payment_by_key(payer, key).await
    }

    /// Newest first; `unfinished`: only sagas still running.
    pub async fn payments(
        &self,
        status: Option<PaymentStatus>,
        unfinished: bool,
        limit: usize,
    ) -> Result<Vec<Payment>, StoreError> {
        self.backend.payments(status, unfinished, limit).await
    }

    /// Commits everything queued before this call, then stops the writer.
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        self.backend.shutdown().await
    }

    // ---- reads (read-only connections on the blocking pool) ----

    pub async fn user(&self, username: Username) -> Result<Option<UserRecord>, StoreError> {
        self.backend.user(username).await
    }

    pub async fn conversation(
        &self,
        id: ConversationId,
    ) -> Result<Option<Conversation>, StoreError> {
        self.backend.conversation(id).await
    }

    pub async fn conversations_of(
        &self,
        user: Username,
    ) -> Result<Vec<ConversationSummary>, StoreError> {
        self.backend.conversations_of(user).await
    }

    /// A page of history for a member: `NotFound` or `NotMember` otherwise.
    pub async fn history(
        &self,
        user: Username,
        id: ConversationId,
        after_seq: u64,
        limit: u32,
    ) -> Result<HistoryPage, StoreError> {
        self.backend.history(user, id, after_seq, limit).await
    }

    /// Everyone who shares at least one conversation with `user` (presence).
    pub async fn contacts_of(&self, user: Username) -> Result<Vec<Username>, StoreError> {
        self.backend.contacts_of(user).await
    }

    /// A cheap query that proves the store answers (`/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.backend.ping().await
    }
}
