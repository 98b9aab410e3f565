//! `[conversations]`: how many conversation actors run and how much each queues.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};

const SECTION: Section = Section("conversations");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConversations {
    idle_stop_secs: u64,
    max_active: u64,
    mailbox: u64,
    max_inflight: u64,
    retiring_queue: u64,
}

impl Default for RawConversations {
    fn default() -> Self {
        RawConversations {
            idle_stop_secs: 300,
            max_active: 100_000,
            mailbox: 4096,
            max_inflight: 4096,
            retiring_queue: 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConversationSettings {
    pub idle_stop: Duration,
    pub max_active: usize,
    pub mailbox: usize,
    pub max_inflight: usize,
    pub retiring_queue: usize,
}

impl RawConversations {
    pub(super) fn validate(self) -> Result<ConversationSettings, ConfigError> {
        Ok(ConversationSettings {
            idle_stop: SECTION.positive_secs("idle_stop_secs", self.idle_stop_secs)?,
            max_active: SECTION.positive("max_active", self.max_active)?,
            mailbox: SECTION.positive("mailbox", self.mailbox)?,
            max_inflight: SECTION.positive("max_inflight", self.max_inflight)?,
            retiring_queue: SECTION.positive("retiring_queue", self.retiring_queue)?,
        })
    }
}
