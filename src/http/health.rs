//! Liveness and readiness.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// 200 while the process serves.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// 200 when the store answers; 503 naming the failing part otherwise
/// ("store" for the embedded database, "redis" in a cluster).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let part = if state.deps.cluster.is_shared() {
        "redis"
    } else {
        "store"
    };
    let node = &state.deps.settings.server.node_id;
    match state.deps.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({
            "status": "ready",
            "node": node,
            "checks": { part: "ok" },
        })),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({
            "status": "unavailable",
            "node": node,
            "failing": [part],
            "checks": { part: e.to_string() },
        })),
    }
}

/// Prometheus text exposition of every metric (described, so promtool accepts it).
pub async fn metrics(req: actix_web::HttpRequest) -> HttpResponse {
    // Only on the internal listener when there is one (see `listeners.rs`).
    if super::listeners::on_public_listener(&req) {
        return HttpResponse::NotFound().finish();
    }
    crate::procstat::export();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::telemetry::metrics().render())
}
