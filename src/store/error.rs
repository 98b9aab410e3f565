use crate::protocol::ErrorCode;

/// Errors at the store boundary. Clone, because one failed commit fails every
/// write of its batch.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("not a member of this conversation")]
    NotMember,
    #[error("{0}")]
    BadRequest(String),
    #[error("insufficient funds")]
    InsufficientFunds,
    /// Refused by a rule about the caller (the conversation quota).
    #[error("{0}")]
    Forbidden(String),
    /// The write queue is full: back off and retry.
    #[error("the store is overloaded, retry later")]
    Busy,
    /// A remote store (Redis) cannot be reached or its breaker is open.
    #[error("{0}")]
    Unavailable(String),
    /// The writer has shut down.
    #[error("the store is closed")]
    Closed,
    #[error("storage failure: {0}")]
    Backend(String),
}

impl StoreError {
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::NotMember => ErrorCode::Forbidden,
            StoreError::BadRequest(_) => ErrorCode::BadRequest,
            StoreError::InsufficientFunds => ErrorCode::InsufficientFunds,
            StoreError::Forbidden(_) => ErrorCode::Forbidden,
            StoreError::Busy | StoreError::Closed | StoreError::Unavailable(_) => {
                ErrorCode::Unavailable
            }
            StoreError::Backend(_) => ErrorCode::Internal,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}
