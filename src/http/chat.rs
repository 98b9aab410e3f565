//! Chat over HTTP: conversations and messages (the same actors as WebSocket).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::extract::{query, JsonBody};
use super::{ApiError, AppState, AuthUser};
use crate::actors::conversation::ConvRequest;
use crate::actors::groups::start_group;
use crate::domain::{ConversationId, MessageKind, TraceContext, TraceId};
use crate::protocol::{
    ConversationView, ErrorCode, InboxPaging, MessageView, ServerFrame, MAX_CLIENT_MSG_ID_CHARS,
    MAX_NAME_CHARS, MAX_TEXT_CHARS,
};
use crate::supervision::{Envelope, Responder};

fn path_id(raw: &str, trace: TraceId) -> Result<ConversationId, ApiError> {
    ConversationId::parse(raw)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), trace))
}

fn bounded(field: &str, s: &str, max: usize, trace: TraceId) -> Result<(), ApiError> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{field} must have 1 to {max} characters"),
            trace,
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxQuery {
    limit: Option<u32>,
    before: Option<String>,
    before_id: Option<String>,
}

/// One page of the inbox (SPEC v2): `?limit=&before=&beforeId=`, see
/// `protocol::InboxPaging`; `hasMore` says whether another page follows.
pub async fn list_conversations(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let trace = user.trace;
    let q: InboxQuery = query(&req, trace)?;
    let paging = InboxPaging::parse(q.limit, q.before.as_deref(), q.before_id.as_deref())
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, m, trace))?;
    let (items, has_more) = crate::actors::inbox::page(&state.deps.store, user.username, paging)
        .await
        .map_err(|e| ApiError::store(e, trace))?;
    Ok(HttpResponse::Ok().json(json!({ "items": items, "hasMore": has_more })))
}

#[derive(Deserialize)]
pub struct NewConversation {
    name: String,
    members: Vec<String>,
}

pub async fn create_conversation(
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<NewConversation>,
) -> Result<HttpResponse, ApiError> {
    let trace = user.trace;
    bounded("name", &body.name, MAX_NAME_CHARS, trace)?;
    let members = crate::protocol::validate_members(body.members)
        .map_err(|m| ApiError::new(ErrorCode::BadRequest, m, trace))?;
    // None of the creator's sessions asked: all of them see the group too.
    let conv = start_group(
        &state.deps,
        &user.username,
        body.name,
        members,
        None,
        TraceContext::new(trace),
    )
    .await
    .map_err(|e| ApiError::chat(e, trace))?;
    let view = ConversationView::created(&conv);
    Ok(HttpResponse::Created().json(view))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryQuery {
    after_seq: Option<u64>,
    limit: Option<u32>,
}

pub async fn history(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let trace = user.trace;
    let id = path_id(&path, trace)?;
    let q: HistoryQuery = query(&req, trace)?;
    let limit = q
        .limit
        .unwrap_or(state.deps.settings.limits.history_default_limit);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "limit must be between 1 and 500",
            trace,
        ));
    }
    let page = state
        .deps
        .store
        .history(crate::store::HistoryQuery {
            reader: user.username,
            id,
            after_seq: q.after_seq.unwrap_or(0),
            limit,
        })
        .await
        .map_err(|e| ApiError::store(e, trace))?;
    let messages: Vec<MessageView> = page
        .messages
        .iter()
        .map(|m| MessageView::new(m, &page.conversation))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "messages": messages, "hasMore": page.has_more })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendBody {
    text: String,
    client_msg_id: String,
}

pub async fn send(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
    JsonBody(body): JsonBody<SendBody>,
) -> Result<HttpResponse, ApiError> {
    let trace = user.trace;
    let id = path_id(&path, trace)?;
    bounded("text", &body.text, MAX_TEXT_CHARS, trace)?;
    bounded(
        "clientMsgId",
        &body.client_msg_id,
        MAX_CLIENT_MSG_ID_CHARS,
        trace,
    )?;
    let (reply, answer) = Responder::oneshot();
    let request = ConvRequest::Send {
        sender: user.username,
        client_msg_id: body.client_msg_id,
        text: body.text,
        kind: MessageKind::Text,
        reply,
    };
    state
        .deps
        .conversations
        .route(id, Envelope::new(TraceContext::new(trace), request));
    let outcome = answer
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the request was lost", trace))?
        .map_err(|e| ApiError::chat(e, trace))?;
    // The same body as the WebSocket `ack` frame.
    let ack = ServerFrame::ack(&outcome.message, None, trace);
    Ok(HttpResponse::Created()
        .content_type("application/json")
        .body(ack.to_text().into_bytes()))
}
