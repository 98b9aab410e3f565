use crate::cause::Cause;
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
    #[error("{reason}{}", colon(.cause))]
    Unavailable {
        reason: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The writer has shut down.
    #[error("the store is closed")]
    Closed,
    /// The store dropped the request before answering: its writer failed
    /// mid-batch or its task was cancelled. The write may or may not have
    /// been made; a retry with the same clientMsgId is deduplicated.
    #[error("the store stopped before answering; retry")]
    Lost,
    /// The backend failed or answered with something unreadable.
    #[error("storage failure: {reason}{}", colon(.cause))]
    Backend {
        reason: String,
        #[source]
        cause: Option<Cause>,
    },
}

/// ": <cause>" after the reason, so a log line that prints only the error
/// still names what failed underneath.
fn colon(cause: &Option<Cause>) -> String {
    cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
}

impl StoreError {
    pub fn unavailable(reason: impl Into<String>) -> Self {
        StoreError::Unavailable {
            reason: reason.into(),
            cause: None,
        }
    }

    pub fn unavailable_from(
        reason: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            reason: reason.into(),
            cause: Some(Cause::new(e)),
        }
    }

    pub fn backend(reason: impl Into<String>) -> Self {
        StoreError::Backend {
            reason: reason.into(),
            cause: None,
        }
    }

    pub fn backend_from(
        reason: impl Into<String>,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Backend {
            reason: reason.into(),
            cause: Some(Cause::new(e)),
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::NotMember => ErrorCode::Forbidden,
            StoreError::BadRequest(_) => ErrorCode::BadRequest,
            StoreError::InsufficientFunds => ErrorCode::InsufficientFunds,
            StoreError::Forbidden(_) => ErrorCode::Forbidden,
            StoreError::Busy
            | StoreError::Closed
            | StoreError::Lost
            | StoreError::Unavailable { .. } => ErrorCode::Unavailable,
            StoreError::Backend { .. } => ErrorCode::Internal,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::backend_from("sqlite", e)
    }
}

/// What every store operation answers.
pub type StoreResult<T> = Result<T, StoreError>;
