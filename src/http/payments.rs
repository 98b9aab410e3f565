//! Payments over HTTP, and the admin's wallet credit and payment list.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::admin::AdminUser;
use super::extract::{query, JsonBody};
use super::{ApiError, AppState, AuthUser};
use crate::domain::{PaymentId, PaymentStatus, TraceContext, Username};
use crate::payments::{self, MAX_AMOUNT};
use crate::protocol::{ErrorCode, PaymentView};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PayBody {
    to: String,
    amount: i64,
    idempotency_key: String,
}

/// `POST /api/payments`: 202 with the payment, status pending (or as it is
/// now, for a repeated idempotency key).
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    JsonBody(body): JsonBody<PayBody>,
) -> Result<HttpResponse, ApiError> {
    let trace = user.trace;
    let to = Username::parse(&body.to)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("to: {e}"), trace))?;
    let (payment, _) = payments::create(
        &state.deps,
        user.username,
        to,
        body.amount,
        body.idempotency_key,
        TraceContext::new(trace),
        None,
    )
    .await
    .map_err(|e| ApiError::chat(e, trace))?;
    Ok(HttpResponse::Accepted().json(PaymentView::new(&payment, None).answering(trace)))
}

/// `GET /api/payments/{id}`: for its payer, its payee, or an admin; to
/// anyone else it does not exist.
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let trace = user.trace;
    let not_found = || ApiError::new(ErrorCode::NotFound, "no such payment", trace);
    let id = PaymentId::parse(&path)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), trace))?;
    let payment = state
        .deps
        .store
        .payment(id)
        .await
        .map_err(|e| ApiError::store(e, trace))?
        .ok_or_else(not_found)?;
    if !(user.admin || payment.payer == user.username || payment.payee == user.username) {
        return Err(not_found());
    }
    Ok(HttpResponse::Ok().json(PaymentView::new(&payment, None).answering(trace)))
}

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

/// `GET /admin/payments?status=`: newest first.
pub async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
    AdminUser(admin): AdminUser,
) -> Result<HttpResponse, ApiError> {
    let trace = admin.trace;
    let bad = |m: String| ApiError::new(ErrorCode::BadRequest, m, trace);
    let q: ListQuery = query(&req, trace)?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            PaymentStatus::parse(s)
                .ok_or_else(|| bad(format!("status {s:?} is not pending, completed or failed")))?,
        ),
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    // For operators the saga's current step is shown too.
    let items: Vec<Value> = state
        .deps
        .store
        .payments(crate::store::PaymentFilter {
            status,
            unfinished: false,
            limit,
        })
        .await
        .map_err(|e| ApiError::store(e, trace))?
        .iter()
        .map(|p| {
            let mut v = serde_json::to_value(PaymentView::new(p, None)).unwrap_or(Value::Null);
            v["step"] = Value::from(p.step.as_str());
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}

#[derive(Deserialize)]
pub struct CreditBody {
    amount: i64,
}

/// `POST /admin/wallets/{username}/credit`.
pub async fn credit(
    state: web::Data<AppState>,
    AdminUser(admin): AdminUser,
    path: web::Path<String>,
    JsonBody(body): JsonBody<CreditBody>,
) -> Result<HttpResponse, ApiError> {
    let trace = admin.trace;
    let user = Username::parse(&path)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), trace))?;
    if !(1..=MAX_AMOUNT).contains(&body.amount) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("amount must be between 1 and {MAX_AMOUNT}"),
            trace,
        ));
    }
    let balance = state
        .deps
        .store
        .credit(user.clone(), body.amount)
        .await
        .map_err(|e| ApiError::store(e, trace))?;
    tracing::info!(user = %user, amount = body.amount, trace_id = %trace, "wallet credited by an admin");
    Ok(HttpResponse::Ok().json(json!({ "username": user, "balance": balance })))
}
