//! Supervision end to end: injected panics in live actors while clients
//! chat, escalation, the root's failure, and the tree view.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, tree_child, Frame, TestApp, TestClient, TestUser};

async fn arm(app: &TestApp, admin: &str, target: &str, kind: &str, count: u32) {
    let (status, body) = app
        .post(
            "/admin/faults",
            Some(admin),
            json!({"target": target, "kind": kind, "count": count}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

/// A server with fault injection on, and alice's session armed to fail
/// (`kind`: panic, stop) at its next frame; root (the admin) is registered.
async fn alices_session_armed(kind: &str) -> ArmedSession {
    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let [root, alice] = app.users(["root", "alice"]).await;
    let a = TestClient::connect(&app, &alice.token).await;
    let session = format!("session:{}", a.session_id);
    arm(&app, &root.token, &session, kind, 1).await;
    ArmedSession {
        app,
        root,
        alice,
        a,
    }
}

struct ArmedSession {
    app: TestApp,
    root: TestUser,
    alice: TestUser,
    a: TestClient,
}

/// Sends until acked, resending the same frame (same clientMsgId) after an
/// `internal` error; returns (seq, internal errors seen). Other frames are
/// kept for later reads.
async fn send_until_acked(c: &mut TestClient, frame: Value) -> (u64, u32) {
    let reference = frame["ref"].as_str().unwrap().to_string();
    let trace = frame["traceId"].as_str().unwrap().to_string();
    let mut errors = 0;
    loop {
        c.send(frame.clone()).await;
        let outcome = c
            .wait_for("ack or error", |f| match f {
                Frame::Ack {
                    reference: r, seq, ..
                } if r.as_deref() == Some(reference.as_str()) => Some(Ok(*seq)),
                Frame::Error {
                    code,
                    reference: r,
                    trace_id,
                    ..
                } if r.as_deref() == Some(reference.as_str()) => {
                    Some(Err((code.clone(), trace_id.clone())))
                }
                _ => None,
            })
            .await;
        match outcome {
            Ok(seq) => return (seq, errors),
            Err((code, trace_id)) => {
                assert_eq!(code, "internal", "only injected failures are expected");
                assert_eq!(trace_id, trace, "the error carries the frame's traceId");
                errors += 1;
                assert!(errors < 50, "never acked");
            }
        }
    }
}

/// Reads `count` message frames for `conversation`, returning their seqs.
async fn live_seqs(c: &mut TestClient, conversation: &str, count: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    while seqs.len() < count {
        if let Frame::Message(m) = c.recv().await {
            if m.conversation_id == conversation {
                seqs.push(m.seq);
            }
        }
    }
    seqs
}

fn trace_for(i: u64) -> String {
    format!("{:032x}", 0xabc0_0000_u64 + i)
}

#[tokio::test]
async fn twenty_panics_in_a_live_conversation_lose_and_duplicate_nothing() {
    let app = spawn_app_with(|s| {
        s.faults_enabled = true;
        // Twenty crashes of one actor in a row would back off up to 2 s each.
        s.supervision.conversations.backoff.max = Duration::from_millis(20);
    })
    .await;
    let root = app.user("root").await;
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let [carol, dave] = app.users(["carol", "dave"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    let mut c = TestClient::connect(&app, &carol.token).await;
    let mut d = TestClient::connect(&app, &dave.token).await;
    let id = a.create("chaos", &["bob"]).await.conversation_id;
    let other = c.create("calm", &["dave"]).await.conversation_id;

    let total = 60u64;
    let (mut panics, mut internal_errors) = (0u32, 0u32);
    let mut other_sent = 0;
    for i in 0..total {
        if i % 3 == 0 && panics < 20 {
            arm(&app, &root.token, &format!("conversation:{id}"), "panic", 1).await;
            panics += 1;
        }
        let frame = json!({"type": "send", "conversationId": id, "text": format!("m{i}"),
            "clientMsgId": format!("m{i}"), "ref": format!("r{i}"), "traceId": trace_for(i)});
        let sender = if i % 2 == 0 { &mut a } else { &mut b };
        let (_, errors) = send_until_acked(sender, frame).await;
        internal_errors += errors;
        if i % 10 == 0 {
            // Another conversation keeps working throughout.
            c.say(&other, &format!("calm {i}"), &format!("c{i}")).await;
            other_sent += 1;
        }
    }
    assert_eq!(panics, 20);
    assert_eq!(
        internal_errors, 20,
        "each panic answered exactly the request it hit"
    );

    // Every acked message reached both members live, once each, in seq order.
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(live_seqs(&mut a, &id, total as usize).await, expected);
    assert_eq!(live_seqs(&mut b, &id, total as usize).await, expected);
    assert_eq!(
        live_seqs(&mut d, &other, other_sent).await,
        (1..=other_sent as u64).collect::<Vec<_>>()
    );
    // And history holds each exactly once, with continuous seq.
    let history = a.full_history(&id).await;
    assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), expected);
    let texts: Vec<String> = history.iter().map(|m| m.text.clone()).collect();
    assert_eq!(
        texts,
        (0..total).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );

    // The tree shows the restarts, with the last failure's trace.
    let (status, view) = app.get("/admin/supervision", Some(&root.token)).await;
    assert_eq!(status, 200, "{view}");
    let conversations = tree_child(&view["tree"], "conversations");
    assert_eq!(conversations["kind"], "dynamic_supervisor");
    assert_eq!(conversations["restarts"], 20);
    let child = tree_child(&conversations, &format!("conversation:{id}"));
    assert_eq!(child["restarts"], 20);
    assert_eq!(child["status"], "running");
    let last = &child["lastFailure"];
    assert!(last["reason"].as_str().unwrap().contains("injected fault"));
    assert_eq!(last["traceId"].as_str().map(str::len), Some(32));
    assert!(view["restarts"]
        .as_array()
        .unwrap()
        .contains(&json!({"kind": "conversation", "reason": "panic", "count": 20})));
    // And in Prometheus metrics (process-wide: other tests may add to it).
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("# HELP parley_actor_restarts_total"),
        "{text}"
    );
    assert!(
        text.contains(r#"parley_actor_restarts_total{kind="conversation",reason="panic"}"#),
        "{text}"
    );
    assert!(text.contains("parley_messages_committed_total"), "{text}");
}

#[tokio::test]
async fn a_session_that_panics_answers_internal_and_serves_on() {
    let ArmedSession {
        app, root, mut a, ..
    } = alices_session_armed("panic").await;
    let trace = trace_for(1);
    a.send(json!({"type": "ping", "ref": "p1", "traceId": trace}))
        .await;
    let (code, reference, trace_id) = a.expect_error().await;
    assert_eq!(
        (code.as_str(), reference.as_deref(), trace_id.as_str()),
        ("internal", Some("p1"), trace.as_str())
    );
    a.assert_alive().await;
    let (_, view) = app.get("/admin/supervision", Some(&root.token)).await;
    let sessions = tree_child(&view["tree"], "sessions");
    assert_eq!(sessions["restarts"], 1);
}

#[tokio::test]
async fn an_intensity_overflow_escalates_and_the_root_restarts_the_subtree() {
    let app = spawn_app_with(|s| {
        s.faults_enabled = true;
        s.supervision.conversations.intensity.max_restarts = 3;
        s.supervision.conversations.intensity.window = Duration::from_secs(60);
        // The same request is resent after each crash; it must not count as poison here.
        s.supervision.conversations.poison_tries = 10;
    })
    .await;
    let root = app.user("root").await;
    let [mut a, mut b] = app.clients(["alice", "bob"]).await;
    let id = a.create("fragile", &["bob"]).await.conversation_id;
    let other = b.create("bystander", &["alice"]).await.conversation_id;
    b.say(&other, "before", "o1").await;
    arm(&app, &root.token, &format!("conversation:{id}"), "panic", 4).await;
    let frame = json!({"type": "send", "conversationId": id, "text": "survives", "clientMsgId": "s1",
        "ref": "s1", "traceId": trace_for(7)});
    let (seq, errors) = send_until_acked(&mut a, frame).await;
    assert_eq!((seq, errors), (1, 4));
    assert_eq!(b.expect_message().await.text, "survives");
    // The bystander conversation was restarted with the subtree and serves on.
    let (seq, _) = b.say(&other, "after", "o2").await;
    assert_eq!(seq, 2);
    let (_, view) = app.get("/admin/supervision", Some(&root.token)).await;
    let tree = &view["tree"];
    assert_eq!(tree["restarts"], 1, "{view}");
    assert!(tree["lastFailure"]["reason"]
        .as_str()
        .unwrap()
        .starts_with("conversations: more than 3 restarts"));
    assert_eq!(tree["status"], "running");
}

#[tokio::test]
async fn a_failing_root_ends_the_server_with_an_error() {
    let app = spawn_app_with(|s| {
        s.faults_enabled = true;
        s.supervision.root.intensity.max_restarts = 0;
        s.supervision.conversations.intensity.max_restarts = 0;
    })
    .await;
    let [root, alice, _bob] = app.users(["root", "alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let id = a.create("doomed", &["bob"]).await.conversation_id;
    arm(&app, &root.token, &format!("conversation:{id}"), "panic", 1).await;
    a.send_in(&id, "x", "x").await;
    assert_eq!(a.expect_error().await.0, "internal");
    let result = app.join(Duration::from_secs(15)).await;
    let err = result.expect_err("the server must fail");
    assert!(
        err.to_string().contains("root supervisor failed"),
        "{err:#}"
    );
}

#[tokio::test]
async fn fault_injection_is_guarded() {
    let app = spawn_app_with(|_| {}).await;
    let [root, alice] = app.users(["root", "alice"]).await;
    let body = json!({"target": "conversation", "kind": "panic", "count": 1});
    assert_eq!(
        app.post("/admin/faults", Some(&alice.token), body.clone())
            .await
            .0,
        403
    );
    let (status, err) = app.post("/admin/faults", Some(&root.token), body).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "disabled by default"
    );

    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let root = app.user("root").await;
    for bad in [
        json!({"target": "warehouse", "kind": "panic"}),
        json!({"target": "conversation", "kind": "explode"}),
        json!({"target": "conversation", "kind": "delay"}),
        json!({"target": "conversation", "kind": "panic", "count": 0}),
    ] {
        let (status, err) = app
            .post("/admin/faults", Some(&root.token), bad.clone())
            .await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}"
        );
    }
    let (_, view) = app.get("/admin/supervision", Some(&root.token)).await;
    let names: Vec<&str> = view["tree"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec![
            "breaker:payment_provider",
            "breaker:webhook",
            "store_writer",
            "directory",
            "conversations",
            "sessions",
            "alerts",
            "payments"
        ]
    );
    assert_eq!(view["tree"]["name"], "root");
    assert_eq!(view["node"], "test-node");
}

#[tokio::test]
async fn a_request_that_keeps_crashing_its_actor_is_refused_as_poison() {
    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let [root, alice, _bob] = app.users(["root", "alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let id = a.create("poisoned", &["bob"]).await.conversation_id;
    arm(&app, &root.token, &format!("conversation:{id}"), "panic", 3).await;
    let frame = json!({"type": "send", "conversationId": id, "text": "bad", "clientMsgId": "p", "ref": "p"});
    for _ in 0..3 {
        a.send(frame.clone()).await;
        assert_eq!(a.expect_error().await.0, "internal");
    }
    a.send(frame).await;
    let (code, reference, _) = a.expect_error().await;
    assert_eq!(
        (code.as_str(), reference.as_deref()),
        ("bad_request", Some("p"))
    );
    // Everything else goes on.
    assert_eq!(a.say(&id, "fine", "q").await.0, 1);
}

#[tokio::test]
async fn a_stop_fault_answers_the_frame_and_closes_the_session() {
    let ArmedSession {
        app, alice, mut a, ..
    } = alices_session_armed("stop").await;
    a.send(json!({"type": "ping", "ref": "s1"})).await;
    let (code, reference, _) = a.expect_error().await;
    assert_eq!(
        (code.as_str(), reference.as_deref()),
        ("internal", Some("s1"))
    );
    assert_eq!(a.expect_close().await.0, 1011);
    // A new session works.
    TestClient::connect(&app, &alice.token)
        .await
        .assert_alive()
        .await;
}

#[tokio::test]
async fn a_conversation_stopped_with_a_commit_queued_still_delivers_it() {
    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let root = app.user("root").await;
    let [mut a, mut b] = app.clients(["alice", "bob"]).await;
    let id = a.create("stops", &["bob"]).await.conversation_id;
    let target = format!("conversation:{id}");
    // Faults are taken in the order armed: the send waits 300 ms before it
    // is handled, the typing frame queued meanwhile stops the actor, and
    // the send's commit outcome arrives behind it and is dropped with it.
    let (status, body) = app
        .post_fault(
            &root.token,
            json!({"target": target, "kind": "delay", "delayMs": 300, "count": 1}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    arm(&app, &root.token, &target, "stop", 1).await;
    let first = json!({"type": "send", "conversationId": id, "text": "first",
        "clientMsgId": "c1", "ref": "r1", "traceId": trace_for(1)});
    a.send(first.clone()).await;
    a.send(json!({"type": "typing", "conversationId": id, "ref": "t1"}))
        .await;
    // The commit happened, but its outcome was lost: `internal` (a retry
    // that reaches the stopping actor too), and the retry is acked as the
    // stored message.
    let (seq, errors) = send_until_acked(&mut a, first).await;
    assert!(
        errors >= 1,
        "the outcome was not lost: the test proves nothing"
    );
    assert_eq!(seq, 1);
    let code = a
        .wait_for("the stopped typing frame's error", |f| match f {
            Frame::Error {
                code, reference, ..
            } if reference.as_deref() == Some("t1") => Some(code.clone()),
            _ => None,
        })
        .await;
    assert_eq!(code, "internal");
    // Every member gets it once (the sender too; each of its retries is
    // answered, so it may see one ack per attempt), then the next message.
    let second = json!({"type": "send", "conversationId": id, "text": "second",
        "clientMsgId": "c2", "ref": "r2", "traceId": trace_for(2)});
    assert_eq!(send_until_acked(&mut a, second).await, (2, 0));
    assert_eq!(live_seqs(&mut a, &id, 2).await, vec![1, 2]);
    assert_eq!(live_seqs(&mut b, &id, 2).await, vec![1, 2]);
    b.assert_alive().await;
}
