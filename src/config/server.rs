//! `[server]`: where this node listens and what it calls itself.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, Section};

const SECTION: Section = Section("server");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    listen: String,
    internal_listen: String,
    node_id: String,
    workers: u64,
    shutdown_grace_ms: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "127.0.0.1:8080".into(),
            internal_listen: String::new(),
            node_id: String::new(),
            workers: 0,
            shutdown_grace_ms: 2000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// When set, `/metrics` and `/admin/*` are served here and not on
    /// `listen` (operators' network apart from the public one).
    pub internal_listen: Option<SocketAddr>,
    pub node_id: String,
    /// HTTP worker threads; also the number of arbiters conversations spread over.
    pub workers: usize,
    pub shutdown_grace: Duration,
}

impl RawServer {
    pub(super) fn validate(self) -> Result<ServerSettings, ConfigError> {
        let listen = self.listen.parse().map_err(|_| {
            SECTION.invalid(
                "listen",
                format!("{:?} is not an address like 127.0.0.1:8080", self.listen),
            )
        })?;
        let internal_listen = match self.internal_listen.trim() {
            "" => None,
            given => Some(given.parse().map_err(|_| {
                SECTION.invalid(
                    "internal_listen",
                    format!("{given:?} is not an address like 127.0.0.1:9090 (or \"\" for none)"),
                )
            })?),
        };
        let node_id = match self.node_id.trim() {
            "" => default_node_id(),
            given => given.to_string(),
        };
        // 0: as many workers as the machine has cores.
        let workers = match self.workers {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            n => SECTION.positive("workers", n)?,
        };
        Ok(ServerSettings {
            listen,
            internal_listen,
            node_id,
            workers,
            shutdown_grace: Duration::from_millis(self.shutdown_grace_ms),
        })
    }
}

/// Unique enough among the nodes of one cluster: the host and this process.
fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "parley".into());
    format!("{host}-{}", std::process::id())
}
