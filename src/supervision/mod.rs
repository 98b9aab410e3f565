//! Supervision primitives. Every actor message travels in an [`Envelope`]
//! carrying its trace context (DESIGN.md decision 3); every request that
//! expects an answer carries a [`Responder`] that answers `internal` if the
//! request is dropped unanswered (an actor that failed or stopped), so a
//! caller never waits on silence. Actors are started through [`spawn`], the
//! one seam where the restart runner of DESIGN.md decision 2 plugs in.

mod envelope;
mod reply;
mod spawn;

pub use envelope::{Envelope, Msg};
pub use reply::{Responder, Unanswered};
pub use spawn::spawn;
