//! Server frames. Each frame is serialized once (`to_text`) and the same bytes
//! are shared by every session it goes to.

use std::collections::BTreeMap;

use bytestring::ByteString;
use serde::Serialize;

use super::ErrorCode;
use crate::domain::{
    rfc3339_ms, Conversation, ConversationId, MessageId, Payment, PaymentId, SessionId,
    StoredMessage, TraceId, Username,
};

/// A committed message as clients see it (`message` frames and `history` items).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub conversation_id: ConversationId,
    pub message_id: MessageId,
    pub seq: u64,
    pub sender: Username,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Username>,
    pub text: String,
    pub kind: &'static str,
    pub sent_at: String,
    pub trace_id: TraceId,
}

impl MessageView {
    pub fn new(m: &StoredMessage, conversation: &Conversation) -> Self {
        MessageView {
            conversation_id: m.conversation_id,
            message_id: m.message_id,
            seq: m.seq,
            sender: m.sender.clone(),
            receiver: conversation.direct_peer(&m.sender).cloned(),
            text: m.text.clone(),
            kind: m.kind.as_str(),
            sent_at: rfc3339_ms(m.sent_at),
            trace_id: m.trace_id,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub conversation_id: ConversationId,
    pub kind: &'static str,
    pub name: String,
    pub members: Vec<Username>,
    pub last_seq: u64,
    /// Extension: the caller's own read marker, so clients can count unread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<u64>,
    /// Extension: every member's read marker (the caller's too), so a
    /// client can say who has seen what after a reload. One entry per member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_by: Option<BTreeMap<Username, u64>>,
    /// The last activity (SPEC v2 inbox): the newest message's `sentAt`, or
    /// when the conversation was made. Only in the inbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
}

impl ConversationView {
    pub fn new(c: &Conversation, last_read_seq: Option<u64>) -> Self {
        ConversationView {
            conversation_id: c.id,
            kind: c.kind.as_str(),
            name: c.name.clone(),
            members: c.members.clone(),
            last_seq: c.last_seq,
            last_read_seq,
            read_by: None,
            updated_at: None,
        }
    }

    /// A conversation as the inbox lists it: with the caller's and every
    /// member's marker and its last activity.
    pub fn listed(s: &crate::store::ConversationSummary) -> Self {
        ConversationView {
            read_by: Some(s.read_by.clone()),
            updated_at: Some(rfc3339_ms(s.updated_at)),
            ..ConversationView::new(&s.conversation, Some(s.last_read_seq))
        }
    }

    /// A conversation just created: nobody has read anything in it yet.
    pub fn created(c: &Conversation) -> Self {
        let nobody = c.members.iter().map(|m| (m.clone(), 0)).collect();
        ConversationView {
            read_by: Some(nobody),
            ..ConversationView::new(c, Some(0))
        }
    }
}

/// A pending invitation as clients see it (SPEC v2 `GET /api/invitations`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvitationView {
    pub conversation: ConversationView,
    pub from: Username,
    pub created_at: String,
}

impl InvitationView {
    pub fn new(i: &crate::store::Invitation) -> Self {
        InvitationView {
            conversation: ConversationView::new(&i.conversation, None),
            from: i.from.clone(),
            created_at: crate::domain::rfc3339_ms(i.created_at),
        }
    }
}

/// A payment as clients see it (SPEC `payment`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentView {
    pub payment_id: PaymentId,
    pub from: Username,
    pub to: Username,
    pub amount: i64,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub trace_id: TraceId,
}

impl PaymentView {
    /// The answer to a request about an existing payment carries that
    /// request's trace, not the one that created the payment.
    pub fn answering(mut self, trace_id: TraceId) -> Self {
        self.trace_id = trace_id;
        self
    }

    pub fn new(p: &Payment, reference: Option<String>) -> Self {
        PaymentView {
            payment_id: p.id,
            from: p.payer.clone(),
            to: p.payee.clone(),
            amount: p.amount,
            status: p.status.as_str(),
            reason: p.reason.clone(),
            created_at: rfc3339_ms(p.created_at),
            updated_at: rfc3339_ms(p.updated_at),
            reference,
            trace_id: p.trace_id,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    #[serde(rename_all = "camelCase")]
    Hello {
        username: Username,
        session_id: SessionId,
        node: String,
        heartbeat_secs: u64,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Ack {
        client_msg_id: String,
        conversation_id: ConversationId,
        message_id: MessageId,
        seq: u64,
        sent_at: String,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    Message(MessageView),
    #[serde(rename_all = "camelCase")]
    Created {
        conversation: ConversationView,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Invited {
        conversation_id: ConversationId,
        username: Username,
        /// Extension: true when `username` got an invitation (they share no
        /// conversation with the inviter) rather than the membership.
        pending: bool,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    /// v2: to the invitee's sessions.
    #[serde(rename_all = "camelCase")]
    Invitation {
        conversation: ConversationView,
        from: Username,
        created_at: String,
        trace_id: TraceId,
    },
    /// Extension: the answer to `accept` (the group then arrives as
    /// `conversation_added` on every session of the user).
    #[serde(rename_all = "camelCase")]
    Accepted {
        conversation_id: ConversationId,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    /// Extension: the answer to `decline`.
    #[serde(rename_all = "camelCase")]
    Declined {
        conversation_id: ConversationId,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    MemberJoined {
        conversation_id: ConversationId,
        username: Username,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Left {
        conversation_id: ConversationId,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    MemberLeft {
        conversation_id: ConversationId,
        username: Username,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    History {
        conversation_id: ConversationId,
        messages: Vec<MessageView>,
        has_more: bool,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Conversations {
        items: Vec<ConversationView>,
        /// Extension: more follow; ask again with `before` (and `beforeId`)
        /// of the last item.
        has_more: bool,
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Read {
        conversation_id: ConversationId,
        username: Username,
        seq: u64,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Typing {
        conversation_id: ConversationId,
        username: Username,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Presence {
        username: Username,
        status: &'static str,
        /// Extension, offline only: when the user's last session closed, if
        /// the server still remembers (RFC 3339 UTC).
        #[serde(skip_serializing_if = "Option::is_none")]
        last_seen: Option<String>,
        trace_id: TraceId,
    },
    /// Extension: a group this user was just made a member of (created with
    /// them, or they were invited), pushed to each of their sessions except
    /// the one whose `create` is answered with `created`.
    #[serde(rename_all = "camelCase")]
    ConversationAdded {
        conversation: ConversationView,
        trace_id: TraceId,
    },
    Payment(PaymentView),
    #[serde(rename_all = "camelCase")]
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        trace_id: TraceId,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        code: ErrorCode,
        message: String,
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: TraceId,
    },
}

impl ServerFrame {
    /// The JSON text of the frame. Serialization of these types cannot fail
    /// (no maps with non-string keys); the fallback keeps that promise honest.
    pub fn to_text(&self) -> ByteString {
        if let ServerFrame::Error { code, trace_id, .. } = self {
            crate::traces::error(*trace_id, code.http_status());
            metrics::counter!("parley_errors_total", "code" => code.as_str(), "via" => "ws")
                .increment(1);
            crate::series::record("errors", 1.0);
        }
        match serde_json::to_string(self) {
            Ok(s) => ByteString::from(s),
            Err(_) => ByteString::from_static(
                r#"{"type":"error","code":"internal","message":"frame serialization failed","ref":null}"#,
            ),
        }
    }

    pub fn error(
        code: ErrorCode,
        message: impl Into<String>,
        reference: Option<String>,
        trace_id: TraceId,
    ) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            reference,
            trace_id,
        }
    }

    pub fn payment(p: &Payment, reference: Option<String>) -> Self {
        ServerFrame::Payment(PaymentView::new(p, reference))
    }

    /// The `ack` of a committed (or deduplicated) message.
    pub fn ack(m: &StoredMessage, reference: Option<String>, trace_id: TraceId) -> Self {
        ServerFrame::Ack {
            client_msg_id: m.client_msg_id.clone(),
            conversation_id: m.conversation_id,
            message_id: m.message_id,
            seq: m.seq,
            sent_at: rfc3339_ms(m.sent_at),
            reference,
            trace_id,
        }
    }

    /// The SPEC `type` of the frame, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerFrame::Hello { .. } => "hello",
            ServerFrame::Ack { .. } => "ack",
            ServerFrame::Message(_) => "message",
            ServerFrame::Created { .. } => "created",
            ServerFrame::Invited { .. } => "invited",
            ServerFrame::Invitation { .. } => "invitation",
            ServerFrame::Accepted { .. } => "accepted",
            ServerFrame::Declined { .. } => "declined",
            ServerFrame::MemberJoined { .. } => "member_joined",
            ServerFrame::Left { .. } => "left",
            ServerFrame::MemberLeft { .. } => "member_left",
            ServerFrame::History { .. } => "history",
            ServerFrame::Conversations { .. } => "conversations",
            ServerFrame::Read { .. } => "read",
            ServerFrame::Typing { .. } => "typing",
            ServerFrame::Presence { .. } => "presence",
            ServerFrame::ConversationAdded { .. } => "conversation_added",
            ServerFrame::Payment(_) => "payment",
            ServerFrame::Pong { .. } => "pong",
            ServerFrame::Error { .. } => "error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frame_shape() {
        let t = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&ServerFrame::error(ErrorCode::BadJson, "x", None, t).to_text())
                .unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "bad_json");
        assert_eq!(v["ref"], serde_json::Value::Null);
        assert_eq!(v["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}

#[cfg(test)]
mod frame_kind_tests {
    use super::*;

    /// The frames-out metric reads the type from the start of the JSON.
    #[test]
    fn every_frame_starts_with_its_type() {
        let t = TraceId::random();
        let f = ServerFrame::Pong {
            reference: None,
            trace_id: t,
        };
        assert!(f.to_text().starts_with(r#"{"type":"pong""#));
        let e = ServerFrame::error(ErrorCode::Internal, "x", None, t);
        assert!(e.to_text().starts_with(r#"{"type":"error""#));
    }
}
