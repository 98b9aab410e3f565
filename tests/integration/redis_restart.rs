//! Issue 16, 3(b): a Redis crash right after an ack, twenty times over.
//! Two nodes share one real redis-server; alice is on node a, bob on node
//! b, in a direct conversation. Each round alice's message is acked, Redis
//! is SIGKILLed at once and started again (its append-only file keeps what
//! was acked), and alice sends again once both nodes are ready. Every acked
//! message must reach bob's session on the other node within 5 s of Redis
//! being back: before, in about 2 runs of 20 the message after the restart
//! was acked but never reached him.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_node, wait_for, Frame, RedisServer, TestApp, TestClient};

const ROUNDS: usize = 20;

/// Sends until acked (the same clientMsgId: a retry stores nothing twice);
/// `unavailable` while the breaker or the connection is not back yet.
async fn send_acked(client: &mut TestClient, conversation: &str, cmid: &str) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        client
            .send(json!({"type": "send", "conversationId": conversation, "text": cmid, "clientMsgId": cmid, "ref": cmid}))
            .await;
        let outcome = client
            .wait_for("the ack or error", |f| match f {
                Frame::Ack { reference, seq, .. } if reference.as_deref() == Some(cmid) => {
                    Some(Ok(*seq))
                }
                Frame::Error {
                    code, reference, ..
                } if reference.as_deref() == Some(cmid) => Some(Err(code.clone())),
                _ => None,
            })
            .await;
        match outcome {
            Ok(seq) => return seq,
            Err(code) => {
                assert_eq!(code, "unavailable", "{cmid}: only the outage may refuse it");
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{cmid} still refused 20 s on"
                );
                // Paces the retries while the breaker waits to probe.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn ready(node: &TestApp) {
    wait_for("readyz 200", Duration::from_secs(20), || async {
        (node.get("/readyz", None).await.0 == 200).then_some(())
    })
    .await;
}

/// Reads bob's frames until every seq in `want` has arrived, at most 5 s.
async fn arrives(bob: &mut TestClient, conversation: &str, want: &BTreeSet<u64>, round: usize) {
    let mut seen = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, bob.recv()).await {
            Ok(Frame::Message(m)) if m.conversation_id == conversation => {
                seen.insert(m.seq);
            }
            Ok(_) => {}
            Err(_) => {
                panic!("round {round}: bob got {seen:?} of {want:?} within 5 s of Redis being back")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acked_message_reaches_the_other_node_after_redis_restarts_twenty_times() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_node(&redis.url(), "restarts:", "node-a", &[]).await;
    let b = spawn_node(&redis.url(), "restarts:", "node-b", &[]).await;
    let [alice_t, bob_t] = a.users(["alice", "bob"]).await.map(|u| u.token);
    let mut alice = TestClient::connect(&a, &alice_t).await;
    let mut bob = TestClient::connect(&b, &bob_t).await;
    let (_, direct) = alice.say_to("bob", "hello", "m0").await;
    arrives(&mut bob, &direct, &BTreeSet::from([1]), 0).await;

    for round in 1..=ROUNDS {
        let before = send_acked(&mut alice, &direct, &format!("before-{round}")).await;
        // Right after the ack: the event may or may not have reached node b.
        redis.kill();
        redis.restart();
        // No wait for the nodes: the next send goes as soon as node a takes
        // it, maybe before node b has subscribed again (that node must then
        // catch up by itself).
        let after = send_acked(&mut alice, &direct, &format!("after-{round}")).await;
        assert_eq!(after, before + 1, "round {round}: nothing else was stored");
        arrives(&mut bob, &direct, &BTreeSet::from([before, after]), round).await;
    }
    // Both nodes are ready again, and history holds each message once, in
    // order.
    ready(&a).await;
    ready(&b).await;
    let seqs: Vec<u64> = bob.history_seqs(&direct).await;
    assert_eq!(seqs, (1..=(1 + 2 * ROUNDS as u64)).collect::<Vec<_>>());
}
