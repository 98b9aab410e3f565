//! The WebSocket frame parser, `parley::protocol::parse_client_frame`, on the
//! text frames a session hands it: valid UTF-8 (actix-ws refuses invalid
//! UTF-8, and binary frames are answered `unsupported` without parsing) of at
//! most `session.max_frame_bytes` (larger frames close the socket first).
//!
//! It must return a frame or a typed error, never panic or hang; a frame's
//! validated fields keep the SPEC limits; an error is answered with an
//! `error` frame that is valid JSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley::domain::{TraceId, Username};
use parley::protocol::{
    parse_client_frame, ClientFrame, ClientRequest, ErrorCode, SendTarget, ServerFrame,
    MAX_CLIENT_MSG_ID_CHARS, MAX_NAME_CHARS, MAX_REF_CHARS, MAX_TEXT_CHARS,
};
use serde_json::Value;

/// `session.max_frame_bytes` by default.
const MAX_FRAME_BYTES: usize = 65_536;
/// `limits.history_default_limit` by default.
const HISTORY_DEFAULT_LIMIT: u32 = 100;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_FRAME_BYTES {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_client_frame(text, HISTORY_DEFAULT_LIMIT) {
        Ok(frame) => check_frame(text, &frame),
        Err(e) => {
            assert!(
                matches!(
                    e.code,
                    ErrorCode::BadJson | ErrorCode::BadRequest | ErrorCode::UnknownType
                ),
                "the parser answered {:?}",
                e.code
            );
            if let Some(r) = &e.reference {
                assert!(r.chars().count() <= MAX_REF_CHARS);
            }
            assert_valid_trace(e.trace_id);
            // What the session sends back for a refused frame.
            let out = ServerFrame::error(e.code, e.message, e.reference, e.trace_id).to_text();
            let v: Value = serde_json::from_str(&out).expect("an error frame is JSON");
            assert_eq!(v["type"], "error");
            assert_eq!(v["code"], e.code.as_str());
        }
    }
});

fn chars_within(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.chars().count())
}

fn valid_username(u: &Username) -> bool {
    Username::parse(u.as_str()).is_ok()
}

fn assert_valid_trace(t: TraceId) {
    let shown = t.to_string();
    assert_eq!(TraceId::parse(&shown), Some(t), "trace id {shown}");
}

fn check_frame(text: &str, frame: &ClientFrame) {
    // An accepted frame is a JSON object whose `type` names the request.
    let v: Value = serde_json::from_str(text).expect("an accepted frame is JSON");
    let obj = v.as_object().expect("an accepted frame is an object");
    assert_eq!(
        obj.get("type").and_then(Value::as_str),
        Some(frame.request.kind())
    );
    // `ref` is the frame's own, at most 64 characters.
    match obj.get("ref") {
        Some(Value::String(r)) => assert_eq!(frame.reference.as_deref(), Some(r.as_str())),
        None | Some(Value::Null) => assert!(frame.reference.is_none()),
        Some(other) => panic!("accepted a ref that is not a string: {other}"),
    }
    if let Some(r) = &frame.reference {
        assert!(r.chars().count() <= MAX_REF_CHARS);
    }
    // The trace id is the client's when it gave a valid one, else a new one.
    assert_valid_trace(frame.trace_id);
    if frame.trace_given {
        assert_eq!(
            obj.get("traceId").and_then(Value::as_str),
            Some(frame.trace_id.to_string().as_str())
        );
    }
    match &frame.request {
        ClientRequest::Send {
            target,
            text,
            client_msg_id,
        } => {
            assert!(chars_within(text, MAX_TEXT_CHARS));
            assert!(chars_within(client_msg_id, MAX_CLIENT_MSG_ID_CHARS));
            if let SendTarget::To(u) = target {
                assert!(valid_username(u));
            }
        }
        ClientRequest::Create { name, members } => {
            assert!(chars_within(name, MAX_NAME_CHARS));
            assert!(members.iter().all(valid_username));
        }
        ClientRequest::Invite { username, .. } => assert!(valid_username(username)),
        ClientRequest::History { limit, .. } => assert!((1..=500).contains(limit)),
        ClientRequest::Pay {
            to,
            amount,
            idempotency_key,
        } => {
            assert!(valid_username(to));
            assert!(*amount > 0);
            assert!(chars_within(idempotency_key, 64));
        }
        ClientRequest::Leave { .. }
        | ClientRequest::Accept { .. }
        | ClientRequest::Decline { .. }
        | ClientRequest::Typing { .. }
        | ClientRequest::Read { .. }
        | ClientRequest::Ping => {}
        ClientRequest::Conversations(paging) => {
            assert!((1..=200).contains(&paging.limit));
        }
    }
}
