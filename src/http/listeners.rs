//! `server.internal_listen`: the operators' routes (`/metrics`, `/admin/*`)
//! on a listener of their own, as Prometheus deployments expect, and not on
//! the public one; `/healthz` and `/readyz` answer on both (load balancers
//! and monitors), and the admin console's page needs its assets and a login
//! there too. Which listener a request came through is its connection's
//! local address. Without an internal listener every route is on `listen`.
//! The path judged is the one the router matches (percent-decoded), so an
//! encoded `/%61dmin` cannot slip past; `AdminUser` and the metrics handler
//! check the listener again themselves (`on_public_listener`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::{web, HttpResponse};

use super::{ApiError, AppState, RequestTrace};
use crate::protocol::ErrorCode;

fn operators(path: &str) -> bool {
    path == "/metrics" || path == "/admin" || path.starts_with("/admin/")
}

fn everyone(path: &str) -> bool {
    path == "/healthz" || path == "/readyz"
}

/// What the console at `/admin/ui` loads and calls besides `/admin/*`.
fn console(path: &str) -> bool {
    matches!(
        path,
        "/assets/admin.js" | "/assets/admin.css" | "/api/login" | "/api/me"
    )
}

/// True when an internal listener is set and `req` did not come through it:
/// the operators' handlers refuse such requests whatever their path.
pub fn on_public_listener(req: &actix_web::HttpRequest) -> bool {
    let internal = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.internal);
    internal.is_some_and(|i| req.app_config().local_addr() != i)
}

/// Whether a request to `path` through the listener at `local` is served.
pub fn served(path: &str, local: SocketAddr, internal: Option<SocketAddr>) -> bool {
    match internal {
        None => true,
        Some(internal) if local == internal => operators(path) || everyone(path) || console(path),
        Some(_) => !operators(path),
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>>;

/// Middleware: a route not served on this listener is 404, as if absent.
pub fn split<S>(req: ServiceRequest, srv: &S) -> Answer
where
    S: Service<ServiceRequest, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
    S::Future: 'static,
{
    let internal = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.internal);
    let local = req.request().app_config().local_addr();
    // The router's path: percent-decoded as the routes are matched.
    if served(req.match_info().as_str(), local, internal) {
        return Box::pin(srv.call(req));
    }
    let trace = RequestTrace::of(req.request());
    let error = ApiError::new(ErrorCode::NotFound, "no such route on this listener", trace);
    let response: HttpResponse = actix_web::ResponseError::error_response(&error);
    Box::pin(std::future::ready(Ok(req.into_response(response))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operators_routes_move_to_the_internal_listener() {
        let public: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let internal: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        for path in ["/metrics", "/admin/supervision", "/api/me", "/healthz"] {
            assert!(served(path, public, None), "{path}: all on one listener");
        }
        assert!(!served("/metrics", public, Some(internal)));
        assert!(!served("/admin/ui", public, Some(internal)));
        assert!(served("/api/me", public, Some(internal)));
        assert!(served("/ws", public, Some(internal)));
        assert!(served("/healthz", public, Some(internal)));
        assert!(served("/metrics", internal, Some(internal)));
        assert!(served("/admin/sessions", internal, Some(internal)));
        assert!(served("/readyz", internal, Some(internal)));
        assert!(
            served("/api/login", internal, Some(internal)),
            "the console logs in"
        );
        assert!(served("/assets/admin.js", internal, Some(internal)));
        assert!(!served("/api/conversations", internal, Some(internal)));
        assert!(!served("/assets/chat.js", internal, Some(internal)));
        assert!(!served("/administrator", internal, Some(internal)));
    }
}
