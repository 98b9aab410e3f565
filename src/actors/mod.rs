//! The actors: one [`session::SessionActor`] per WebSocket, one
//! [`conversation::ConversationActor`] per active conversation (started on
//! demand by the [`conversations::ConversationRouter`], stopped when idle),
//! and the [`directory::Directory`] that maps users to their sessions.
//!
//! Rules every actor here keeps: messages arrive only in traced envelopes;
//! no handler waits on an actor that could be waiting on it (answers come
//! back as messages or through a `Responder`); mailboxes and queues are
//! bounded, with the exceptions listed in docs/ARCHITECTURE.md ("Invariants"
//! and "Known gaps").

pub mod alerts;
pub mod breaker;
pub mod conversation;
pub mod conversations;
pub mod directory;
mod error;
pub mod groups;
pub mod inbox;
mod invitations;
pub mod payment;
pub mod quota;
pub mod registry;
pub mod session;

use std::sync::Arc;

use actix::Addr;

pub use error::{ChatError, ChatResult};

use crate::config::Settings;
use crate::store::Store;
use crate::supervision::faults::Faults;
use crate::supervision::Supervisor;

/// What actors and HTTP handlers share.
#[derive(Clone)]
pub struct Deps {
    pub settings: Arc<Settings>,
    pub store: Store,
    /// Whether other nodes share the store, and what to tell them.
    pub cluster: crate::cluster::ClusterHandle,
    /// Users to their connected sessions (each session adds and removes itself).
    pub registry: registry::SessionRegistry,
    pub directory: Addr<directory::Directory>,
    pub conversations: conversations::ConversationRouter,
    /// The dynamic supervisor of session actors.
    pub sessions: Supervisor,
    /// The root of the supervision tree (admin view).
    pub root: Supervisor,
    pub faults: Arc<Faults>,
    /// One circuit breaker per remote dependency, by name.
    pub breakers: Arc<Vec<(&'static str, Addr<breaker::BreakerActor>)>>,
    /// Payment actors (one per payment in flight).
    pub payments: crate::payments::PaymentRouter,
    /// Evaluates the alert rules every second.
    pub alerts: Addr<alerts::AlertsActor>,
    /// Whose trace ids are whose (`traces::TraceOrigins`).
    pub origins: Arc<crate::traces::TraceOrigins>,
}
