//! Abuse limits: a token bucket per WebSocket session (frames per second),
//! a guard refusing oversized frames from their headers (`frames.rs`), and
//! a throttle of failed logins per client address and per account.
//! Both are pure types over an injected `Instant`, so their behaviour is
//! tested without waiting.

mod bucket;
mod frames;
mod login;
mod slots;
mod writes;

pub use bucket::{FrameLimiter, Verdict};
pub use frames::{first_refusal, FrameGuard, Refusal, MAX_FRAGMENTS};
pub use login::{address_key, Attempt, LoginRules, LoginThrottle};
pub use slots::{ConnectionSlots, Slot};
pub use writes::{WriteLimiter, WriteRate};
