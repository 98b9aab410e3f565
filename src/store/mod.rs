//! The store: one cloneable handle in front of the backend that keeps users,
//! conversations, history, wallets and payments: embedded SQLite (one
//! process) or Redis (a cluster of nodes). Only this module knows SQL and
//! Redis keys. Nothing here blocks the caller's thread: SQLite writes go to
//! one writer thread with group commit and its reads run on the blocking
//! pool; Redis calls are async and go through the `redis` circuit breaker.
//!
//! What "committed" means: a write's completion runs only after the
//! transaction holding it has committed. With `storage.sqlite_synchronous =
//! "full"` (the default) that commit has been fsynced to the WAL.

mod error;
pub mod redis;
mod sqlite;
mod types;

use std::path::Path;

pub use error::{StoreError, StoreResult};
pub use sqlite::SqliteOptions;
pub use types::{
    AppendOutcome, Completion, ConversationSummary, HistoryPage, HistoryQuery, InboxCursor,
    InboxPage, InboxQuery, Invitation, Invitations, Join, Leave, NewGroup, NewInvitation,
    NewMessage, NewPayment, NewUser, Pair, PaymentFilter, Quota, SagaMove, UserRecord,
};

use crate::config::StorageSettings;
use crate::domain::{Conversation, ConversationId, Payment, PaymentId, Username};
use crate::supervision::{ChildId, Supervisor};

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Redis(redis::RedisStore),
}

/// The store handle. Cheap to clone; every clone talks to the same backend.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

/// Calls the same method on whichever backend this store has.
macro_rules! on_backend {
    ($self:ident.$method:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Sqlite(b) => b.$method($($arg),*).await,
            Backend::Redis(b) => b.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Opens (creating when missing) the embedded SQLite store. With a
    /// supervisor, the writer thread reports failed batches to it.
    pub fn open_sqlite(
        path: &Path,
        settings: &StorageSettings,
        supervision: Option<(Supervisor, ChildId)>,
    ) -> StoreResult<Store> {
        let backend = sqlite::SqliteStore::open(path, SqliteOptions::from(settings), supervision)?;
        Ok(Store {
            backend: Backend::Sqlite(backend),
        })
    }

    /// Connects to the shared Redis server; with a breaker, every call goes
    /// through it.
    pub async fn open_redis(
        options: redis::RedisOptions,
        breaker: Option<actix::Addr<crate::actors::breaker::BreakerActor>>,
    ) -> StoreResult<Store> {
        let backend = redis::RedisStore::connect(options, breaker).await?;
        Ok(Store {
            backend: Backend::Redis(backend),
        })
    }

    /// The Redis backend, when this store is one (cluster fan-out and presence).
    pub fn redis(&self) -> Option<&redis::RedisStore> {
        match &self.backend {
            Backend::Redis(r) => Some(r),
            Backend::Sqlite(_) => None,
        }
    }

    // ---- writes (through the single writer, group-committed) ----

    /// `Conflict` when the username is taken.
    pub async fn create_user(&self, user: NewUser) -> StoreResult<()> {
        on_backend!(self.create_user(user))
    }

    /// A group with these members (the creator included by the caller),
    /// and `invite`'s invitations to it, in one transaction. `NotFound`
    /// naming the first member or invitee that has no account; with a
    /// quota (its user is the creator), `Forbidden` when they may start no
    /// more (see `Quota`).
    pub async fn create_group(&self, group: NewGroup) -> StoreResult<Conversation> {
        on_backend!(self.create_group(group))
    }

    /// How many conversations `user` started or accepted (see `Quota`).
    pub async fn started_count(&self, user: Username) -> StoreResult<usize> {
        on_backend!(self.started_count(user))
    }

    /// Invites `user` to the group `id` on behalf of `from`: the new
    /// invitation and `true`, or the pending one and `false`. `Conflict` if
    /// `user` is a member already, `NotFound` for a missing user or group,
    /// `BadRequest` for a direct conversation. An invitee holds at most
    /// `max_pending` invitations: a new one past that drops their oldest,
    /// so no one can grow another user's list without bound.
    pub async fn invite(&self, invite: NewInvitation) -> StoreResult<(Invitation, bool)> {
        on_backend!(self.invite(invite))
    }

    /// Drops `user`'s invitation to `id`; whether there was one.
    pub async fn decline(&self, id: ConversationId, user: Username) -> StoreResult<bool> {
        on_backend!(self.decline(id, user))
    }

    /// The direct conversation of two users, created on first use.
    /// With a quota, a new one is started by its user (`a` or `b`) within
    /// it (`Forbidden` otherwise); an existing one is never refused.
    pub async fn direct_conversation(&self, pair: Pair) -> StoreResult<Conversation> {
        on_backend!(self.direct_conversation(pair))
    }

    /// Adds a member to a group (and drops their invitation to it, if any,
    /// in the same transaction: accepting is joining); `Conflict` if already
    /// one, `BadRequest` when the group would exceed `max_members`. With a
    /// quota (the user joins of their own accord), the membership is theirs
    /// within it (`Forbidden` otherwise). In a cluster the other nodes
    /// hear of it (`trace`: the request that caused it) atomically with the
    /// change.
    pub async fn add_member(&self, join: Join) -> StoreResult<Conversation> {
        on_backend!(self.add_member(join))
    }

    /// Removes a member; `NotMember` if they are not one. In a cluster the
    /// other nodes hear of it atomically with the change (`session`: the
    /// session that asked, which gets `left` rather than `member_left`).
    pub async fn remove_member(&self, leave: Leave) -> StoreResult<Conversation> {
        on_backend!(self.remove_member(leave))
    }

    /// Appends a message: dedup by (conversation, sender, clientMsgId), else
    /// the next seq. `done` runs on the writer thread after the commit, in
    /// commit order, so callers that forward it to a mailbox see seq order.
    pub fn append_then(&self, message: NewMessage, done: Completion<AppendOutcome>) {
        match &self.backend {
            Backend::Sqlite(b) => b.append_then(message, done),
            Backend::Redis(b) => b.append_then(message, done),
        }
    }

    pub async fn append(&self, message: NewMessage) -> StoreResult<AppendOutcome> {
        let (done, answer) = Completion::oneshot();
        self.append_then(message, done);
        answer.await.unwrap_or(Err(StoreError::Lost))
    }

    /// Moves a member's read marker forward (never back).
    pub async fn set_read(&self, id: ConversationId, user: Username, seq: u64) -> StoreResult<()> {
        on_backend!(self.set_read(id, user, seq))
    }

    /// A new payment with the payer's funds held in the same transaction
    /// (`InsufficientFunds` otherwise, nothing held), or the payer's
    /// existing one with that idempotency key (`true`).
    pub async fn create_payment(&self, p: NewPayment) -> StoreResult<(Payment, bool)> {
        on_backend!(self.create_payment(p))
    }

    /// Moves a payment's saga to `to` with the money that step moves.
    pub async fn advance_payment(&self, step: SagaMove) -> StoreResult<Payment> {
        on_backend!(self.advance_payment(step))
    }

    /// Tops up a wallet; returns the new balance.
    pub async fn credit(&self, user: Username, amount: i64) -> StoreResult<i64> {
        on_backend!(self.credit(user, amount))
    }

    /// Grants (`true`) or revokes an account's admin rights (`parley admin`
    /// on the host; nothing in the public API calls it). `NotFound` when
    /// there is no such account.
    pub async fn set_admin(&self, user: Username, admin: bool) -> StoreResult<()> {
        on_backend!(self.set_admin(user, admin))
    }

    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        on_backend!(self.payment(id))
    }

    /// The payer's payment with this idempotency key, if any.
    pub async fn payment_by_key(
        &self,
        payer: Username,
        key: String,
    ) -> StoreResult<Option<Payment>> {
        on_backend!(self.payment_by_key(payer, key))
    }

    /// Newest first (see `PaymentFilter`).
    pub async fn payments(&self, filter: PaymentFilter) -> StoreResult<Vec<Payment>> {
        on_backend!(self.payments(filter))
    }

    /// Commits everything queued before this call, then stops the writer.
    pub async fn shutdown(&self) -> StoreResult<()> {
        on_backend!(self.shutdown())
    }

    // ---- reads (read-only connections on the blocking pool) ----

    pub async fn user(&self, username: Username) -> StoreResult<Option<UserRecord>> {
        on_backend!(self.user(username))
    }

    pub async fn conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        on_backend!(self.conversation(id))
    }

    /// One page of the user's conversations, newest activity first (see
    /// `InboxQuery`): what `GET /api/conversations` and the `conversations`
    /// frame answer. Computed from the conversations on each call; the
    /// projected inbox of SPEC v2 (last message, unread counts) is not built yet.
    pub async fn inbox(&self, q: InboxQuery) -> StoreResult<InboxPage> {
        on_backend!(self.inbox(q))
    }

    pub async fn conversations_of(&self, user: Username) -> StoreResult<Vec<ConversationSummary>> {
        on_backend!(self.conversations_of(user))
    }

    /// A page of history for a member: `NotFound` or `NotMember` otherwise.
    pub async fn history(&self, q: HistoryQuery) -> StoreResult<HistoryPage> {
        on_backend!(self.history(q))
    }

    /// `user`'s pending invitations, newest first (at most the
    /// `max_pending` that `invite` keeps).
    pub async fn invitations_of(&self, user: Username) -> StoreResult<Vec<Invitation>> {
        on_backend!(self.invitations_of(user))
    }

    /// `user`'s pending invitation to `id`, if any.
    pub async fn invitation(
        &self,
        id: ConversationId,
        user: Username,
    ) -> StoreResult<Option<Invitation>> {
        on_backend!(self.invitation(id, user))
    }

    /// Those of `candidates` who have consented to `inviter`: they share
    /// with the inviter a conversation they started or accepted themselves
    /// (`Quota`'s own memberships). Sharing one the inviter (or anyone)
    /// put them in is not consent: else one direct message, which needs
    /// none, would make anyone a contact who may add them to groups.
    pub async fn consenting(
        &self,
        inviter: Username,
        candidates: Vec<Username>,
    ) -> StoreResult<Vec<Username>> {
        on_backend!(self.consenting(inviter, candidates))
    }

    /// Everyone who shares at least one conversation with `user` (presence).
    pub async fn contacts_of(&self, user: Username) -> StoreResult<Vec<Username>> {
        on_backend!(self.contacts_of(user))
    }

    /// A cheap query that proves the store answers (`/readyz`).
    pub async fn ping(&self) -> StoreResult<()> {
        on_backend!(self.ping())
    }
}
