//! New contacts and new groups: users who come to share a conversation
//! while connected hear each other's presence at once, members see a new
//! group at once (`conversation_added`), and an offline contact comes with
//! the time they were last seen. One node on SQLite, then two on one Redis.

use serde_json::json;

use crate::helpers::{
    spawn_app, spawn_node, ConversationItem, Frame, RedisServer, TestApp, TestClient,
};

/// The next presence `client` hears of `user`: its status and lastSeen.
async fn presence_of(client: &mut TestClient, user: &str) -> (String, Option<String>) {
    let what = format!("presence of {user}");
    client
        .wait_for(&what, |f| match f {
            Frame::Presence {
                username,
                status,
                last_seen,
                ..
            } if username == user => Some((status.clone(), last_seen.clone())),
            _ => None,
        })
        .await
}

/// The next `conversation_added` `client` gets.
async fn added(client: &mut TestClient) -> ConversationItem {
    client
        .wait_for("conversation_added", |f| match f {
            Frame::ConversationAdded { conversation, .. } => Some(conversation.clone()),
            _ => None,
        })
        .await
}

/// Reads up to the answer of a ping; none of what came first may be a
/// `conversation_added`.
async fn nothing_added_before_pong(client: &mut TestClient) {
    client.send(json!({"type": "ping", "ref": "p"})).await;
    loop {
        match client.recv_any().await {
            Frame::Pong { .. } => return,
            Frame::ConversationAdded { conversation, .. } => {
                panic!(
                    "{}: unexpected conversation_added {conversation:?}",
                    client.username
                )
            }
            _ => {}
        }
    }
}

// The helpers' `say_to` and `create` pass over (and drop) presence, which
// here arrives before their answer: these send and leave every frame queued.

async fn say_to(client: &mut TestClient, user: &str, text: &str) {
    client
        .send(json!({"type": "send", "to": user, "text": text, "clientMsgId": text}))
        .await;
}

async fn create(client: &mut TestClient, name: &str, members: &[&str]) -> ConversationItem {
    client
        .send(json!({"type": "create", "name": name, "members": members}))
        .await;
    client
        .wait_for("created", |f| match f {
            Frame::Created { conversation, .. } => Some(conversation.clone()),
            _ => None,
        })
        .await
}

/// A lastSeen is RFC 3339 UTC and close to now.
fn assert_recent(last_seen: &str) {
    let at = chrono::DateTime::parse_from_rfc3339(last_seen)
        .unwrap_or_else(|e| panic!("lastSeen {last_seen:?}: {e}"));
    assert!(last_seen.ends_with('Z'), "lastSeen in UTC: {last_seen}");
    let age = chrono::Utc::now().signed_duration_since(at);
    assert!(
        age.num_seconds().abs() < 30,
        "lastSeen {last_seen} is not recent"
    );
}

#[tokio::test]
async fn a_first_direct_message_introduces_both_users() {
    let app = spawn_app().await;
    let [mut a, mut b] = app.clients(["alice", "bob"]).await;
    say_to(&mut a, "bob", "hi bob").await;
    assert_eq!(presence_of(&mut a, "bob").await.0, "online");
    assert_eq!(presence_of(&mut b, "alice").await.0, "online");
}

#[tokio::test]
async fn a_new_group_shows_at_once_and_introduces_its_members() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let [bob, carol] = app.users(["bob", "carol"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut a2 = TestClient::connect(&app, &alice.token).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    let mut c = TestClient::connect(&app, &carol.token).await;

    let group = create(&mut a, "trio", &["bob", "carol"]).await;
    for client in [&mut b, &mut c, &mut a2] {
        let shown = added(client).await;
        assert_eq!(shown.conversation_id, group.conversation_id);
        assert_eq!(
            (shown.kind.as_str(), shown.name.as_str()),
            ("group", "trio")
        );
        assert_eq!(shown.members, ["alice", "bob", "carol"]);
    }
    for (client, others) in [
        (&mut a, ["bob", "carol"]),
        (&mut b, ["alice", "carol"]),
        (&mut c, ["alice", "bob"]),
    ] {
        for other in others {
            assert_eq!(presence_of(client, other).await.0, "online");
        }
    }
    // The creating session has its `created` and nothing more. This can
    // fail: the directory queues a session's `conversation_added` before the
    // presence frames it sends it, and `a` has had those (frames passed over
    // while waiting stay queued, and are read here first).
    nothing_added_before_pong(&mut a).await;
}

#[tokio::test]
async fn a_group_created_over_http_shows_in_every_session_of_its_members() {
    let app = spawn_app().await;
    let [(alice, mut a), (_bob, mut b)] = app.online(["alice", "bob"]).await;
    let (status, body) = app.post_group(&alice.token, "over http", &["bob"]).await;
    assert_eq!(status, 201, "{body}");
    for client in [&mut a, &mut b] {
        assert_eq!(added(client).await.conversation_id, body["conversationId"]);
    }
}

#[tokio::test]
async fn an_invited_user_sees_the_group_and_meets_its_members() {
    let app = spawn_app().await;
    let [mut a, mut b, mut c] = app.clients(["alice", "bob", "carol"]).await;
    let group = create(&mut a, "pair", &["bob"]).await;
    let id = group.conversation_id.clone();

    a.send(json!({"type": "invite", "conversationId": id, "username": "carol"}))
        .await;
    let shown = added(&mut c).await;
    assert_eq!(shown.conversation_id, id);
    assert_eq!(shown.members, ["alice", "bob", "carol"]);
    assert_eq!(presence_of(&mut c, "alice").await.0, "online");
    assert_eq!(presence_of(&mut c, "bob").await.0, "online");
    assert_eq!(presence_of(&mut a, "carol").await.0, "online");
    assert_eq!(presence_of(&mut b, "carol").await.0, "online");
}

#[tokio::test]
async fn an_offline_contact_comes_with_the_time_last_seen() {
    let app = spawn_app().await;
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let b = TestClient::connect(&app, &bob.token).await;
    say_to(&mut a, "bob", "hi").await;
    assert_eq!(presence_of(&mut a, "bob").await.0, "online");

    b.close().await;
    let (status, last_seen) = presence_of(&mut a, "bob").await;
    assert_eq!(status, "offline");
    let last_seen = last_seen.expect("an offline presence with lastSeen");
    assert_recent(&last_seen);

    // A new session hears it too, with the same time.
    let mut a2 = TestClient::connect(&app, &alice.token).await;
    assert_eq!(
        presence_of(&mut a2, "bob").await,
        ("offline".to_string(), Some(last_seen))
    );
}

/// Two nodes on one Redis (None when redis-server is missing outside CI).
async fn two_nodes() -> Option<(RedisServer, TestApp, TestApp)> {
    let redis = RedisServer::start()?;
    let a = spawn_node(&redis.url(), "presence-test:", "node-a", &[]).await;
    let b = spawn_node(&redis.url(), "presence-test:", "node-b", &[]).await;
    Some((redis, a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_nodes_new_groups_and_contacts_are_told_everywhere() {
    let Some((_redis, node_a, node_b)) = two_nodes().await else {
        return;
    };
    node_a.users(["alice", "bob", "carol"]).await;
    let mut alice = node_a.session_of("alice").await;
    let mut bob = node_b.session_of("bob").await;
    let mut carol = node_b.session_of("carol").await;
    assert_ne!(alice.node, bob.node);

    // A group created on A shows on B at once, and its members meet.
    let group = create(&mut alice, "across", &["bob"]).await;
    assert_eq!(added(&mut bob).await.conversation_id, group.conversation_id);
    assert_eq!(presence_of(&mut bob, "alice").await.0, "online");
    assert_eq!(presence_of(&mut alice, "bob").await.0, "online");

    // Invited from A, carol on B sees it and meets both; they meet her.
    alice
        .send(
            json!({"type": "invite", "conversationId": group.conversation_id, "username": "carol"}),
        )
        .await;
    assert_eq!(
        added(&mut carol).await.conversation_id,
        group.conversation_id
    );
    assert_eq!(presence_of(&mut carol, "alice").await.0, "online");
    assert_eq!(presence_of(&mut carol, "bob").await.0, "online");
    assert_eq!(presence_of(&mut alice, "carol").await.0, "online");
    assert_eq!(presence_of(&mut bob, "carol").await.0, "online");

    // Bob leaves B: alice on A hears when; a new session on B hears the same.
    bob.close().await;
    let (status, last_seen) = presence_of(&mut alice, "bob").await;
    assert_eq!(status, "offline");
    let last_seen = last_seen.expect("an offline presence with lastSeen");
    assert_recent(&last_seen);
    let carol_on_a = node_a.login("carol").await.token;
    let mut carol2 = TestClient::connect(&node_a, &carol_on_a).await;
    assert_eq!(
        presence_of(&mut carol2, "bob").await,
        ("offline".to_string(), Some(last_seen))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_nodes_a_first_direct_message_introduces_both_users() {
    let Some((_redis, node_a, node_b)) = two_nodes().await else {
        return;
    };
    node_a.user("alice").await;
    node_a.user("bob").await;
    let mut alice = node_a.session_of("alice").await;
    let mut bob = node_b.session_of("bob").await;
    say_to(&mut alice, "bob", "hi").await;
    assert_eq!(presence_of(&mut alice, "bob").await.0, "online");
    assert_eq!(presence_of(&mut bob, "alice").await.0, "online");
}
