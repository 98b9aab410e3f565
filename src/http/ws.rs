//! `GET /ws`: authenticate (401 before any upgrade), check the per-user
//! session cap, then hand the socket to a new session actor.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{ApiError, AppState, AuthUser};
use crate::actors::session::start_session;
use crate::domain::TraceContext;
use crate::protocol::ErrorCode;

pub async fn upgrade(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
    user: AuthUser,
) -> Result<HttpResponse, ApiError> {
    let deps = &state.deps;
    // Taken before the upgrade and held by the connection (see
    // `limits::ConnectionSlots`); a refusal below gives it back at once.
    let cap = deps.settings.limits.max_connections;
    let Some(slot) = state.connections.take() else {
        metrics::counter!("parley_rate_limited_total", "what" => "connection").increment(1);
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("this node serves at most {cap} sessions; try again later or another node"),
            user.trace,
        ));
    };
    let max = deps.settings.session.sessions_per_user;
    if deps.registry.session_count(&user.username) >= max {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            format!("at most {max} sessions per user"),
            user.trace,
        ));
    }
    start_session(
        &req,
        body,
        deps.clone(),
        user.username,
        TraceContext::new(user.trace),
        slot,
    )
    .map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("not a WebSocket upgrade: {e}"),
            user.trace,
        )
    })
}
