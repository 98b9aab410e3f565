//! Where actors are started. Every long-lived actor goes through here, so the
//! supervised runner (restart in place, panic capture) replaces this body
//! without touching the actors.

use actix::{Actor, Addr, ArbiterHandle, Context};

/// Starts `actor` on `arbiter` (the current one when `None`).
pub fn spawn<A>(actor: A, arbiter: Option<&ArbiterHandle>) -> Addr<A>
where
    A: Actor<Context = Context<A>> + Send,
{
    match arbiter {
        Some(a) => A::start_in_arbiter(a, move |_| actor),
        None => actor.start(),
    }
}
