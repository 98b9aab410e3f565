//! Time from a conversation actor's panic to its next handled message, with
//! 1,000 active conversations, over real WebSockets.
//!
//! For each conversation: arm one injected panic, then send two frames at
//! once. The first (`typing`) hits the panic and is answered `internal`; the
//! second (`read` with seq 0) waits in the mailbox through the restart and is
//! answered `bad_request` by the new incarnation's handler without touching
//! the store. The gap between the two answers is the panic-to-next-message
//! time (restart backoff, fresh state reloaded from the store, handling).
//!
//! `cargo bench --bench restart_latency` (optionally `-- CONVERSATIONS`).

mod common;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn main() {
    let count: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let server = common::start(|s| {
        s.faults_enabled = true;
        s.auth
            .admins
            .insert(parley::domain::Username::parse("root").expect("name"));
        // One injected panic per conversation: the default budget (200 in
        // 10 s for all conversations together) would escalate on purpose.
        s.supervision.conversations.intensity.max_restarts = u32::MAX;
    });
    let port = server.port;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let root = common::token(&http, &base, "root").await;
        let alice = common::token(&http, &base, "alice").await;
        common::token(&http, &base, "bob").await;
        let mut ids = Vec::with_capacity(count);
        for i in 0..count {
            let id = common::group(&http, &base, &alice, &format!("g{i}"), &["bob".to_string()]).await;
            // One message makes the conversation's actor active.
            let res = http
                .post(format!("{base}/api/conversations/{id}/messages"))
                .bearer_auth(&alice)
                .json(&json!({"text": "warm", "clientMsgId": "w"}))
                .send()
                .await
                .expect("send");
            assert_eq!(res.status().as_u16(), 201);
            ids.push(id);
        }
        let ws = common::connect(port, &alice).await;
        let (mut tx, mut rx) = ws.split();
        let mut gaps = Vec::with_capacity(count);
        for id in &ids {
            let res = http
                .post(format!("{base}/admin/faults"))
                .bearer_auth(&root)
                .json(&json!({"target": format!("conversation:{id}"), "kind": "panic", "count": 1}))
                .send()
                .await
                .expect("arm");
            assert_eq!(res.status().as_u16(), 202);
            let crash = json!({"type": "typing", "conversationId": id, "ref": "crash"});
            let next = json!({"type": "read", "conversationId": id, "seq": 0, "ref": "next"});
            tx.send(Message::text(crash.to_string())).await.expect("send");
            tx.send(Message::text(next.to_string())).await.expect("send");
            let mut crashed_at = None;
            loop {
                let frame = tokio::time::timeout(Duration::from_secs(10), rx.next())
                    .await
                    .expect("an answer within 10 s");
                let Some(Ok(Message::Text(t))) = frame else { continue };
                let v: Value = serde_json::from_str(&t).expect("json");
                match (v["type"].as_str(), v["ref"].as_str(), v["code"].as_str()) {
                    (Some("error"), Some("crash"), Some("internal")) => crashed_at = Some(Instant::now()),
                    (Some("error"), Some("next"), Some("bad_request")) => {
                        let at = crashed_at.expect("the crash is answered first");
                        gaps.push(at.elapsed().as_secs_f64() * 1000.0);
                        break;
                    }
                    _ => {}
                }
            }
        }
        gaps.sort_by(f64::total_cmp);
        println!(
            "panic -> next handled message, {count} active conversations, {} samples: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            gaps.len(),
            common::percentile(&gaps, 50.0),
            common::percentile(&gaps, 90.0),
            common::percentile(&gaps, 99.0),
            gaps.last().copied().unwrap_or(f64::NAN),
        );
    });
    server.stop();
}
