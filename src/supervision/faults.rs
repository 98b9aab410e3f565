//! Fault injection (`POST /admin/faults`, only with `faults.enabled`): the
//! next `count` requests a chosen actor (or any actor of a kind) handles
//! panic, stop it, or are delayed. Handlers call [`Faults::inject`] first
//! thing; with nothing armed that is one atomic load.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Actor kinds that take faults today.
pub const KINDS: &[&str] = &[
    "conversation",
    "session",
    "directory",
    "breaker",
    "payment",
    "cluster",
];

/// At most this many armed faults; arming one more is refused.
pub const MAX_ARMED: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Panic,
    Stop,
    Delay(Duration),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FaultError {
    #[error("fault injection is disabled (faults.enabled = false)")]
    Disabled,
    #[error("unknown target {0:?}: use <kind> or <kind>:<id> with kind one of conversation, session, directory, breaker, payment")]
    BadTarget(String),
    #[error("count must be between 1 and 1000")]
    BadCount,
    #[error("at most {MAX_ARMED} faults can be armed at once")]
    Full,
}

struct Armed {
    kind: &'static str,
    key: Option<String>,
    fault: Fault,
    remaining: u32,
}

pub struct Faults {
    enabled: bool,
    any: AtomicBool,
    armed: Mutex<Vec<Armed>>,
}

/// What a handler does after [`Faults::inject`].
#[derive(Debug, PartialEq, Eq)]
pub enum Injected {
    Nothing,
    /// Stop the actor now (the request is dropped and answered `internal`).
    Stop,
}

impl Faults {
    pub fn new(enabled: bool) -> Self {
        Faults {
            enabled,
            any: AtomicBool::new(false),
            armed: Mutex::new(Vec::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Arms a fault for `target`: `kind` (any one actor of it) or `kind:id`.
    pub fn arm(&self, target: &str, fault: Fault, count: u32) -> Result<(), FaultError> {
        if !self.enabled {
            return Err(FaultError::Disabled);
        }
        if !(1..=1000).contains(&count) {
            return Err(FaultError::BadCount);
        }
        let (kind, key) = match target.split_once(':') {
            Some((k, id)) if !id.is_empty() => (k, Some(id.to_string())),
            Some(_) => return Err(FaultError::BadTarget(target.into())),
            None => (target, None),
        };
        let kind = KINDS
            .iter()
            .copied()
            .find(|k| *k == kind)
            .ok_or_else(|| FaultError::BadTarget(target.into()))?;
        let mut armed = self.armed.lock();
        if armed.len() >= MAX_ARMED {
            return Err(FaultError::Full);
        }
        armed.push(Armed {
            kind,
            key,
            fault,
            remaining: count,
        });
        self.any.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes one armed fault matching this actor, if any.
    pub fn take(&self, kind: &str, key: impl FnOnce() -> String) -> Option<Fault> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let key = key();
        let mut armed = self.armed.lock();
        let i = armed
            .iter()
            .position(|a| a.kind == kind && a.key.as_deref().is_none_or(|k| k == key))?;
        let fault = armed[i].fault;
        armed[i].remaining -= 1;
        if armed[i].remaining == 0 {
            armed.remove(i);
        }
        self.any.store(!armed.is_empty(), Ordering::Release);
        Some(fault)
    }

    /// Applies a matching fault: panics, sleeps, or asks the caller to stop.
    pub fn inject(&self, kind: &str, key: impl FnOnce() -> String) -> Injected {
        match self.take(kind, key) {
            None => Injected::Nothing,
            Some(Fault::Panic) => panic!("injected fault: panic in a {kind} actor"),
            Some(Fault::Stop) => {
                tracing::warn!(kind, "injected fault: stop");
                Injected::Stop
            }
            Some(Fault::Delay(d)) => {
                // Deliberately blocks the actor's thread: that is the fault.
                std::thread::sleep(d);
                Injected::Nothing
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_and_taking() {
        assert_eq!(
            Faults::new(false).arm("conversation", Fault::Panic, 1),
            Err(FaultError::Disabled)
        );
        let f = Faults::new(true);
        assert!(matches!(
            f.arm("warehouse", Fault::Panic, 1),
            Err(FaultError::BadTarget(_))
        ));
        assert_eq!(
            f.arm("conversation", Fault::Panic, 0),
            Err(FaultError::BadCount)
        );
        f.arm("conversation:abc", Fault::Stop, 2).unwrap();
        assert_eq!(f.take("conversation", || "other".into()), None);
        assert_eq!(f.take("session", || "abc".into()), None);
        assert_eq!(f.take("conversation", || "abc".into()), Some(Fault::Stop));
        assert_eq!(f.take("conversation", || "abc".into()), Some(Fault::Stop));
        assert_eq!(f.take("conversation", || "abc".into()), None);
        f.arm("session", Fault::Delay(Duration::from_millis(1)), 1)
            .unwrap();
        assert_eq!(
            f.take("session", || "any".into()),
            Some(Fault::Delay(Duration::from_millis(1)))
        );
        assert_eq!(f.take("session", || "any".into()), None);
    }
}
