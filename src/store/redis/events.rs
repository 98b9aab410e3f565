//! What nodes tell each other through the cluster channel
//! (`<prefix>events`). Message events are published by the append script
//! itself (so their order on the channel is seq order); the others by the
//! node where they happen. Every event names its origin node and carries
//! the traceId of the request that caused it.

use serde::{Deserialize, Serialize};

use crate::domain::{
    ConversationId, MessageId, MessageKind, PaymentId, SessionId, StoredMessage, TraceId, Username,
};

/// One event on the cluster channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    /// The node it happened on.
    pub node: String,
    pub trace: TraceId,
    /// The origin records this trace (a client asked for it, or it was
    /// sampled): receiving nodes record their hops of it too.
    pub recorded: bool,
    pub what: EventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A message was committed (published by the append script).
    Message(StoredMessage),
    MemberJoined {
        conversation_id: ConversationId,
        username: Username,
    },
    MemberLeft {
        conversation_id: ConversationId,
        username: Username,
        /// The session that asked to leave (it got `left`, not `member_left`).
        session: Option<SessionId>,
    },
    Read {
        conversation_id: ConversationId,
        username: Username,
        seq: u64,
    },
    Typing {
        conversation_id: ConversationId,
        username: Username,
    },
    /// A user's first session in the cluster opened, or their last closed
    /// (`last_seen`: then, in ms, for offline).
    Presence {
        username: Username,
        online: bool,
        last_seen: Option<i64>,
    },
    /// Users were made members of a conversation (created with them, or
    /// invited): every node introduces them to the other members and shows
    /// a group to them (`session`: the creator's session answered `created`).
    Added {
        conversation_id: ConversationId,
        users: Vec<Username>,
        session: Option<SessionId>,
    },
    /// A payment's status changed; payer and payee sessions on every node
    /// hear it (each node reads the payment from the store).
    Payment { payment_id: PaymentId },
    /// `username` was invited to a group by `from` (at `created_at` ms):
    /// their sessions on every node get `invitation`.
    Invitation {
        conversation_id: ConversationId,
        username: Username,
        from: Username,
        created_at: i64,
    },
}

impl EventKind {
    /// The conversation an event concerns, if any.
    pub fn conversation(&self) -> Option<ConversationId> {
        match self {
            EventKind::Message(m) => Some(m.conversation_id),
            EventKind::MemberJoined {
                conversation_id, ..
            }
            | EventKind::MemberLeft {
                conversation_id, ..
            }
            | EventKind::Read {
                conversation_id, ..
            }
            | EventKind::Typing {
                conversation_id, ..
            }
            | EventKind::Added {
                conversation_id, ..
            }
            | EventKind::Invitation {
                conversation_id, ..
            } => Some(*conversation_id),
            EventKind::Presence { .. } | EventKind::Payment { .. } => None,
        }
    }
}

impl super::RedisStore {
    /// The JSON of an event this node causes (for scripts that publish it
    /// together with the change).
    pub(super) fn event(&self, trace: TraceId, what: EventKind) -> String {
        ClusterEvent {
            node: self.node().to_string(),
            trace,
            recorded: crate::traces::recorded(trace),
            what,
        }
        .to_json()
    }
}

/// The JSON on the channel. The append script writes the `message` form
/// with cjson, so field names here and in `scripts/append.lua` must agree
/// (a conformance check parses what the script publishes).
#[derive(Serialize, Deserialize)]
struct Wire {
    t: String,
    node: String,
    trace: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rec: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    conv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    online: Option<bool>,
    /// added only
    #[serde(default, skip_serializing_if = "Option::is_none")]
    users: Option<Vec<String>>,
    /// message only
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<i64>,
    /// invitation only: the inviter
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
}

impl Wire {
    fn new(t: &str, event: &ClusterEvent) -> Wire {
        Wire {
            t: t.into(),
            node: event.node.clone(),
            trace: event.trace.to_string(),
            rec: event.recorded,
            conv: event.what.conversation().map(|c| c.to_string()),
            user: None,
            seq: None,
            session: None,
            online: None,
            users: None,
            id: None,
            cmid: None,
            kind: None,
            text: None,
            at: None,
            from: None,
        }
    }
}

/// Why a payload on the channel was not understood (logged and skipped).
#[derive(Debug, thiserror::Error)]
#[error("unreadable cluster event: {0}")]
pub struct BadEvent(String);

fn field<T>(v: Option<T>, name: &str) -> Result<T, BadEvent> {
    v.ok_or_else(|| BadEvent(format!("{name} is missing")))
}

fn user(v: Option<String>) -> Result<Username, BadEvent> {
    Username::parse(&field(v, "user")?).map_err(|e| BadEvent(e.to_string()))
}

fn session(v: Option<String>) -> Result<Option<SessionId>, BadEvent> {
    v.map(|s| SessionId::parse(&s).map_err(|e| BadEvent(e.to_string())))
        .transpose()
}

fn conv(v: &Option<String>) -> Result<ConversationId, BadEvent> {
    ConversationId::parse(field(v.as_deref(), "conv")?).map_err(|e| BadEvent(e.to_string()))
}

impl ClusterEvent {
    pub fn to_json(&self) -> String {
        let mut w = match &self.what {
            EventKind::Message(_) => Wire::new("message", self),
            EventKind::MemberJoined { .. } => Wire::new("joined", self),
            EventKind::MemberLeft { .. } => Wire::new("left", self),
            EventKind::Read { .. } => Wire::new("read", self),
            EventKind::Typing { .. } => Wire::new("typing", self),
            EventKind::Presence { .. } => Wire::new("presence", self),
            EventKind::Payment { .. } => Wire::new("payment", self),
            EventKind::Added { .. } => Wire::new("added", self),
            EventKind::Invitation { .. } => Wire::new("invitation", self),
        };
        match &self.what {
            EventKind::Message(m) => {
                w.user = Some(m.sender.to_string());
                w.seq = Some(m.seq);
                w.id = Some(m.message_id.to_string());
                w.cmid = Some(m.client_msg_id.clone());
                w.kind = Some(m.kind.as_str().into());
                w.text = Some(m.text.clone());
                w.at = Some(m.sent_at);
            }
            EventKind::MemberJoined { username, .. } | EventKind::Typing { username, .. } => {
                w.user = Some(username.to_string());
            }
            EventKind::MemberLeft {
                username, session, ..
            } => {
                w.user = Some(username.to_string());
                w.session = session.map(|s| s.to_string());
            }
            EventKind::Read { username, seq, .. } => {
                w.user = Some(username.to_string());
                w.seq = Some(*seq);
            }
            EventKind::Presence {
                username,
                online,
                last_seen,
            } => {
                w.user = Some(username.to_string());
                w.online = Some(*online);
                w.at = *last_seen;
            }
            EventKind::Added { users, session, .. } => {
                w.users = Some(users.iter().map(|u| u.to_string()).collect());
                w.session = session.map(|s| s.to_string());
            }
            EventKind::Payment { payment_id } => {
                w.id = Some(payment_id.to_string());
            }
            EventKind::Invitation {
                username,
                from,
                created_at,
                ..
            } => {
                w.user = Some(username.to_string());
                w.from = Some(from.to_string());
                w.at = Some(*created_at);
            }
        }
        // A struct of strings, numbers and options always serializes.
        serde_json::to_string(&w).unwrap_or_default()
    }

    pub fn from_json(payload: &str) -> Result<ClusterEvent, BadEvent> {
        let w: Wire = serde_json::from_str(payload).map_err(|e| BadEvent(e.to_string()))?;
        let trace = TraceId::parse(&w.trace).ok_or_else(|| BadEvent("bad trace".into()))?;
        let what = match w.t.as_str() {
            "message" => {
                let conversation_id = conv(&w.conv)?;
                let kind = field(w.kind.as_deref(), "kind")?;
                EventKind::Message(StoredMessage {
                    conversation_id,
                    message_id: MessageId::parse(field(w.id.as_deref(), "id")?)
                        .map_err(|e| BadEvent(e.to_string()))?,
                    seq: field(w.seq, "seq")?,
                    sender: user(w.user)?,
                    client_msg_id: field(w.cmid, "cmid")?,
                    kind: MessageKind::parse(kind)
                        .ok_or_else(|| BadEvent(format!("kind {kind:?}")))?,
                    text: field(w.text, "text")?,
                    sent_at: field(w.at, "at")?,
                    trace_id: trace,
                })
            }
            "joined" => EventKind::MemberJoined {
                conversation_id: conv(&w.conv)?,
                username: user(w.user)?,
            },
            "left" => EventKind::MemberLeft {
                conversation_id: conv(&w.conv)?,
                username: user(w.user)?,
                session: session(w.session)?,
            },
            "read" => EventKind::Read {
                conversation_id: conv(&w.conv)?,
                username: user(w.user)?,
                seq: field(w.seq, "seq")?,
            },
            "typing" => EventKind::Typing {
                conversation_id: conv(&w.conv)?,
                username: user(w.user)?,
            },
            "presence" => EventKind::Presence {
                username: user(w.user)?,
                online: field(w.online, "online")?,
                last_seen: w.at,
            },
            "added" => EventKind::Added {
                conversation_id: conv(&w.conv)?,
                users: field(w.users, "users")?
                    .into_iter()
                    .map(|u| user(Some(u)))
                    .collect::<Result<_, _>>()?,
                session: session(w.session)?,
            },
            "payment" => EventKind::Payment {
                payment_id: PaymentId::parse(field(w.id.as_deref(), "id")?)
                    .map_err(|e| BadEvent(e.to_string()))?,
            },
            "invitation" => EventKind::Invitation {
                conversation_id: conv(&w.conv)?,
                username: user(w.user)?,
                from: user(w.from)?,
                created_at: field(w.at, "at")?,
            },
            other => return Err(BadEvent(format!("unknown type {other:?}"))),
        };
        Ok(ClusterEvent {
            node: w.node,
            trace,
            recorded: w.rec,
            what,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_survives_the_wire() {
        let conversation_id = ConversationId::new_random();
        let username = Username::parse("alice").unwrap();
        let kinds = vec![
            EventKind::Message(StoredMessage {
                conversation_id,
                message_id: MessageId::new_v7(),
                seq: 7,
                sender: username.clone(),
                client_msg_id: "c-1".into(),
                kind: MessageKind::Text,
                text: "héllo \"there\"".into(),
                sent_at: 1_764_000_000_123,
                trace_id: TraceId::random(),
            }),
            EventKind::MemberJoined {
                conversation_id,
                username: username.clone(),
            },
            EventKind::MemberLeft {
                conversation_id,
                username: username.clone(),
                session: Some(SessionId::new_random()),
            },
            EventKind::Read {
                conversation_id,
                username: username.clone(),
                seq: 3,
            },
            EventKind::Typing {
                conversation_id,
                username: username.clone(),
            },
            EventKind::Presence {
                username: username.clone(),
                online: true,
                last_seen: None,
            },
            EventKind::Presence {
                username: username.clone(),
                online: false,
                last_seen: Some(1_764_000_000_123),
            },
            EventKind::Added {
                conversation_id,
                users: vec![username, Username::parse("bob").unwrap()],
                session: Some(SessionId::new_random()),
            },
            EventKind::Payment {
                payment_id: PaymentId::new_v7(),
            },
        ];
        for what in kinds {
            let trace = match &what {
                EventKind::Message(m) => m.trace_id,
                _ => TraceId::random(),
            };
            let event = ClusterEvent {
                node: "node-a".into(),
                trace,
                recorded: matches!(what, EventKind::Read { .. }),
                what,
            };
            assert_eq!(ClusterEvent::from_json(&event.to_json()).unwrap(), event);
        }
        assert!(ClusterEvent::from_json("{\"t\":\"nope\"}").is_err());
    }
}
