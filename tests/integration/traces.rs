//! A message's path, and a payment's, by traceId; which traces are kept,
//! and that any recent one is found.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{
    spawn_app, spawn_app_with, spawn_node, tree_child, wait_for, Acked, Frame, RedisServer,
    TestApp, TestClient,
};

fn events(trace: &Value) -> Vec<(String, String)> {
    trace["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["component"].as_str().unwrap().to_string(),
                h["event"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_chat_message_trace_shows_every_hop() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    let [(alice, mut a), (_bob, mut b)] = app.online(["alice", "bob"]).await;
    let trace = "7a3f0e1d2c3b4a5968778695a4b3c2d1";
    a.send(json!({"type": "send", "to": "bob", "text": "follow me", "clientMsgId": "t1", "traceId": trace}))
        .await;
    a.expect_ack().await;
    a.expect_message().await;
    b.expect_message().await;
    let path = format!("/admin/traces/{trace}");
    let view = wait_for(
        "both deliveries recorded",
        Duration::from_secs(5),
        || async {
            let (status, view) = app.get(&path, Some(&root.token)).await;
            let delivered = events(&view)
                .iter()
                .filter(|(_, e)| e == "delivered")
                .count();
            (status == 200 && delivered >= 3).then_some(view)
        },
    )
    .await;
    let ev = events(&view);
    let pos = |c: &str, e: &str| ev.iter().position(|(cc, ee)| cc == c && ee.starts_with(e));
    let received = pos("session", "received send").expect("session received");
    let committed = pos("store", "committed").expect("store committed");
    let sequenced = pos("conversation", "sequenced seq 1").expect("conversation sequenced");
    assert!(received < committed && committed < sequenced, "{ev:?}");
    // Delivered: the ack and the message to alice's session, the message to bob's.
    let actors: std::collections::HashSet<&str> = view["hops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["event"] == "delivered")
        .map(|h| h["actor"].as_str().unwrap())
        .collect();
    assert!(
        actors.contains(format!("session:{}", a.session_id).as_str()),
        "{actors:?}"
    );
    assert!(
        actors.contains(format!("session:{}", b.session_id).as_str()),
        "{actors:?}"
    );
    let hop = &view["hops"][0];
    assert_eq!(hop["node"], "test-node");
    assert!(hop["start"].as_str().unwrap().ends_with('Z'));
    assert!(hop["durationUs"].is_u64());
    // Unknown and malformed ids.
    let (status, _) = app
        .get(
            "/admin/traces/00000000000000000000000000000001",
            Some(&root.token),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get("/admin/traces/nope", Some(&root.token)).await;
    assert_eq!(status, 400);
    assert_eq!(app.get(&path, Some(&alice.token)).await.0, 403);
}

#[tokio::test]
async fn a_payment_trace_shows_each_saga_step_and_provider_call() {
    let app = spawn_app().await;
    let [root, alice, _bob] = app.users(["root", "alice", "bob"]).await;
    let trace = "0123456789abcdef0123456789abcdef";
    let res = app
        .http
        .post(app.url("/api/payments"))
        .bearer_auth(&alice.token)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"to": "bob", "amount": 10, "idempotencyKey": "traced"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let view = wait_for("the saga's steps", Duration::from_secs(10), || async {
        let (_, view) = app
            .get(&format!("/admin/traces/{trace}"), Some(&root.token))
            .await;
        let done = view["hops"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["event"] == "credited"));
        done.then_some(view)
    })
    .await;
    let ev = events(&view);
    for step in ["reserved", "charging", "credited"] {
        assert!(
            ev.iter().any(|(c, e)| c == "payment" && e == step),
            "no {step}: {ev:?}"
        );
    }
    assert!(
        ev.iter()
            .any(|(c, e)| c == "provider" && e.starts_with("charge")),
        "{ev:?}"
    );
}

/// The trace's lookup once `ready` holds (hops are recorded as they end).
async fn look_up(app: &TestApp, admin: &str, trace: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/admin/traces/{trace}");
    wait_for(
        &format!("trace {trace}"),
        Duration::from_secs(10),
        || async {
            let (status, view) = app.get(&path, Some(admin)).await;
            (status == 200 && ready(&view)).then_some(view)
        },
    )
    .await
}

fn has(view: &Value, component: &str, event: &str) -> bool {
    events(view)
        .iter()
        .any(|(c, e)| c == component && e.starts_with(event))
}

async fn arm(app: &TestApp, admin: &str, fault: Value) {
    let (status, body) = app.post("/admin/faults", Some(admin), fault).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn an_ordinary_message_is_found_among_recent_hops_with_no_sampling() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    let [mut a, mut b] = app.clients(["alice", "bob"]).await;
    // No traceId given: the server makes one, and nothing samples it.
    a.send_to("bob", "where did it go", "r1").await;
    let Acked { trace_id, .. } = a.acked().await;
    a.expect_message().await;
    assert_eq!(b.expect_message().await.trace_id, trace_id);
    let view = look_up(&app, &root.token, &trace_id, |v| {
        events(v).iter().filter(|(_, e)| e == "delivered").count() >= 3
    })
    .await;
    assert_eq!(
        view["kept"],
        Value::Null,
        "not kept, found among recent hops"
    );
    for (component, event) in [
        ("session", "received send"),
        ("store", "committed"),
        ("conversation", "sequenced seq 1"),
    ] {
        assert!(has(&view, component, event), "no {event}: {view}");
    }
}

#[tokio::test]
async fn a_payment_s_trace_is_kept_with_the_frame_that_started_it() {
    let app = spawn_app().await;
    let [root, alice, _bob] = app.users(["root", "alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    a.send(
        json!({"type": "pay", "to": "bob", "amount": 25, "idempotencyKey": "kept", "ref": "p1"}),
    )
    .await;
    let trace = a
        .wait_for("the payment", |f| match f {
            Frame::Payment(p) => Some(p.trace_id.clone()),
            _ => None,
        })
        .await;
    let view = look_up(&app, &root.token, &trace, |v| has(v, "payment", "credited")).await;
    assert_eq!(view["kept"], "payment", "{view}");
    // Recorded before the payment existed, kept with it.
    assert!(has(&view, "session", "pay"), "{view}");
    for step in ["reserved", "charging", "credited"] {
        assert!(has(&view, "payment", step), "no {step}: {view}");
    }
    assert!(has(&view, "provider", "charge"), "{view}");
}

#[tokio::test]
async fn a_restarted_actor_s_last_failure_trace_is_kept() {
    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let [root, alice] = app.users(["root", "alice"]).await;
    arm(
        &app,
        &root.token,
        json!({"target": "directory", "kind": "panic", "count": 1}),
    )
    .await;
    // Joining the directory panics it: no client sees an error.
    let mut a = TestClient::connect(&app, &alice.token).await;
    let failure_trace = |view: &Value| {
        let last = &tree_child(&view["tree"], "directory")["lastFailure"];
        last["traceId"].as_str().map(str::to_string)
    };
    let (what, timeout) = ("the directory's failure", Duration::from_secs(10));
    let failure = app
        .poll(
            what,
            timeout,
            "/admin/supervision",
            &root.token,
            failure_trace,
        )
        .await;
    let view = look_up(&app, &root.token, &failure, |v| {
        has(v, "supervision", "directory")
    })
    .await;
    assert_eq!(view["kept"], "restart", "{view}");
    assert!(
        has(&view, "supervision", "directory failed: injected fault"),
        "{view}"
    );
    a.assert_alive().await;
}

#[tokio::test]
async fn an_error_s_trace_is_kept_but_not_a_401_s() {
    let app = spawn_app().await;
    let [root, alice] = app.users(["root", "alice"]).await;
    // An error frame: its trace is kept with the frame it answers.
    let mut a = TestClient::connect(&app, &alice.token).await;
    a.send(
        json!({"type": "send", "to": "nobody", "text": "hello?", "clientMsgId": "e1", "ref": "e1"}),
    )
    .await;
    let (code, _, trace) = a.expect_error().await;
    assert_eq!(code, "not_found");
    let view = look_up(&app, &root.token, &trace, |v| {
        has(v, "session", "delivered")
    })
    .await;
    assert_eq!(view["kept"], "refused", "{view}");
    assert!(has(&view, "session", "received send"), "{view}");

    // An HTTP error answer is a hop of its own, and keeps its trace.
    let (status, body) = app.post_payment(&alice.token, "root", -1, "bad").await;
    assert_eq!(status, 400, "{body}");
    let trace = body["error"]["traceId"].as_str().unwrap();
    let view = look_up(&app, &root.token, trace, |_| true).await;
    assert_eq!(view["kept"], "refused", "{view}");
    assert!(
        has(&view, "http", "POST /api/payments answered 400"),
        "{view}"
    );

    // A 401 is not kept (anyone can cause them in bulk); its hop is recent.
    let (status, body) = app.get("/api/me", None).await;
    assert_eq!(status, 401, "{body}");
    let trace = body["error"]["traceId"].as_str().unwrap();
    let view = look_up(&app, &root.token, trace, |_| true).await;
    assert_eq!(view["kept"], Value::Null, "{view}");
    assert!(has(&view, "http", "GET /api/me answered 401"), "{view}");
}

#[tokio::test]
async fn a_slow_delivery_keeps_its_trace() {
    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let [root, alice, _bob] = app.users(["root", "alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let (_, conversation) = a.say_to("bob", "first", "s0").await;
    // The conversation sleeps 300 ms on each of the next two requests: the
    // commit of the first waits behind the second, so its sequencing (the
    // `delivery_ms` the slow_delivery alert watches) takes that long.
    arm(
        &app,
        &root.token,
        json!({"target": format!("conversation:{conversation}"), "kind": "delay", "delayMs": 300, "count": 2}),
    )
    .await;
    for cmid in ["s1", "s2"] {
        a.send(json!({"type": "send", "conversationId": conversation, "text": cmid, "clientMsgId": cmid}))
            .await;
    }
    let trace = a
        .wait_for("the ack of s1", |f| match f {
            Frame::Ack {
                client_msg_id,
                trace_id,
                ..
            } if client_msg_id == "s1" => Some(trace_id.clone()),
            _ => None,
        })
        .await;
    let view = look_up(&app, &root.token, &trace, |v| {
        has(v, "conversation", "sequenced")
    })
    .await;
    assert_eq!(view["kept"], "slow", "{view}");
    let sequenced = view["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| {
            h["event"]
                .as_str()
                .is_some_and(|e| e.starts_with("sequenced"))
        })
        .unwrap();
    assert!(
        sequenced["durationUs"].as_u64().unwrap() > 100_000,
        "{view}"
    );
    assert!(has(&view, "session", "received send"), "{view}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_node_keeps_its_part_of_a_kept_trace_and_its_recent_hops() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = spawn_node(&redis.url(), "traces-test:", "node-a", &[]).await;
    let b = spawn_node(&redis.url(), "traces-test:", "node-b", &[]).await;
    let root = a.user("root").await;
    let alice = a.user("alice").await;
    let bob = b.user("bob").await;
    let mut alice_ws = TestClient::connect(&a, &alice.token).await;
    let mut bob_ws = TestClient::connect(&b, &bob.token).await;

    // An ordinary message: each node has its hops among its recent ones.
    alice_ws.send_to("bob", "across", "x1").await;
    let Acked { trace_id, .. } = alice_ws.acked().await;
    assert_eq!(bob_ws.expect_message().await.trace_id, trace_id);
    let on_b = look_up(&b, &root.token, &trace_id, |v| {
        has(v, "session", "delivered")
    })
    .await;
    assert_eq!(on_b["kept"], Value::Null, "{on_b}");
    assert!(
        has(&on_b, "conversation", "received seq 1 committed on node-a"),
        "{on_b}"
    );

    // A payment made on A: A keeps it, and tells B to keep its part.
    alice_ws
        .send(json!({"type": "pay", "to": "bob", "amount": 30, "idempotencyKey": "across"}))
        .await;
    let trace = bob_ws
        .wait_for("the payment on node-b", |f| match f {
            Frame::Payment(p) if p.status == "completed" => Some(p.trace_id.clone()),
            _ => None,
        })
        .await;
    let on_a = look_up(&a, &root.token, &trace, |v| has(v, "payment", "credited")).await;
    assert_eq!(on_a["kept"], "payment", "{on_a}");
    let on_b = look_up(&b, &root.token, &trace, |v| has(v, "session", "delivered")).await;
    assert_eq!(on_b["kept"], "cluster", "{on_b}");
    assert!(on_b["hops"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["node"] == "node-b"));
}

#[tokio::test]
async fn a_trace_id_is_honoured_only_for_the_caller_whose_it_is() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    let [(alice, mut a), (bob, mut b)] = app.online(["alice", "bob"]).await;
    // One alice chose, and one the server made for her.
    let chosen = "1f2e3d4c5b6a79881f2e3d4c5b6a7988";
    a.send(json!({"type": "send", "to": "bob", "text": "mine", "clientMsgId": "a1", "traceId": chosen}))
        .await;
    assert_eq!(a.acked().await.trace_id, chosen);
    a.expect_message().await;
    assert_eq!(b.expect_message().await.trace_id, chosen);
    a.send_to("bob", "no id given", "a2").await;
    let Acked { trace_id: made, .. } = a.acked().await;
    a.expect_message().await;
    assert_eq!(b.expect_message().await.trace_id, made);
    // Bob saw both on alice's messages; reusing them gets him ids of his own.
    let mut own = Vec::new();
    for (i, taken) in [chosen, made.as_str()].into_iter().enumerate() {
        b.send(json!({"type": "send", "to": "alice", "text": "graft", "clientMsgId": format!("b{i}"), "traceId": taken}))
            .await;
        let ack = b.acked().await;
        assert_ne!(ack.trace_id, taken, "bob was given alice's trace");
        b.expect_message().await;
        a.expect_message().await;
        own.push(ack.trace_id);
    }
    // Over HTTP too.
    let res = app
        .http
        .get(app.url("/api/me"))
        .bearer_auth(&bob.token)
        .header("traceparent", format!("00-{chosen}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("GET /api/me");
    assert_ne!(res.headers()["x-trace-id"], chosen);
    // His own ids stay his, and alice's hers.
    b.send(json!({"type": "ping", "ref": "p", "traceId": own[0]}))
        .await;
    let pong = b
        .wait_for("pong", |f| match f {
            Frame::Pong { trace_id, .. } => Some(trace_id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(pong, own[0]);
    let res = app
        .http
        .get(app.url("/api/me"))
        .bearer_auth(&alice.token)
        .header("traceparent", format!("00-{made}-00f067aa0ba902b7-01"))
        .send()
        .await
        .expect("GET /api/me");
    assert_eq!(res.headers()["x-trace-id"], made.as_str());
    // Alice's traces hold her sends only.
    for trace in [chosen, made.as_str()] {
        let view = look_up(&app, &root.token, trace, |v| {
            has(v, "session", "received send")
        })
        .await;
        let senders: Vec<&str> = view["hops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["event"] == "received send")
            .map(|h| h["actor"].as_str().unwrap())
            .collect();
        assert_eq!(senders, [format!("session:{}", a.session_id)], "{view}");
    }
}
