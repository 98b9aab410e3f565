//! Resilience primitives for remote calls (DESIGN.md decision 5): the
//! circuit breaker's state machine as a pure type with an injected clock.
//! The actor that wraps it, and the remote calls it guards, come with the
//! payments work (issue 4).

pub mod breaker;
mod window;

pub use breaker::{
    Breaker, BreakerConfig, BreakerState, Outcome, Permit, Rejected, Snapshot, Transition,
};
pub use window::WindowKind;
