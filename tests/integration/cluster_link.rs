//! The cluster link's tasks are supervised children: `/admin/supervision`
//! shows them under `cluster`, and a panic in the subscription restarts it
//! and makes the node catch up, so a message whose event was eaten by the
//! crash still reaches the session on that node.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_node, tree_child, wait_for, RedisServer, TestClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panic_in_the_subscription_restarts_it_and_the_node_catches_up() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let faults = [("PARLEY__FAULTS__ENABLED", "true")];
    let a = spawn_node(&redis.url(), "link:", "node-a", &faults).await;
    let b = spawn_node(&redis.url(), "link:", "node-b", &faults).await;
    let root = b.user("root").await.token;
    let alice_t = a.user("alice").await.token;
    let bob_t = a.user("bob").await.token;
    let mut alice = TestClient::connect(&a, &alice_t).await;
    let mut bob = TestClient::connect(&b, &bob_t).await;
    let (_, direct) = alice.say_to("bob", "before", "m1").await;
    assert_eq!(bob.expect_message().await.seq, 1);

    // The tree shows the three tasks.
    let (_, view) = b.get("/admin/supervision", Some(&root)).await;
    let cluster = tree_child(&view["tree"], "cluster");
    for task in ["cluster:subscription", "cluster:heartbeat", "cluster:sweep"] {
        let child = tree_child(&cluster, task);
        assert_eq!(
            (child["status"].as_str(), child["restarts"].as_u64()),
            (Some("running"), Some(0)),
            "{child}"
        );
    }

    // The next cluster signal node B's subscription handles crashes it.
    let (status, body) = b
        .post_fault(
            &root,
            json!({"target": "cluster:subscription", "kind": "panic", "count": 1}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let (second, _) = alice.say(&direct, "after the crash", "m2").await;
    wait_for(
        "the subscription's restart",
        Duration::from_secs(10),
        || async {
            let (_, view) = b.get("/admin/supervision", Some(&root)).await;
            let child = tree_child(
                &tree_child(&view["tree"], "cluster"),
                "cluster:subscription",
            );
            (child["restarts"] == 1 && child["status"] == "running").then_some(())
        },
    )
    .await;
    // Whichever event the crash ate, bob gets the message, once.
    let got = bob
        .wait_message_in("the message sent around the crash", &direct)
        .await
        .seq;
    assert_eq!(got, second);
    // And the restarted subscription serves on: the next message is live.
    let (third, _) = alice.say(&direct, "later", "m3").await;
    let next = bob.wait_message_in("the next message", &direct).await.seq;
    assert_eq!(next, third);
}
