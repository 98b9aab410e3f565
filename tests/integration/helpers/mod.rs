mod app;
mod browser;
mod client;
mod http;
mod provider;
mod raw_http;
mod raw_ws;
mod receiver;
mod redis;
mod scenes;
mod sends;
mod waits;
mod web;

pub use app::{spawn_app, spawn_app_with, spawn_node, TestApp, TestUser};
pub use browser::{Browser, Chromedriver};
pub use client::{ConversationItem, Frame, TestClient};
pub use http::{find_item, strings_of};
pub use provider::TestProvider;
pub use raw_http::{answer_while_trickling, raw_request, read_until_closed};
pub use raw_ws::{frame, frame_header, RawWs};
pub use receiver::{http_receiver, Inbox};
pub use redis::RedisServer;
pub use scenes::{Acked, AliceInvitedBob};
pub(crate) use web::{web_app, web_app_or_skip};

use std::future::Future;
use std::time::Duration;

/// A loopback port that was free just now, for a process a test starts
/// (redis-server, a node), and never handed out before in this test run:
/// tests run in parallel, and two of them given the same released port
/// would share one server (the second process fails to bind, and the first
/// answers its readiness probe).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    // Keeping each listener until the loop ends makes the OS pick a
    // different port for the next try.
    let mut held = Vec::new();
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        held.push(listener);
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
        assert!(held.len() < 1000, "no fresh loopback port");
    }
}

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
