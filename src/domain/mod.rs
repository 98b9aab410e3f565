//! Plain domain types: identifiers, users, conversations and messages.
//! Nothing here knows about actix, JSON frames or SQL.

mod ids;
mod model;
pub mod money;
mod payment;
mod time;
mod trace;

pub use ids::{ConversationId, IdError, MessageId, PaymentId, SessionId, Username};
pub use model::{Conversation, ConversationKind, MessageKind, StoredMessage};
pub use payment::{Payment, PaymentStatus, SagaStep};
pub use time::{now_ms, rfc3339_ms};
pub use trace::{TraceContext, TraceId};
