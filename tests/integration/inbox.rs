//! The inbox over HTTP and WebSocket (SPEC v2 "The inbox" paging): newest
//! activity first, `?limit=` and `?before=` (with `beforeId`) page through
//! it, so a user in many conversations never gets them in one answer.

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp, TestClient};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page has items: {page}"))
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The query after the last item of `page`.
fn after(page: &Value) -> String {
    let items = page["items"].as_array().expect("items");
    let last = items.last().expect("a last item");
    let at = last["updatedAt"].as_str().expect("updatedAt");
    let id = last["conversationId"].as_str().expect("conversationId");
    format!("&before={}&beforeId={id}", at.replace('+', "%2B"))
}

async fn page(app: &TestApp, token: &str, query: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/conversations?{query}"), Some(token))
        .await;
    assert_eq!(status, 200, "{query}: {body}");
    body
}

#[tokio::test]
async fn the_inbox_pages_newest_activity_first_over_http_and_websocket() {
    let app = spawn_app().await;
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let mut made = Vec::new();
    for i in 0..7 {
        made.push(app.group(&alice.token, &format!("g{i}"), &["bob"]).await);
    }
    // A message makes the oldest group the newest activity.
    let (status, body) = app
        .post_message(&bob.token, &made[0], "back on top", "c1")
        .await;
    assert_eq!(status, 201, "{body}");

    let all = page(&app, &alice.token, "limit=200").await;
    assert_eq!(all["hasMore"], false, "{all}");
    let order = ids(&all);
    assert_eq!(order.len(), 7);
    assert_eq!(order[0], made[0], "the group with the newest message first");
    let stamps: Vec<&str> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["updatedAt"].as_str().expect("every item has updatedAt"))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "{stamps:?}");

    // Three at a time: every conversation once, in the same order.
    let mut paged = Vec::new();
    let mut query = "limit=3".to_string();
    loop {
        let p = page(&app, &alice.token, &query).await;
        assert!(ids(&p).len() <= 3, "{p}");
        paged.extend(ids(&p));
        if p["hasMore"] == false {
            break;
        }
        query = format!("limit=3{}", after(&p));
    }
    assert_eq!(paged, order);
    // The default page is 50 (SPEC v2).
    assert_eq!(ids(&page(&app, &alice.token, "").await), order);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "before=yesterday",
        "beforeId=0193a0c4-1111-7000-8000-000000000001",
        "before=2026-01-01T00:00:00.000Z&beforeId=nope",
    ] {
        let (status, body) = app
            .get(&format!("/api/conversations?{bad}"), Some(&alice.token))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}: {body}");
    }

    // The `conversations` frame pages the same way.
    let mut ws = TestClient::connect(&app, &alice.token).await;
    ws.send(json!({"type": "conversations", "limit": 2, "ref": "p1"}))
        .await;
    let first = reply(&mut ws, "p1").await;
    assert_eq!(first["type"], "conversations", "{first}");
    assert_eq!(
        (ids(&first), first["hasMore"].clone()),
        (order[..2].to_vec(), json!(true))
    );
    let last = &first["items"][1];
    ws.send(json!({
        "type": "conversations",
        "limit": 200,
        "before": last["updatedAt"],
        "beforeId": last["conversationId"],
        "ref": "p2",
    }))
    .await;
    let rest = reply(&mut ws, "p2").await;
    assert_eq!(
        (ids(&rest), rest["hasMore"].clone()),
        (order[2..].to_vec(), json!(false))
    );
    ws.send(json!({"type": "conversations", "limit": 0, "ref": "p3"}))
        .await;
    let (code, reference, _) = ws.expect_error().await;
    assert_eq!(
        (code.as_str(), reference.as_deref()),
        ("bad_request", Some("p3"))
    );
    ws.assert_alive().await;
}

/// The frame answering `reference`, skipping whatever else arrives first.
async fn reply(ws: &mut TestClient, reference: &str) -> Value {
    loop {
        let v = ws.recv_raw().await;
        if v["ref"] == reference {
            return v;
        }
    }
}
