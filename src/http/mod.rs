//! HTTP routes. Handlers parse and authorize, then hand the work to the store
//! or to actors; they never hold chat state themselves.

mod accounts;
mod admin;
mod chat;
mod error;
mod extract;
mod grants;
mod health;
mod invitations;
mod listeners;
mod pages;
mod payments;
mod ws;

use std::future::Future;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest};
use tracing::Instrument;

pub use error::ApiError;
pub use extract::{AuthUser, RequestTrace};
pub use listeners::split;

use crate::actors::Deps;
use crate::auth::Tokens;
use crate::protocol::ErrorCode;

/// What every handler can reach.
pub struct AppState {
    pub deps: Deps,
    pub tokens: Tokens,
    /// Failed logins per address and per (account, address) (`limits.login_*`).
    pub logins: crate::limits::LoginThrottle,
    /// HTTP writes per user and per address (`limits.http_*write*`),
    /// checked by `AuthUser` for every write behind a token.
    pub writes: crate::limits::WriteLimiter,
    /// The node's WebSocket connections (`limits.max_connections`, exact).
    pub connections: crate::limits::ConnectionSlots,
    /// The bound `server.internal_listen`, when there is one (`listeners.rs`).
    pub internal: Option<std::net::SocketAddr>,
    /// Which listed admins were granted rights on the host (`grants.rs`).
    pub grants: grants::AdminGrants,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/ws", web::get().to(ws::upgrade))
        .configure(pages::routes)
        .service(
            web::scope("/api")
                .route("/register", web::post().to(accounts::register))
                .route("/login", web::post().to(accounts::login))
                .route("/me", web::get().to(accounts::me))
                .route("/users/{username}", web::get().to(accounts::user))
                .route("/conversations", web::get().to(chat::list_conversations))
                .route("/conversations", web::post().to(chat::create_conversation))
                .route("/conversations/{id}/messages", web::get().to(chat::history))
                .route("/conversations/{id}/messages", web::post().to(chat::send))
                .route("/invitations", web::get().to(invitations::list))
                .route(
                    "/invitations/{id}/accept",
                    web::post().to(invitations::accept),
                )
                .route(
                    "/invitations/{id}/decline",
                    web::post().to(invitations::decline),
                )
                .route("/payments", web::post().to(payments::create))
                .route("/payments/{id}", web::get().to(payments::get)),
        )
        .service(
            web::scope("/admin")
                .route("/ui", web::get().to(pages::admin_page))
                .route("/sessions", web::get().to(admin::sessions))
                .route("/sessions/{id}", web::delete().to(admin::disconnect))
                .route("/conversations", web::get().to(admin::conversations))
                .route("/supervision", web::get().to(admin::supervision))
                .route("/faults", web::get().to(admin::faults_status))
                .route("/faults", web::post().to(admin::faults))
                .route("/payments", web::get().to(payments::list))
                .route(
                    "/wallets/{username}/credit",
                    web::post().to(payments::credit),
                )
                .route("/traces/{trace_id}", web::get().to(admin::trace))
                .route("/metrics/series", web::get().to(admin::series))
                .route("/alerts", web::get().to(admin::alerts))
                .route("/breakers", web::get().to(admin::breakers))
                .route("/breakers/{name}", web::post().to(admin::force_breaker)),
        )
        .default_service(web::to(not_found));
}

/// For the fuzz targets (fuzz/): not an API.
#[doc(hidden)]
pub mod fuzzing;

async fn not_found(req: HttpRequest) -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route", RequestTrace::of(&req))
}

/// Middleware body: gives every request its trace id (from `traceparent` or
/// new), runs the handler inside a span carrying it, and returns it in the
/// `x-trace-id` response header. `HEAD` is answered as `GET` is, without the
/// body (load balancers probe `/healthz` so): the route table stays one
/// method per route, and actix-http, which saw the `HEAD`, drops the body.
pub fn traced<S, B>(
    mut req: ServiceRequest,
    srv: &S,
) -> impl Future<Output = Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error>> + 'static
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: actix_web::body::MessageBody + 'static,
{
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    let trace = RequestTrace::of(req.request());
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let span =
        tracing::info_span!("http", method = %req.method(), path = %req.path(), trace_id = %trace);
    crate::telemetry::link_span(&span, trace);
    let call = {
        let _entered = span.enter();
        srv.call(req)
    };
    async move {
        let mut res = call.instrument(span).await?;
        // Route patterns, not paths: the label set stays small.
        let pattern = res.request().match_pattern();
        let status = res.status().as_u16();
        if status >= 400 {
            // An error answer is a hop of its own and keeps its trace,
            // unless no route matched (scanners: the hop stays in the ring).
            let route = pattern.as_deref().unwrap_or("unmatched");
            if pattern.is_some() {
                crate::traces::error(trace, status);
            }
            crate::traces::hop(
                trace,
                "http",
                crate::traces::ActorRef::Named("http"),
                format!("{method} {route} answered {status}"),
                started.elapsed(),
            );
        }
        metrics::counter!(
            "parley_http_requests_total",
            "route" => pattern.unwrap_or_else(|| "unmatched".into()),
            "status" => status.to_string()
        )
        .increment(1);
        if let Ok(v) = HeaderValue::from_str(&trace.to_string()) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-trace-id"), v);
        }
        Ok(extract::hold_unread_body(res))
    }
}
