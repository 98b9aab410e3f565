//! The provider's HTTP API.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::state::{Gate, ProviderBehaviour, ProviderState};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/charges", web::post().to(charge))
        .route("/v1/charges/{key}", web::get().to(lookup))
        .route("/v1/refunds", web::post().to(refund))
        .route("/v1/control", web::post().to(control))
        .route("/v1/stats", web::get().to(stats));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargeBody {
    idempotency_key: String,
    amount: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundBody {
    idempotency_key: String,
    charge_key: String,
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({"error": "provider unavailable"}))
}

async fn delay(state: &ProviderState) {
    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

async fn charge(state: web::Data<ProviderState>, body: web::Bytes) -> HttpResponse {
    delay(&state).await;
    if let Gate::Unavailable = state.gate() {
        return unavailable();
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let Ok(req) = serde_json::from_str::<ChargeBody>(&text) else {
        return HttpResponse::BadRequest()
            .json(json!({"error": "expected {idempotencyKey, amount}"}));
    };
    if req.amount <= 0 || req.idempotency_key.is_empty() {
        return HttpResponse::BadRequest()
            .json(json!({"error": "amount must be positive, key non-empty"}));
    }
    match state.charge(&req.idempotency_key, &text, req.amount) {
        Ok(c) => HttpResponse::Ok().json(c),
        Err(true) => HttpResponse::Conflict()
            .json(json!({"error": "idempotency key reused with another body"})),
        Err(false) => unavailable(),
    }
}

async fn lookup(state: web::Data<ProviderState>, path: web::Path<String>) -> HttpResponse {
    delay(&state).await;
    if let Gate::Unavailable = state.gate() {
        return unavailable();
    }
    match state.lookup(&path) {
        Some(c) => HttpResponse::Ok().json(c),
        None => HttpResponse::NotFound().json(json!({"error": "no such charge"})),
    }
}

async fn refund(state: web::Data<ProviderState>, body: web::Bytes) -> HttpResponse {
    delay(&state).await;
    if let Gate::Unavailable = state.gate() {
        return unavailable();
    }
    let text = String::from_utf8_lossy(&body).to_string();
    let Ok(req) = serde_json::from_str::<RefundBody>(&text) else {
        return HttpResponse::BadRequest()
            .json(json!({"error": "expected {idempotencyKey, chargeKey}"}));
    };
    let (status, answer) = state.refund(&req.idempotency_key, &text, &req.charge_key);
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .json(answer)
}

async fn control(
    state: web::Data<ProviderState>,
    body: web::Json<ProviderBehaviour>,
) -> HttpResponse {
    state.set(&body);
    HttpResponse::Ok().json(state.stats())
}

async fn stats(state: web::Data<ProviderState>) -> HttpResponse {
    HttpResponse::Ok().json(state.stats())
}
