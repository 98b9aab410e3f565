//! Admin views of live actors (admin token required): sessions and
//! conversations, and disconnecting a session.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use actix_ws::CloseCode;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState, AuthUser};
use crate::actors::conversation::Describe;
use crate::domain::{rfc3339_ms, SessionId, TraceContext};
use crate::protocol::ErrorCode;
use crate::supervision::Envelope;

/// A caller with an admin token: 401 without a valid token, 403 for others.
pub struct AdminUser(pub AuthUser);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(AuthUser::from_req(req).and_then(|u| {
            if u.admin {
                Ok(AdminUser(u))
            } else {
                Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "admin rights required",
                    u.trace,
                ))
            }
        }))
    }
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

const MAX_LISTED: usize = 1000;

pub async fn sessions(
    state: web::Data<AppState>,
    _: AdminUser,
    q: web::Query<Limit>,
) -> HttpResponse {
    let node = &state.deps.settings.server.node_id;
    let limit = q.limit.unwrap_or(MAX_LISTED).min(MAX_LISTED);
    let all = state.deps.registry.all_sessions();
    let items: Vec<_> = all
        .iter()
        .take(limit)
        .map(|s| {
            json!({
                "sessionId": s.id,
                "username": s.username,
                "node": node,
                "since": rfc3339_ms(s.since),
                "queuedFrames": s.queued(),
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "total": all.len(), "items": items }))
}

pub async fn disconnect(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = SessionId::parse(&path)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), admin.trace))?;
    let session = state
        .deps
        .registry
        .all_sessions()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "no such session on this node",
                admin.trace,
            )
        })?;
    session.close(
        CloseCode::Policy,
        "disconnected by an admin",
        TraceContext::new(admin.trace),
    );
    Ok(HttpResponse::Ok().json(json!({ "sessionId": id, "closing": true })))
}

pub async fn conversations(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    q: web::Query<Limit>,
) -> HttpResponse {
    let limit = q.limit.unwrap_or(100).min(MAX_LISTED);
    let trace = TraceContext::new(admin.trace);
    let asks = state
        .deps
        .conversations
        .running(limit)
        .into_iter()
        .map(|addr| async move { addr.send(Envelope::new(trace, Describe)).await.ok() });
    let items: Vec<_> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    HttpResponse::Ok().json(json!({ "active": state.deps.conversations.active(), "items": items }))
}
