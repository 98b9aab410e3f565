//! Admin views of live actors, and conversation actors retiring when idle.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{find_item, spawn_app, spawn_app_with, tree_child, wait_for, TestClient};

#[tokio::test]
async fn admin_routes_need_an_admin() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for path in ["/admin/sessions", "/admin/conversations"] {
        assert_eq!(app.get(path, None).await.0, 401, "{path}");
        let (status, body) = app.get(path, Some(&alice.token)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{path}"
        );
    }
    let root = app.user("root").await;
    for path in ["/admin/sessions?limit=abc", "/admin/conversations?limit=-1"] {
        let (status, body) = app.get(path, Some(&root.token)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{path}"
        );
    }
    // Payment routes authenticate like every /api route.
    let (status, _) = app.post("/api/payments", None, json!({})).await;
    assert_eq!(status, 401);
    let (status, body) = app
        .post("/api/payments", Some(&alice.token), json!({}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
}

#[tokio::test]
async fn an_admin_lists_and_disconnects_sessions() {
    let app = spawn_app().await;
    let [root, alice] = app.users(["root", "alice"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    // The session is registered before the client can act on its hello.
    let list = wait_for(
        "the session to be listed",
        Duration::from_secs(5),
        || async {
            let (status, list) = app.get("/admin/sessions", Some(&root.token)).await;
            assert_eq!(status, 200, "{list}");
            (list["total"] == 1).then_some(list)
        },
    )
    .await;
    let item = &list["items"][0];
    assert_eq!(
        (item["username"].as_str(), item["node"].as_str()),
        (Some("alice"), Some("test-node"))
    );
    assert_eq!(item["sessionId"], a.session_id.as_str());
    let res = app
        .http
        .delete(app.url(&format!("/admin/sessions/{}", a.session_id)))
        .bearer_auth(&root.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        a.expect_close().await,
        (1008, "disconnected by an admin".to_string())
    );
    let gone = |list: &Value| (list["total"] == 0).then_some(());
    app.poll(
        "the session to leave the list",
        Duration::from_secs(5),
        "/admin/sessions",
        &root.token,
        gone,
    )
    .await;
}

#[tokio::test]
async fn idle_conversation_actors_retire_and_come_back_where_they_were() {
    let app = spawn_app_with(|s| s.conversations.idle_stop = Duration::from_millis(300)).await;
    let root = app.user("root").await;
    let [mut a, mut b] = app.clients(["alice", "bob"]).await;
    let group = a.create("naps", &["bob"]).await;
    let id = group.conversation_id.clone();
    a.say(&id, "one", "1").await;
    b.expect_message().await;

    let (_, view) = app.get("/admin/conversations", Some(&root.token)).await;
    assert_eq!(view["active"], 1, "{view}");
    assert_eq!(view["items"][0]["conversationId"], id.as_str());
    assert_eq!(view["items"][0]["lastSeq"], 1);
    assert_eq!(view["items"][0]["membersOnline"], json!(["alice", "bob"]));

    for round in 0..3u64 {
        let retired = |view: &Value| (view["active"] == 0).then_some(());
        let path = "/admin/conversations";
        app.poll(
            "the idle actor to retire",
            Duration::from_secs(10),
            path,
            &root.token,
            retired,
        )
        .await;
        // The next message starts a fresh actor that continues the seq.
        let (seq, _) = a.say(&id, "again", &format!("r{round}")).await;
        assert_eq!(seq, round + 2);
        assert_eq!(b.expect_message().await.seq, round + 2);
    }
}

#[tokio::test]
async fn breakers_are_listed_and_can_be_forced() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    let (status, list) = app.get("/admin/breakers", Some(&root.token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["name"], "payment_provider");
    assert_eq!(list["items"][0]["status"]["state"], "closed");
    let (status, forced) = app
        .force_breaker(&root.token, "payment_provider", "forced_open")
        .await;
    assert_eq!(status, 200, "{forced}");
    assert_eq!(forced["status"]["state"], "forced_open");
    assert_eq!(
        forced["status"]["transitions"][0]["reason"],
        "forced by an operator"
    );
    let (status, _) = app
        .force_breaker(&root.token, "payment_provider", "half_open")
        .await;
    assert_eq!(status, 400);
    let (status, _) = app.force_breaker(&root.token, "nope", "closed").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_tree_names_a_sessions_user_and_conversations_their_group() {
    let app = spawn_app().await;
    let [root, alice] = app.users(["root", "alice"]).await;
    app.user("bob").await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let group = a.create("ops room", &["bob"]).await;
    a.say(&group.conversation_id, "hello", "1").await;

    let (_, view) = app.get("/admin/supervision", Some(&root.token)).await;
    let sessions = tree_child(&view["tree"], "sessions");
    let node = tree_child(&sessions, &format!("session:{}", a.session_id));
    assert_eq!(node["label"], "alice", "{node}");
    // Children without a person behind them carry no label.
    let directory = tree_child(&view["tree"], "directory");
    assert!(directory.get("label").is_none(), "{directory}");

    let (_, view) = app.get("/admin/conversations", Some(&root.token)).await;
    let item = find_item(&view["items"], "conversationId", &group.conversation_id)
        .unwrap_or_else(|| panic!("the group is not listed: {view}"));
    assert_eq!(
        (item["name"].as_str(), item["kind"].as_str()),
        (Some("ops room"), Some("group")),
        "{item}"
    );
}

#[tokio::test]
async fn breaker_transitions_carry_their_wall_clock_time() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let (status, forced) = app
        .force_breaker(&root.token, "payment_provider", "forced_open")
        .await;
    assert_eq!(status, 200, "{forced}");
    let after = chrono::Utc::now() + chrono::Duration::seconds(1);
    let at = forced["status"]["transitions"][0]["at"]
        .as_str()
        .unwrap_or_else(|| panic!("no `at` in {forced}"));
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .unwrap_or_else(|e| panic!("{at:?} is not RFC 3339: {e}"));
    assert!(before <= at && at <= after, "{at} not near now");
}
