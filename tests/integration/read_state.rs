//! Read state as the server keeps it: one's own messages are read, and every
//! member's marker comes with the conversation (`readBy`) over both protocols.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, wait_for, Frame, TestApp, TestClient};

fn marks(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

/// `user`'s listed conversation `id` from `GET /api/conversations`.
async fn listed(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, list) = app.get("/api/conversations", Some(token)).await;
    assert_eq!(status, 200, "{list}");
    list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|c| c["conversationId"] == id))
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not listed: {list}"))
}

fn read_by(conversation: &Value) -> BTreeMap<String, u64> {
    serde_json::from_value(conversation["readBy"].clone())
        .unwrap_or_else(|e| panic!("readBy ({e}): {conversation}"))
}

#[tokio::test]
async fn a_sent_message_is_read_by_its_sender_and_every_marker_is_listed() {
    let app = spawn_app().await;
    let [(alice, mut a), (bob, mut b)] = app.online(["alice", "bob"]).await;

    let (seq, id) = a.say_to("bob", "hello", "h1").await;
    assert_eq!(seq, 1);
    b.expect_message().await;
    // Committed with the message: the very next list shows it.
    let mine = listed(&app, &alice.token, &id).await;
    assert_eq!(
        (mine["lastSeq"].as_u64(), mine["lastReadSeq"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(read_by(&mine), marks(&[("alice", 1), ("bob", 0)]));
    let theirs = listed(&app, &bob.token, &id).await;
    assert_eq!(theirs["lastReadSeq"], 0, "bob has not read it");
    assert_eq!(read_by(&theirs), marks(&[("alice", 1), ("bob", 0)]));

    // Bob reads it: after a reload alice can see that, over either protocol.
    b.send(json!({"type": "read", "conversationId": id, "seq": 1}))
        .await;
    wait_for("bob's stored marker", Duration::from_secs(5), || async {
        let c = listed(&app, &alice.token, &id).await;
        (read_by(&c) == marks(&[("alice", 1), ("bob", 1)])).then_some(())
    })
    .await;
    a.send(json!({"type": "conversations"})).await;
    let items = a
        .wait_for("conversations", |f| match f {
            Frame::Conversations { items, .. } => Some(items.clone()),
            _ => None,
        })
        .await;
    let item = items.iter().find(|c| c.conversation_id == id).unwrap();
    assert_eq!(item.last_read_seq, Some(1));
    assert_eq!(item.read_by, Some(marks(&[("alice", 1), ("bob", 1)])));
}

#[tokio::test]
async fn a_payment_message_is_read_by_its_payer() {
    let app = spawn_app().await;
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let (_, id) = a.say_to("bob", "invoice?", "i1").await;
    a.send(json!({"type": "pay", "to": "bob", "amount": 1250, "idempotencyKey": "k1"}))
        .await;
    let paid = a.wait_payment_message().await;
    let mine = listed(&app, &alice.token, &id).await;
    assert_eq!(mine["lastSeq"].as_u64(), Some(paid.seq));
    assert_eq!(mine["lastReadSeq"].as_u64(), Some(paid.seq), "{mine}");
    assert_eq!(listed(&app, &bob.token, &id).await["lastReadSeq"], 0);
}

#[tokio::test]
async fn a_new_group_lists_every_member_at_zero() {
    let app = spawn_app().await;
    let [alice, _bob, _carol] = app.users(["alice", "bob", "carol"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let created = a.create("trio", &["bob", "carol"]).await;
    let zero = marks(&[("alice", 0), ("bob", 0), ("carol", 0)]);
    assert_eq!(created.read_by, Some(zero.clone()));
    let (status, made) = app.post_group(&alice.token, "duo", &["bob"]).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(read_by(&made), marks(&[("alice", 0), ("bob", 0)]));
}
