//! `[session]`: one WebSocket session's heartbeat, queues and frame size.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};

const SECTION: Section = Section("session");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSession {
    heartbeat_secs: u64,
    heartbeat_timeout_secs: u64,
    outbound_queue: u64,
    max_frame_bytes: u64,
    mailbox: u64,
    sessions_per_user: u64,
    slow_consumer_close_grace_ms: u64,
    direct_cache: u64,
}

impl Default for RawSession {
    fn default() -> Self {
        RawSession {
            heartbeat_secs: 20,
            heartbeat_timeout_secs: 60,
            outbound_queue: 1024,
            max_frame_bytes: 65_536,
            mailbox: 64,
            sessions_per_user: 16,
            slow_consumer_close_grace_ms: 5000,
            direct_cache: 256,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub heartbeat: Duration,
    pub heartbeat_timeout: Duration,
    pub outbound_queue: usize,
    pub max_frame_bytes: usize,
    pub mailbox: usize,
    pub sessions_per_user: usize,
    pub slow_consumer_close_grace: Duration,
    pub direct_cache: usize,
}

impl RawSession {
    pub(super) fn validate(self) -> Result<SessionSettings, ConfigError> {
        // A timeout within one beat would close healthy sessions.
        if self.heartbeat_timeout_secs <= self.heartbeat_secs {
            return Err(SECTION.invalid(
                "heartbeat_timeout_secs",
                "must be greater than session.heartbeat_secs",
            ));
        }
        Ok(SessionSettings {
            heartbeat: SECTION.positive_secs("heartbeat_secs", self.heartbeat_secs)?,
            heartbeat_timeout: Duration::from_secs(self.heartbeat_timeout_secs),
            outbound_queue: SECTION.positive("outbound_queue", self.outbound_queue)?,
            max_frame_bytes: SECTION.positive("max_frame_bytes", self.max_frame_bytes)?,
            mailbox: SECTION.positive("mailbox", self.mailbox)?,
            sessions_per_user: SECTION.positive("sessions_per_user", self.sessions_per_user)?,
            slow_consumer_close_grace: Duration::from_millis(self.slow_consumer_close_grace_ms),
            direct_cache: SECTION.positive("direct_cache", self.direct_cache)?,
        })
    }
}
