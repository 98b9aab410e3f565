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
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>, trace_id: TraceId) -> Self {
        ApiError {
            code,
            message: message.into(),
            trace_id,
        }
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
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        metrics::counter!("parley_errors_total", "code" => self.code.as_str(), "via" => "http")
            .increment(1);
        crate::series::record("errors", 1.0);
        HttpResponse::build(self.status_code()).json(json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "traceId": self.trace_id.to_string(),
            }
        }))
    }
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> HttpResponse {
        self.error_response()
    }
}
