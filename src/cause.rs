//! [`Cause`]: a source error that a `Clone` error enum can keep. The store's
//! and the breaker's errors are cloned (one failed commit fails every write of
//! its batch; one breaker answer can reach several waiters), and most source
//! errors (`rusqlite::Error`, `redis::RedisError`, `std::io::Error`) are not
//! `Clone`, so the source is shared behind an `Arc`. `Error::source` reaches
//! through it, so a log line or a caller walking the chain still sees the
//! original error and its own sources.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    pub fn new(e: impl Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(e))
    }

    /// The original error, when it is an `E`.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// The cause stands for the original error: its source is the original's.
impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// Errors holding a cause compare by what they say: two failures with the
/// same text are the same failure to every caller that compares them (tests).
impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_original_and_its_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "no entry");
        let cause = Cause::new(io);
        assert_eq!(cause.to_string(), "no entry");
        let original = cause.downcast_ref::<std::io::Error>().map(|e| e.kind());
        assert_eq!(original, Some(std::io::ErrorKind::PermissionDenied));
        assert_eq!(cause.clone(), cause);
    }
}
