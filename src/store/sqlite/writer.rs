//! The single writer: a dedicated thread that takes every queued write it can
//! (up to `max_batch`), runs each in its own savepoint inside one transaction,
//! commits once, then runs the completions in queue order. One commit (and one
//! fsync) thus serves a whole batch, and a failed write never half-writes:
//! its savepoint is rolled back and the rest of the batch goes on.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc;

use super::invitations;
use super::payments;
use super::queries::{self, MESSAGE_COLUMNS};
use super::quota;
use super::seqs::Seqs;
use crate::domain::{
    now_ms, Conversation, ConversationId, ConversationKind, Payment, StoredMessage, TraceId,
    Username,
};
use crate::store::StoreResult;
use crate::store::{AppendOutcome, Completion, Invitation, NewMessage, NewUser, Quota, StoreError};
use crate::store::{Join, Leave, NewGroup, NewInvitation, NewPayment, Pair, SagaMove};
use crate::supervision::{supervised, ChildId, Decision, Exit, Supervisor};
use crate::traces::{self, ActorRef};

pub enum WriteOp {
    CreateUser(NewUser, Completion<()>),
    CreateGroup(NewGroup, Completion<Conversation>),
    Invite(NewInvitation, Completion<(Invitation, bool)>),
    Decline {
        id: ConversationId,
        user: Username,
        done: Completion<bool>,
    },
    Direct(Pair, Completion<Conversation>),
    AddMember(Join, Completion<Conversation>),
    RemoveMember(Leave, Completion<Conversation>),
    Append(NewMessage, Completion<AppendOutcome>),
    SetRead {
        id: ConversationId,
        user: Username,
        seq: u64,
        done: Completion<()>,
    },
    CreatePayment(NewPayment, Completion<(Payment, bool)>),
    AdvancePayment(SagaMove, Completion<Payment>),
    SetAdmin {
        user: Username,
        admin: bool,
        done: Completion<()>,
    },
    Credit {
        user: Username,
        amount: i64,
        done: Completion<i64>,
    },
    Shutdown(Completion<()>),
}

impl WriteOp {
    /// Answers the op with an error without running it.
    pub fn fail(self, e: StoreError) {
        match self {
            WriteOp::CreateUser(_, d) | WriteOp::SetRead { done: d, .. } | WriteOp::Shutdown(d) => {
                d.respond(Err(e))
            }
            WriteOp::CreateGroup(_, done)
            | WriteOp::Direct(_, done)
            | WriteOp::AddMember(_, done)
            | WriteOp::RemoveMember(_, done) => done.respond(Err(e)),
            WriteOp::Append(_, d) => d.respond(Err(e)),
            WriteOp::Invite(_, done) => done.respond(Err(e)),
            WriteOp::Decline { done, .. } => done.respond(Err(e)),
            WriteOp::CreatePayment(_, done) => done.respond(Err(e)),
            WriteOp::AdvancePayment(_, done) => done.respond(Err(e)),
            WriteOp::Credit { done, .. } => done.respond(Err(e)),
            WriteOp::SetAdmin { done, .. } => done.respond(Err(e)),
        }
    }
}

/// A completion with its result, held until the batch's commit is known. Not
/// an answer type of its own: it only erases `T` so one batch can hold
/// completions of every kind. Dropped (the writer panicked mid-batch), the
/// completion inside answers [`StoreError::Lost`].
type Pending = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn pending<T: Send + 'static>(done: Completion<T>, result: StoreResult<T>) -> Pending {
    Box::new(move |commit_error| match commit_error {
        None => done.respond(result),
        Some(e) => done.respond(Err(e.clone())),
    })
}

pub fn spawn(
    conn: Connection,
    rx: mpsc::Receiver<WriteOp>,
    max_batch: usize,
    window: Duration,
    supervision: Option<WriterSupervision>,
) -> StoreResult<()> {
    std::thread::Builder::new()
        .name("parley-sqlite-writer".into())
        .spawn(move || run(conn, rx, max_batch, window, supervision))
        .map(|_| ())
        .map_err(|e| StoreError::backend("cannot start the writer thread").caused_by(e))
}

/// Where the writer reports a failed batch: its supervisor and its id there.
pub type WriterSupervision = (Supervisor, ChildId);

fn run(
    conn: Connection,
    mut rx: mpsc::Receiver<WriteOp>,
    max_batch: usize,
    window: Duration,
    supervision: Option<WriterSupervision>,
) {
    let mut batch: Vec<WriteOp> = Vec::with_capacity(max_batch);
    let mut seqs = Seqs::default();
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        if !window.is_zero() {
            std::thread::sleep(window);
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // A panic while writing fails this batch only: its completions are
        // dropped (their responders answer `internal`), the transaction is
        // rolled back, the supervisor counts the failure and sets the pause.
        let stop = match supervised(|| commit_batch(&conn, &mut batch, &mut seqs)) {
            Ok(stop) => stop,
            Err(failure) => {
                batch.clear();
                seqs.rollback();
                let _ = conn.execute_batch("ROLLBACK");
                let delay = match &supervision {
                    Some((sup, id)) => match sup.child_exited(*id, Exit::Failed(failure)) {
                        Decision::Restart { delay } => {
                            sup.child_restarted(*id);
                            delay
                        }
                        Decision::Hold | Decision::Stop => Duration::from_secs(1),
                    },
                    None => Duration::from_millis(10),
                };
                std::thread::sleep(delay);
                false
            }
        };
        if stop {
            // Later writes are refused; queued ones get `Closed`.
            rx.close();
            while let Ok(op) = rx.try_recv() {
                op.fail(StoreError::Closed);
            }
            break;
        }
    }
    tracing::info!("store writer stopped");
}

/// Runs and commits one batch; true when it held a shutdown request.
fn commit_batch(conn: &Connection, batch: &mut Vec<WriteOp>, seqs: &mut Seqs) -> bool {
    let started = std::time::Instant::now();
    let size = batch.len();
    let mut done: Vec<Pending> = Vec::with_capacity(size);
    let mut shutdown: Option<Completion<()>> = None;
    let mut traced: Vec<TraceId> = Vec::new();
    let begin = conn
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::from);
    if let Err(e) = begin {
        tracing::error!(error = %e, "cannot begin a write transaction");
        for op in batch.drain(..) {
            op.fail(e.clone());
        }
        return false;
    }
    for op in batch.drain(..) {
        match op {
            WriteOp::Shutdown(d) => shutdown = Some(d),
            WriteOp::Append(m, d) => {
                traced.push(m.trace_id);
                done.push(pending(d, append(conn, seqs, &m)));
            }
            op => {
                // Other writes read conversations: bring last_seq up to date.
                let op_result = seqs.write_through(conn);
                match op_result {
                    Ok(()) => done.push(execute(conn, op)),
                    Err(e) => op.fail(e),
                }
            }
        }
    }
    let commit = seqs
        .write_through(conn)
        .and_then(|()| conn.execute_batch("COMMIT").map_err(StoreError::from));
    match &commit {
        Ok(()) => {
            seqs.commit();
            for trace in traced {
                traces::hop(
                    trace,
                    "store",
                    ActorRef::Named("store_writer"),
                    "committed",
                    started.elapsed(),
                );
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batch = size, "commit failed; every write of the batch fails");
            let _ = conn.execute_batch("ROLLBACK");
            seqs.rollback();
        }
    }
    let commit_error = commit.err();
    for d in done {
        d(commit_error.as_ref());
    }
    metrics::histogram!("parley_store_commit_seconds").record(started.elapsed().as_secs_f64());
    crate::series::record("store_commit_ms", started.elapsed().as_secs_f64() * 1000.0);
    metrics::histogram!("parley_store_batch_size").record(size as f64);
    tracing::trace!(
        batch = size,
        micros = started.elapsed().as_micros() as u64,
        "batch committed"
    );
    match shutdown {
        Some(d) => {
            d.respond(Ok(()));
            true
        }
        None => false,
    }
}

/// Runs one op in a savepoint: on error nothing of it stays.
fn execute(conn: &Connection, op: WriteOp) -> Pending {
    match op {
        WriteOp::CreateUser(user, d) => pending(d, in_savepoint(conn, |c| create_user(c, &user))),
        WriteOp::CreateGroup(g, done) => pending(done, in_savepoint(conn, |c| create_group(c, &g))),
        WriteOp::Invite(i, done) => {
            pending(done, in_savepoint(conn, |c| invitations::invite(c, &i)))
        }
        WriteOp::Decline { id, user, done } => pending(
            done,
            in_savepoint(conn, |c| invitations::remove(c, id, &user)),
        ),
        WriteOp::Direct(p, done) => pending(
            done,
            in_savepoint(conn, |c| direct(c, &p.a, &p.b, p.quota.as_ref())),
        ),
        WriteOp::AddMember(j, done) => pending(done, in_savepoint(conn, |c| add_member(c, &j))),
        WriteOp::RemoveMember(l, done) => pending(
            done,
            in_savepoint(conn, |c| remove_member(c, l.id, &l.user)),
        ),
        // Appends never get here (see `commit_batch`): they keep `seqs` themselves.
        WriteOp::Append(m, d) => pending(
            d,
            Err(StoreError::backend(format!(
                "append of {} misrouted",
                m.message_id
            ))),
        ),
        WriteOp::SetRead {
            id,
            user,
            seq,
            done,
        } => pending(done, in_savepoint(conn, |c| set_read(c, id, &user, seq))),
        WriteOp::CreatePayment(p, done) => {
            pending(done, in_savepoint(conn, |c| payments::create(c, &p)))
        }
        WriteOp::AdvancePayment(step, done) => {
            pending(done, in_savepoint(conn, |c| payments::advance(c, &step)))
        }
        WriteOp::SetAdmin { user, admin, done } => {
            pending(done, in_savepoint(conn, |c| set_admin(c, &user, admin)))
        }
        WriteOp::Credit { user, amount, done } => pending(
            done,
            in_savepoint(conn, |c| payments::credit(c, &user, amount)),
        ),
        WriteOp::Shutdown(d) => pending(d, Ok(())),
    }
}

fn set_admin(conn: &Connection, user: &Username, admin: bool) -> StoreResult<()> {
    let changed = conn
        .prepare_cached("UPDATE users SET admin = ?2 WHERE username = ?1")?
        .execute(params![user.as_str(), admin])?;
    if changed == 0 {
        return Err(StoreError::NotFound(format!("no user named {user}")));
    }
    Ok(())
}

fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT op")?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("RELEASE op")?;
            Ok(v)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO op; RELEASE op")?;
            Err(e)
        }
    }
}

fn create_user(conn: &Connection, user: &NewUser) -> StoreResult<()> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO users (username, password_hash, balance, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (username) DO NOTHING",
        )?
        .execute(params![user.username.as_str(), user.password_hash, user.balance, now_ms()])?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!(
            "username {} is taken",
            user.username
        )));
    }
    Ok(())
}

fn require_users(conn: &Connection, users: &[Username]) -> StoreResult<()> {
    for u in users {
        if !queries::user_exists(conn, u)? {
            return Err(StoreError::NotFound(format!("no user named {u}")));
        }
    }
    Ok(())
}

fn insert_conversation(
    conn: &Connection,
    kind: ConversationKind,
    name: &str,
    direct_key: Option<&str>,
    members: &[Username],
    own: Option<&Username>,
) -> StoreResult<Conversation> {
    let id = ConversationId::new_random();
    let now = now_ms();
    conn.prepare_cached(
        "INSERT INTO conversations (id, kind, name, direct_key, last_seq, created_at) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
    )?
    .execute(params![id.to_string(), kind.as_str(), name, direct_key, now])?;
    let mut sorted = members.to_vec();
    sorted.sort();
    sorted.dedup();
    for m in &sorted {
        conn.prepare_cached(
            "INSERT INTO members (conversation_id, username, joined_at, own) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id.to_string(), m.as_str(), now, own == Some(m)])?;
    }
    Ok(Conversation {
        id,
        kind,
        name: name.to_string(),
        members: sorted,
        last_seq: 0,
    })
}

fn create_group(conn: &Connection, group: &NewGroup) -> StoreResult<Conversation> {
    let (name, members) = (&group.name, &group.members);
    let (invite, quota) = (group.invite.as_ref(), group.quota.as_ref());
    require_users(conn, members)?;
    if let Some(i) = invite {
        require_users(conn, &i.to)?;
    }
    if let Some(q) = quota {
        quota::check(conn, q)?;
    }
    let own = quota.map(|q| &q.user);
    let conv = insert_conversation(conn, ConversationKind::Group, name, None, members, own)?;
    if let Some(i) = invite {
        for user in i.to.iter().filter(|u| !conv.is_member(u)) {
            invitations::insert(conn, conv.id, user, &i.from, i.at, i.max_pending)?;
        }
    }
    Ok(conv)
}

/// The pair's conversation, or a new one started by `quota`'s user (which
/// must be `a` or `b`), within their quota; an existing one is not new.
fn direct(
    conn: &Connection,
    a: &Username,
    b: &Username,
    quota: Option<&Quota>,
) -> StoreResult<Conversation> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let key = format!("{lo}|{hi}");
    let existing: Option<String> = conn
        .prepare_cached("SELECT id FROM conversations WHERE direct_key = ?1")?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    if let Some(id) = existing {
        let id = queries::conversation_id(&id)?;
        return queries::conversation(conn, id)?
            .ok_or_else(|| StoreError::backend("direct conversation vanished"));
    }
    require_users(conn, &[lo.clone(), hi.clone()])?;
    if let Some(q) = quota {
        quota::check(conn, q)?;
    }
    insert_conversation(
        conn,
        ConversationKind::Direct,
        &format!("{lo},{hi}"),
        Some(&key),
        &[lo.clone(), hi.clone()],
        quota.map(|q| &q.user),
    )
}

fn load(conn: &Connection, id: ConversationId) -> StoreResult<Conversation> {
    queries::conversation(conn, id)?
        .ok_or_else(|| StoreError::NotFound("no such conversation".into()))
}

/// With a quota whose user is `user` (joining of their own accord, that is
/// accepting an invitation), the invitation must exist and the membership
/// counts as theirs, within the quota; all in this one savepoint.
fn add_member(conn: &Connection, join: &Join) -> StoreResult<Conversation> {
    let (id, user, max, quota) = (join.id, &join.user, join.max_members, join.quota.as_ref());
    let conv = load(conn, id)?;
    if conv.kind != ConversationKind::Group {
        return Err(StoreError::BadRequest(
            "members of a direct conversation cannot change".into(),
        ));
    }
    if conv.is_member(user) {
        return Err(StoreError::Conflict(format!("{user} is already a member")));
    }
    if conv.members.len() >= max {
        return Err(StoreError::BadRequest(format!(
            "a group has at most {max} members"
        )));
    }
    require_users(conn, std::slice::from_ref(user))?;
    let own = quota.is_some_and(|q| &q.user == user);
    // Joining of one's own accord is accepting: it needs the invitation,
    // which the join uses up (any invitation goes with any join).
    if !invitations::remove(conn, id, user)? && own {
        return Err(StoreError::NotFound(
            "no invitation to this conversation".into(),
        ));
    }
    if let Some(q) = quota {
        quota::check(conn, q)?;
    }
    conn.prepare_cached(
        "INSERT INTO members (conversation_id, username, joined_at, own) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id.to_string(), user.as_str(), now_ms(), own])?;
    load(conn, id)
}

fn remove_member(
    conn: &Connection,
    id: ConversationId,
    user: &Username,
) -> StoreResult<Conversation> {
    let conv = load(conn, id)?;
    if conv.kind != ConversationKind::Group {
        return Err(StoreError::BadRequest(
            "a direct conversation cannot be left".into(),
        ));
    }
    let removed = conn
        .prepare_cached("DELETE FROM members WHERE conversation_id = ?1 AND username = ?2")?
        .execute(params![id.to_string(), user.as_str()])?;
    if removed == 0 {
        return Err(StoreError::NotMember);
    }
    load(conn, id)
}

/// A message and, when it is new, its sender's read marker moved up to it
/// (one's own message is never unread), in one savepoint so neither stays
/// without the other. `seqs` learns the seq only once both are in.
fn append(conn: &Connection, seqs: &mut Seqs, m: &NewMessage) -> StoreResult<AppendOutcome> {
    let seq = seqs.last(conn, m.conversation_id)? + 1;
    let outcome = in_savepoint(conn, |c| append_at(c, seq, m))?;
    if !outcome.duplicate {
        seqs.advance(m.conversation_id, seq);
    }
    Ok(outcome)
}

/// One INSERT, deduplicated by the unique (conversation, sender,
/// clientMsgId) index; a duplicate changes nothing.
fn append_at(conn: &Connection, seq: i64, m: &NewMessage) -> StoreResult<AppendOutcome> {
    let id = m.conversation_id.to_string();
    let inserted = conn
        .prepare_cached(&format!(
            "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (conversation_id, sender, client_msg_id) DO NOTHING"
        ))?
        .execute(params![
            id,
            seq,
            m.message_id.to_string(),
            m.sender.as_str(),
            m.client_msg_id,
            m.kind.as_str(),
            m.text,
            m.sent_at,
            m.trace_id.to_string(),
        ])?;
    if inserted == 1 {
        // The membership check is the conversation actor's: a sender with
        // no membership row has no marker to move.
        raise_read(conn, m.conversation_id, &m.sender, seq)?;
        return Ok(AppendOutcome {
            message: StoredMessage {
                conversation_id: m.conversation_id,
                message_id: m.message_id,
                seq: seq as u64,
                sender: m.sender.clone(),
                client_msg_id: m.client_msg_id.clone(),
                kind: m.kind,
                text: m.text.clone(),
                sent_at: m.sent_at,
                trace_id: m.trace_id,
            },
            duplicate: false,
        });
    }
    // The clientMsgId was seen before: the original comes back unchanged.
    let original = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ?1 AND sender = ?2 AND client_msg_id = ?3"
        ))?
        .query_row(params![id, m.sender.as_str(), m.client_msg_id], |row| Ok(queries::message(row)))
        .optional()?
        .ok_or_else(|| StoreError::backend("a conflicting message vanished"))??;
    Ok(AppendOutcome {
        message: original,
        duplicate: true,
    })
}

fn set_read(conn: &Connection, id: ConversationId, user: &Username, seq: u64) -> StoreResult<()> {
    let seq = i64::try_from(seq).map_err(|_| StoreError::BadRequest("seq is too large".into()))?;
    if raise_read(conn, id, user, seq)? == 0 {
        return Err(StoreError::NotMember);
    }
    Ok(())
}

/// Moves a member's read marker up to `seq`, never down; how many rows
/// matched (0: not a member).
fn raise_read(
    conn: &Connection,
    id: ConversationId,
    user: &Username,
    seq: i64,
) -> StoreResult<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE members SET last_read_seq = MAX(last_read_seq, ?3) WHERE conversation_id = ?1 AND username = ?2",
        )?
        .execute(params![id.to_string(), user.as_str(), seq])?)
}
