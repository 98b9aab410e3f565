//! `[payments]`: the provider, starting balances and how long a charge is retried.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};

const SECTION: Section = Section("payments");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawPayments {
    provider_url: String,
    initial_balance: i64,
    retry_deadline_secs: u64,
    retry_base_ms: u64,
    retry_max_ms: u64,
    max_active: u64,
    saga_lease_secs: u64,
}

impl Default for RawPayments {
    fn default() -> Self {
        RawPayments {
            provider_url: String::new(),
            initial_balance: 10_000,
            retry_deadline_secs: 60,
            retry_base_ms: 100,
            retry_max_ms: 5000,
            max_active: 10_000,
            saga_lease_secs: 30,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PaymentSettings {
    pub provider_url: Option<String>,
    pub initial_balance: i64,
    /// A charge without a definite answer this long after creation is compensated.
    pub retry_deadline: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Payment actors running at once; more wait in the store.
    pub max_active: usize,
    /// Cluster mode: how long a node's hold on a saga lasts unrenewed.
    pub saga_lease: Duration,
}

impl RawPayments {
    pub(super) fn validate(self) -> Result<PaymentSettings, ConfigError> {
        if self.initial_balance < 0 {
            return Err(SECTION.invalid("initial_balance", "must not be negative"));
        }
        Ok(PaymentSettings {
            provider_url: Some(self.provider_url).filter(|u| !u.trim().is_empty()),
            initial_balance: self.initial_balance,
            retry_deadline: SECTION
                .positive_secs("retry_deadline_secs", self.retry_deadline_secs)?,
            retry_base: SECTION.positive_ms("retry_base_ms", self.retry_base_ms)?,
            retry_max: SECTION.positive_ms("retry_max_ms", self.retry_max_ms)?,
            max_active: SECTION.positive("max_active", self.max_active)?,
            saga_lease: SECTION.positive_secs("saga_lease_secs", self.saga_lease_secs)?,
        })
    }
}
