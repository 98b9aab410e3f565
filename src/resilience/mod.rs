//! Resilience primitives for remote calls (docs/ARCHITECTURE.md, "Circuit
//! breakers: actors around a pure state machine"): the circuit breaker's
//! state machine as a pure type with an injected clock.
//! `actors::breaker` wraps it in a supervised actor that runs the calls.

pub mod breaker;
mod window;

pub use breaker::{
    Breaker, BreakerConfig, BreakerState, Outcome, Permit, Rejected, Snapshot, Transition,
};
pub use window::WindowKind;
