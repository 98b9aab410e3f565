//! Parley: a chat server built from supervised actors. WebSocket sessions,
//! conversations and payments are actix actors under our own supervisors;
//! messages are stored in SQLite (one node) or Redis (a cluster) and acked
//! after their commit. The map of these modules, the path of a message, the
//! invariants and the decisions behind them are in docs/ARCHITECTURE.md.

pub mod actors;
pub mod alerts;
pub mod app;
pub mod auth;
pub mod cause;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod hostadmin;
pub mod http;
pub mod limits;
pub mod payments;
pub mod procstat;
pub mod protocol;
pub mod resilience;
pub mod series;
pub mod store;
pub mod supervision;
pub mod telemetry;
pub mod traces;
