//! Invitations over HTTP (SPEC v2): the list, accept, decline. Accepting
//! and declining go through the group's conversation actor, as the
//! WebSocket frames do.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{ApiError, AppState, AuthUser};
use crate::actors::conversation::ConvRequest;
use crate::actors::ChatResult;
use crate::domain::{ConversationId, TraceContext};
use crate::protocol::{ErrorCode, InvitationView};
use crate::supervision::{Envelope, Responder};

pub async fn list(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let list = state
        .deps
        .store
        .invitations_of(user.username)
        .await
        .map_err(|e| ApiError::store(e, user.trace))?;
    let items: Vec<InvitationView> = list.iter().map(InvitationView::new).collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

pub async fn accept(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &user, &path, |user, reply| ConvRequest::Accept {
        user,
        reply,
    })
    .await
}

pub async fn decline(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    answer(&state, &user, &path, |user, reply| ConvRequest::Decline {
        user,
        reply,
    })
    .await
}

/// Sends the request `make` builds to the group's actor; 204 once done.
async fn answer(
    state: &AppState,
    user: &AuthUser,
    raw_id: &str,
    make: impl FnOnce(crate::domain::Username, Responder<ChatResult<()>>) -> ConvRequest,
) -> Result<HttpResponse, ApiError> {
    let trace = user.trace;
    let id = ConversationId::parse(raw_id)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), trace))?;
    let (reply, answer) = Responder::oneshot();
    let request = make(user.username.clone(), reply);
    state
        .deps
        .conversations
        .route(id, Envelope::new(TraceContext::new(trace), request));
    answer
        .await
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the request was lost", trace))?
        .map_err(|e| ApiError::chat(e, trace))?;
    Ok(HttpResponse::NoContent().finish())
}
