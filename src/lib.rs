//! Parley: a chat server built from actors.
//!
//! Map of the code:
//! - `config`: config.toml + `PARLEY__SECTION__KEY` into validated `Settings`.
//! - `domain`: ids, conversations, messages, trace ids; no actix, no JSON, no SQL.
//! - `protocol`: client and server frames and error codes; the only JSON shape.
//! - `store`: the store handle; SQLite with a single group-committing writer,
//!   or Redis shared by a cluster (Lua scripts, streams, the cluster channel).
//! - `cluster`: a node's link to the others: channel events to actors,
//!   heartbeat, Redis health.
//! - `supervision`: the traced envelope, responders that never go silent, the
//!   restart-in-place runner, OTP supervisors, poison messages, fault injection.
//! - `resilience`: the circuit breaker state machine (pure, injected clock).
//! - `actors`: sessions, conversations (and their router), the directory.
//! - `http`: routes (accounts, chat, ws upgrade, health, metrics, admin).
//! - `telemetry`: log subscriber and the Prometheus recorder.
//! - `auth`: argon2 password hashes and signed tokens.
//! - `app`: build, serve, graceful shutdown.
//! - `procstat`: this process's memory and CPU, for `/metrics`.
//!
//! Invariants:
//! - Only `protocol` knows the JSON shape; only `store` knows SQL and Redis keys.
//! - HTTP handlers and sessions only send messages to actors.
//! - Actor messages travel in `supervision::Envelope`, the only `actix::Message`.
//! - No actor awaits another actor inside a handler; answers come back as
//!   messages or through a `Responder`, which answers `internal` if dropped.
//! - The store assigns seq in the same transaction that stores the message;
//!   an ack is sent only after that commit.
//! - Every queue is bounded and says what happens when it is full.
//! - No blocking call runs on an actor's or an HTTP worker's thread.

pub mod actors;
pub mod alerts;
pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod domain;
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
