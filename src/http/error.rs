//! The HTTP error boundary: SPEC error codes with their status and
//! `{"error": {"code", "message", "traceId"}}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::actors::ChatError;
use crate::domain::TraceId;
use crate::protocol::ErrorCode;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub trace_id: TraceId,
    /// For `rate_limited`: seconds until a retry can succeed, sent as
    /// `Retry-After` and `retryAfterSecs`.
    pub retry_after_secs: Option<u64>,
    /// The request did not arrive in time: 408 whatever the code, and the
    /// connection is closed (its unread rest cannot be skipped safely).
    pub timed_out: bool,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>, trace_id: TraceId) -> Self {
        ApiError {
            code,
            message: message.into(),
            trace_id,
            retry_after_secs: None,
            timed_out: false,
        }
    }

    pub fn timed_out(mut self) -> Self {
        self.timed_out = true;
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn chat(e: ChatError, trace_id: TraceId) -> Self {
        ApiError::new(e.code(), e.to_string(), trace_id)
    }

    pub fn store(e: StoreError, trace_id: TraceId) -> Self {
        Self::chat(ChatError::from(e), trace_id)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        if self.timed_out {
            return StatusCode::REQUEST_TIMEOUT;
        }
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        metrics::counter!("parley_errors_total", "code" => self.code.as_str(), "via" => "http")
            .increment(1);
        crate::series::record("errors", 1.0);
        let mut error = json!({
            "code": self.code.as_str(),
            "message": self.message,
            "traceId": self.trace_id.to_string(),
        });
        let mut res = HttpResponse::build(self.status_code());
        if let Some(secs) = self.retry_after_secs {
            error["retryAfterSecs"] = json!(secs);
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        if self.timed_out {
            res.force_close();
        }
        res.json(json!({ "error": error }))
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}
