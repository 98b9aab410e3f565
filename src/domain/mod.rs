//! Plain domain types: identifiers, users, conversations and messages.
//! Nothing here knows about actix, JSON frames or SQL.

mod ids;
mod model;
mod time;
mod trace;

pub use ids::{ConversationId, IdError, MessageId, SessionId, Username};
pub use model::{Conversation, ConversationKind, MessageKind, StoredMessage};
pub use time::{now_ms, rfc3339_ms};
pub use trace::{TraceContext, TraceId};
