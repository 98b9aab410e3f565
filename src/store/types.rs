//! Values going into and out of the store.

use std::collections::BTreeMap;

use crate::domain::{
    Conversation, ConversationId, MessageId, MessageKind, PaymentId, PaymentStatus, SagaStep,
    SessionId, StoredMessage, TraceId, Username,
};

use super::StoreError;
use crate::store::StoreResult;
use crate::supervision::{Responder, Unanswered};

/// Runs once with the outcome of a write, after its commit (or failure). It
/// is the one answer-exactly-once type ([`Responder`]): a completion the store
/// drops unanswered (its writer thread failed mid-batch, its Redis task was
/// cancelled) answers [`StoreError::Lost`] instead of vanishing.
pub type Completion<T> = Responder<StoreResult<T>>;

impl<T> Unanswered for StoreResult<T> {
    fn unanswered() -> Self {
        Err(StoreError::Lost)
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: Username,
    pub password_hash: String,
    pub balance: i64,
}

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub username: Username,
    pub password_hash: String,
    pub balance: i64,
    pub created_at: i64,
    /// Granted admin rights on the host (`parley admin grant`); they hold
    /// only while the name is also in `auth.admins` (SPEC v2 "Admin rights").
    pub admin: bool,
}

/// A message before it is committed: no seq yet (the store assigns it).
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub sender: Username,
    pub client_msg_id: String,
    pub kind: MessageKind,
    pub text: String,
    pub sent_at: i64,
    pub trace_id: TraceId,
}

#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub message: StoredMessage,
    /// The clientMsgId was seen before: `message` is the original, nothing new was stored.
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct HistoryPage {
    /// The conversation the page belongs to (for `receiver` on direct messages).
    pub conversation: Conversation,
    pub messages: Vec<StoredMessage>,
    pub has_more: bool,
}

impl HistoryPage {
    /// A page from up to `limit + 1` messages read in seq order: the extra
    /// one, if it came, only says that more follow.
    pub fn from_overfetch(
        conversation: Conversation,
        mut messages: Vec<StoredMessage>,
        limit: u32,
    ) -> Self {
        let has_more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        HistoryPage {
            conversation,
            messages,
            has_more,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConversationSummary {
    pub conversation: Conversation,
    pub last_read_seq: u64,
    /// Every member's read marker, the caller's included: one entry per
    /// member, so as bounded as the membership (`limits.max_group_members`).
    pub read_by: BTreeMap<Username, u64>,
    /// The last activity, in ms: the newest message's `sent_at`, or when the
    /// conversation was made if it has none.
    pub updated_at: i64,
}

/// A page of `user`'s conversations, newest activity first (by
/// `updated_at`, then conversation id, both descending): at most `limit`,
/// all before `before` when given.
#[derive(Debug, Clone)]
pub struct InboxQuery {
    pub user: Username,
    pub limit: u32,
    pub before: Option<InboxCursor>,
}

/// Where a page of the inbox starts: after the conversations last active at
/// `updated_at`, or, with `id`, after that one among those active in the
/// same millisecond (so a page boundary never skips a tie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxCursor {
    pub updated_at: i64,
    pub id: Option<ConversationId>,
}

#[derive(Debug, Clone)]
pub struct InboxPage {
    pub items: Vec<ConversationSummary>,
    pub has_more: bool,
}

/// A new group: these members (the creator included by the caller), and
/// `invite`'s invitations to it, written in one transaction; `quota` is the
/// creator's (see [`Quota`]).
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub name: String,
    pub members: Vec<Username>,
    pub invite: Option<Invitations>,
    pub quota: Option<Quota>,
}

/// An invitation of `user` to the group `id` on behalf of `from`; the
/// invitee holds at most `max_pending` (see `Store::invite`).
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub id: ConversationId,
    pub user: Username,
    pub from: Username,
    pub max_pending: usize,
}

/// `user` joins the group `id`, which may not grow past `max_members`.
/// `quota`: set when the user joins of their own accord (accepting an
/// invitation). `trace`: the request that caused it, for the cluster event.
#[derive(Debug, Clone)]
pub struct Join {
    pub id: ConversationId,
    pub user: Username,
    pub max_members: usize,
    pub trace: TraceId,
    pub quota: Option<Quota>,
}

/// `user` leaves (or is removed from) the conversation `id`. `session`: the
/// session that asked, which gets `left` rather than `member_left`.
#[derive(Debug, Clone)]
pub struct Leave {
    pub id: ConversationId,
    pub user: Username,
    pub trace: TraceId,
    pub session: Option<SessionId>,
}

/// The direct conversation of `a` and `b` (in either order), created on
/// first use; `quota`: whose start it would be (`a`'s or `b`'s).
#[derive(Debug, Clone)]
pub struct Pair {
    pub a: Username,
    pub b: Username,
    pub quota: Option<Quota>,
}

/// A payment saga's next step `to`, with `reason` for a refund or failure.
#[derive(Debug, Clone)]
pub struct SagaMove {
    pub id: PaymentId,
    pub to: SagaStep,
    pub reason: Option<String>,
}

/// Which payments to list, newest first: with `status` only, or with
/// `unfinished` only sagas still running; at most `limit`.
#[derive(Debug, Clone, Copy)]
pub struct PaymentFilter {
    pub status: Option<PaymentStatus>,
    pub unfinished: bool,
    pub limit: usize,
}

/// A payment to start; `key` is the payer's idempotency key.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub payer: Username,
    pub payee: Username,
    pub amount: i64,
    pub key: String,
    pub trace: TraceId,
}

/// A page of history as `reader` may see it: the messages of `id` after
/// `after_seq`, at most `limit`.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub reader: Username,
    pub id: ConversationId,
    pub after_seq: u64,
    pub limit: u32,
}

/// A pending invitation of a user to a group (SPEC v2 "Invitations"): not
/// a membership until accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub conversation: Conversation,
    pub from: Username,
    /// When it was made, in ms.
    pub created_at: i64,
}

/// Who to invite to a group, written with it in one transaction.
/// `max_pending` bounds each invitee's pending invitations: past it, the
/// invitee's oldest is dropped (see `Store::invite`).
#[derive(Debug, Clone)]
pub struct Invitations {
    pub from: Username,
    pub to: Vec<Username>,
    /// When they are made, in ms (the invitation frames say the same).
    pub at: i64,
    pub max_pending: usize,
}

/// The conversation quota of the user a write acts for: they may start a
/// conversation (create a group, open a direct one, accept an invitation)
/// only while they are in fewer than `max` that they started or accepted
/// themselves. Checked inside the write's own transaction (script), so
/// concurrent starts cannot pass it together; the new membership is then
/// counted as theirs. Memberships others gave them (a contact's group or
/// invite, the other side of a direct conversation) never count.
#[derive(Debug, Clone)]
pub struct Quota {
    pub user: Username,
    pub max: usize,
}

impl Quota {
    /// Why a user in `n` conversations of their own may start no more (the
    /// Redis scripts say the same words, in `scripts/lib.lua`).
    pub fn full_message(n: usize, max: usize) -> String {
        format!(
            "you are in {n} conversations you started or joined; a user in {max} or more may not start another (leave one first)"
        )
    }
}
