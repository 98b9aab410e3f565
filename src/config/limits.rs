//! `[limits]`: what one client may ask for, how fast, and how many at once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};

const SECTION: Section = Section("limits");

/// Counters kept as u32 (rates, bursts, failures) stay below this.
const MAX_COUNT: u32 = 1_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    history_default_limit: u64,
    max_group_members: u64,
    max_http_body_bytes: u64,
    http_body_timeout_ms: u64,
    frames_per_sec: u64,
    frame_burst: u64,
    rate_limited_close_after: u64,
    http_writes_per_sec: u64,
    http_write_burst: u64,
    http_address_writes_per_sec: u64,
    http_address_write_burst: u64,
    http_write_tracker_capacity: u64,
    login_failures_per_address: u64,
    /// Was `login_failures_per_account` (per account alone) before the
    /// throttle counted pairs; the old key still reads as this one.
    #[serde(alias = "login_failures_per_account")]
    login_failures_per_account_address: u64,
    login_first_delay_secs: u64,
    login_window_secs: u64,
    login_tracker_capacity: u64,
    max_connections: u64,
    max_conversations_per_user: u64,
    max_invitations_per_user: u64,
    group_consent: bool,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            history_default_limit: 100,
            max_group_members: 1000,
            max_http_body_bytes: 65_536,
            http_body_timeout_ms: 10_000,
            frames_per_sec: 50,
            frame_burst: 200,
            rate_limited_close_after: 50,
            http_writes_per_sec: 10,
            http_write_burst: 50,
            http_address_writes_per_sec: 100,
            http_address_write_burst: 500,
            http_write_tracker_capacity: 100_000,
            login_failures_per_address: 20,
            login_failures_per_account_address: 5,
            login_first_delay_secs: 5,
            login_window_secs: 300,
            login_tracker_capacity: 100_000,
            max_connections: 20_000,
            max_conversations_per_user: 5_000,
            max_invitations_per_user: 100,
            group_consent: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub history_default_limit: u32,
    pub max_group_members: usize,
    pub max_http_body_bytes: usize,
    /// Time for a whole request body to arrive once its headers have; a
    /// body still incomplete then gets 408 and the connection is closed.
    pub http_body_timeout: Duration,
    /// Client frames per second per session (token bucket rate); 0: no limit.
    pub frames_per_sec: u32,
    pub frame_burst: u32,
    /// Refused frames, without a second's pause, before the session is closed.
    pub rate_limited_close_after: u32,
    /// HTTP writes behind a token (`limits::WriteLimiter`), per user and per
    /// client address: token bucket rate (0: no limit) and burst.
    pub http_writes_per_sec: u32,
    pub http_write_burst: u32,
    pub http_address_writes_per_sec: u32,
    pub http_address_write_burst: u32,
    /// Users, and addresses, whose write buckets are kept.
    pub http_write_tracker_capacity: usize,
    /// Failed logins before logins wait (`limits::LoginThrottle`); 0: not
    /// counted.
    pub login_failures_per_address: u32,
    pub login_failures_per_account_address: u32,
    /// The first wait once a count is reached; each failure after doubles it.
    pub login_first_delay: Duration,
    /// The longest wait, and how long failures are remembered.
    pub login_window: Duration,
    pub login_tracker_capacity: usize,
    /// WebSocket sessions on this node; an upgrade beyond gets 503.
    pub max_connections: usize,
    /// A user in this many conversations may not start another.
    pub max_conversations_per_user: usize,
    /// Pending invitations one user holds; a new one past it drops their
    /// oldest.
    pub max_invitations_per_user: usize,
    /// SPEC v2: only contacts add a user to a group; anyone else invites.
    /// false: anyone adds anyone (v1, for clients written before v2).
    pub group_consent: bool,
}

impl RawLimits {
    pub(super) fn validate(self) -> Result<LimitSettings, ConfigError> {
        let history_default_limit = match self.history_default_limit {
            n @ 1..=500 => n as u32,
            _ => return Err(SECTION.invalid("history_default_limit", "must be between 1 and 500")),
        };
        let login_window_secs =
            SECTION.positive_at_most("login_window_secs", self.login_window_secs, 86_400)?;
        let login_first_delay_secs = SECTION.positive_at_most(
            "login_first_delay_secs",
            self.login_first_delay_secs,
            login_window_secs,
        )?;
        let http_body_timeout_ms =
            SECTION.positive_at_most("http_body_timeout_ms", self.http_body_timeout_ms, 600_000)?;
        Ok(LimitSettings {
            history_default_limit,
            max_group_members: SECTION.positive("max_group_members", self.max_group_members)?,
            max_http_body_bytes: SECTION
                .positive("max_http_body_bytes", self.max_http_body_bytes)?,
            http_body_timeout: Duration::from_millis(http_body_timeout_ms.into()),
            frames_per_sec: SECTION.at_most("frames_per_sec", self.frames_per_sec, MAX_COUNT)?,
            frame_burst: SECTION.positive_at_most("frame_burst", self.frame_burst, MAX_COUNT)?,
            rate_limited_close_after: SECTION.positive_at_most(
                "rate_limited_close_after",
                self.rate_limited_close_after,
                MAX_COUNT,
            )?,
            http_writes_per_sec: SECTION.at_most(
                "http_writes_per_sec",
                self.http_writes_per_sec,
                MAX_COUNT,
            )?,
            http_write_burst: SECTION.positive_at_most(
                "http_write_burst",
                self.http_write_burst,
                MAX_COUNT,
            )?,
            http_address_writes_per_sec: SECTION.at_most(
                "http_address_writes_per_sec",
                self.http_address_writes_per_sec,
                MAX_COUNT,
            )?,
            http_address_write_burst: SECTION.positive_at_most(
                "http_address_write_burst",
                self.http_address_write_burst,
                MAX_COUNT,
            )?,
            http_write_tracker_capacity: SECTION.positive(
                "http_write_tracker_capacity",
                self.http_write_tracker_capacity,
            )?,
            login_failures_per_address: SECTION.at_most(
                "login_failures_per_address",
                self.login_failures_per_address,
                MAX_COUNT,
            )?,
            login_failures_per_account_address: SECTION.at_most(
                "login_failures_per_account_address",
                self.login_failures_per_account_address,
                MAX_COUNT,
            )?,
            login_first_delay: Duration::from_secs(login_first_delay_secs.into()),
            login_window: Duration::from_secs(login_window_secs.into()),
            login_tracker_capacity: SECTION
                .positive("login_tracker_capacity", self.login_tracker_capacity)?,
            max_connections: SECTION.positive("max_connections", self.max_connections)?,
            max_conversations_per_user: SECTION.positive(
                "max_conversations_per_user",
                self.max_conversations_per_user,
            )?,
            max_invitations_per_user: SECTION
                .positive("max_invitations_per_user", self.max_invitations_per_user)?,
            group_consent: self.group_consent,
        })
    }
}
