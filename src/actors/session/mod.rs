//! One session actor per WebSocket (why actix-ws: docs/ARCHITECTURE.md,
//! "WebSockets through actix-ws"). A pump task reads the socket and feeds the
//! actor's bounded mailbox (when it is full the pump stops reading: TCP
//! back-pressure on the client). The actor answers frames and sends requests
//! on to conversations; everything bound for the client goes through the
//! bounded outbound queue that a writer task drains into the socket. A full
//! outbound queue means a client that does not read: it is closed with 1008
//! "slow consumer" instead of being buffered without limit.

mod actor;
mod dispatch;
mod handle;
mod heartbeat;
mod io;

pub use actor::{Control, Inbound, SessionActor};
pub use handle::{Outbound, SessionHandle};
pub use heartbeat::Heartbeat;
pub use io::start_session;
