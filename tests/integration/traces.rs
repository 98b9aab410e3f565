//! A message's path, and a payment's, by traceId.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, wait_for, TestClient};

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
    let (root, alice, bob) = (
        app.user("root").await,
        app.user("alice").await,
        app.user("bob").await,
    );
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
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
    let (root, alice, _bob) = (
        app.user("root").await,
        app.user("alice").await,
        app.user("bob").await,
    );
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
