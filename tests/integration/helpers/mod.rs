mod app;
mod client;
mod provider;
mod receiver;
mod redis;

pub use app::{spawn_app, spawn_app_with, spawn_node, TestApp};
pub use client::{Frame, TestClient};
pub use provider::TestProvider;
pub use receiver::{http_receiver, Inbox};
pub use redis::RedisServer;

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it yields a value or `timeout` passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The child of a supervision-tree node (JSON from `/admin/supervision`) with this name.
pub fn tree_child(node: &serde_json::Value, name: &str) -> serde_json::Value {
    node["children"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no child {name:?} in {node}"))
        .clone()
}
