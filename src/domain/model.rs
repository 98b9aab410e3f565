//! Conversations and messages as the store keeps them.

use super::{ConversationId, MessageId, TraceId, Username};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    Direct,
    Group,
}

impl ConversationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Direct => "direct",
            ConversationKind::Group => "group",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "direct" => Some(ConversationKind::Direct),
            "group" => Some(ConversationKind::Group),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub kind: ConversationKind,
    pub name: String,
    /// Sorted, without duplicates.
    pub members: Vec<Username>,
    /// seq of the newest committed message; 0 when there is none.
    pub last_seq: u64,
}

impl Conversation {
    pub fn is_member(&self, user: &Username) -> bool {
        self.members.binary_search(user).is_ok()
    }

    /// The other member of a direct conversation (SPEC `receiver`).
    pub fn direct_peer(&self, me: &Username) -> Option<&Username> {
        if self.kind != ConversationKind::Direct {
            return None;
        }
        self.members.iter().find(|m| *m != me)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Payment,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Payment => "payment",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(MessageKind::Text),
            "payment" => Some(MessageKind::Payment),
            _ => None,
        }
    }
}

/// A committed message: it has its seq and is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub seq: u64,
    pub sender: Username,
    pub client_msg_id: String,
    pub kind: MessageKind,
    pub text: String,
    /// Unix time in milliseconds.
    pub sent_at: i64,
    pub trace_id: TraceId,
}
