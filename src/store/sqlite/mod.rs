//! The embedded backend: SQLite in WAL mode, one writer thread with group
//! commit, a small pool of read-only connections used from the blocking pool.

mod checkpoint;
mod invitations;
mod payments;
mod queries;
mod quota;
mod reads;
mod schema;
mod seqs;
mod writer;

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, Semaphore};

use super::types::{
    AppendOutcome, Completion, ConversationSummary, HistoryPage, Invitation, NewMessage, NewUser,
    UserRecord,
};
use super::StoreError;
use crate::config::{StorageSettings, Synchronous};
use crate::domain::{Conversation, ConversationId, Payment, PaymentId, Username};
use crate::store::{
    HistoryQuery, Join, Leave, NewGroup, NewInvitation, NewPayment, Pair, SagaMove,
};
use crate::store::{InboxPage, InboxQuery, PaymentFilter, StoreResult};
use writer::WriteOp;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    pub write_queue: usize,
    pub max_batch: usize,
    pub batch_window: Duration,
    pub read_connections: usize,
}

impl From<&StorageSettings> for SqliteOptions {
    fn from(s: &StorageSettings) -> Self {
        SqliteOptions {
            synchronous: s.synchronous,
            write_queue: s.write_queue,
            max_batch: s.group_commit_max_batch,
            batch_window: s.group_commit_window,
            read_connections: s.read_connections,
        }
    }
}

#[derive(Clone)]
pub struct SqliteStore {
    writes: mpsc::Sender<WriteOp>,
    readers: Arc<ReadPool>,
    _checkpointer: Arc<checkpoint::Checkpointer>,
}

/// How often the checkpoint thread moves committed WAL pages into the
/// database file: often enough that the WAL stays a few MB at full speed.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Read-only connections; the semaphore bounds how many reads run at once,
/// the rest wait for a permit (they do not pile up on the blocking pool).
struct ReadPool {
    permits: Arc<Semaphore>,
    connections: Mutex<Vec<Connection>>,
    path: PathBuf,
}

impl SqliteStore {
    pub fn open(
        path: &Path,
        options: SqliteOptions,
        supervision: Option<writer::WriterSupervision>,
    ) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::backend(format!("cannot create {}", dir.display())).caused_by(e)
            })?;
        }
        let conn = Connection::open(path)?;
        schema::configure_writer(&conn, options.synchronous)?;
        schema::migrate(&conn)?;
        let checkpointer = checkpoint::spawn(path, CHECKPOINT_EVERY)?;
        let mut readers = Vec::with_capacity(options.read_connections);
        for _ in 0..options.read_connections {
            readers.push(open_reader(path)?);
        }
        let (tx, rx) = mpsc::channel(options.write_queue);
        writer::spawn(
            conn,
            rx,
            options.max_batch,
            options.batch_window,
            supervision,
        )?;
        Ok(SqliteStore {
            writes: tx,
            readers: Arc::new(ReadPool {
                permits: Arc::new(Semaphore::new(options.read_connections)),
                connections: Mutex::new(readers),
                path: path.to_path_buf(),
            }),
            _checkpointer: Arc::new(checkpointer),
        })
    }

    /// Queues a write without waiting: a full queue answers `Busy` at once
    /// through the completion, a stopped writer answers `Closed`.
    fn submit(&self, op: WriteOp) {
        match self.writes.try_send(op) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(op)) => {
                metrics::counter!("parley_mailbox_rejections_total", "queue" => "store_writes")
                    .increment(1);
                op.fail(StoreError::Busy)
            }
            Err(mpsc::error::TrySendError::Closed(op)) => op.fail(StoreError::Closed),
        }
    }

    async fn write<T: Send + 'static>(
        &self,
        make: impl FnOnce(Completion<T>) -> WriteOp,
    ) -> StoreResult<T> {
        let (done, answer) = Completion::oneshot();
        self.submit(make(done));
        // The completion answers even when dropped, so the channel is never
        // closed without a value; were it, the write was lost all the same.
        answer.await.unwrap_or(Err(StoreError::Lost))
    }

    pub async fn create_user(&self, user: NewUser) -> StoreResult<()> {
        self.write(|done| WriteOp::CreateUser(user, done)).await
    }

    pub async fn create_group(&self, group: NewGroup) -> StoreResult<Conversation> {
        self.write(|done| WriteOp::CreateGroup(group, done)).await
    }

    pub async fn started_count(&self, user: Username) -> StoreResult<usize> {
        self.read(move |c| quota::started(c, &user)).await
    }

    pub async fn invite(&self, invite: NewInvitation) -> StoreResult<(Invitation, bool)> {
        self.write(|done| WriteOp::Invite(invite, done)).await
    }

    pub async fn decline(&self, id: ConversationId, user: Username) -> StoreResult<bool> {
        self.write(|done| WriteOp::Decline { id, user, done }).await
    }

    pub async fn invitations_of(&self, user: Username) -> StoreResult<Vec<Invitation>> {
        self.read(move |c| invitations::invitations_of(c, &user))
            .await
    }

    pub async fn invitation(
        &self,
        id: ConversationId,
        user: Username,
    ) -> StoreResult<Option<Invitation>> {
        self.read(move |c| invitations::invitation(c, id, &user))
            .await
    }

    pub async fn consenting(
        &self,
        inviter: Username,
        candidates: Vec<Username>,
    ) -> StoreResult<Vec<Username>> {
        self.read(move |c| invitations::consenting(c, &inviter, candidates))
            .await
    }

    pub async fn direct_conversation(&self, pair: Pair) -> StoreResult<Conversation> {
        self.write(|done| WriteOp::Direct(pair, done)).await
    }

    /// `join.trace`: what Redis tells other nodes with the change; one
    /// node has none to tell (the same request as for Redis, so `Store`
    /// need not tell the backends apart).
    pub async fn add_member(&self, join: Join) -> StoreResult<Conversation> {
        self.write(|done| WriteOp::AddMember(join, done)).await
    }

    /// `leave.trace`, `leave.session`: as for `add_member`, for the other nodes.
    pub async fn remove_member(&self, leave: Leave) -> StoreResult<Conversation> {
        self.write(|done| WriteOp::RemoveMember(leave, done)).await
    }

    pub fn append_then(&self, message: NewMessage, done: Completion<AppendOutcome>) {
        self.submit(WriteOp::Append(message, done))
    }

    pub async fn create_payment(&self, p: NewPayment) -> StoreResult<(Payment, bool)> {
        self.write(|done| WriteOp::CreatePayment(p, done)).await
    }

    pub async fn advance_payment(&self, step: SagaMove) -> StoreResult<Payment> {
        self.write(|done| WriteOp::AdvancePayment(step, done)).await
    }

    pub async fn credit(&self, user: Username, amount: i64) -> StoreResult<i64> {
        self.write(|done| WriteOp::Credit { user, amount, done })
            .await
    }

    pub async fn set_admin(&self, user: Username, admin: bool) -> StoreResult<()> {
        self.write(|done| WriteOp::SetAdmin { user, admin, done })
            .await
    }

    pub async fn payment_by_key(
        &self,
        payer: Username,
        key: String,
    ) -> StoreResult<Option<Payment>> {
        self.read(move |c| reads::payment_by_key(c, &payer, &key))
            .await
    }

    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        self.read(move |c| payments::load(c, id)).await
    }

    pub async fn payments(&self, f: PaymentFilter) -> StoreResult<Vec<Payment>> {
        self.read(move |c| reads::payments(c, f.status, f.unfinished, f.limit))
            .await
    }

    pub async fn set_read(&self, id: ConversationId, user: Username, seq: u64) -> StoreResult<()> {
        self.write(|done| WriteOp::SetRead {
            id,
            user,
            seq,
            done,
        })
        .await
    }

    pub async fn shutdown(&self) -> StoreResult<()> {
        // Unlike other writes this one waits for room: it must not be refused.
        let (done, answer) = Completion::oneshot();
        if self.writes.send(WriteOp::Shutdown(done)).await.is_err() {
            return Ok(()); // already stopped
        }
        match answer.await.unwrap_or(Err(StoreError::Lost)) {
            // The writer is gone without reaching the request: stopped all
            // the same. (Lost with the writer still there: the batch holding
            // the request failed, and the writer, restarted, goes on.)
            Err(StoreError::Lost) if self.writes.is_closed() => Ok(()),
            r => r,
        }
    }

    /// Runs `f` on a pooled read-only connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = self
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = pool.connections.lock().pop();
            let conn = match taken {
                Some(c) => c,
                None => open_reader(&pool.path)?,
            };
            let result = f(&conn);
            pool.connections.lock().push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::backend("read task failed").caused_by(e))?
    }

    pub async fn user(&self, username: Username) -> StoreResult<Option<UserRecord>> {
        self.read(move |c| reads::user(c, &username)).await
    }

    pub async fn conversation(&self, id: ConversationId) -> StoreResult<Option<Conversation>> {
        self.read(move |c| queries::conversation(c, id)).await
    }

    pub async fn inbox(&self, q: InboxQuery) -> StoreResult<InboxPage> {
        self.read(move |c| reads::inbox(c, &q)).await
    }

    pub async fn conversations_of(&self, user: Username) -> StoreResult<Vec<ConversationSummary>> {
        self.read(move |c| reads::conversations_of(c, &user)).await
    }

    pub async fn history(&self, q: HistoryQuery) -> StoreResult<HistoryPage> {
        self.read(move |c| reads::history(c, &q)).await
    }

    pub async fn contacts_of(&self, user: Username) -> StoreResult<Vec<Username>> {
        self.read(move |c| reads::contacts_of(c, &user)).await
    }

    pub async fn ping(&self) -> StoreResult<()> {
        if self.writes.is_closed() {
            return Err(StoreError::Closed);
        }
        self.read(|c| {
            c.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}
