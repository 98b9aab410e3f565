//! What can stop a load run before it reports.

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid argument: {0}")]
    Argument(String),
    #[error("target {0} is not a loopback address (127.0.0.0/8 or ::1); pass --allow-remote to load another machine")]
    NotLoopback(String),
    #[error("cannot reach {what}: {detail}")]
    Connect { what: String, detail: String },
    #[error("{what} answered HTTP {status}: {body}")]
    Http {
        what: String,
        status: u16,
        body: String,
    },
    #[error("WebSocket: {0}")]
    WebSocket(String),
    #[error("set-up: {0}")]
    Setup(String),
    #[error("writing the report: {0}")]
    Report(#[from] std::io::Error),
}
