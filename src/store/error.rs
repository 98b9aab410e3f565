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
    /// been made, so it is `internal`, not a "retry": only a message (by its
    /// clientMsgId) or a payment (by its key) is safe to send again.
    #[error("the store stopped before answering: the write may or may not have been made")]
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

    pub fn backend(reason: impl Into<String>) -> Self {
        StoreError::Backend {
            reason: reason.into(),
            cause: None,
        }
    }

    /// The same error with `e` as its cause; only `Unavailable` and
    /// `Backend` have one to keep.
    pub fn caused_by(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        if let StoreError::Unavailable { cause, .. } | StoreError::Backend { cause, .. } = &mut self
        {
            *cause = Some(Cause::new(e));
        }
        self
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::Conflict(_) => ErrorCode::Conflict,
            StoreError::NotFound(_) => ErrorCode::NotFound,
            StoreError::NotMember => ErrorCode::Forbidden,
            StoreError::BadRequest(_) => ErrorCode::BadRequest,
            StoreError::InsufficientFunds => ErrorCode::InsufficientFunds,
            StoreError::Forbidden(_) => ErrorCode::Forbidden,
            StoreError::Busy | StoreError::Closed | StoreError::Unavailable { .. } => {
                ErrorCode::Unavailable
            }
            StoreError::Backend { .. } | StoreError::Lost => ErrorCode::Internal,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::backend("sqlite").caused_by(e)
    }
}

/// What every store operation answers.
pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn a_backend_failure_keeps_its_source_and_names_it() {
        let e = StoreError::from(rusqlite::Error::QueryReturnedNoRows);
        let cause = e.source().expect("a source");
        assert_eq!(cause.to_string(), "Query returned no rows");
        assert_eq!(
            e.to_string(),
            "storage failure: sqlite: Query returned no rows"
        );
        assert_eq!(e.code(), ErrorCode::Internal);

        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = StoreError::unavailable("redis is unreachable").caused_by(io);
        let kept = match &e {
            StoreError::Unavailable { cause: Some(c), .. } => c.downcast_ref::<std::io::Error>(),
            _ => None,
        };
        assert_eq!(
            kept.map(|k| k.kind()),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(e.to_string(), "redis is unreachable: refused");
        assert!(StoreError::NotMember
            .caused_by(std::fmt::Error)
            .source()
            .is_none());
    }
}
