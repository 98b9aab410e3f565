//! `[breaker_payment_provider]`, `[breaker_webhook]`, `[breaker_redis]`: one
//! circuit breaker per remote dependency (resilience4j's settings).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};
use crate::resilience::{BreakerConfig, WindowKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBreaker {
    window: Window,
    window_size: u64,
    failure_rate_threshold: f64,
    slow_call_rate_threshold: f64,
    slow_call_ms: u64,
    minimum_calls: u64,
    wait_open_ms: u64,
    wait_multiplier: f64,
    max_wait_ms: u64,
    jitter: f64,
    half_open_calls: u64,
    call_timeout_ms: u64,
}

#[derive(Debug, Clone)]
pub struct BreakerSettings {
    pub name: &'static str,
    pub config: BreakerConfig,
    pub call_timeout: Duration,
}

/// What `window_size` counts: the last calls, or the last seconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Window {
    Count,
    Time,
}

impl Default for RawBreaker {
    fn default() -> Self {
        RawBreaker {
            window: Window::Count,
            window_size: 20,
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_ms: 2000,
            minimum_calls: 10,
            wait_open_ms: 5000,
            wait_multiplier: 2.0,
            max_wait_ms: 60_000,
            jitter: 0.2,
            half_open_calls: 3,
            call_timeout_ms: 3000,
        }
    }
}

impl RawBreaker {
    /// Redis is on the path of every message: probe again soon after an
    /// outage, and never wait long once it is back.
    pub(super) fn redis() -> Self {
        RawBreaker {
            wait_open_ms: 1000,
            max_wait_ms: 10_000,
            call_timeout_ms: 2000,
            ..RawBreaker::default()
        }
    }

    /// `name`: the breaker as metrics and `/admin/breakers` show it;
    /// `section`: where its keys are in the config.
    pub(super) fn validate(
        self,
        name: &'static str,
        section: Section,
    ) -> Result<BreakerSettings, ConfigError> {
        let size = section.positive("window_size", self.window_size)?;
        let window = match self.window {
            Window::Count => WindowKind::Count(size),
            Window::Time => WindowKind::Time(size as u64),
        };
        for (key, v) in [
            ("failure_rate_threshold", self.failure_rate_threshold),
            ("slow_call_rate_threshold", self.slow_call_rate_threshold),
        ] {
            if !(0.0..=100.0).contains(&v) || v == 0.0 {
                return Err(section.invalid(key, "must be a percentage above 0 and at most 100"));
            }
        }
        let jitter = section.fraction("jitter", self.jitter)?;
        if self.wait_multiplier < 1.0 {
            return Err(section.invalid("wait_multiplier", "must be at least 1.0"));
        }
        if self.max_wait_ms < self.wait_open_ms {
            return Err(section.invalid("max_wait_ms", "must be at least wait_open_ms"));
        }
        Ok(BreakerSettings {
            name,
            config: BreakerConfig {
                window,
                failure_rate_threshold: self.failure_rate_threshold,
                slow_call_rate_threshold: self.slow_call_rate_threshold,
                slow_call_duration: section.positive_ms("slow_call_ms", self.slow_call_ms)?,
                minimum_calls: section.positive("minimum_calls", self.minimum_calls)?,
                wait_open: section.positive_ms("wait_open_ms", self.wait_open_ms)?,
                wait_multiplier: self.wait_multiplier,
                max_wait: Duration::from_millis(self.max_wait_ms),
                jitter,
                half_open_calls: section.positive("half_open_calls", self.half_open_calls)?,
            },
            call_timeout: section.positive_ms("call_timeout_ms", self.call_timeout_ms)?,
        })
    }
}
