//! Starting, finding and retiring conversation actors.
//!
//! The router keeps a shared table of running conversation actors; senders
//! look up and enqueue under its read lock, so once the manager has removed
//! an entry (under the write lock) nobody can enqueue to that actor again.
//! Retiring an idle actor is therefore race-free: the manager removes the
//! entry, then sends `Stop`, which arrives behind everything already queued.
//! Requests for a conversation whose old actor is still stopping wait in a
//! bounded queue and go to its successor, so fan-out order is kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use actix::dev::SendError;
use actix::prelude::*;

use super::conversation::{ConvRequest, ConversationActor, Stop};
use super::registry::SessionRegistry;
use super::ChatError;
use crate::config::Settings;
use crate::domain::ConversationId;
use crate::store::Store;
use crate::supervision::{spawn, Envelope, Msg};

type Table = Arc<RwLock<HashMap<ConversationId, Addr<ConversationActor>>>>;

/// Sends requests to conversation actors, starting them when needed.
#[derive(Clone)]
pub struct ConversationRouter {
    table: Table,
    manager: Addr<ConversationManager>,
}

impl ConversationRouter {
    pub fn route(&self, id: ConversationId, env: Envelope<ConvRequest>) {
        let env = {
            let table = self.table.read().unwrap_or_else(|p| p.into_inner());
            match table.get(&id) {
                Some(addr) => match addr.try_send(env) {
                    Ok(()) => return,
                    Err(SendError::Full(env)) => {
                        return env.msg.reject(ChatError::Unavailable(
                            "this conversation is overloaded; retry".into(),
                        ));
                    }
                    // The actor died; the manager will replace it.
                    Err(SendError::Closed(env)) => env,
                },
                None => env,
            }
        };
        let route = Envelope::new(
            env.trace,
            Route {
                id,
                request: env.msg,
            },
        );
        match self.manager.try_send(route) {
            Ok(()) => {}
            Err(SendError::Full(r)) | Err(SendError::Closed(r)) => r.msg.request.reject(
                ChatError::Unavailable("the server is overloaded; retry".into()),
            ),
        }
    }

    /// Active conversation actors on this node.
    pub fn active(&self) -> usize {
        self.table.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn manager(&self) -> &Addr<ConversationManager> {
        &self.manager
    }
}

/// A request for a conversation whose actor is not in the table.
pub struct Route {
    pub id: ConversationId,
    pub request: ConvRequest,
}

impl Msg for Route {
    type Reply = ();
    const NAME: &'static str = "route";
}

/// From an idle conversation actor: it may be stopped.
pub struct Retire {
    pub id: ConversationId,
    pub addr: Addr<ConversationActor>,
}

impl Msg for Retire {
    type Reply = ();
    const NAME: &'static str = "retire";
}

/// From a conversation actor's `stopped`.
pub struct Retired {
    pub id: ConversationId,
}

impl Msg for Retired {
    type Reply = ();
    const NAME: &'static str = "retired";
}

pub struct ConversationManager {
    settings: Arc<Settings>,
    store: Store,
    registry: SessionRegistry,
    table: Table,
    /// Conversations whose actor is stopping, with the requests held for the
    /// next one (at most `conversations.retiring_queue` each).
    retiring: HashMap<ConversationId, VecDeque<Envelope<ConvRequest>>>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: usize,
}

impl ConversationManager {
    /// Starts the manager and returns the router in front of it.
    pub fn start(
        settings: Arc<Settings>,
        store: Store,
        registry: SessionRegistry,
        arbiters: Vec<ArbiterHandle>,
    ) -> ConversationRouter {
        let table: Table = Arc::default();
        let manager = ConversationManager {
            settings,
            store,
            registry,
            table: table.clone(),
            retiring: HashMap::new(),
            arbiters,
            next_arbiter: 0,
        };
        let addr = spawn(manager, None);
        ConversationRouter {
            table,
            manager: addr,
        }
    }

    fn start_actor(&mut self, id: ConversationId, ctx: &Context<Self>) -> Addr<ConversationActor> {
        let actor = ConversationActor::new(
            id,
            self.settings.clone(),
            self.store.clone(),
            self.registry.clone(),
            ctx.address(),
        );
        let arbiter = if self.arbiters.is_empty() {
            None
        } else {
            self.next_arbiter = (self.next_arbiter + 1) % self.arbiters.len();
            Some(&self.arbiters[self.next_arbiter])
        };
        spawn(actor, arbiter)
    }

    /// The running actor for `id`, started when missing; None when full.
    fn actor_for(
        &mut self,
        id: ConversationId,
        ctx: &Context<Self>,
    ) -> Option<Addr<ConversationActor>> {
        let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
        if let Some(addr) = table.get(&id) {
            if addr.connected() {
                return Some(addr.clone());
            }
            table.remove(&id);
        }
        if table.len() >= self.settings.conversations.max_active {
            return None;
        }
        drop(table);
        let addr = self.start_actor(id, ctx);
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, addr.clone());
        Some(addr)
    }

    fn deliver(&mut self, id: ConversationId, env: Envelope<ConvRequest>, ctx: &Context<Self>) {
        match self.actor_for(id, ctx) {
            None => env.msg.reject(ChatError::Unavailable(
                "too many active conversations on this node; retry later".into(),
            )),
            Some(addr) => {
                if let Err(SendError::Full(env) | SendError::Closed(env)) = addr.try_send(env) {
                    env.msg.reject(ChatError::Unavailable(
                        "this conversation is overloaded; retry".into(),
                    ));
                }
            }
        }
    }
}

impl Actor for ConversationManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.settings.conversations.manager_mailbox);
    }
}

impl Handler<Envelope<Route>> for ConversationManager {
    type Result = ();

    fn handle(&mut self, env: Envelope<Route>, ctx: &mut Self::Context) {
        let Route { id, request } = env.msg;
        let request = Envelope::new(env.trace, request);
        if let Some(held) = self.retiring.get_mut(&id) {
            if held.len() >= self.settings.conversations.retiring_queue {
                return request.msg.reject(ChatError::Unavailable(
                    "this conversation is restarting; retry".into(),
                ));
            }
            held.push_back(request);
            return;
        }
        self.deliver(id, request, ctx);
    }
}

impl Handler<Envelope<Retire>> for ConversationManager {
    type Result = ();

    fn handle(&mut self, env: Envelope<Retire>, _: &mut Self::Context) {
        let Retire { id, addr } = env.msg;
        {
            let mut table = self.table.write().unwrap_or_else(|p| p.into_inner());
            if table.get(&id) != Some(&addr) {
                return; // already replaced
            }
            table.remove(&id);
        }
        self.retiring.entry(id).or_default();
        addr.do_send(Envelope::new(env.trace, Stop));
    }
}

impl Handler<Envelope<Retired>> for ConversationManager {
    type Result = ();

    fn handle(&mut self, env: Envelope<Retired>, ctx: &mut Self::Context) {
        let Some(held) = self.retiring.remove(&env.msg.id) else {
            return;
        };
        for request in held {
            self.deliver(env.msg.id, request, ctx);
        }
    }
}
