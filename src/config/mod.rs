//! Settings: config.toml (every key optional, defaults in each section's
//! file) overlaid with `PARLEY__SECTION__KEY` environment variables, then
//! validated once into `Settings`. An invalid value stops start-up with an
//! error naming its key.
//!
//! One file per section holds its raw form (as written, with its defaults),
//! its validated form and the rules between them; this file merges the
//! sources and puts the sections together.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Value;

use crate::domain::Username;

mod alerts;
mod auth;
mod breaker;
mod conversations;
mod limits;
mod payments;
mod server;
mod session;
mod storage;
mod supervision;
mod telemetry;
#[cfg(test)]
mod tests;

pub use auth::{AuthSettings, Secret};
pub use breaker::BreakerSettings;
pub use conversations::ConversationSettings;
pub use limits::LimitSettings;
pub use payments::PaymentSettings;
pub use server::ServerSettings;
pub use session::SessionSettings;
pub use storage::{StorageBackend, StorageSettings, Synchronous};
pub use supervision::SupervisionSettings;
pub use telemetry::LogFormat;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// The file as written: every key optional, unknown keys refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Raw {
    server: server::RawServer,
    storage: storage::RawStorage,
    auth: auth::RawAuth,
    session: session::RawSession,
    conversations: conversations::RawConversations,
    limits: limits::RawLimits,
    payments: payments::RawPayments,
    faults: supervision::RawFaults,
    supervision: supervision::RawSupervision,
    breaker_payment_provider: breaker::RawBreaker,
    breaker_webhook: breaker::RawBreaker,
    breaker_redis: breaker::RawBreaker,
    alerts: alerts::RawAlerts,
    telemetry: telemetry::RawTelemetry,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            server: Default::default(),
            storage: Default::default(),
            auth: Default::default(),
            session: Default::default(),
            conversations: Default::default(),
            limits: Default::default(),
            payments: Default::default(),
            faults: Default::default(),
            supervision: Default::default(),
            breaker_payment_provider: Default::default(),
            breaker_webhook: Default::default(),
            breaker_redis: breaker::RawBreaker::redis(),
            alerts: Default::default(),
            telemetry: Default::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
    pub session: SessionSettings,
    pub conversations: ConversationSettings,
    pub limits: LimitSettings,
    pub payments: PaymentSettings,
    pub faults_enabled: bool,
    pub supervision: SupervisionSettings,
    /// One circuit breaker per remote dependency.
    pub breakers: Vec<BreakerSettings>,
    /// Alert rules, evaluated every second.
    pub alert_rules: Vec<crate::alerts::Rule>,
    /// Where firing and resolved alerts are posted (through the webhook breaker).
    pub alert_webhook: Option<String>,
    pub log_format: LogFormat,
    /// Share of traces kept outright for `/admin/traces` (beside those kept
    /// for a reason: errors, payments, restarts, slow hops, client-given ids).
    pub trace_sample_percent: f64,
    /// Bytes of the ring of recent hops of all other traces (0: none).
    pub trace_recent_bytes: usize,
    /// A hop slower than this keeps its trace (zero: never).
    pub trace_keep_slow: Duration,
    /// Base URL of an OTLP/HTTP collector spans are exported to (JSON); None: no export.
    pub otlp_endpoint: Option<String>,
}

impl Settings {
    /// Reads the file (when it exists; a missing default file means all
    /// defaults, a missing explicit file is an error), applies the environment
    /// and validates.
    pub fn load(path: &Path, must_exist: bool) -> Result<Settings, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => String::new(),
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("PARLEY__"))
            .collect();
        Self::from_sources(&text, &env).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Defaults, then the TOML text, then `PARLEY__SECTION__KEY` pairs.
    pub fn from_sources(
        toml_text: &str,
        env: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let file: Value = toml::from_str(toml_text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let defaults =
            Value::try_from(Raw::default()).map_err(|e| invalid("(defaults)", e.to_string()))?;
        let mut merged = defaults.clone();
        merge_file(&mut merged, file)?;
        for (name, value) in env {
            apply_env(&mut merged, name, value)?;
        }
        read(merged, &defaults)?.validate()
    }

    pub fn is_admin(&self, user: &Username) -> bool {
        self.auth.admins.contains(user)
    }
}

/// Overlays the file on the defaults, refusing keys the defaults do not have.
fn merge_file(defaults: &mut Value, file: Value) -> Result<(), ConfigError> {
    let (Value::Table(base), Value::Table(file)) = (defaults, file) else {
        return Err(invalid("(config)", "the file must be a TOML table"));
    };
    for (section, body) in file {
        let Some(Value::Table(base_section)) = base.get_mut(&section) else {
            return Err(invalid(&section, "unknown section"));
        };
        let Value::Table(body) = body else {
            return Err(invalid(&section, "must be a table"));
        };
        for (key, value) in body {
            let name = format!("{section}.{key}");
            let Some(slot) = base_section.get_mut(&key) else {
                return Err(invalid(&name, "unknown setting"));
            };
            if std::mem::discriminant(slot) != std::mem::discriminant(&value) {
                return Err(invalid(
                    &name,
                    format!(
                        "expected a {}, found a {}",
                        slot.type_str(),
                        value.type_str()
                    ),
                ));
            }
            *slot = value;
        }
    }
    Ok(())
}

/// `PARLEY__SERVER__LISTEN=...`: the value is read as the type the key has.
fn apply_env(merged: &mut Value, name: &str, value: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = name
        .trim_start_matches("PARLEY__")
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let [section, key] = path.as_slice() else {
        return Err(invalid(name, "expected PARLEY__<SECTION>__<KEY>"));
    };
    let slot = merged
        .get_mut(section.as_str())
        .and_then(|s| s.get_mut(key.as_str()))
        .ok_or_else(|| invalid(name, "unknown setting"))?;
    let bad = |what: &str| invalid(name, format!("expected {what}, found {value:?}"));
    *slot = match slot {
        Value::String(_) => Value::String(value.to_string()),
        Value::Integer(_) => Value::Integer(value.trim().parse().map_err(|_| bad("an integer"))?),
        Value::Boolean(_) => {
            Value::Boolean(value.trim().parse().map_err(|_| bad("true or false"))?)
        }
        Value::Float(_) => Value::Float(value.trim().parse().map_err(|_| bad("a number"))?),
        Value::Array(_) => Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => return Err(invalid(name, "cannot be set from the environment")),
    };
    Ok(())
}

/// The merged table as `Raw`. Keys and types were checked while merging, so
/// what serde can still refuse is a value that is not one of a key's choices
/// (`storage.backend = "mongo"`). Its message says the value and the choices
/// but not where they are, so the key is found by reading each value that
/// differs from its default alone over the defaults: the first one refused
/// is named. This runs only when start-up is failing anyway.
fn read(merged: Value, defaults: &Value) -> Result<Raw, ConfigError> {
    let refused = match merged.clone().try_into::<Raw>() {
        Ok(raw) => return Ok(raw),
        Err(e) => e,
    };
    let sections = merged.as_table().into_iter().flatten();
    for (section, keys) in sections {
        for (key, value) in keys.as_table().into_iter().flatten() {
            let mut alone = defaults.clone();
            match alone.get_mut(section).and_then(|s| s.get_mut(key)) {
                Some(slot) if slot != value => *slot = value.clone(),
                _ => continue,
            }
            if let Err(e) = alone.try_into::<Raw>() {
                return Err(invalid(&format!("{section}.{key}"), e.message()));
            }
        }
    }
    Err(invalid("(config)", refused.message()))
}

impl Raw {
    fn validate(self) -> Result<Settings, ConfigError> {
        let storage = self.storage.validate()?;
        let alerts = self.alerts.validate()?;
        let telemetry = self.telemetry.validate()?;
        Ok(Settings {
            server: self.server.validate()?,
            auth: self.auth.validate(storage.backend)?,
            storage,
            session: self.session.validate()?,
            conversations: self.conversations.validate()?,
            limits: self.limits.validate()?,
            payments: self.payments.validate()?,
            faults_enabled: self.faults.enabled,
            supervision: self.supervision.validate()?,
            breakers: vec![
                self.breaker_payment_provider
                    .validate("payment_provider", Section("breaker_payment_provider"))?,
                self.breaker_webhook
                    .validate("webhook", Section("breaker_webhook"))?,
                self.breaker_redis
                    .validate("redis", Section("breaker_redis"))?,
            ],
            alert_rules: alerts.rules,
            alert_webhook: alerts.webhook,
            log_format: telemetry.log_format,
            trace_sample_percent: telemetry.trace_sample_percent,
            trace_recent_bytes: telemetry.trace_recent_bytes,
            trace_keep_slow: telemetry.trace_keep_slow,
            otlp_endpoint: telemetry.otlp_endpoint,
        })
    }
}

/// One section's name, so its checks name a key as a user writes it
/// (`storage.write_queue`) without spelling the section at every check.
#[derive(Debug, Clone, Copy)]
struct Section(&'static str);

impl Section {
    fn invalid(self, key: &str, reason: impl Into<String>) -> ConfigError {
        invalid(&format!("{}.{key}", self.0), reason)
    }

    /// A count or size that must not be 0.
    fn positive(self, key: &str, v: u64) -> Result<usize, ConfigError> {
        if v == 0 {
            return Err(self.invalid(key, "must be greater than 0"));
        }
        usize::try_from(v).map_err(|_| self.invalid(key, "is too large"))
    }

    /// A non-zero `_ms` key.
    fn positive_ms(self, key: &str, v: u64) -> Result<Duration, ConfigError> {
        self.positive(key, v).map(|_| Duration::from_millis(v))
    }

    /// A non-zero `_secs` key.
    fn positive_secs(self, key: &str, v: u64) -> Result<Duration, ConfigError> {
        self.positive(key, v).map(|_| Duration::from_secs(v))
    }

    fn at_most(self, key: &str, v: u64, max: u32) -> Result<u32, ConfigError> {
        u32::try_from(v)
            .ok()
            .filter(|v| *v <= max)
            .ok_or_else(|| self.invalid(key, format!("must be at most {max}")))
    }

    /// Not 0 (said first), then at most `max`.
    fn positive_at_most(self, key: &str, v: u64, max: u32) -> Result<u32, ConfigError> {
        self.positive(key, v)?;
        self.at_most(key, v, max)
    }

    /// Any value a u32 holds.
    fn small(self, key: &str, v: u64) -> Result<u32, ConfigError> {
        u32::try_from(v).map_err(|_| self.invalid(key, "is too large"))
    }

    /// A jitter: a share between 0.0 and 1.0.
    fn fraction(self, key: &str, v: f64) -> Result<f64, ConfigError> {
        if (0.0..=1.0).contains(&v) {
            Ok(v)
        } else {
            Err(self.invalid(key, "must be between 0.0 and 1.0"))
        }
    }
}
