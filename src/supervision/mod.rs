//! Supervision (why: docs/ARCHITECTURE.md, "Our own supervision runner" and
//! "Every mailbox message in a traced envelope"; how: docs/SUPERVISION.md).
//!
//! - [`Envelope`]: every actor message travels in one, carrying its trace
//!   context; a handler holds [`Envelope::enter`] so its logs and any panic
//!   report carry the trace id.
//! - [`Responder`]: a request's answer, sent `internal` if the request is
//!   dropped unanswered, so a caller never waits on silence.
//! - [`policy`]: strategies, restart types, intensity, backoff (pure).
//! - [`Supervisor`] and the runner: actors run under `catch_unwind` and are
//!   restarted in place (same mailbox, same `Addr`) with fresh state.
//! - [`faults`]: fault injection for tests and drills.

mod envelope;
mod failure;
pub mod faults;
pub mod policy;
mod reply;
mod runner;
mod supervisor;
mod tree;

pub use envelope::{Envelope, HandlerScope, Msg};
pub use failure::{install_panic_hook, supervised, Failure, TraceScope};
pub use reply::{Responder, Unanswered};
pub use supervisor::{ChildId, ChildSpec, Decision, Exit, Supervisor, SupervisorPolicy};
pub use tree::{ChildView, NodeView};

#[cfg(test)]
mod tests;
