//! Several nodes sharing one real `redis-server` (started by the test on a
//! free port, killed and restarted to test outages). Nodes are the real
//! binary, each its own process, so one can be killed like a crashed host.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::helpers::{
    spawn_node, wait_for, Acked, Frame, RedisServer, TestApp, TestClient, TestProvider,
};
use parley_provider::ProviderOptions;

const PREFIX: &str = "cluster-test:";

/// A redis-server and `n` nodes named node-a, node-b, ...; None when
/// redis-server is missing outside CI (the reason is printed).
async fn cluster(n: usize, extra: &[(&str, &str)]) -> Option<(RedisServer, Vec<TestApp>)> {
    let redis = RedisServer::start()?;
    let mut nodes = Vec::new();
    for i in 0..n {
        let name = format!("node-{}", (b'a' + i as u8) as char);
        nodes.push(spawn_node(&redis.url(), PREFIX, &name, extra).await);
    }
    Some((redis, nodes))
}

/// Reads `count` message frames of `conversation` in arrival order; checks
/// that every message this session sent was acked before its message frame.
async fn messages(client: &mut TestClient, conversation: &str, count: usize) -> Vec<(u64, String)> {
    let mut acked = std::collections::HashSet::new();
    let mut out = Vec::new();
    while out.len() < count {
        match client.recv().await {
            Frame::Ack { client_msg_id, .. } => {
                acked.insert(client_msg_id);
            }
            Frame::Message(m) if m.conversation_id == conversation => {
                // Texts read "<sender>@<node> <clientMsgId>"; only the
                // sending session is acked.
                let mine = format!("{}@{} ", client.username, client.node);
                if let Some(cmid) = m.text.strip_prefix(&mine) {
                    assert!(
                        acked.contains(cmid),
                        "{}: message {:?} before its ack",
                        client.username,
                        m.text
                    );
                }
                out.push((m.seq, m.text));
            }
            _ => {}
        }
    }
    out
}

fn assert_in_seq_order(who: &str, got: &[(u64, String)], first: u64) {
    let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    let want: Vec<u64> = (first..first + got.len() as u64).collect();
    assert_eq!(seqs, want, "{who}: seq order, no gap, no duplicate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_direct_and_group_chat_in_seq_order() {
    let Some((_redis, nodes)) = cluster(3, &[]).await else {
        return;
    };
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    // Accounts made on one node log in on every other.
    a.user("alice").await;
    b.user("bob").await;
    c.user("carol").await;
    let alice_t = c.login("alice").await.token;
    let bob_t = a.login("bob").await.token;
    let carol_t = b.login("carol").await.token;
    let mut alice = TestClient::connect(a, &alice_t).await;
    let mut bob = TestClient::connect(b, &bob_t).await;
    let mut carol = TestClient::connect(c, &carol_t).await;
    assert_eq!(
        (alice.node.as_str(), bob.node.as_str(), carol.node.as_str()),
        ("node-a", "node-b", "node-c")
    );

    // Direct: alice on A to bob on B, with the trace id carried across.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    alice
        .send(json!({"type": "send", "to": "bob", "text": "alice@node-a hi", "clientMsgId": "d1", "traceId": trace}))
        .await;
    let Acked {
        conversation_id: direct,
        seq,
        ..
    } = alice.acked().await;
    assert_eq!(seq, 1);
    assert_eq!(alice.expect_message().await.seq, 1);
    let got = bob.expect_message().await;
    assert_eq!(
        (
            got.seq,
            got.sender.as_str(),
            got.receiver.as_deref(),
            got.trace_id.as_str()
        ),
        (1, "alice", Some("bob"), trace)
    );
    assert_eq!(got.conversation_id, direct);
    // The trace on node B names the node the message was committed on.
    let root = a.user("root").await;
    let (_, hops) = b
        .get(&format!("/admin/traces/{trace}"), Some(&root.token))
        .await;
    let hops = hops.to_string();
    assert!(
        hops.contains("node-b") && hops.contains("committed on node-a"),
        "{hops}"
    );

    // Group: three senders on three nodes, interleaved.
    let group = alice
        .create("trio", &["bob", "carol"])
        .await
        .conversation_id;
    let per_sender = 15;
    for i in 0..per_sender {
        for client in [&mut alice, &mut bob, &mut carol] {
            let cmid = format!("g{i}");
            let text = format!("{}@{} {cmid}", client.username, client.node);
            client
                .send(json!({"type": "send", "conversationId": group, "text": text, "clientMsgId": cmid}))
                .await;
        }
    }
    let total = per_sender * 3;
    let mut seen = Vec::new();
    for client in [&mut alice, &mut bob, &mut carol] {
        let got = messages(client, &group, total).await;
        assert_in_seq_order(&client.username, &got, 1);
        seen.push(got);
    }
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "every node delivered the same sequence"
    );
    let texts: std::collections::HashSet<&String> = seen[0].iter().map(|(_, t)| t).collect();
    assert_eq!(texts.len(), total, "each message once");

    // Typing and read receipts cross nodes; presence too.
    bob.send(json!({"type": "typing", "conversationId": group}))
        .await;
    for client in [&mut alice, &mut carol] {
        client
            .wait_for("bob typing", |f| match f {
                Frame::Typing { username, .. } if username == "bob" => Some(()),
                _ => None,
            })
            .await;
    }
    carol
        .send(json!({"type": "read", "conversationId": group, "seq": total}))
        .await;
    for client in [&mut alice, &mut bob] {
        let seq = client
            .wait_for("carol's read receipt", |f| match f {
                Frame::Read { username, seq, .. } if username == "carol" => Some(*seq),
                _ => None,
            })
            .await;
        assert_eq!(seq, total as u64);
    }
    carol.close().await;
    for client in [&mut alice, &mut bob] {
        client.wait_presence("carol", "offline").await;
    }
    let mut carol = TestClient::connect(a, &carol_t).await;
    bob.wait_presence("carol", "online").await;
    // Membership changes cross nodes: carol (now on A) leaves; bob on B hears it.
    carol
        .send(json!({"type": "leave", "conversationId": group}))
        .await;
    bob.wait_for("carol left", |f| match f {
        Frame::MemberLeft { username, .. } if username == "carol" => Some(()),
        _ => None,
    })
    .await;
    let (seq, _) = bob.say(&group, "bob@node-b after", "after").await;
    assert_eq!(seq, total as u64 + 1);
    // An invitation from node B reaches the new member on node C, who gets
    // the next message live.
    a.user("dave").await;
    let dave_t = b.login("dave").await.token;
    let mut dave = TestClient::connect(c, &dave_t).await;
    bob.send(json!({"type": "invite", "conversationId": group, "username": "dave"}))
        .await;
    dave.wait_for("dave joined", |f| match f {
        Frame::MemberJoined { username, .. } if username == "dave" => Some(()),
        _ => None,
    })
    .await;
    alice
        .send_in(&group, "alice@node-a welcome", "welcome")
        .await;
    let seq2 = alice
        .wait_for("the welcome's ack", |f| match f {
            Frame::Ack { seq, .. } => Some(*seq),
            _ => None,
        })
        .await;
    let m = dave
        .wait_message_text("the welcome", "alice@node-a welcome")
        .await
        .seq;
    assert_eq!(m, seq2);
    let got = alice
        .wait_message_text("bob's message", "bob@node-b after")
        .await
        .seq;
    assert_eq!(got, seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_with_a_session_on_each_node_gets_everything_everywhere() {
    let Some((_redis, nodes)) = cluster(3, &[]).await else {
        return;
    };
    let [alice_t, bob_t] = nodes[0].users(["alice", "bob"]).await.map(|u| u.token);
    let mut alices = Vec::new();
    for node in &nodes {
        alices.push(TestClient::connect(node, &alice_t).await);
    }
    let mut bob = TestClient::connect(&nodes[2], &bob_t).await;
    let (seq, direct) = bob.say_to("alice", "bob@node-c one", "b1").await;
    for a in &mut alices {
        let m = a.expect_message().await;
        assert_eq!(
            (m.seq, m.text.as_str()),
            (seq, "bob@node-c one"),
            "on {}",
            a.node
        );
    }
    // Alice sends from node B: her sessions on A and C get the message too.
    let (seq2, _) = alices[1].say(&direct, "alice@node-b two", "a1").await;
    for i in [0, 2] {
        let m = alices[i].expect_message().await;
        assert_eq!(
            (m.seq, m.sender.as_str()),
            (seq2, "alice"),
            "on {}",
            alices[i].node
        );
    }
    let m = bob.expect_message().await;
    assert_eq!(m.seq, seq2);
    // Closing two of her three sessions does not make her offline.
    let last = alices.pop().expect("three sessions");
    let mid = alices.pop().expect("three sessions");
    mid.close().await;
    last.close().await;
    alices[0].assert_alive().await;
    let (_, conversations) = nodes[2].get("/api/conversations", Some(&bob_t)).await;
    assert_eq!(conversations["items"][0]["lastSeq"], 2);
    // Bob saw no offline notice for alice: she still has a session.
    bob.assert_alive().await;
    let mut passed = 0;
    while let Ok(f) = tokio::time::timeout(Duration::from_millis(300), bob.recv_any()).await {
        assert!(
            !matches!(&f, Frame::Presence { username, status, .. } if username == "alice" && status == "offline"),
            "alice went offline with a session left"
        );
        passed += 1;
        assert!(passed < 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_outage_fails_fast_keeps_sessions_and_recovers_without_a_gap() {
    let Some((mut redis, nodes)) = cluster(2, &[]).await else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let [alice_t, bob_t] = a.users(["alice", "bob"]).await.map(|u| u.token);
    let root = a.user("root").await;
    let mut alice = TestClient::connect(a, &alice_t).await;
    let mut bob = TestClient::connect(b, &bob_t).await;
    let (_, direct) = alice.say_to("bob", "before", "m1").await;
    assert_eq!(bob.expect_message().await.seq, 1);

    redis.kill();
    // Sends fail fast with `unavailable`, and no session is closed.
    let started = std::time::Instant::now();
    alice.send_in(&direct, "during", "m2").await;
    let (code, _, _) = alice.expect_error().await;
    assert_eq!(code, "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed after {:?}",
        started.elapsed()
    );
    alice.assert_alive().await;
    bob.assert_alive().await;
    for node in [a, b] {
        let (status, body) = node.get("/readyz", None).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["failing"], json!(["redis"]), "{body}");
    }
    // The alarm fires.
    wait_for("the redis_down alert", Duration::from_secs(20), || async {
        let (_, alerts) = a.get("/admin/alerts", Some(&root.token)).await;
        alerts["items"]
            .as_array()?
            .iter()
            .any(|r| r["name"] == "redis_down" && r["state"] == "firing")
            .then_some(())
    })
    .await;

    redis.restart();
    for node in [a, b] {
        wait_for("readyz 200 again", Duration::from_secs(20), || async {
            (node.get("/readyz", None).await.0 == 200).then_some(())
        })
        .await;
    }
    // The same clientMsgId retried until the breaker lets it through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let seq = loop {
        alice.send_in(&direct, "after", "m3").await;
        match alice.recv().await {
            Frame::Ack { seq, .. } => break seq,
            Frame::Error { code, .. } if code == "unavailable" => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "sends still fail 20 s after redis came back"
                );
                // The breaker lets a probe through after its open wait.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(seq, 2, "nothing was stored during the outage");
    // Bob's node resubscribed by itself: the message arrives live.
    let live = bob
        .wait_message_text("the message after the outage", "after")
        .await
        .seq;
    assert_eq!(live, 2);
    // And history has no gap.
    let all = bob.full_history(&direct).await;
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_published_while_the_channel_is_down_are_caught_up_in_order() {
    let Some((redis, nodes)) = cluster(2, &[]).await else {
        return;
    };
    let [alice_t, bob_t] = nodes[0].users(["alice", "bob"]).await.map(|u| u.token);
    let mut alice = TestClient::connect(&nodes[0], &alice_t).await;
    let mut bob = TestClient::connect(&nodes[1], &bob_t).await;
    let (_, direct) = alice.say_to("bob", "before", "c0").await;
    assert_eq!(bob.expect_message().await.seq, 1);
    // Redis drops every subscriber (as when a subscriber's output buffer
    // overflows) but keeps serving: sends go on while nodes resubscribe.
    let killed = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert!(killed.starts_with(':'), "{killed}");
    let burst = 20;
    for i in 1..=burst {
        alice
            .send(json!({"type": "send", "conversationId": direct, "text": format!("m{i}"), "clientMsgId": format!("c{i}")}))
            .await;
    }
    // Both sides get every message once, in seq order: live, or caught up
    // from the stream after the resubscription.
    for client in [&mut bob, &mut alice] {
        let got = messages(client, &direct, burst).await;
        assert_in_seq_order(&client.username, &got, 2);
    }
    // Node B lost its subscription, and read what it missed from the stream.
    assert!(
        nodes[1].log().contains("cluster channel lost"),
        "{}",
        nodes[1].log()
    );
    let (_, metrics) = nodes[1].get("/metrics", None).await;
    let fetched: f64 = metrics
        .as_str()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("parley_messages_fetched_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(
        fetched >= 1.0,
        "no message was caught up from the stream:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_event_lost_to_a_crash_is_fetched_without_waiting_for_the_next() {
    // Found by the soak: a conversation actor's first message event was
    // eaten by an injected panic, and the next message started its
    // sequence, so the first one never reached anyone on that node.
    let Some((_redis, nodes)) = cluster(2, &[("PARLEY__FAULTS__ENABLED", "true")]).await else {
        return;
    };
    let root = nodes[1].user("root").await.token;
    let alice_t = nodes[0].user("alice").await.token;
    let bob_t = nodes[0].user("bob").await.token;
    let mut alice = TestClient::connect(&nodes[0], &alice_t).await;
    let mut bob = TestClient::connect(&nodes[1], &bob_t).await;
    let group = alice.create("crash", &["bob"]).await.conversation_id;
    // The next request node B's actor for the group handles (the event of
    // the first message: nobody on B sends) crashes it.
    let (status, body) = nodes[1]
        .post(
            "/admin/faults",
            Some(&root),
            json!({"target": format!("conversation:{group}"), "kind": "panic", "count": 1}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (first, _) = alice.say(&group, "first", "c1").await;
    let got = bob
        .wait_for("the first message, fetched after the crash", |f| match f {
            Frame::Message(m) if m.conversation_id == group => Some((m.seq, m.text.clone())),
            _ => None,
        })
        .await;
    assert_eq!(got, (first, "first".to_string()));
    let (_, metrics) = nodes[1].get("/metrics", None).await;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("parley_actor_restarts_total{") && l.contains("conversation")),
        "the fault did not crash node B's actor:\n{metrics}"
    );
    // And the next message follows, once.
    let (second, _) = alice.say(&group, "second", "c2").await;
    let got = messages(&mut bob, &group, 1).await;
    assert_eq!(got, vec![(second, "second".to_string())]);
    bob.assert_alive().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_a_node_dies_its_clients_reconnect_elsewhere_and_miss_nothing() {
    let Some((_redis, mut nodes)) = cluster(2, &[]).await else {
        return;
    };
    let [alice_t, bob_t] = nodes[1].users(["alice", "bob"]).await.map(|u| u.token);
    let mut bob = TestClient::connect(&nodes[0], &bob_t).await;
    let mut alice = TestClient::connect(&nodes[1], &alice_t).await;
    let (_, direct) = alice.say_to("bob", "m0", "c0").await;
    for i in 1..5 {
        alice.say(&direct, &format!("m{i}"), &format!("c{i}")).await;
    }
    let mut last_seen = 0;
    for _ in 0..5 {
        last_seen = bob.expect_message().await.seq;
    }
    assert_eq!(last_seen, 5);
    // Node A dies with bob's socket on it.
    nodes[0].kill();
    for i in 5..10 {
        alice.say(&direct, &format!("m{i}"), &format!("c{i}")).await;
    }
    // Node B notices A's heartbeat stopped and tells alice bob is offline.
    alice.wait_presence("bob", "offline").await;
    let mut bob = TestClient::connect(&nodes[1], &bob_t).await;
    let (missed, more) = bob.history(&direct, last_seen, 100).await;
    assert!(!more);
    let seqs: Vec<u64> = missed.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (6..=10).collect::<Vec<_>>());
    alice.say(&direct, "m10", "c10").await;
    assert_eq!(bob.expect_message().await.seq, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payments_across_nodes_conserve_money() {
    let provider = TestProvider::start(ProviderOptions {
        max_keys: 10_000,
        ..ProviderOptions::default()
    });
    let url = provider.url();
    let Some((_redis, nodes)) =
        cluster(2, &[("PARLEY__PAYMENTS__PROVIDER_URL", url.as_str())]).await
    else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let mut bob_ws = TestClient::connect(b, &bob.token).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let (node, from, to) = if i % 2 == 0 {
            (a, &alice, "bob")
        } else {
            (b, &bob, "alice")
        };
        let (status, body) = node
            .post(
                "/api/payments",
                Some(&from.token),
                json!({"to": to, "amount": 100 + i, "idempotencyKey": format!("k{i}")}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        ids.push((
            node,
            from.token.clone(),
            body["paymentId"].as_str().unwrap().to_string(),
        ));
    }
    let mut statuses = HashMap::new();
    for (node, token, id) in &ids {
        let status = wait_for("the payment to finish", Duration::from_secs(30), || async {
            let (_, p) = node.get(&format!("/api/payments/{id}"), Some(token)).await;
            match p["status"].as_str() {
                Some("pending") | None => None,
                Some(s) => Some(s.to_string()),
            }
        })
        .await;
        statuses.insert(id.clone(), status);
    }
    assert!(statuses.values().all(|s| s == "completed"), "{statuses:?}");
    // Each balance read on the other node: one shared store.
    let alice_balance = b.get("/api/me", Some(&alice.token)).await.1["balance"]
        .as_i64()
        .unwrap();
    let bob_balance = a.get("/api/me", Some(&bob.token)).await.1["balance"]
        .as_i64()
        .unwrap();
    // alice paid 100+102+...+108, bob paid 101+...+109.
    let paid_by_alice: i64 = (0..10).filter(|i| i % 2 == 0).map(|i| 100 + i).sum();
    let paid_by_bob: i64 = (0..10).filter(|i| i % 2 == 1).map(|i| 100 + i).sum();
    assert_eq!(alice_balance, 10_000 - paid_by_alice + paid_by_bob);
    assert_eq!(bob_balance, 10_000 - paid_by_bob + paid_by_alice);
    assert_eq!(alice_balance + bob_balance, 20_000, "money is conserved");
    // Bob on node B saw the payment messages of the direct conversation.
    let kinds = bob_ws
        .wait_for("a payment message", |f| match f {
            Frame::Message(m) if m.kind == "payment" => Some(m.kind.clone()),
            _ => None,
        })
        .await;
    assert_eq!(kinds, "payment");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_nodes_saga_resumes_on_another_node_and_charges_once() {
    // Every provider call takes 1.5 s, so node A dies with the charge in flight.
    let provider = TestProvider::start(ProviderOptions {
        max_keys: 1000,
        latency: Duration::from_millis(1500),
        ..ProviderOptions::default()
    });
    let url = provider.url();
    let extra = [
        ("PARLEY__PAYMENTS__PROVIDER_URL", url.as_str()),
        ("PARLEY__PAYMENTS__SAGA_LEASE_SECS", "3"),
    ];
    let Some((_redis, mut nodes)) = cluster(2, &extra).await else {
        return;
    };
    let alice = nodes[0].user("alice").await;
    let bob = nodes[0].user("bob").await;
    let (status, body) = nodes[0]
        .post(
            "/api/payments",
            Some(&alice.token),
            json!({"to": "bob", "amount": 700, "idempotencyKey": "k1"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["paymentId"].as_str().unwrap().to_string();
    // The charging step is logged before the call, which then takes 1.5 s.
    let root = nodes[0].user("root").await;
    wait_for(
        "the saga to be charging",
        Duration::from_secs(10),
        || async {
            let (_, list) = nodes[0].get("/admin/payments", Some(&root.token)).await;
            (list["items"][0]["step"] == "charging").then_some(())
        },
    )
    .await;
    nodes[0].kill();
    let b = &nodes[1];
    let (_, p) = b
        .get(&format!("/api/payments/{id}"), Some(&alice.token))
        .await;
    assert_eq!(p["status"], "pending", "node A had not finished it: {p}");
    // Node B takes the saga once A's lease runs out, and finishes it.
    let status = wait_for(
        "node B to finish the saga",
        Duration::from_secs(30),
        || async {
            let (_, p) = b
                .get(&format!("/api/payments/{id}"), Some(&alice.token))
                .await;
            match p["status"].as_str() {
                Some("pending") | None => None,
                Some(s) => Some(s.to_string()),
            }
        },
    )
    .await;
    assert_eq!(status, "completed");
    let stats = provider.state.stats();
    assert_eq!(
        (stats["charges"].as_u64(), stats["succeeded"].as_u64()),
        (Some(1), Some(1)),
        "charged once: {stats}"
    );
    let alice_balance = b.get("/api/me", Some(&alice.token)).await.1["balance"].as_i64();
    let bob_balance = b.get("/api/me", Some(&bob.token)).await.1["balance"].as_i64();
    assert_eq!((alice_balance, bob_balance), (Some(9_300), Some(10_700)));
}
