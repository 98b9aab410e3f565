//! Accounts: register, login, me, and whether a user exists.

use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::extract::JsonBody;
use super::{ApiError, AppState, AuthUser, RequestTrace};
use crate::auth;
use crate::domain::{now_ms, rfc3339_ms, Username};
use crate::protocol::ErrorCode;
use crate::store::NewUser;

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

pub async fn register(
    state: web::Data<AppState>,
    RequestTrace(trace): RequestTrace,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let username = Username::parse(&body.username)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("username: {e}"), trace))?;
    // SPEC v2 "Admin rights": the operator creates these on the host. The
    // answer is a taken name's, so it does not tell which names are admins.
    if state.deps.settings.is_admin(&username) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("username {username} is taken"),
            trace,
        ));
    }
    if !auth::PASSWORD_CHARS.contains(&body.password.chars().count()) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            "password must have 8 to 128 characters",
            trace,
        ));
    }
    let password = body.password;
    // The turn moves into the closure: a client that hangs up does not
    // free it while its hash still runs.
    let turn = auth::hashing_turn().await;
    let password_hash = web::block(move || {
        let _turn = turn;
        auth::hash_password(&password)
    })
    .await
    .map_err(|_| ApiError::new(ErrorCode::Internal, "hashing was cancelled", trace))?
    .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string(), trace))?;
    state
        .deps
        .store
        .create_user(NewUser {
            username: username.clone(),
            password_hash,
            balance: state.deps.settings.payments.initial_balance,
        })
        .await
        .map_err(|e| ApiError::store(e, trace))?;
    tracing::info!(user = %username, "registered");
    Ok(HttpResponse::Created().json(json!({ "username": username })))
}

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    RequestTrace(trace): RequestTrace,
    JsonBody(body): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    // Throttled before any hashing: a guesser costs the server nothing more.
    let address = req.peer_addr().map(|a| a.ip());
    // Only well-formed names are counted: the key stays small, and a name
    // that cannot exist has no account to protect.
    let account = Username::parse(&body.username).ok().map(|u| u.to_string());
    let account = account.as_deref();
    let attempt = match state.logins.begin(address, account, Instant::now()) {
        Ok(attempt) => attempt,
        Err(wait) => return Err(login_wait(wait, trace)),
    };
    let checked = check_password(&state, &body.username, body.password, trace).await;
    let record = match checked {
        Ok(record) => record,
        Err(e) => {
            // Only a wrong password counts: an attempt the server could not
            // check (the store down, hashing cancelled) is taken back, or an
            // outage would lock every client out.
            if e.code == ErrorCode::Unauthorized {
                state.logins.failed(&attempt, Instant::now());
            } else {
                state.logins.abandoned(&attempt);
            }
            return Err(e);
        }
    };
    // The attempt was counted when it began; a right password takes it back.
    state.logins.succeeded(&attempt);
    if state.deps.settings.is_admin(&record.username) {
        state.grants.note(&record.username, record.admin);
    }
    let (token, expires) = state.tokens.issue(&record.username, now_ms());
    Ok(HttpResponse::Ok().json(json!({ "token": token, "expiresAt": rfc3339_ms(expires) })))
}

/// 429 for a login that must wait `wait`.
fn login_wait(wait: std::time::Duration, trace: crate::domain::TraceId) -> ApiError {
    metrics::counter!("parley_rate_limited_total", "what" => "login").increment(1);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        ErrorCode::RateLimited,
        format!("too many failed logins; retry in {secs} s"),
        trace,
    )
    .retry_after(secs)
}

/// The account if `password` is its password; `unauthorized` otherwise.
async fn check_password(
    state: &AppState,
    username: &str,
    password: String,
    trace: crate::domain::TraceId,
) -> Result<crate::store::UserRecord, ApiError> {
    let record = match Username::parse(username) {
        Ok(u) => state
            .deps
            .store
            .user(u)
            .await
            .map_err(|e| ApiError::store(e, trace))?,
        Err(_) => None,
    };
    // Unknown users are checked against a decoy hash so timing does not tell
    // which usernames exist.
    let hash = record.as_ref().map_or_else(
        || auth::decoy_hash().to_string(),
        |r| r.password_hash.clone(),
    );
    let turn = auth::hashing_turn().await;
    let ok = web::block(move || {
        let _turn = turn;
        auth::verify_password(&password, &hash)
    })
    .await
    .map_err(|_| ApiError::new(ErrorCode::Internal, "verification was cancelled", trace))?;
    record
        .filter(|_| ok)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "wrong username or password", trace))
}

pub async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, ApiError> {
    let record = state
        .deps
        .store
        .user(user.username.clone())
        .await
        .map_err(|e| ApiError::store(e, user.trace))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "this account no longer exists",
                user.trace,
            )
        })?;
    Ok(HttpResponse::Ok().json(json!({
        "username": record.username,
        "admin": user.admin,
        "balance": record.balance,
    })))
}

/// `GET /api/users/{username}`: whether someone of that name exists, so a
/// client can say so before opening a chat with them (a `send` to nobody
/// fails only when sent). Usernames are not secret: registering a taken one
/// already answers `conflict`.
pub async fn user(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = Username::parse(&path.into_inner())
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("username: {e}"), user.trace))?;
    let record = state
        .deps
        .store
        .user(name.clone())
        .await
        .map_err(|e| ApiError::store(e, user.trace))?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no user named {name}"),
                user.trace,
            )
        })?;
    Ok(HttpResponse::Ok().json(json!({ "username": record.username })))
}
