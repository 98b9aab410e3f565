//! Admin views of live actors (admin token required): sessions and
//! conversations, and disconnecting a session.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use actix_ws::CloseCode;
use serde::Deserialize;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::extract::{query, JsonBody};
use super::{ApiError, AppState, AuthUser, RequestTrace};
use crate::actors::breaker::{Force, Status};
use crate::actors::conversation::Describe;
use crate::domain::{rfc3339_ms, SessionId, TraceContext, TraceId};
use crate::protocol::admin::{
    BreakerView, Closing, ConversationList, FaultArmed, FaultsEnabled, Items, RestartCount,
    SeriesList, SeriesName, SeriesPoints, SessionItem, SessionList, SupervisionView, TraceView,
};
use crate::protocol::ErrorCode;
use crate::resilience::BreakerState;
use crate::supervision::faults::{Fault, FaultError};
use crate::supervision::Envelope;

/// A caller with an admin token: 401 without a valid token, 403 for others.
pub struct AdminUser(pub AuthUser);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let user = AuthUser::from_request(req, payload);
        let public = super::listeners::on_public_listener(req).then(|| RequestTrace::of(req));
        Box::pin(async move {
            if let Some(trace) = public {
                let why = "no such route on this listener";
                return Err(ApiError::new(ErrorCode::NotFound, why, trace));
            }
            let u = user.await?;
            if u.admin {
                Ok(AdminUser(u))
            } else {
                Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "admin rights required",
                    u.trace,
                ))
            }
        })
    }
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<usize>,
}

/// `?limit=`.
fn limit(req: &HttpRequest, trace: crate::domain::TraceId) -> Result<Option<usize>, ApiError> {
    query::<Limit>(req, trace).map(|q| q.limit)
}

const MAX_LISTED: usize = 1000;

pub async fn sessions(
    state: web::Data<AppState>,
    req: HttpRequest,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, ApiError> {
    let node = &state.deps.settings.server.node_id;
    let limit = limit(&req, admin.trace)?
        .unwrap_or(MAX_LISTED)
        .min(MAX_LISTED);
    let all = state.deps.registry.all_sessions();
    let items: Vec<_> = all
        .iter()
        .take(limit)
        .map(|s| SessionItem {
            session_id: s.id,
            username: &s.username,
            node,
            since: rfc3339_ms(s.since),
            queued_frames: s.queued(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SessionList {
        total: all.len(),
        items,
    }))
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
    Ok(HttpResponse::Ok().json(Closing {
        session_id: id,
        closing: true,
    }))
}

pub async fn conversations(
    state: web::Data<AppState>,
    req: HttpRequest,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, ApiError> {
    let limit = limit(&req, admin.trace)?.unwrap_or(100).min(MAX_LISTED);
    let trace = TraceContext::new(admin.trace);
    let asks = state
        .deps
        .conversations
        .running(limit)
        .into_iter()
        .map(|addr| async move { addr.send(Envelope::new(trace, Describe)).await.ok() });
    let items = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    Ok(HttpResponse::Ok().json(ConversationList {
        node: &state.deps.settings.server.node_id,
        active: state.deps.conversations.active(),
        items,
    }))
}

/// The live supervision tree, with restart counts by actor kind and reason.
pub async fn supervision(state: web::Data<AppState>, _: AdminUser) -> HttpResponse {
    let deps = &state.deps;
    let tree = deps
        .root
        .snapshot(deps.settings.supervision.tree_max_children);
    let restarts = deps
        .root
        .restart_counts()
        .into_iter()
        .map(|(kind, reason, count)| RestartCount {
            kind,
            reason,
            count,
        })
        .collect();
    HttpResponse::Ok().json(SupervisionView {
        node: &deps.settings.server.node_id,
        tree,
        restarts,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultBody {
    target: String,
    kind: String,
    count: Option<u32>,
    delay_ms: Option<u64>,
}

/// `GET /admin/faults` (extension): whether fault injection is enabled, so
/// the admin console shows its form only when it can work.
pub async fn faults_status(
    state: web::Data<AppState>,
    AdminUser(_admin): AdminUser,
) -> HttpResponse {
    HttpResponse::Ok().json(FaultsEnabled {
        enabled: state.deps.settings.faults_enabled,
    })
}

/// `POST /admin/faults`: arms a fault (only with `faults.enabled`).
pub async fn faults(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    JsonBody(body): JsonBody<FaultBody>,
) -> Result<HttpResponse, ApiError> {
    let trace = admin.trace;
    let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m, trace);
    let fault = match (body.kind.as_str(), body.delay_ms) {
        ("panic", _) => Fault::Panic,
        ("stop", _) => Fault::Stop,
        ("delay", Some(ms)) if (1..=60_000).contains(&ms) => {
            Fault::Delay(Duration::from_millis(ms))
        }
        ("delay", _) => return Err(bad("delay needs delayMs between 1 and 60000".into())),
        (other, _) => {
            return Err(bad(format!(
                "kind {other:?} is not one of panic, stop, delay"
            )))
        }
    };
    let count = body.count.unwrap_or(1);
    state
        .deps
        .faults
        .arm(&body.target, fault, count)
        .map_err(|e| match e {
            FaultError::Disabled => ApiError::new(ErrorCode::Forbidden, e.to_string(), trace),
            FaultError::Full => ApiError::new(ErrorCode::Conflict, e.to_string(), trace),
            other => bad(other.to_string()),
        })?;
    tracing::warn!(target = %body.target, kind = %body.kind, count, trace_id = %trace, "fault armed");
    Ok(HttpResponse::Accepted().json(FaultArmed {
        target: body.target,
        kind: body.kind,
        count,
    }))
}

/// Every circuit breaker: state, window figures, recent transitions.
pub async fn breakers(state: web::Data<AppState>, AdminUser(admin): AdminUser) -> HttpResponse {
    let trace = TraceContext::new(admin.trace);
    let asks = state.deps.breakers.iter().map(|(name, addr)| async move {
        let status = addr.send(Envelope::new(trace, Status)).await.ok();
        BreakerView { name, status }
    });
    let items = futures_util::future::join_all(asks).await;
    HttpResponse::Ok().json(Items { items })
}

#[derive(Deserialize)]
pub struct ForceBody {
    state: String,
}

/// `POST /admin/breakers/{name}`: force a state (forced_open, disabled, closed).
pub async fn force_breaker(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<String>,
    JsonBody(body): JsonBody<ForceBody>,
) -> Result<HttpResponse, ApiError> {
    let trace = admin.trace;
    let target = match body.state.as_str() {
        "forced_open" => BreakerState::ForcedOpen,
        "disabled" => BreakerState::Disabled,
        "closed" => BreakerState::Closed,
        other => {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                format!("state {other:?} is not one of forced_open, disabled, closed"),
                trace,
            ))
        }
    };
    let addr = state
        .deps
        .breakers
        .iter()
        .find(|(name, _)| *name == path.as_str())
        .map(|(_, addr)| addr.clone())
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such breaker", trace))?;
    let ctx = TraceContext::new(trace);
    addr.do_send(Envelope::new(ctx, Force(target)));
    let snapshot = addr.send(Envelope::new(ctx, Status)).await.map_err(|_| {
        ApiError::new(
            ErrorCode::Unavailable,
            "the breaker is restarting; retry",
            trace,
        )
    })?;
    Ok(HttpResponse::Ok().json(BreakerView {
        name: path.as_str(),
        status: Some(snapshot),
    }))
}

/// `GET /admin/traces/{traceId}`: every recorded hop of a recent trace.
pub async fn trace(
    AdminUser(admin): AdminUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let wanted = TraceId::parse(&path).ok_or_else(|| {
        ApiError::new(
            ErrorCode::BadRequest,
            "a traceId is 32 lowercase hex characters",
            admin.trace,
        )
    })?;
    let found = crate::traces::get(wanted).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            "no recent trace with this id",
            admin.trace,
        )
    })?;
    Ok(HttpResponse::Ok().json(TraceView {
        trace_id: wanted,
        hops: found.hops,
        hops_not_kept: found.dropped,
        kept: found.kept,
    }))
}

#[derive(Deserialize)]
pub struct SeriesQuery {
    name: Option<String>,
    seconds: Option<u64>,
}

/// `GET /admin/metrics/series?name=&seconds=`: per-second buckets of one
/// series (non-empty seconds only); without `name`, the series available.
pub async fn series(
    req: HttpRequest,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, ApiError> {
    let trace = admin.trace;
    let q: SeriesQuery = query(&req, trace)?;
    let Some(name) = q.name.as_deref().filter(|n| !n.is_empty()) else {
        let series = crate::series::SERIES
            .iter()
            .map(|&(name, description)| SeriesName { name, description })
            .collect();
        return Ok(HttpResponse::Ok().json(SeriesList {
            series,
            max_seconds: crate::series::SECONDS,
        }));
    };
    let seconds = q.seconds.unwrap_or(300);
    if !(1..=crate::series::SECONDS as u64).contains(&seconds) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "seconds must be between 1 and 86400",
            trace,
        ));
    }
    let points = crate::series::read(name, seconds).ok_or_else(|| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no series named {name:?}"),
            trace,
        )
    })?;
    Ok(HttpResponse::Ok().json(SeriesPoints {
        name,
        seconds,
        points,
    }))
}

/// `GET /admin/alerts`: every rule with its state, value and history.
pub async fn alerts(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, ApiError> {
    let items = state
        .deps
        .alerts
        .send(Envelope::new(
            TraceContext::new(admin.trace),
            crate::actors::alerts::AlertsStatus,
        ))
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::Unavailable,
                "the alerts actor is restarting; retry",
                admin.trace,
            )
        })?;
    Ok(HttpResponse::Ok().json(Items { items }))
}
