//! Client frames: JSON text in, a typed and validated request (or a precise
//! error carrying the frame's `ref` and traceId) out. Parsing never panics.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{
    ErrorCode, InboxPaging, MAX_CLIENT_MSG_ID_CHARS, MAX_NAME_CHARS, MAX_REF_CHARS, MAX_TEXT_CHARS,
};
use crate::domain::{ConversationId, TraceId, Username};

/// A parsed client frame.
#[derive(Debug, Clone)]
pub struct ClientFrame {
    pub reference: Option<String>,
    pub trace_id: TraceId,
    /// The client gave the trace id (else the server made one).
    pub trace_given: bool,
    pub request: ClientRequest,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendTarget {
    Conversation(ConversationId),
    /// The direct conversation with this user, created on first use.
    To(Username),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    Send {
        target: SendTarget,
        text: String,
        client_msg_id: String,
    },
    Create {
        name: String,
        members: Vec<Username>,
    },
    Invite {
        conversation_id: ConversationId,
        username: Username,
    },
    Leave {
        conversation_id: ConversationId,
    },
    /// v2: join a group one was invited to.
    Accept {
        conversation_id: ConversationId,
    },
    /// v2: drop an invitation.
    Decline {
        conversation_id: ConversationId,
    },
    History {
        conversation_id: ConversationId,
        after_seq: u64,
        limit: u32,
    },
    /// A page of the inbox (see `InboxPaging`).
    Conversations(InboxPaging),
    Read {
        conversation_id: ConversationId,
        seq: u64,
    },
    Typing {
        conversation_id: ConversationId,
    },
    Pay {
        to: Username,
        amount: i64,
        idempotency_key: String,
    },
    Ping,
}

impl ClientRequest {
    /// The SPEC `type` of the frame.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientRequest::Send { .. } => "send",
            ClientRequest::Create { .. } => "create",
            ClientRequest::Invite { .. } => "invite",
            ClientRequest::Leave { .. } => "leave",
            ClientRequest::Accept { .. } => "accept",
            ClientRequest::Decline { .. } => "decline",
            ClientRequest::History { .. } => "history",
            ClientRequest::Conversations(_) => "conversations",
            ClientRequest::Read { .. } => "read",
            ClientRequest::Typing { .. } => "typing",
            ClientRequest::Pay { .. } => "pay",
            ClientRequest::Ping => "ping",
        }
    }
}

/// Why a frame was refused; `reference` and `trace_id` are the frame's own when
/// they could be read.
#[derive(Debug, Clone)]
pub struct FrameError {
    pub code: ErrorCode,
    pub message: String,
    pub reference: Option<String>,
    pub trace_id: TraceId,
    /// Whether the frame gave `trace_id` (else the server made it).
    pub trace_given: bool,
}

pub fn parse_client_frame(
    text: &str,
    default_history_limit: u32,
) -> Result<ClientFrame, FrameError> {
    let value: Value = super::parse_strict(text.as_bytes()).map_err(|e| FrameError {
        code: ErrorCode::BadJson,
        message: format!("frame is not valid JSON: {e}"),
        reference: None,
        trace_id: TraceId::random(),
        trace_given: false,
    })?;
    let Value::Object(mut obj) = value else {
        return Err(FrameError {
            code: ErrorCode::BadJson,
            message: "a frame must be a JSON object".into(),
            reference: None,
            trace_id: TraceId::random(),
            trace_given: false,
        });
    };
    let given = obj
        .get("traceId")
        .and_then(Value::as_str)
        .and_then(TraceId::parse);
    let trace_given = given.is_some();
    let trace_id = given.unwrap_or_else(TraceId::random);
    let reference = match obj.remove("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.chars().count() <= MAX_REF_CHARS => Some(r),
        Some(_) => {
            return Err(FrameError {
                code: ErrorCode::BadRequest,
                message: format!("ref must be a string of at most {MAX_REF_CHARS} characters"),
                reference: None,
                trace_id,
                trace_given,
            })
        }
    };
    let fail = |code: ErrorCode, message: String| FrameError {
        code,
        message,
        reference: reference.clone(),
        trace_id,
        trace_given,
    };
    let kind = match obj.remove("type") {
        Some(Value::String(t)) => t,
        Some(_) => return Err(fail(ErrorCode::BadRequest, "type must be a string".into())),
        None => return Err(fail(ErrorCode::BadRequest, "type is missing".into())),
    };
    let request =
        parse_request(&kind, obj, default_history_limit).map_err(|(code, msg)| fail(code, msg))?;
    Ok(ClientFrame {
        reference,
        trace_id,
        trace_given,
        request,
    })
}

type Invalid = (ErrorCode, String);

fn bad(msg: impl Into<String>) -> Invalid {
    (ErrorCode::BadRequest, msg.into())
}

/// Deserializes the fields of one frame type; serde's message names the field.
fn fields<T: for<'de> Deserialize<'de>>(obj: Map<String, Value>) -> Result<T, Invalid> {
    serde_json::from_value(Value::Object(obj)).map_err(|e| bad(e.to_string()))
}

fn conversation_id(s: &str) -> Result<ConversationId, Invalid> {
    ConversationId::parse(s).map_err(|e| bad(e.to_string()))
}

fn username(field: &str, s: &str) -> Result<Username, Invalid> {
    Username::parse(s).map_err(|e| bad(format!("{field}: {e}")))
}

fn bounded_text(field: &str, s: String, max: usize) -> Result<String, Invalid> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(bad(format!("{field} must have 1 to {max} characters")));
    }
    Ok(s)
}

pub fn validate_members(raw: Vec<String>) -> Result<Vec<Username>, String> {
    raw.iter()
        .map(|m| Username::parse(m).map_err(|e| format!("members: {e}")))
        .collect()
}

fn parse_request(
    kind: &str,
    obj: Map<String, Value>,
    default_history_limit: u32,
) -> Result<ClientRequest, Invalid> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Send {
        conversation_id: Option<String>,
        to: Option<String>,
        text: String,
        client_msg_id: String,
    }
    #[derive(Deserialize)]
    struct Create {
        name: String,
        members: Vec<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Invite {
        conversation_id: String,
        username: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ConvOnly {
        conversation_id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct History {
        conversation_id: String,
        after_seq: Option<u64>,
        limit: Option<u32>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inbox {
        limit: Option<u32>,
        before: Option<String>,
        before_id: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Read {
        conversation_id: String,
        seq: u64,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Pay {
        to: String,
        amount: i64,
        idempotency_key: String,
    }

    Ok(match kind {
        "send" => {
            let f: Send = fields(obj)?;
            let target = match (f.conversation_id, f.to) {
                (Some(id), None) => SendTarget::Conversation(conversation_id(&id)?),
                (None, Some(to)) => SendTarget::To(username("to", &to)?),
                (Some(_), Some(_)) => return Err(bad("give conversationId or to, not both")),
                (None, None) => return Err(bad("conversationId or to is required")),
            };
            ClientRequest::Send {
                target,
                text: bounded_text("text", f.text, MAX_TEXT_CHARS)?,
                client_msg_id: bounded_text(
                    "clientMsgId",
                    f.client_msg_id,
                    MAX_CLIENT_MSG_ID_CHARS,
                )?,
            }
        }
        "create" => {
            let f: Create = fields(obj)?;
            ClientRequest::Create {
                name: bounded_text("name", f.name, MAX_NAME_CHARS)?,
                members: validate_members(f.members).map_err(bad)?,
            }
        }
        "invite" => {
            let f: Invite = fields(obj)?;
            ClientRequest::Invite {
                conversation_id: conversation_id(&f.conversation_id)?,
                username: username("username", &f.username)?,
            }
        }
        "leave" => {
            let f: ConvOnly = fields(obj)?;
            ClientRequest::Leave {
                conversation_id: conversation_id(&f.conversation_id)?,
            }
        }
        "accept" => {
            let f: ConvOnly = fields(obj)?;
            ClientRequest::Accept {
                conversation_id: conversation_id(&f.conversation_id)?,
            }
        }
        "decline" => {
            let f: ConvOnly = fields(obj)?;
            ClientRequest::Decline {
                conversation_id: conversation_id(&f.conversation_id)?,
            }
        }
        "typing" => {
            let f: ConvOnly = fields(obj)?;
            ClientRequest::Typing {
                conversation_id: conversation_id(&f.conversation_id)?,
            }
        }
        "history" => {
            let f: History = fields(obj)?;
            let limit = f.limit.unwrap_or(default_history_limit);
            if !(1..=500).contains(&limit) {
                return Err(bad("limit must be between 1 and 500"));
            }
            ClientRequest::History {
                conversation_id: conversation_id(&f.conversation_id)?,
                after_seq: f.after_seq.unwrap_or(0),
                limit,
            }
        }
        "conversations" => {
            let f: Inbox = fields(obj)?;
            let paging = InboxPaging::parse(f.limit, f.before.as_deref(), f.before_id.as_deref());
            ClientRequest::Conversations(paging.map_err(bad)?)
        }
        "read" => {
            let f: Read = fields(obj)?;
            ClientRequest::Read {
                conversation_id: conversation_id(&f.conversation_id)?,
                seq: f.seq,
            }
        }
        "pay" => {
            let f: Pay = fields(obj)?;
            if f.amount <= 0 {
                return Err(bad("amount must be a positive integer of minor units"));
            }
            ClientRequest::Pay {
                to: username("to", &f.to)?,
                amount: f.amount,
                idempotency_key: bounded_text("idempotencyKey", f.idempotency_key, 64)?,
            }
        }
        "ping" => ClientRequest::Ping,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err((
                ErrorCode::UnknownType,
                format!("unknown frame type {shown:?}"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> FrameError {
        match parse_client_frame(text, 100) {
            Err(e) => e,
            Ok(f) => panic!("expected an error for {text}, got {f:?}"),
        }
    }

    #[test]
    fn send_to_conversation() {
        let id = "0191d8f0-6a3c-7cc2-a1b0-0a0b0c0d0e0f";
        let f = parse_client_frame(
            &format!(r#"{{"type":"send","conversationId":"{id}","text":"hi","clientMsgId":"c1","ref":"r1","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}}"#),
            100,
        )
        .unwrap();
        assert_eq!(f.reference.as_deref(), Some("r1"));
        assert_eq!(f.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(matches!(
            f.request,
            ClientRequest::Send {
                target: SendTarget::Conversation(_),
                ..
            }
        ));
    }

    #[test]
    fn errors_keep_ref_and_trace() {
        let e = err(r#"{"type":"nope","ref":"x","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}"#);
        assert_eq!(e.code, ErrorCode::UnknownType);
        assert_eq!(e.reference.as_deref(), Some("x"));
        assert_eq!(e.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let e = err(r#"{"type":"send","to":"bob","text":"","clientMsgId":"c","ref":"y"}"#);
        assert_eq!(
            (e.code, e.reference.as_deref()),
            (ErrorCode::BadRequest, Some("y"))
        );
    }

    #[test]
    fn bad_inputs() {
        assert_eq!(err("{").code, ErrorCode::BadJson);
        assert_eq!(err("[1]").code, ErrorCode::BadJson);
        assert_eq!(
            err(r#"{"type":"typing","type":"send"}"#).code,
            ErrorCode::BadJson
        );
        assert_eq!(err(r#"{"x":1}"#).code, ErrorCode::BadRequest);
        assert_eq!(err(r#"{"type":5}"#).code, ErrorCode::BadRequest);
        assert_eq!(
            err(r#"{"type":"history","conversationId":"zz"}"#).code,
            ErrorCode::BadRequest
        );
        assert_eq!(
            err(r#"{"type":"history","conversationId":"0191d8f0-6a3c-7cc2-a1b0-0a0b0c0d0e0f","limit":0}"#).code,
            ErrorCode::BadRequest
        );
        let long = "é".repeat(4097);
        assert_eq!(
            err(&format!(
                r#"{{"type":"send","to":"bob","text":"{long}","clientMsgId":"c"}}"#
            ))
            .code,
            ErrorCode::BadRequest
        );
        // 4096 multi-byte characters are fine: the limit counts characters.
        let ok = "é".repeat(4096);
        assert!(parse_client_frame(
            &format!(r#"{{"type":"send","to":"bob","text":"{ok}","clientMsgId":"c"}}"#),
            100
        )
        .is_ok());
    }
}
