//! `[storage]`: which backend holds the data, and its knobs.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};

const SECTION: Section = Section("storage");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawStorage {
    backend: StorageBackend,
    sqlite_path: String,
    sqlite_synchronous: Synchronous,
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
            backend: StorageBackend::Sqlite,
            sqlite_path: "data/parley.db".into(),
            sqlite_synchronous: Synchronous::Full,
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

/// Where users, conversations, history and payments live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// One process, an embedded database file.
    Sqlite,
    /// A cluster of nodes sharing one Redis server.
    Redis,
}

/// `storage.sqlite_synchronous`: what an ack survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync the WAL at every commit: an ack survives power loss.
    Full,
    /// fsync at checkpoints only: an ack survives a process crash, not power loss.
    Normal,
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

impl RawStorage {
    pub(super) fn validate(self) -> Result<StorageSettings, ConfigError> {
        let redis_url = self.redis_url.trim().to_string();
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("redis+unix://")) {
            return Err(
                SECTION.invalid("redis_url", format!("{redis_url:?} is not a redis:// URL"))
            );
        }
        let prefix = &self.redis_prefix;
        if prefix.is_empty() || prefix.len() > 64 || prefix.contains(char::is_whitespace) {
            return Err(
                SECTION.invalid("redis_prefix", "must be 1 to 64 characters without spaces")
            );
        }
        if self.sqlite_path.trim().is_empty() {
            return Err(SECTION.invalid("sqlite_path", "must not be empty"));
        }
        Ok(StorageSettings {
            backend: self.backend,
            redis_url,
            redis_timeout: SECTION.positive_ms("redis_timeout_ms", self.redis_timeout_ms)?,
            redis_node_ttl: SECTION
                .positive_secs("redis_node_ttl_secs", self.redis_node_ttl_secs)?,
            redis_prefix: self.redis_prefix,
            sqlite_path: PathBuf::from(self.sqlite_path),
            synchronous: self.sqlite_synchronous,
            write_queue: SECTION.positive("write_queue", self.write_queue)?,
            group_commit_max_batch: SECTION
                .positive("group_commit_max_batch", self.group_commit_max_batch)?,
            group_commit_window: Duration::from_micros(self.group_commit_window_us),
            read_connections: SECTION.positive("read_connections", self.read_connections)?,
        })
    }
}
