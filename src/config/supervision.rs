//! `[supervision]`: restart intensity and backoff of the supervision tree,
//! and `[faults]`: whether faults may be injected into it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};
use crate::supervision::policy::{Backoff, Intensity, Strategy};
use crate::supervision::SupervisorPolicy;

const SECTION: Section = Section("supervision");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSupervision {
    root_max_restarts: u64,
    root_window_secs: u64,
    conversations_max_restarts: u64,
    conversations_window_secs: u64,
    sessions_max_restarts: u64,
    sessions_window_secs: u64,
    payments_max_restarts: u64,
    payments_window_secs: u64,
    backoff_base_ms: u64,
    backoff_max_ms: u64,
    backoff_jitter: f64,
    backoff_reset_secs: u64,
    tree_max_children: u64,
    poison_tries: u64,
}

impl Default for RawSupervision {
    fn default() -> Self {
        RawSupervision {
            root_max_restarts: 3,
            root_window_secs: 60,
            conversations_max_restarts: 200,
            conversations_window_secs: 10,
            sessions_max_restarts: 1000,
            sessions_window_secs: 10,
            payments_max_restarts: 500,
            payments_window_secs: 10,
            backoff_base_ms: 1,
            backoff_max_ms: 2000,
            backoff_jitter: 0.2,
            backoff_reset_secs: 30,
            tree_max_children: 50,
            poison_tries: 3,
        }
    }
}

/// `POST /admin/faults` is refused unless `faults.enabled`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawFaults {
    pub(super) enabled: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct SupervisionSettings {
    /// The root: store writer, directory, conversations, sessions, breakers, payments.
    pub root: SupervisorPolicy,
    /// The dynamic supervisor of conversation actors.
    pub conversations: SupervisorPolicy,
    /// The dynamic supervisor of session actors.
    pub sessions: SupervisorPolicy,
    /// The dynamic supervisor of payment actors.
    pub payments: SupervisorPolicy,
    /// Children listed per dynamic node in `GET /admin/supervision`.
    pub tree_max_children: usize,
}

impl RawSupervision {
    pub(super) fn validate(self) -> Result<SupervisionSettings, ConfigError> {
        let jitter = SECTION.fraction("backoff_jitter", self.backoff_jitter)?;
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(SECTION.invalid(
                "backoff_max_ms",
                "must be at least supervision.backoff_base_ms",
            ));
        }
        let backoff = Backoff {
            base: Duration::from_millis(self.backoff_base_ms),
            max: Duration::from_millis(self.backoff_max_ms),
            jitter,
            reset_after: Duration::from_secs(self.backoff_reset_secs),
        };
        let poison_tries = SECTION.small(
            "poison_tries",
            SECTION.positive("poison_tries", self.poison_tries)? as u64,
        )?;
        // Every supervisor has the same two keys, `<name>_max_restarts` and
        // `<name>_window_secs`, and shares the backoff.
        let policy = |name: &str, max_restarts: u64, window_secs: u64| {
            Ok::<_, ConfigError>(SupervisorPolicy {
                poison_tries,
                strategy: Strategy::OneForOne,
                intensity: Intensity {
                    max_restarts: SECTION.small(&format!("{name}_max_restarts"), max_restarts)?,
                    window: SECTION.positive_secs(&format!("{name}_window_secs"), window_secs)?,
                },
                backoff,
            })
        };
        Ok(SupervisionSettings {
            root: policy("root", self.root_max_restarts, self.root_window_secs)?,
            conversations: policy(
                "conversations",
                self.conversations_max_restarts,
                self.conversations_window_secs,
            )?,
            sessions: policy(
                "sessions",
                self.sessions_max_restarts,
                self.sessions_window_secs,
            )?,
            payments: policy(
                "payments",
                self.payments_max_restarts,
                self.payments_window_secs,
            )?,
            tree_max_children: SECTION.positive("tree_max_children", self.tree_max_children)?,
        })
    }
}
