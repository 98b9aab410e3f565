//! Settings: config.toml (every key optional, defaults below) overlaid with
//! `PARLEY__SECTION__KEY` environment variables, then validated once into
//! `Settings`. An invalid value stops start-up with an error naming its key.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Value;

use crate::domain::Username;
use crate::resilience::{BreakerConfig, WindowKind};
use crate::supervision::policy::{Backoff, Intensity, Strategy};
use crate::supervision::SupervisorPolicy;

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
    server: RawServer,
    storage: RawStorage,
    auth: RawAuth,
    session: RawSession,
    conversations: RawConversations,
    limits: RawLimits,
    payments: RawPayments,
    faults: RawFaults,
    supervision: RawSupervision,
    breaker_payment_provider: RawBreaker,
    breaker_webhook: RawBreaker,
    breaker_redis: RawBreaker,
    alerts: RawAlerts,
    telemetry: RawTelemetry,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            server: RawServer::default(),
            storage: RawStorage::default(),
            auth: RawAuth::default(),
            session: RawSession::default(),
            conversations: RawConversations::default(),
            limits: RawLimits::default(),
            payments: RawPayments::default(),
            faults: RawFaults::default(),
            supervision: RawSupervision::default(),
            breaker_payment_provider: RawBreaker::default(),
            breaker_webhook: RawBreaker::default(),
            // Redis is on the path of every message: probe again soon after
            // an outage, and never wait long once it is back.
            breaker_redis: RawBreaker {
                wait_open_ms: 1000,
                max_wait_ms: 10_000,
                call_timeout_ms: 2000,
                ..RawBreaker::default()
            },
            alerts: RawAlerts::default(),
            telemetry: RawTelemetry::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: String,
    node_id: String,
    workers: u64,
    shutdown_grace_ms: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            node_id: String::new(),
            workers: 0,
            shutdown_grace_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStorage {
    backend: String,
    sqlite_path: String,
    sqlite_synchronous: String,
    redis_url: String,
    redis_prefix: String,
    redis_timeout_ms: u64,
    redis_node_ttl_secs: u64,
    write_queue: u64,
    group_commit_max_batch: u64,
    group_commit_window_us: u64,
    read_connections: u64,
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            backend: "sqlite".into(),
            sqlite_path: "data/parley.db".into(),
            sqlite_synchronous: "full".into(),
            redis_url: "redis://127.0.0.1:6379/".into(),
            redis_prefix: "parley:".into(),
            redis_timeout_ms: 2000,
            redis_node_ttl_secs: 10,
            write_queue: 65_536,
            group_commit_max_batch: 1024,
            group_commit_window_us: 0,
            read_connections: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAuth {
    token_secret: String,
    allow_dev_secret: bool,
    token_ttl_secs: u64,
    admins: Vec<String>,
}

impl Default for RawAuth {
    fn default() -> Self {
        RawAuth {
            token_secret: String::new(),
            allow_dev_secret: false,
            token_ttl_secs: 86_400,
            admins: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSession {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConversations {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    history_default_limit: u64,
    max_group_members: u64,
    max_http_body_bytes: u64,
    frames_per_sec: u64,
    frame_burst: u64,
    rate_limited_close_after: u64,
    login_failures_per_address: u64,
    login_failures_per_account: u64,
    login_window_secs: u64,
    login_tracker_capacity: u64,
    max_connections: u64,
    max_conversations_per_user: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            history_default_limit: 100,
            max_group_members: 1000,
            max_http_body_bytes: 65_536,
            frames_per_sec: 50,
            frame_burst: 200,
            rate_limited_close_after: 50,
            login_failures_per_address: 20,
            login_failures_per_account: 5,
            login_window_secs: 300,
            login_tracker_capacity: 100_000,
            max_connections: 20_000,
            max_conversations_per_user: 5_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPayments {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSupervision {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawAlerts {
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

/// One circuit breaker (resilience4j's settings).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawBreaker {
    window: String,
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

impl Default for RawBreaker {
    fn default() -> Self {
        RawBreaker {
            window: "count".into(),
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

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawFaults {
    enabled: bool,
}

/// The largest ring of recent trace hops (`telemetry.trace_recent_mib`).
const MAX_TRACE_RECENT_MIB: u64 = 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTelemetry {
    log_format: String,
    trace_sample_percent: f64,
    trace_recent_mib: u64,
    trace_keep_slow_ms: u64,
    otlp_endpoint: String,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        RawTelemetry {
            log_format: "pretty".into(),
            trace_sample_percent: 0.0,
            trace_recent_mib: (crate::traces::DEFAULT_RECENT_BYTES >> 20) as u64,
            trace_keep_slow_ms: crate::traces::DEFAULT_KEEP_SLOW.as_millis() as u64,
            otlp_endpoint: String::new(),
        }
    }
}

/// The signing secret; its Debug never shows the value.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of at least 32 bytes (None: too short to sign tokens).
    pub fn new(bytes: Vec<u8>) -> Option<Secret> {
        (bytes.len() >= 32).then_some(Secret(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Used when `auth.token_secret` is empty: fine on a laptop, announced loudly.
const DEV_SECRET: &[u8] = b"parley-development-secret-do-not-use-in-production";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// fsync the WAL at every commit: an ack survives power loss.
    Full,
    /// fsync at checkpoints only: an ack survives a process crash, not power loss.
    Normal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub node_id: String,
    /// HTTP worker threads; also the number of arbiters conversations spread over.
    pub workers: usize,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct StorageSettings {
    pub backend: StorageBackend,
    /// The shared Redis server (backend `Redis`).
    pub redis_url: String,
    /// Prefix of every Redis key and channel.
    pub redis_prefix: String,
    /// How long one Redis command may take before it counts as failed.
    pub redis_timeout: Duration,
    /// A node whose heartbeat is older than this is dead: its presence is cleared.
    pub redis_node_ttl: Duration,
    pub sqlite_path: PathBuf,
    pub synchronous: Synchronous,
    pub write_queue: usize,
    pub group_commit_max_batch: usize,
    pub group_commit_window: Duration,
    pub read_connections: usize,
}

/// Where users, conversations, history and payments live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// One process, an embedded database file.
    Sqlite,
    /// A cluster of nodes sharing one Redis server.
    Redis,
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub token_secret: Secret,
    /// The published development secret (`auth.allow_dev_secret`).
    pub using_dev_secret: bool,
    /// No secret given, one node with SQLite: the secret is read from (or
    /// first written to) `token_secret` beside the database at start-up.
    pub secret_from_data_dir: bool,
    pub token_ttl: Duration,
    pub admins: BTreeSet<Username>,
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

#[derive(Debug, Clone)]
pub struct ConversationSettings {
    pub idle_stop: Duration,
    pub max_active: usize,
    pub mailbox: usize,
    pub max_inflight: usize,
    pub retiring_queue: usize,
}

#[derive(Debug, Clone)]
pub struct LimitSettings {
    pub history_default_limit: u32,
    pub max_group_members: usize,
    pub max_http_body_bytes: usize,
    /// Client frames per second per session (token bucket rate); 0: no limit.
    pub frames_per_sec: u32,
    pub frame_burst: u32,
    /// Refused frames, without a second's pause, before the session is closed.
    pub rate_limited_close_after: u32,
    /// Failed logins per window before 429; 0: not counted.
    pub login_failures_per_address: u32,
    pub login_failures_per_account: u32,
    pub login_window: Duration,
    pub login_tracker_capacity: usize,
    /// WebSocket sessions on this node; an upgrade beyond gets 503.
    pub max_connections: usize,
    /// A user in this many conversations may not start another.
    pub max_conversations_per_user: usize,
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
        let mut merged =
            Value::try_from(Raw::default()).map_err(|e| invalid("(defaults)", e.to_string()))?;
        merge_file(&mut merged, file)?;
        for (name, value) in env {
            apply_env(&mut merged, name, value)?;
        }
        let raw: Raw = merged
            .try_into()
            .map_err(|e: toml::de::Error| invalid("(config)", e.message().to_string()))?;
        validate(raw)
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

fn positive(key: &str, v: u64) -> Result<usize, ConfigError> {
    if v == 0 {
        return Err(invalid(key, "must be greater than 0"));
    }
    usize::try_from(v).map_err(|_| invalid(key, "is too large"))
}

fn at_most(key: &str, v: u64, max: u32) -> Result<u32, ConfigError> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| invalid(key, format!("must be at most {max}")))
}

fn validate(raw: Raw) -> Result<Settings, ConfigError> {
    let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
        invalid(
            "server.listen",
            format!(
                "{:?} is not an address like 127.0.0.1:8080",
                raw.server.listen
            ),
        )
    })?;
    let node_id = if raw.server.node_id.trim().is_empty() {
        default_node_id()
    } else {
        raw.server.node_id.trim().to_string()
    };
    let workers = match raw.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
        n => positive("server.workers", n)?,
    };
    let backend = match raw.storage.backend.as_str() {
        "sqlite" => StorageBackend::Sqlite,
        "redis" => StorageBackend::Redis,
        other => {
            return Err(invalid(
                "storage.backend",
                format!("{other:?} is not one of \"sqlite\", \"redis\""),
            ))
        }
    };
    let redis_url = raw.storage.redis_url.trim().to_string();
    if !(redis_url.starts_with("redis://") || redis_url.starts_with("redis+unix://")) {
        return Err(invalid(
            "storage.redis_url",
            format!("{redis_url:?} is not a redis:// URL"),
        ));
    }
    let redis_prefix = raw.storage.redis_prefix.clone();
    if redis_prefix.is_empty()
        || redis_prefix.len() > 64
        || redis_prefix.contains(char::is_whitespace)
    {
        return Err(invalid(
            "storage.redis_prefix",
            "must be 1 to 64 characters without spaces",
        ));
    }
    if raw.storage.sqlite_path.trim().is_empty() {
        return Err(invalid("storage.sqlite_path", "must not be empty"));
    }
    let synchronous = match raw.storage.sqlite_synchronous.as_str() {
        "full" => Synchronous::Full,
        "normal" => Synchronous::Normal,
        other => {
            return Err(invalid(
                "storage.sqlite_synchronous",
                format!("{other:?} is not one of \"full\", \"normal\""),
            ))
        }
    };
    // Nobody runs with a secret anyone can read in this repository unless
    // they ask for it: without a secret, one node generates its own and
    // keeps it with its data; a cluster must be given one.
    let dev_allowed = raw.auth.allow_dev_secret;
    let given = raw.auth.token_secret;
    let (token_secret, using_dev_secret, secret_from_data_dir) = if given.is_empty() {
        if dev_allowed {
            (Secret(DEV_SECRET.to_vec()), true, false)
        } else if backend == StorageBackend::Sqlite {
            (Secret(Vec::new()), false, true)
        } else {
            return Err(invalid(
                "auth.token_secret",
                "must be set with storage.backend = \"redis\": every node signs and checks the same \
                 tokens (or set auth.allow_dev_secret = true for development)",
            ));
        }
    } else if given.as_bytes() == DEV_SECRET && !dev_allowed {
        return Err(invalid(
            "auth.token_secret",
            "is the published development secret; choose your own (or set \
             auth.allow_dev_secret = true for development)",
        ));
    } else if given.len() < 32 {
        return Err(invalid(
            "auth.token_secret",
            "must be at least 32 bytes long",
        ));
    } else {
        // Given explicitly with the flag on: still warned about at start-up.
        let is_dev = given.as_bytes() == DEV_SECRET;
        (Secret(given.into_bytes()), is_dev, false)
    };
    let admins = raw
        .auth
        .admins
        .iter()
        .map(|a| Username::parse(a).map_err(|e| invalid("auth.admins", format!("{a:?}: {e}"))))
        .collect::<Result<BTreeSet<_>, _>>()?;
    if raw.session.heartbeat_timeout_secs <= raw.session.heartbeat_secs {
        return Err(invalid(
            "session.heartbeat_timeout_secs",
            "must be greater than session.heartbeat_secs",
        ));
    }
    let history_default_limit = match raw.limits.history_default_limit {
        n @ 1..=500 => n as u32,
        _ => {
            return Err(invalid(
                "limits.history_default_limit",
                "must be between 1 and 500",
            ))
        }
    };
    if raw.payments.initial_balance < 0 {
        return Err(invalid("payments.initial_balance", "must not be negative"));
    }
    let log_format = match raw.telemetry.log_format.as_str() {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            return Err(invalid(
                "telemetry.log_format",
                format!("{other:?} is not one of \"pretty\", \"json\""),
            ))
        }
    };
    Ok(Settings {
        server: ServerSettings {
            listen,
            node_id,
            workers,
            shutdown_grace: Duration::from_millis(raw.server.shutdown_grace_ms),
        },
        storage: StorageSettings {
            backend,
            redis_url,
            redis_prefix,
            redis_timeout: Duration::from_millis(positive(
                "storage.redis_timeout_ms",
                raw.storage.redis_timeout_ms,
            )? as u64),
            redis_node_ttl: Duration::from_secs(positive(
                "storage.redis_node_ttl_secs",
                raw.storage.redis_node_ttl_secs,
            )? as u64),
            sqlite_path: PathBuf::from(raw.storage.sqlite_path),
            synchronous,
            write_queue: positive("storage.write_queue", raw.storage.write_queue)?,
            group_commit_max_batch: positive(
                "storage.group_commit_max_batch",
                raw.storage.group_commit_max_batch,
            )?,
            group_commit_window: Duration::from_micros(raw.storage.group_commit_window_us),
            read_connections: positive("storage.read_connections", raw.storage.read_connections)?,
        },
        auth: AuthSettings {
            token_secret,
            using_dev_secret,
            secret_from_data_dir,
            token_ttl: Duration::from_secs(
                positive("auth.token_ttl_secs", raw.auth.token_ttl_secs)? as u64,
            ),
            admins,
        },
        session: SessionSettings {
            heartbeat: Duration::from_secs(positive(
                "session.heartbeat_secs",
                raw.session.heartbeat_secs,
            )? as u64),
            heartbeat_timeout: Duration::from_secs(raw.session.heartbeat_timeout_secs),
            outbound_queue: positive("session.outbound_queue", raw.session.outbound_queue)?,
            max_frame_bytes: positive("session.max_frame_bytes", raw.session.max_frame_bytes)?,
            mailbox: positive("session.mailbox", raw.session.mailbox)?,
            sessions_per_user: positive(
                "session.sessions_per_user",
                raw.session.sessions_per_user,
            )?,
            slow_consumer_close_grace: Duration::from_millis(
                raw.session.slow_consumer_close_grace_ms,
            ),
            direct_cache: positive("session.direct_cache", raw.session.direct_cache)?,
        },
        conversations: ConversationSettings {
            idle_stop: Duration::from_secs(positive(
                "conversations.idle_stop_secs",
                raw.conversations.idle_stop_secs,
            )? as u64),
            max_active: positive("conversations.max_active", raw.conversations.max_active)?,
            mailbox: positive("conversations.mailbox", raw.conversations.mailbox)?,
            max_inflight: positive("conversations.max_inflight", raw.conversations.max_inflight)?,
            retiring_queue: positive(
                "conversations.retiring_queue",
                raw.conversations.retiring_queue,
            )?,
        },
        limits: LimitSettings {
            history_default_limit,
            max_group_members: positive("limits.max_group_members", raw.limits.max_group_members)?,
            max_http_body_bytes: positive(
                "limits.max_http_body_bytes",
                raw.limits.max_http_body_bytes,
            )?,
            frames_per_sec: at_most(
                "limits.frames_per_sec",
                raw.limits.frames_per_sec,
                1_000_000,
            )?,
            frame_burst: at_most(
                "limits.frame_burst",
                positive("limits.frame_burst", raw.limits.frame_burst)? as u64,
                1_000_000,
            )?,
            rate_limited_close_after: at_most(
                "limits.rate_limited_close_after",
                positive(
                    "limits.rate_limited_close_after",
                    raw.limits.rate_limited_close_after,
                )? as u64,
                1_000_000,
            )?,
            login_failures_per_address: at_most(
                "limits.login_failures_per_address",
                raw.limits.login_failures_per_address,
                1_000_000,
            )?,
            login_failures_per_account: at_most(
                "limits.login_failures_per_account",
                raw.limits.login_failures_per_account,
                1_000_000,
            )?,
            login_window: Duration::from_secs(
                at_most(
                    "limits.login_window_secs",
                    positive("limits.login_window_secs", raw.limits.login_window_secs)? as u64,
                    86_400,
                )?
                .into(),
            ),
            login_tracker_capacity: positive(
                "limits.login_tracker_capacity",
                raw.limits.login_tracker_capacity,
            )?,
            max_connections: positive("limits.max_connections", raw.limits.max_connections)?,
            max_conversations_per_user: positive(
                "limits.max_conversations_per_user",
                raw.limits.max_conversations_per_user,
            )?,
        },
        payments: PaymentSettings {
            provider_url: Some(raw.payments.provider_url).filter(|u| !u.trim().is_empty()),
            initial_balance: raw.payments.initial_balance,
            retry_deadline: Duration::from_secs(positive(
                "payments.retry_deadline_secs",
                raw.payments.retry_deadline_secs,
            )? as u64),
            retry_base: Duration::from_millis(positive(
                "payments.retry_base_ms",
                raw.payments.retry_base_ms,
            )? as u64),
            retry_max: Duration::from_millis(positive(
                "payments.retry_max_ms",
                raw.payments.retry_max_ms,
            )? as u64),
            max_active: positive("payments.max_active", raw.payments.max_active)?,
            saga_lease: Duration::from_secs(positive(
                "payments.saga_lease_secs",
                raw.payments.saga_lease_secs,
            )? as u64),
        },
        faults_enabled: raw.faults.enabled,
        supervision: supervision(&raw.supervision)?,
        breakers: vec![
            breaker(
                "payment_provider",
                "breaker_payment_provider",
                &raw.breaker_payment_provider,
            )?,
            breaker("webhook", "breaker_webhook", &raw.breaker_webhook)?,
            breaker("redis", "breaker_redis", &raw.breaker_redis)?,
        ],
        alert_rules: raw
            .alerts
            .rules
            .iter()
            .map(|r| crate::alerts::Rule::parse(r).map_err(|e| invalid("alerts.rules", e)))
            .collect::<Result<_, _>>()?,
        alert_webhook: Some(raw.alerts.webhook_url.trim().to_string()).filter(|u| !u.is_empty()),
        log_format,
        otlp_endpoint: match raw.telemetry.otlp_endpoint.trim() {
            "" => None,
            url if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.to_string())
            }
            other => {
                return Err(invalid(
                    "telemetry.otlp_endpoint",
                    format!("{other:?} is not an http(s) URL"),
                ))
            }
        },
        trace_sample_percent: if (0.0..=100.0).contains(&raw.telemetry.trace_sample_percent) {
            raw.telemetry.trace_sample_percent
        } else {
            return Err(invalid(
                "telemetry.trace_sample_percent",
                "must be between 0 and 100",
            ));
        },
        trace_recent_bytes: if raw.telemetry.trace_recent_mib <= MAX_TRACE_RECENT_MIB {
            (raw.telemetry.trace_recent_mib as usize) << 20
        } else {
            return Err(invalid(
                "telemetry.trace_recent_mib",
                format!("must be between 0 and {MAX_TRACE_RECENT_MIB}"),
            ));
        },
        trace_keep_slow: if raw.telemetry.trace_keep_slow_ms <= 60_000 {
            Duration::from_millis(raw.telemetry.trace_keep_slow_ms)
        } else {
            return Err(invalid(
                "telemetry.trace_keep_slow_ms",
                "must be between 0 (never) and 60000",
            ));
        },
    })
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

fn supervision(raw: &RawSupervision) -> Result<SupervisionSettings, ConfigError> {
    if !(0.0..=1.0).contains(&raw.backoff_jitter) {
        return Err(invalid(
            "supervision.backoff_jitter",
            "must be between 0.0 and 1.0",
        ));
    }
    if raw.backoff_max_ms < raw.backoff_base_ms {
        return Err(invalid(
            "supervision.backoff_max_ms",
            "must be at least supervision.backoff_base_ms",
        ));
    }
    let backoff = Backoff {
        base: Duration::from_millis(raw.backoff_base_ms),
        max: Duration::from_millis(raw.backoff_max_ms),
        jitter: raw.backoff_jitter,
        reset_after: Duration::from_secs(raw.backoff_reset_secs),
    };
    let poison_tries = u32::try_from(positive("supervision.poison_tries", raw.poison_tries)?)
        .map_err(|_| invalid("supervision.poison_tries", "is too large"))?;
    let policy = |strategy, max_key: &str, max: u64, window_key: &str, window: u64| {
        Ok::<_, ConfigError>(SupervisorPolicy {
            poison_tries,
            strategy,
            intensity: Intensity {
                max_restarts: u32::try_from(max).map_err(|_| invalid(max_key, "is too large"))?,
                window: Duration::from_secs(positive(window_key, window)? as u64),
            },
            backoff,
        })
    };
    Ok(SupervisionSettings {
        root: policy(
            Strategy::OneForOne,
            "supervision.root_max_restarts",
            raw.root_max_restarts,
            "supervision.root_window_secs",
            raw.root_window_secs,
        )?,
        conversations: policy(
            Strategy::OneForOne,
            "supervision.conversations_max_restarts",
            raw.conversations_max_restarts,
            "supervision.conversations_window_secs",
            raw.conversations_window_secs,
        )?,
        sessions: policy(
            Strategy::OneForOne,
            "supervision.sessions_max_restarts",
            raw.sessions_max_restarts,
            "supervision.sessions_window_secs",
            raw.sessions_window_secs,
        )?,
        payments: policy(
            Strategy::OneForOne,
            "supervision.payments_max_restarts",
            raw.payments_max_restarts,
            "supervision.payments_window_secs",
            raw.payments_window_secs,
        )?,
        tree_max_children: positive("supervision.tree_max_children", raw.tree_max_children)?,
    })
}

#[derive(Debug, Clone)]
pub struct BreakerSettings {
    pub name: &'static str,
    pub config: BreakerConfig,
    pub call_timeout: Duration,
}

fn breaker(
    name: &'static str,
    section: &str,
    raw: &RawBreaker,
) -> Result<BreakerSettings, ConfigError> {
    let key = |k: &str| format!("{section}.{k}");
    let window = match raw.window.as_str() {
        "count" => WindowKind::Count(positive(&key("window_size"), raw.window_size)?),
        "time" => WindowKind::Time(positive(&key("window_size"), raw.window_size)? as u64),
        other => {
            return Err(invalid(
                &key("window"),
                format!("{other:?} is not one of \"count\", \"time\""),
            ))
        }
    };
    for (k, v) in [
        ("failure_rate_threshold", raw.failure_rate_threshold),
        ("slow_call_rate_threshold", raw.slow_call_rate_threshold),
    ] {
        if !(0.0..=100.0).contains(&v) || v == 0.0 {
            return Err(invalid(
                &key(k),
                "must be a percentage above 0 and at most 100",
            ));
        }
    }
    if !(0.0..=1.0).contains(&raw.jitter) {
        return Err(invalid(&key("jitter"), "must be between 0.0 and 1.0"));
    }
    if raw.wait_multiplier < 1.0 {
        return Err(invalid(&key("wait_multiplier"), "must be at least 1.0"));
    }
    if raw.max_wait_ms < raw.wait_open_ms {
        return Err(invalid(
            &key("max_wait_ms"),
            "must be at least wait_open_ms",
        ));
    }
    Ok(BreakerSettings {
        name,
        config: BreakerConfig {
            window,
            failure_rate_threshold: raw.failure_rate_threshold,
            slow_call_rate_threshold: raw.slow_call_rate_threshold,
            slow_call_duration: Duration::from_millis(positive(
                &key("slow_call_ms"),
                raw.slow_call_ms,
            )? as u64),
            minimum_calls: positive(&key("minimum_calls"), raw.minimum_calls)?,
            wait_open: Duration::from_millis(
                positive(&key("wait_open_ms"), raw.wait_open_ms)? as u64
            ),
            wait_multiplier: raw.wait_multiplier,
            max_wait: Duration::from_millis(raw.max_wait_ms),
            jitter: raw.jitter,
            half_open_calls: positive(&key("half_open_calls"), raw.half_open_calls)?,
        },
        call_timeout: Duration::from_millis(
            positive(&key("call_timeout_ms"), raw.call_timeout_ms)? as u64,
        ),
    })
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "parley".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_spec() {
        let s = Settings::from_sources("", &[]).unwrap();
        assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.storage.sqlite_path, PathBuf::from("data/parley.db"));
        assert_eq!(s.payments.initial_balance, 10_000);
        assert!(!s.auth.using_dev_secret);
        assert!(s.auth.secret_from_data_dir);
        assert!(!s.faults_enabled);
        assert_eq!(s.trace_sample_percent, 0.0);
        assert_eq!(s.trace_recent_bytes, 8 << 20);
        assert_eq!(s.trace_keep_slow, Duration::from_millis(100));
    }

    #[test]
    fn the_development_secret_is_used_only_when_allowed() {
        let s = Settings::from_sources("[auth]\nallow_dev_secret = true\n", &[]).unwrap();
        assert!(s.auth.using_dev_secret && !s.auth.secret_from_data_dir);
        let dev = String::from_utf8(DEV_SECRET.to_vec()).unwrap();
        let e = Settings::from_sources(&format!("[auth]\ntoken_secret = \"{dev}\"\n"), &[])
            .unwrap_err();
        assert!(
            e.to_string().contains("published development secret"),
            "{e}"
        );
        let e = Settings::from_sources("[storage]\nbackend = \"redis\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("auth.token_secret"), "{e}");
        let s = Settings::from_sources(
            "[storage]\nbackend = \"redis\"\n[auth]\ntoken_secret = \"0123456789abcdef0123456789abcdef\"\n",
            &[],
        )
        .unwrap();
        assert!(!s.auth.using_dev_secret && !s.auth.secret_from_data_dir);
    }

    #[test]
    fn the_shipped_config_toml_is_valid_and_holds_every_key() {
        let text = include_str!("../config.toml");
        Settings::from_sources(text, &[]).unwrap();
        let file: Value = toml::from_str(text).unwrap();
        let defaults = Value::try_from(Raw::default()).unwrap();
        for (section, keys) in defaults.as_table().unwrap() {
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    file.get(section).and_then(|s| s.get(key)).is_some(),
                    "config.toml lacks {section}.{key}"
                );
            }
        }
    }

    #[test]
    fn environment_overrides_file() {
        let s = Settings::from_sources(
            "[server]\nlisten = \"127.0.0.1:9000\"\n",
            &env(&[
                ("PARLEY__SERVER__LISTEN", "127.0.0.1:9001"),
                ("PARLEY__AUTH__ADMINS", "alice, bob"),
                ("PARLEY__FAULTS__ENABLED", "true"),
                ("PARLEY__SESSION__OUTBOUND_QUEUE", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.listen.port(), 9001);
        assert_eq!(s.auth.admins.len(), 2);
        assert!(s.faults_enabled);
        assert_eq!(s.session.outbound_queue, 7);
    }

    #[test]
    fn errors_name_the_setting() {
        let e = Settings::from_sources("[server]\nlisten = \"nope\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("server.listen"), "{e}");
        let e = Settings::from_sources("[server]\nlisen = \"x\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("server.lisen"), "{e}");
        let e = Settings::from_sources("", &env(&[("PARLEY__SESSION__OUTBOUND_QUEUE", "many")]))
            .unwrap_err();
        assert!(
            e.to_string().contains("PARLEY__SESSION__OUTBOUND_QUEUE"),
            "{e}"
        );
        let e = Settings::from_sources("[session]\noutbound_queue = 0\n", &[]).unwrap_err();
        assert!(e.to_string().contains("session.outbound_queue"), "{e}");
        let e = Settings::from_sources("[auth]\ntoken_secret = \"short\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("auth.token_secret"), "{e}");
        let e = Settings::from_sources("[storage]\nbackend = \"mongo\"\n", &[]).unwrap_err();
        assert!(e.to_string().contains("storage.backend"), "{e}");
        let e = Settings::from_sources("[telemetry]\ntrace_recent_mib = 4096\n", &[]).unwrap_err();
        assert!(e.to_string().contains("telemetry.trace_recent_mib"), "{e}");
        let e =
            Settings::from_sources("[telemetry]\ntrace_keep_slow_ms = 100000\n", &[]).unwrap_err();
        assert!(
            e.to_string().contains("telemetry.trace_keep_slow_ms"),
            "{e}"
        );
    }
}
