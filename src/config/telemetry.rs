//! `[telemetry]`: the log format, which traces are kept and where spans are exported.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};

const SECTION: Section = Section("telemetry");

/// The largest ring of recent trace hops (`telemetry.trace_recent_mib`).
const MAX_TRACE_RECENT_MIB: u64 = 1024;

/// The slowest `telemetry.trace_keep_slow_ms` (a hop slower keeps its trace).
const MAX_KEEP_SLOW_MS: u64 = 60_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTelemetry {
    log_format: LogFormat,
    trace_sample_percent: f64,
    trace_recent_mib: u64,
    trace_keep_slow_ms: u64,
    otlp_endpoint: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            log_format: LogFormat::Pretty,
            trace_sample_percent: 0.0,
            trace_recent_mib: (crate::traces::DEFAULT_RECENT_BYTES >> 20) as u64,
            trace_keep_slow_ms: crate::traces::DEFAULT_KEEP_SLOW.as_millis() as u64,
            otlp_endpoint: String::new(),
        }
    }
}

/// `telemetry.log_format`: how log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The telemetry fields of `Settings` (documented there).
pub(super) struct TelemetrySettings {
    pub(super) log_format: LogFormat,
    pub(super) trace_sample_percent: f64,
    pub(super) trace_recent_bytes: usize,
    pub(super) trace_keep_slow: Duration,
    pub(super) otlp_endpoint: Option<String>,
}

impl RawTelemetry {
    pub(super) fn validate(self) -> Result<TelemetrySettings, ConfigError> {
        let otlp_endpoint = match self.otlp_endpoint.trim() {
            "" => None,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.to_string())
            }
            other => {
                return Err(
                    SECTION.invalid("otlp_endpoint", format!("{other:?} is not an http(s) URL"))
                )
            }
        };
        if !(0.0..=100.0).contains(&self.trace_sample_percent) {
            return Err(SECTION.invalid("trace_sample_percent", "must be between 0 and 100"));
        }
        if self.trace_recent_mib > MAX_TRACE_RECENT_MIB {
            return Err(SECTION.invalid(
                "trace_recent_mib",
                format!("must be between 0 and {MAX_TRACE_RECENT_MIB}"),
            ));
        }
        if self.trace_keep_slow_ms > MAX_KEEP_SLOW_MS {
            return Err(SECTION.invalid(
                "trace_keep_slow_ms",
                format!("must be between 0 (never) and {MAX_KEEP_SLOW_MS}"),
            ));
        }
        Ok(TelemetrySettings {
            log_format: self.log_format,
            trace_sample_percent: self.trace_sample_percent,
            trace_recent_bytes: (self.trace_recent_mib as usize) << 20,
            trace_keep_slow: Duration::from_millis(self.trace_keep_slow_ms),
            otlp_endpoint,
        })
    }
}
