//! Read state in the chat page across reloads: one's own entries are never
//! unread, and "Seen by" comes back from the server's `readBy`.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{find_item, wait_for, web_app_or_skip, Browser, TestClient};
use crate::web_ui::{assert_no_console_errors, sign_in, wait_connected, wait_shown};

fn item(id: &str) -> String {
    format!("#conversation-list li[data-conversation-id='{id}']")
}

/// Waits until the conversation is in the list with this unread count.
async fn wait_unread(page: &Browser, what: &str, id: &str, count: u64) {
    page.wait_js(
        what,
        &format!(
            "const u = document.querySelector(\"{} .unread\");
             return u && u.dataset.count === '{count}';",
            item(id)
        ),
    )
    .await;
}

async fn wait_seen_by(page: &Browser, what: &str, who: &str) {
    page.wait_js(
        what,
        &format!(
            "return (document.querySelector('#read-state')?.textContent || '') === 'Seen by {who}';"
        ),
    )
    .await;
}

/// Loads the page again (the token is kept) and waits for its socket.
async fn reload(page: &Browser, url: &str) {
    page.goto(url).await;
    wait_connected(page, "the reloaded page to connect").await;
}

#[tokio::test]
async fn own_entries_stay_read_and_seen_by_survives_a_reload() {
    let (driver, app) = web_app_or_skip!();
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    let (_, direct) = b.say_to("alice", "hi alice", "h1").await;
    let group = b.create("lobby", &["alice"]).await.conversation_id;
    let page = driver.browser("read-alice", 1280, 800).await;
    sign_in(&page, &app, "alice", false).await;
    // Alice reads bob's greeting, then opens another conversation, so
    // nothing marks the direct one read from here on but her own entries.
    page.click(&item(&direct)).await;
    wait_unread(&page, "bob's greeting read", &direct, 0).await;
    page.click(&item(&group)).await;

    // Alice pays bob from the payment form, then writes from another device.
    page.type_into("#pay-to", "bob").await;
    page.type_into("#pay-amount", "12.50").await;
    page.click("#pay-btn").await;
    let paid = b.wait_payment_message().await;
    assert_eq!(paid.conversation_id, direct);
    let (status, ack) = app
        .post_message(&alice.token, &direct, "did you get it?", "phone-1")
        .await;
    assert_eq!(status, 201, "{ack}");
    let asked = b
        .wait_message_text("alice's question", "did you get it?")
        .await;
    assert_eq!((asked.seq, asked.sender.as_str()), (paid.seq + 1, "alice"));
    // Bob's word in the open group reaches alice's page after both of hers.
    let (status, ack) = app
        .post_message(&bob.token, &group, "after the payment", "g1")
        .await;
    assert_eq!(status, 201, "{ack}");
    wait_shown(&page, "bob's message in the open group", |m| {
        m.iter()
            .any(|(_, sender, text)| sender == "bob" && text == "after the payment")
    })
    .await;
    wait_unread(&page, "no unread for alice's own entries", &direct, 0).await;
    reload(&page, &app.url("/")).await;
    wait_unread(&page, "no unread after a reload", &direct, 0).await;

    // Bob reads everything: alice sees it live, and again after a reload.
    page.click(&item(&direct)).await;
    page.wait_js(
        "alice's question shown",
        &format!(
            "return !!document.querySelector('#messages .message[data-seq=\"{}\"]');",
            asked.seq
        ),
    )
    .await;
    b.send(json!({"type": "read", "conversationId": direct, "seq": asked.seq}))
        .await;
    wait_seen_by(&page, "bob's receipt, live", "bob").await;
    wait_for("bob's stored marker", Duration::from_secs(10), || async {
        let (_, list) = app.get("/api/conversations", Some(&alice.token)).await;
        let listed = find_item(&list["items"], "conversationId", &direct)
            .cloned()
            .unwrap_or_default();
        (listed["readBy"]["bob"] == asked.seq).then_some(())
    })
    .await;
    reload(&page, &app.url("/")).await;
    page.click(&item(&direct)).await;
    wait_seen_by(&page, "bob's receipt after a reload", "bob").await;
    page.screenshot("seen-by-after-reload").await;
    assert_no_console_errors(&page).await;
    page.quit().await;
}
