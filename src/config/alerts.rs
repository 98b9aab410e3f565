//! `[alerts]`: the alert rules and where their notifications are posted.

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};
use crate::alerts::Rule;

const SECTION: Section = Section("alerts");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAlerts {
    rules: Vec<String>,
    webhook_url: String,
}

impl Default for RawAlerts {
    fn default() -> Self {
        RawAlerts {
            rules: vec![
                "error_rate|errors|rate|60|>|5|60|warning".into(),
                "slow_delivery|delivery_p99_ms|max|60|>|100|30|warning".into(),
                "restart_storm|actor_restarts|sum|60|>|20|0|critical".into(),
                "breaker_open|breaker_open|sum|30|>|0|0|critical".into(),
                "payment_failures|payments_failed|sum|300|>|10|60|warning".into(),
                "redis_down|redis_down|max|10|>|0|0|critical".into(),
            ],
            webhook_url: String::new(),
        }
    }
}

/// `Settings::alert_rules` and `Settings::alert_webhook`.
pub(super) struct AlertSettings {
    pub(super) rules: Vec<Rule>,
    pub(super) webhook: Option<String>,
}

impl RawAlerts {
    pub(super) fn validate(self) -> Result<AlertSettings, ConfigError> {
        Ok(AlertSettings {
            rules: self
                .rules
                .iter()
                .map(|r| Rule::parse(r).map_err(|e| SECTION.invalid("rules", e)))
                .collect::<Result<_, _>>()?,
            webhook: Some(self.webhook_url.trim().to_string()).filter(|u| !u.is_empty()),
        })
    }
}
