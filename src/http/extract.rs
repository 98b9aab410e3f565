//! Extractors: the request's trace id, the authenticated user, and JSON
//! bodies read with a size limit and precise errors.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::domain::{now_ms, TraceId, Username};
use crate::protocol::ErrorCode;

/// The trace id of this request: its `traceparent`'s, or a new one, the same
/// for every extractor of the request.
#[derive(Clone, Copy, Debug)]
pub struct RequestTrace(pub TraceId);

impl RequestTrace {
    pub fn of(req: &HttpRequest) -> TraceId {
        if let Some(t) = req.extensions().get::<RequestTrace>() {
            return t.0;
        }
        let given = req
            .headers()
            .get("traceparent")
            .and_then(|h| h.to_str().ok())
            .and_then(TraceId::from_traceparent);
        // A given id is honoured only if it is this caller's (or no one's
        // yet): `traces::TraceOrigins`.
        let (trace, honoured) = match req.app_data::<web::Data<AppState>>() {
            Some(state) => state.deps.origins.admit(given, caller(req, state)),
            None => (given.unwrap_or_else(TraceId::random), given.is_some()),
        };
        if honoured {
            crate::traces::keep(trace, crate::traces::Keep::Asked);
        }
        req.extensions_mut().insert(RequestTrace(trace));
        trace
    }
}

/// Who is asking, as trace ids know it: the user of a valid bearer token,
/// else the client's address (IPv6 by its /64, as the login throttle).
fn caller(req: &HttpRequest, state: &AppState) -> crate::traces::Caller {
    match verified(req, state) {
        Some(Ok(u)) => state.deps.origins.caller(u.as_str()),
        _ => {
            let address = req
                .peer_addr()
                .map(|a| crate::limits::address_key(a.ip()).to_string())
                .unwrap_or_default();
            state.deps.origins.caller(&format!("addr:{address}"))
        }
    }
}

/// The request's bearer token checked once, whoever asks first (the trace
/// middleware, then `AuthUser`): None without a token.
#[derive(Clone)]
struct Verified(Option<Result<Username, crate::auth::AuthError>>);

fn verified(
    req: &HttpRequest,
    state: &AppState,
) -> Option<Result<Username, crate::auth::AuthError>> {
    if let Some(v) = req.extensions().get::<Verified>() {
        return v.0.clone();
    }
    let v = bearer_token(req).map(|t| state.tokens.verify(&t, now_ms()));
    req.extensions_mut().insert(Verified(v.clone()));
    v
}

/// The bearer token of the request: its `Authorization` header, or
/// `?token=` for browsers.
fn bearer_token(req: &HttpRequest) -> Option<String> {
    let from_header = req
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    from_header.or_else(|| {
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("token").cloned())
    })
}

impl FromRequest for RequestTrace {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(RequestTrace(Self::of(req))))
    }
}

/// A caller with a valid bearer token (header, or `?token=` for browsers).
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub username: Username,
    /// Admin rights (SPEC v2): the name is in `auth.admins` *and* the
    /// account was granted them on the host (`parley admin`), read from the
    /// store for listed names only. Registering a listed name is refused,
    /// so the public API alone never makes an admin.
    pub admin: bool,
    pub trace: TraceId,
}

impl AuthUser {
    /// The token's user, with `admin` meaning "listed" only: `from_request`
    /// confirms the grant, so nothing else may build an `AuthUser` this way.
    fn from_req(req: &HttpRequest) -> Result<AuthUser, ApiError> {
        let trace = RequestTrace::of(req);
        let unauthorized = |m: &str| ApiError::new(ErrorCode::Unauthorized, m, trace);
        let state = req
            .app_data::<web::Data<AppState>>()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "server state missing", trace))?;
        let username = verified(req, state)
            .ok_or_else(|| unauthorized("a bearer token is required"))?
            .map_err(|e| unauthorized(&e.to_string()))?;
        // Listed only: `FromRequest` confirms the grant in the store.
        let admin = state.deps.settings.is_admin(&username);
        // Reads are bounded by what they return; writes cost the store and
        // the other members, so they are counted (see `limits::WriteLimiter`).
        if !req.method().is_safe() {
            let address = req.peer_addr().map(|a| a.ip());
            if let Err(wait) = state.writes.take(&username, address, Instant::now()) {
                metrics::counter!("parley_rate_limited_total", "what" => "http_write").increment(1);
                let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                return Err(ApiError::new(
                    ErrorCode::RateLimited,
                    format!("too many writes; retry in {secs} s"),
                    trace,
                )
                .retry_after(secs));
            }
        }
        Ok(AuthUser {
            username,
            admin,
            trace,
        })
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let checked = Self::from_req(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let mut user = checked?;
            if let (true, Some(state)) = (user.admin, state) {
                user.admin = state
                    .grants
                    .granted(&state.deps.store, &user.username)
                    .await
                    .map_err(|e| ApiError::store(e, user.trace))?;
            }
            Ok(user)
        })
    }
}

/// The query string as `T`; a bad one gets the JSON `bad_request` of every route.
pub fn query<T: DeserializeOwned>(req: &HttpRequest, trace: TraceId) -> Result<T, ApiError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), trace))
}

/// A JSON body of type `T`, at most `limits.max_http_body_bytes`, whole
/// within `limits.http_body_timeout`: a client that sends its headers and
/// then trickles (or withholds) the body would otherwise hold a socket and a
/// worker's attention for as long as it likes. That one deadline for a body
/// of bounded size is also its minimum rate. Past it: 408, connection closed.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let trace = RequestTrace::of(req);
        let (limit, deadline) = req.app_data::<web::Data<AppState>>().map_or(
            (65_536, std::time::Duration::from_secs(10)),
            |s| {
                let limits = &s.deps.settings.limits;
                (limits.max_http_body_bytes, limits.http_body_timeout)
            },
        );
        let mut payload = payload.take();
        let req = req.clone();
        Box::pin(async move {
            let read = tokio::time::timeout(deadline, read_body(&mut payload, limit, trace)).await;
            let Ok(body) = read else {
                metrics::counter!("parley_http_slow_bodies_total").increment(1);
                // Kept unread until the answer is sent: actix-http closes a
                // connection whose body is unfinished, but would drain a
                // dropped chunked one for as long as the client trickles.
                req.extensions_mut().insert(UnreadBody(payload));
                return Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!(
                        "the request body did not arrive within {} ms",
                        deadline.as_millis()
                    ),
                    trace,
                )
                .timed_out());
            };
            decode_json(&body?, trace).map(JsonBody)
        })
    }
}

/// A body that did not arrive in time, held by its request (see JsonBody)
/// and then by its answer's body, until that answer is sent.
struct UnreadBody(actix_web::dev::Payload);

/// The answer, holding the request's unread body if one timed out: while
/// the body is held unfinished, actix-http closes the connection once the
/// answer is sent; a dropped chunked body it would drain for as long as
/// the client trickles it.
pub fn hold_unread_body<B: MessageBody + 'static>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::dev::ServiceResponse<BoxBody> {
    let unread = res.request().extensions_mut().remove::<UnreadBody>();
    match unread {
        None => res.map_into_boxed_body(),
        Some(UnreadBody(payload)) => res.map_body(|_, body| {
            BoxBody::new(Holding {
                body: body.boxed(),
                _payload: payload,
            })
        }),
    }
}

/// A body that keeps `_payload` alive until it is dropped.
struct Holding {
    body: BoxBody,
    _payload: actix_web::dev::Payload,
}

impl MessageBody for Holding {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<web::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// The body, refused as soon as it passes `limit` bytes.
async fn read_body(
    payload: &mut actix_web::dev::Payload,
    limit: usize,
    trace: TraceId,
) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), trace))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                ErrorCode::TooLarge,
                format!("the body is larger than {limit} bytes"),
                trace,
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A whole body (already within the size limit) as `T`: not JSON or not an
/// object is `bad_json`, a missing or mistyped field is `bad_request`.
pub(super) fn decode_json<T: DeserializeOwned>(body: &[u8], trace: TraceId) -> Result<T, ApiError> {
    let value = crate::protocol::parse_strict(body).map_err(|e| {
        ApiError::new(
            ErrorCode::BadJson,
            format!("the body is not valid JSON: {e}"),
            trace,
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::BadJson,
            "the body must be a JSON object",
            trace,
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::BadRequest, e.to_string(), trace))
}
