//! Finding, starting and retiring conversation actors.
//!
//! The router's table is the one place that maps a conversation to its actor.
//! Every enqueue to a conversation actor happens under the table's lock (the
//! read lock on the fast path), and the actor is started under the write lock
//! by whichever caller first misses, so requests from one sender reach the
//! actor in the order they were sent, and a retiring actor is never handed a
//! new request:
//!
//! 1. An idle actor marks its entry `Retiring` (write lock), then sends itself
//!    `Stop`, which lands behind everything enqueued before the mark.
//! 2. Requests arriving meanwhile wait in the entry (bounded by
//!    `conversations.retiring_queue`; beyond it they get `unavailable`).
//! 3. When the actor has stopped it calls `retired`: held requests go to a
//!    fresh actor, in order, before anyone else can reach it.

use parking_lot::{Mutex, MutexGuard, RwLock};
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::dev::SendError;
use actix::prelude::*;

use super::conversation::{ConvRequest, ConversationActor};
use super::directory::Directory;
use super::registry::SessionRegistry;
use super::ChatError;
use crate::config::Settings;
use crate::domain::{ConversationId, TraceContext};
use crate::store::redis::EventKind;
use crate::store::Store;
use crate::supervision::faults::Faults;
use crate::supervision::policy::RestartType;
use crate::supervision::{ChildSpec, Envelope, Supervisor};

enum Entry {
    Running(Addr<ConversationActor>),
    /// The actor is stopping; these requests go to its successor. (The
    /// mutex only makes the entry `Sync`; it is reached under the write lock.)
    Retiring(Mutex<VecDeque<Envelope<ConvRequest>>>),
}

struct Shared {
    table: RwLock<HashMap<ConversationId, Entry>>,
    settings: Arc<Settings>,
    store: Store,
    registry: SessionRegistry,
    /// Threads conversation actors are spread over, round-robin.
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    /// The dynamic supervisor every conversation actor runs under.
    supervisor: Supervisor,
    faults: Arc<Faults>,
    /// Told of new members (presence of new contacts, new groups).
    directory: Addr<Directory>,
    /// The last seq each ended actor delivered, handed to its successor, so
    /// a message that arrives after a gap (the channel was lost meanwhile,
    /// or the actor was stopped with commits queued) is preceded by what was
    /// missed. At most
    /// `REMEMBERED` entries; when full it is cleared (a successor then
    /// starts from the first message it sees, as on a first start).
    remembered: Mutex<HashMap<ConversationId, u64>>,
    /// Cluster mode: conversations that missed a cluster event (see `refuse`).
    lagging: Mutex<HashSet<ConversationId>>,
    /// Cluster mode: the seq of the first message event routed to each
    /// conversation's actors since one started from a known position (see
    /// `start`), so an actor that delivered nothing still owes it after a
    /// restart, a catch-up or a predecessor's stop (see `first_routed`).
    /// At most `REMEMBERED` entries; beyond it a conversation is not noted,
    /// and its actor starts after a restart at its first load.
    first_routed: Mutex<HashMap<ConversationId, u64>>,
}

const REMEMBERED: usize = 65_536;

/// Sends requests to conversation actors, starting them when needed.
#[derive(Clone)]
pub struct ConversationRouter {
    shared: Arc<Shared>,
}

/// Cluster mode: an actor started for a message event owes this node that
/// message and everything after it, even if a crash eats the event before
/// it is handled (its restart then fetches from here).
fn baseline(env: &Envelope<ConvRequest>) -> Option<u64> {
    match &env.msg {
        ConvRequest::Remote {
            event: EventKind::Message(m),
            ..
        } => Some(m.seq.saturating_sub(1)),
        _ => None,
    }
}

/// A full conversation mailbox: counted, and answered `unavailable`.
fn overloaded() -> ChatError {
    metrics::counter!("parley_mailbox_rejections_total", "queue" => "conversation").increment(1);
    ChatError::Unavailable("this conversation is overloaded; retry".into())
}

impl ConversationRouter {
    /// The directory, for whoever makes users members of a conversation.
    pub fn directory(&self) -> &Addr<Directory> {
        &self.shared.directory
    }

    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        registry: SessionRegistry,
        arbiters: Vec<ArbiterHandle>,
        supervisor: Supervisor,
        faults: Arc<Faults>,
        directory: Addr<Directory>,
    ) -> ConversationRouter {
        ConversationRouter {
            shared: Arc::new(Shared {
                table: RwLock::new(HashMap::new()),
                settings,
                store,
                registry,
                arbiters,
                next_arbiter: AtomicUsize::new(0),
                supervisor,
                faults,
                directory,
                remembered: Mutex::new(HashMap::new()),
                lagging: Mutex::new(HashSet::new()),
                first_routed: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Answers a request that cannot be enqueued. A cluster event that
    /// cannot be (the actor is overloaded or restarting) leaves a gap in
    /// this node's deliveries: the conversation is marked, and
    /// `retry_lagging` sends it a catch-up shortly.
    fn refuse(&self, id: ConversationId, env: Envelope<ConvRequest>, error: ChatError) {
        let floor = baseline(&env);
        match env.msg {
            ConvRequest::Remote { .. } | ConvRequest::CatchUp => {
                metrics::counter!("parley_cluster_events_dropped_total").increment(1);
                if let Some(before) = floor {
                    // If no actor runs to catch up (too many active), the
                    // one started later begins at this message.
                    self.remember_floor(id, before);
                }
                self.mark_lagging(id);
            }
            other => other.reject(error),
        }
    }

    /// A conversation with a gap in this node's deliveries (a dropped event,
    /// or a retiring actor that left messages undelivered): `retry_lagging`
    /// sends it a catch-up within a second rather than waiting for its next
    /// message.
    pub(super) fn mark_lagging(&self, id: ConversationId) {
        let mut lagging = self.shared.lagging.lock();
        // Bounded like `remembered`; a conversation left out fetches its gap
        // with its next message.
        if lagging.len() < REMEMBERED {
            lagging.insert(id);
        }
    }

    /// Cluster mode, every second: conversations that missed an event get a
    /// catch-up (marked again if that cannot be enqueued either).
    pub fn retry_lagging(&self, trace: TraceContext) {
        let ids: Vec<ConversationId> = self.shared.lagging.lock().drain().collect();
        for id in ids {
            self.route(id, Envelope::new(trace, ConvRequest::CatchUp));
        }
    }

    /// The ended actors' positions (see `Shared::remembered`).
    fn remembered(&self) -> MutexGuard<'_, HashMap<ConversationId, u64>> {
        self.shared.remembered.lock()
    }

    /// An ended actor's last delivered seq.
    pub(super) fn remember(&self, id: ConversationId, delivered: u64) {
        {
            let mut map = self.remembered();
            if map.len() >= REMEMBERED && !map.contains_key(&id) {
                map.clear();
            }
            map.insert(id, delivered);
        }
        // A known position supersedes the note of what was routed (kept, it
        // could start a later actor without a position, if this entry is
        // cleared, before messages delivered already).
        self.shared.first_routed.lock().remove(&id);
    }

    /// Drops what `remember` kept for `id` (its actor serves on).
    pub(super) fn forget(&self, id: ConversationId) {
        self.remembered().remove(&id);
    }

    /// Where a successor's deliveries start, unless a retired actor's are
    /// remembered already.
    fn remember_floor(&self, id: ConversationId, before: u64) {
        let mut map = self.remembered();
        if map.len() < REMEMBERED {
            map.entry(id).or_insert(before);
        }
    }

    /// The cluster channel was lost and is back: every actor (a retiring
    /// one's successor), and every retired one this node remembers, fetches
    /// what it missed. One that cannot take the request now (a full
    /// mailbox) is marked lagging and asked again within a second, rather
    /// than left to a next message that may never come.
    pub fn catch_up_all(&self, trace: TraceContext) {
        let mut ids: Vec<ConversationId> = self.shared.table.read().keys().copied().collect();
        ids.extend(self.remembered().keys().copied());
        for id in ids {
            self.route(id, Envelope::new(trace, ConvRequest::CatchUp));
        }
    }

    /// Notes a message event about to be enqueued to `id`'s current actor
    /// (before the enqueue: the actor may handle it, crash and reload before
    /// `try_send` returns).
    fn note_routed(&self, id: ConversationId, env: &Envelope<ConvRequest>) {
        let Some(before) = baseline(env) else {
            return;
        };
        let mut map = self.shared.first_routed.lock();
        if map.len() < REMEMBERED || map.contains_key(&id) {
            map.entry(id).or_insert(before + 1);
        }
    }

    /// The seq of the first message event routed to `id`'s actors since
    /// one started from a known position.
    pub(super) fn first_routed(&self, id: ConversationId) -> Option<u64> {
        self.shared.first_routed.lock().get(&id).copied()
    }

    /// Enqueues to `id`'s current actor, noting a message event first.
    /// (The error is `try_send`'s own, handing the request back unboxed.)
    #[allow(clippy::result_large_err)]
    fn send(
        &self,
        id: ConversationId,
        addr: &Addr<ConversationActor>,
        env: Envelope<ConvRequest>,
    ) -> Result<(), SendError<Envelope<ConvRequest>>> {
        self.note_routed(id, &env);
        addr.try_send(env)
    }

    pub fn route(&self, id: ConversationId, env: Envelope<ConvRequest>) {
        // Fast path: the actor runs; enqueue under the read lock.
        let env = {
            let table = self.shared.table.read();
            match table.get(&id) {
                Some(Entry::Running(addr)) => match self.send(id, addr, env) {
                    Ok(()) => return,
                    Err(SendError::Full(env)) => return self.refuse(id, env, overloaded()),
                    Err(SendError::Closed(env)) => env,
                },
                _ => env,
            }
        };
        let mut table = self.shared.table.write();
        let active = table.len();
        match table.entry(id) {
            MapEntry::Occupied(mut slot) => match slot.get_mut() {
                Entry::Retiring(held) => {
                    let held = held.get_mut();
                    if held.len() >= self.shared.settings.conversations.retiring_queue {
                        self.refuse(
                            id,
                            env,
                            ChatError::Unavailable("this conversation is restarting; retry".into()),
                        );
                    } else {
                        held.push_back(env);
                    }
                }
                Entry::Running(addr) => {
                    let env = match self.send(id, addr, env) {
                        Ok(()) => return,
                        Err(SendError::Full(env)) => return self.refuse(id, env, overloaded()),
                        Err(SendError::Closed(env)) => env,
                    };
                    // The actor died: its successor takes over.
                    let addr = self.start(id, baseline(&env));
                    if let Err(SendError::Full(env) | SendError::Closed(env)) =
                        self.send(id, &addr, env)
                    {
                        self.refuse(id, env, overloaded());
                    }
                    slot.insert(Entry::Running(addr));
                }
            },
            MapEntry::Vacant(slot) => {
                if active >= self.shared.settings.conversations.max_active {
                    return self.refuse(
                        id,
                        env,
                        ChatError::Unavailable(
                            "too many active conversations on this node; retry later".into(),
                        ),
                    );
                }
                let addr = self.start(id, baseline(&env));
                if let Err(SendError::Full(env) | SendError::Closed(env)) =
                    self.send(id, &addr, env)
                {
                    self.refuse(id, env, overloaded());
                }
                slot.insert(Entry::Running(addr));
            }
        }
    }

    /// Starts the actor for `id`; `first` is where its deliveries start when
    /// no predecessor's are remembered (see `baseline`).
    fn start(&self, id: ConversationId, first: Option<u64>) -> Addr<ConversationActor> {
        let s = &self.shared;
        let delivered = self.remembered().remove(&id).or(first);
        if delivered.is_some() {
            // It starts from a known position: what was routed to its
            // predecessors is not its own. (Without one, the predecessor
            // delivered nothing, so what was routed to it is owed still.)
            self.shared.first_routed.lock().remove(&id);
        }
        let actor = ConversationActor::new(
            id,
            s.settings.clone(),
            s.store.clone(),
            s.registry.clone(),
            self.clone(),
            s.faults.clone(),
        )
        .delivered_up_to(delivered);
        let arbiter = match s.arbiters.len() {
            0 => None,
            n => Some(&s.arbiters[s.next_arbiter.fetch_add(1, Ordering::Relaxed) % n]),
        };
        let spec = ChildSpec::new(
            format!("conversation:{id}"),
            "conversation",
            RestartType::Transient,
            s.settings.conversations.mailbox,
        );
        s.supervisor.spawn(spec, actor, arbiter)
    }

    /// A restarted actor takes its entry back if it was retiring when it
    /// failed (its `stopped` never ran): held requests are handed to it.
    pub(super) fn revive(&self, id: ConversationId, addr: &Addr<ConversationActor>) {
        let mut table = self.shared.table.write();
        if let Some(Entry::Retiring(held)) = table.get_mut(&id) {
            let held = std::mem::take(held.get_mut());
            for env in held {
                if let Err(SendError::Full(env) | SendError::Closed(env)) = self.send(id, addr, env)
                {
                    env.msg.reject(overloaded());
                }
            }
            table.insert(id, Entry::Running(addr.clone()));
        }
    }

    /// Step 1 of retiring: true when `addr` is the running actor for `id`
    /// and nobody can enqueue to it any more.
    pub(super) fn begin_retire(&self, id: ConversationId, addr: &Addr<ConversationActor>) -> bool {
        let mut table = self.shared.table.write();
        match table.get(&id) {
            Some(Entry::Running(a)) if a == addr => {
                table.insert(id, Entry::Retiring(Mutex::new(VecDeque::new())));
                true
            }
            _ => false,
        }
    }

    /// Step 3: the retired actor has stopped.
    pub(super) fn retired(&self, id: ConversationId) {
        let mut table = self.shared.table.write();
        let Some(Entry::Retiring(held)) = table.remove(&id) else {
            // Not retiring: a running entry (or none) stays as it is.
            return;
        };
        let held = held.into_inner();
        if held.is_empty() {
            return;
        }
        let addr = self.start(id, held.front().and_then(baseline));
        for env in held {
            if let Err(SendError::Full(env) | SendError::Closed(env)) = self.send(id, &addr, env) {
                env.msg.reject(overloaded());
            }
        }
        table.insert(id, Entry::Running(addr));
    }

    /// Up to `limit` running conversation actors.
    pub fn running(&self, limit: usize) -> Vec<Addr<ConversationActor>> {
        let table = self.shared.table.read();
        table
            .values()
            .filter_map(|e| match e {
                Entry::Running(a) => Some(a.clone()),
                Entry::Retiring(_) => None,
            })
            .take(limit)
            .collect()
    }

    /// Active conversation actors on this node.
    pub fn active(&self) -> usize {
        self.shared.table.read().len()
    }
}
