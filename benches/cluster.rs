//! Cross-node delivery: senders connected to node A, receivers to node B,
//! one redis-server between them (started here on a free port, AOF fsynced
//! on every write, like SQLite's synchronous = full). The same scenario runs
//! on one SQLite node for comparison. Deliveries are message frames that
//! receivers got; latency is from a message's scheduled send time to its
//! arrival (so a stalled sender does not hide its delay).
//!
//! `cargo bench --bench cluster` (optionally `-- SECONDS`, default 5;
//! `everysec` to fsync the AOF once a second instead).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parley::config::StorageBackend;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

mod common;

const ROOMS: usize = 10;
const SENDERS: usize = 2;
const RECEIVERS: usize = 8;
/// Unacknowledged messages per sender when saturating.
const WINDOW: usize = 32;
/// Messages per second, all senders together, for the latency run.
const RATE: u64 = 1000;

struct Redis {
    child: Child,
    /// Holds the AOF; removed with the server.
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis(port: u16, fsync: &str) -> Redis {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", fsync])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian: apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Redis { child, _dir: dir }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    let fsync = if args.iter().any(|a| a == "everysec") {
        "everysec"
    } else {
        "always"
    };
    let rt = common::client_runtime();
    println!("{ROOMS} rooms x ({SENDERS} senders + {RECEIVERS} receivers), 64-byte texts, {seconds} s per run");

    let single = common::start(|_| {});
    let (sat, lat) = rt.block_on(run(single.port, single.port, "single", seconds));
    single.stop();
    report("one node, SQLite (synchronous=full)", sat, &lat);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let _redis = redis(port, fsync);
    let node = |name: &'static str| {
        common::start(move |s| {
            s.storage.backend = StorageBackend::Redis;
            // Both nodes sign and check the same tokens.
            s.auth.token_secret =
                parley::config::Secret::new(b"bench-cluster-secret-of-at-least-32-bytes".to_vec())
                    .expect("a 32-byte secret");
            s.auth.secret_from_data_dir = false;
            s.storage.redis_url = format!("redis://127.0.0.1:{port}/");
            s.server.node_id = name.into();
        })
    };
    let (a, b) = (node("bench-a"), node("bench-b"));
    let (sat, lat) = rt.block_on(run(a.port, b.port, "cluster", seconds));
    a.stop();
    b.stop();
    report(
        &format!("two nodes, one Redis (appendfsync {fsync}), A -> B"),
        sat,
        &lat,
    );
}

fn report(what: &str, saturated: f64, latency: &(f64, Vec<f64>)) {
    let (rate, sorted) = latency;
    println!("{what}");
    println!("  saturated: {saturated:>9.0} deliveries/s at the receivers");
    println!(
        "  at {RATE} msg/s ({:.0} deliveries/s): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} deliveries)",
        rate,
        common::percentile(sorted, 50.0),
        common::percentile(sorted, 99.0),
        sorted.last().copied().unwrap_or(f64::NAN),
        sorted.len()
    );
}

/// Sets up the rooms (through node A), then a saturation run and a
/// fixed-rate run; returns (deliveries/s saturated, (deliveries/s, sorted latencies ms)).
async fn run(port_a: u16, port_b: u16, tag: &str, seconds: u64) -> (f64, (f64, Vec<f64>)) {
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port_a}");
    let mut rooms = Vec::new();
    for r in 0..ROOMS {
        let names: Vec<String> = (0..SENDERS + RECEIVERS)
            .map(|i| format!("{tag}_{r}_{i}"))
            .collect();
        let mut tokens = Vec::new();
        for n in &names {
            tokens.push(common::token(&http, &base, n).await);
        }
        let id = common::group(&http, &base, &tokens[0], &format!("{tag}{r}"), &names).await;
        rooms.push((id, tokens));
    }
    let saturated = phase(port_a, port_b, &rooms, seconds, None).await.0;
    let paced = phase(port_a, port_b, &rooms, seconds, Some(RATE)).await;
    (saturated, paced)
}

/// One run: receivers connect to B, senders to A; returns deliveries per
/// second at the receivers and their sorted latencies (ms).
async fn phase(
    port_a: u16,
    port_b: u16,
    rooms: &[(String, Vec<String>)],
    seconds: u64,
    rate: Option<u64>,
) -> (f64, Vec<f64>) {
    let epoch = Instant::now();
    let start_at = epoch + Duration::from_secs(2);
    let end_at = start_at + Duration::from_secs(seconds);
    let delivered = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut receivers = Vec::new();
    for (_, tokens) in rooms {
        for t in &tokens[SENDERS..] {
            let ws = common::connect(port_b, t).await;
            receivers.push(tokio::spawn(receive(
                ws,
                epoch,
                end_at,
                delivered.clone(),
                latencies.clone(),
            )));
        }
    }
    let per_sender = rate.map(|r| r as f64 / (rooms.len() * SENDERS) as f64);
    let mut senders = Vec::new();
    for (id, tokens) in rooms {
        for t in &tokens[..SENDERS] {
            let ws = common::connect(port_a, t).await;
            senders.push(tokio::spawn(send(
                ws,
                id.clone(),
                epoch,
                start_at,
                end_at,
                per_sender,
            )));
        }
    }
    tokio::time::sleep_until(start_at.into()).await;
    let before = delivered.load(Ordering::Relaxed);
    tokio::time::sleep_until(end_at.into()).await;
    let after = delivered.load(Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }
    for r in receivers {
        let _ = r.await;
    }
    let mut lat = std::mem::take(&mut *latencies.lock().expect("latencies"));
    lat.sort_by(f64::total_cmp);
    ((after - before) as f64 / seconds as f64, lat)
}

/// Sends until `end`: paced at `per_second` (each message stamped with its
/// scheduled time), or as fast as `WINDOW` unacked messages allow.
async fn send(
    ws: common::Ws,
    id: String,
    epoch: Instant,
    start: Instant,
    end: Instant,
    per_second: Option<f64>,
) {
    let (mut tx, mut rx) = ws.split();
    tokio::time::sleep_until(start.into()).await;
    let mut next = 0u64;
    let mut in_flight = 0usize;
    loop {
        let now = Instant::now();
        let due = match per_second {
            Some(r) => start + Duration::from_secs_f64(next as f64 / r),
            None => now,
        };
        let may_send = due < end && (per_second.is_some() || in_flight < WINDOW);
        if may_send && due <= now {
            let stamp = due.duration_since(epoch).as_micros();
            // 64 bytes: the stamp, padded.
            let text = format!("{stamp:0>20}{}", "x".repeat(44));
            let frame = json!({"type": "send", "conversationId": id, "text": text, "clientMsgId": format!("{}{next}", if per_second.is_some() { "p" } else { "s" })});
            next += 1;
            in_flight += 1;
            if tx.send(Message::text(frame.to_string())).await.is_err() {
                return;
            }
            continue;
        }
        if !may_send && in_flight == 0 {
            let _ = tx.close().await;
            return;
        }
        let wait = if may_send {
            due.saturating_duration_since(now)
        } else {
            Duration::from_secs(5)
        };
        match tokio::time::timeout(wait, rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                if t.starts_with(r#"{"type":"ack""#) || t.starts_with(r#"{"type":"error""#) {
                    in_flight = in_flight.saturating_sub(1);
                }
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(_) => return,
        }
    }
}

/// Counts message frames until a second after `end`, with their latency.
async fn receive(
    ws: common::Ws,
    epoch: Instant,
    end: Instant,
    delivered: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<f64>>>,
) {
    let (_tx, mut rx) = ws.split();
    let mut mine = Vec::new();
    let stop = end + Duration::from_secs(1);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(stop.into(), rx.next()).await {
        let Message::Text(t) = msg else { continue };
        if !t.starts_with(r#"{"type":"message""#) {
            continue;
        }
        let now = epoch.elapsed().as_micros() as f64;
        delivered.fetch_add(1, Ordering::Relaxed);
        let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
        if let Some(stamp) = v["text"]
            .as_str()
            .and_then(|s| s.get(..20))
            .and_then(|s| s.parse::<f64>().ok())
        {
            mine.push((now - stamp) / 1000.0);
        }
    }
    latencies.lock().expect("latencies").extend(mine);
}
