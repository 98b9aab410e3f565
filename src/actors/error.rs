//! Errors at the actor boundary, each one a SPEC error code.

use crate::protocol::ErrorCode;
use crate::store::StoreError;
use crate::supervision::Unanswered;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ChatError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RateLimited(String),
    #[error("{0}")]
    InsufficientFunds(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

pub type ChatResult<T> = Result<T, ChatError>;

impl ChatError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::BadRequest(_) => ErrorCode::BadRequest,
            ChatError::Forbidden(_) => ErrorCode::Forbidden,
            ChatError::NotFound(_) => ErrorCode::NotFound,
            ChatError::Conflict(_) => ErrorCode::Conflict,
            ChatError::RateLimited(_) => ErrorCode::RateLimited,
            ChatError::InsufficientFunds(_) => ErrorCode::InsufficientFunds,
            ChatError::Unavailable(_) => ErrorCode::Unavailable,
            ChatError::Internal(_) => ErrorCode::Internal,
        }
    }

    pub fn not_member() -> Self {
        ChatError::Forbidden("not a member of this conversation".into())
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ChatError::Conflict(m),
            StoreError::NotFound(m) => ChatError::NotFound(m),
            StoreError::NotMember => ChatError::not_member(),
            StoreError::BadRequest(m) => ChatError::BadRequest(m),
            StoreError::Forbidden(m) => ChatError::Forbidden(m),
            StoreError::InsufficientFunds => {
                ChatError::InsufficientFunds("insufficient funds".into())
            }
            StoreError::Busy => {
                ChatError::Unavailable("the store is overloaded, retry later".into())
            }
            StoreError::Closed => ChatError::Unavailable("the store is shutting down".into()),
            StoreError::Unavailable { .. } => ChatError::Unavailable(e.to_string()),
            StoreError::Backend { .. } | StoreError::Lost => {
                tracing::error!(error = %e, "storage failure");
                ChatError::Internal("storage failure".into())
            }
        }
    }
}

impl<T> Unanswered for ChatResult<T> {
    fn unanswered() -> Self {
        Err(ChatError::Internal(
            "the request was lost: the actor handling it failed or stopped".into(),
        ))
    }
}
