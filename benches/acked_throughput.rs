//! Acked messages per second over real WebSockets with the SQLite backend
//! (group commit, synchronous = full): every counted message was committed
//! before its ack. The server runs in this process on a loopback port; the
//! load generator shares the machine.
//!
//! `cargo bench --bench acked_throughput` (optionally `-- SECONDS`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Unacknowledged messages each sender keeps in flight.
const WINDOW: usize = 64;

mod common;

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let server = common::start(|_| {});
    let port = server.port;
    let rt = common::client_runtime();
    rt.block_on(async move {
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        println!("acked messages/s, SQLite synchronous=full, window {WINDOW} per sender, {seconds} s per scenario");
        let one = scenario(&http, &base, port, "one", 1, 4, seconds).await;
        println!("one conversation, 4 senders:          {one:>9.0} acked msg/s");
        let many = scenario(&http, &base, port, "many", 100, 1, seconds).await;
        println!("100 conversations, 1 sender each:     {many:>9.0} acked msg/s");
    });
    server.stop();
}

/// `rooms` group conversations with `senders` members each, every member
/// sending as fast as its window allows; returns acked messages per second.
async fn scenario(
    http: &reqwest::Client,
    base: &str,
    port: u16,
    tag: &str,
    rooms: usize,
    senders: usize,
    seconds: u64,
) -> f64 {
    let acked = Arc::new(AtomicU64::new(0));
    let mut rooms_ready = Vec::new();
    for r in 0..rooms {
        let names: Vec<String> = (0..senders).map(|s| format!("{tag}_{r}_{s}")).collect();
        let mut tokens = Vec::new();
        for n in &names {
            tokens.push(common::token(http, base, n).await);
        }
        let id = common::group(http, base, &tokens[0], &format!("{tag}{r}"), &names).await;
        rooms_ready.push((id, tokens));
    }
    // Accounts exist; every sender connects, then all start together.
    let start_at = Instant::now() + Duration::from_secs(2);
    let mut tasks = Vec::new();
    for (id, tokens) in rooms_ready {
        for t in tokens {
            tasks.push(tokio::spawn(sender(
                port,
                t,
                id.clone(),
                acked.clone(),
                start_at,
                seconds,
            )));
        }
    }
    let before = wait_until(start_at, &acked).await;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let after = acked.load(Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    (after - before) as f64 / seconds as f64
}

async fn wait_until(at: Instant, acked: &AtomicU64) -> u64 {
    tokio::time::sleep_until(at.into()).await;
    acked.load(Ordering::Relaxed)
}

async fn sender(
    port: u16,
    token: String,
    id: String,
    acked: Arc<AtomicU64>,
    start_at: Instant,
    seconds: u64,
) {
    let ws = common::connect(port, &token).await;
    let (mut tx, mut rx) = ws.split();
    tokio::time::sleep_until(start_at.into()).await;
    let end = start_at + Duration::from_secs(seconds);
    let text = "x".repeat(64);
    let mut next = 0u64;
    let mut in_flight = 0usize;
    loop {
        while in_flight < WINDOW && Instant::now() < end {
            let frame = json!({"type": "send", "conversationId": id, "text": text, "clientMsgId": next.to_string()});
            next += 1;
            in_flight += 1;
            if tx.send(Message::text(frame.to_string())).await.is_err() {
                return;
            }
        }
        if in_flight == 0 {
            let _ = tx.close().await;
            return;
        }
        match rx.next().await {
            Some(Ok(Message::Text(t))) => {
                if t.starts_with(r#"{"type":"ack""#) {
                    in_flight -= 1;
                    acked.fetch_add(1, Ordering::Relaxed);
                } else if t.starts_with(r#"{"type":"error""#) {
                    in_flight -= 1;
                }
            }
            Some(Ok(_)) => {}
            _ => return,
        }
    }
}
