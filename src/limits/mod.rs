//! Abuse limits: a token bucket per WebSocket session (frames per second)
//! and a throttle of failed logins per client address and per account.
//! Both are pure types over an injected `Instant`, so their behaviour is
//! tested without waiting.

mod bucket;
mod login;

pub use bucket::{FrameLimiter, Verdict};
pub use login::LoginThrottle;
