//! Presence and group membership as a person sees them in the chat page:
//! a new contact's presence at once, "last seen" after they leave, a new
//! group in the list at once, Leave confirmed by a second click, and the
//! others told "bob left" in the conversation.

use serde_json::json;

use crate::helpers::{web_app_or_skip, Browser};
use crate::web_ui::{alice_and_bob_sign_up, assert_no_console_errors, message_new_contact};

/// The open conversation's subtitle (the other person's presence).
const SUBTITLE: &str = "(document.querySelector('#conversation-sub')?.textContent || '')";

/// Waits until the conversation list shows a conversation titled `name`.
async fn listed(page: &Browser, who: &str, name: &str) {
    page.wait_js(
        &format!("{who}'s list to show {name}"),
        &format!(
            "return [...document.querySelectorAll('#conversation-list .conv-name')]
                .some(n => n.textContent === {name:?});"
        ),
    )
    .await;
}

/// Clicks the conversation titled `name` in the list.
async fn open(page: &Browser, name: &str) {
    let clicked = page
        .script(
            &format!(
                "const n = [...document.querySelectorAll('#conversation-list .conv-name')]
                    .find(n => n.textContent === {name:?});
                 if (!n) return false;
                 n.closest('button').click();
                 return true;"
            ),
            serde_json::json!([]),
        )
        .await;
    assert_eq!(clicked, true, "no conversation {name} to open");
}

/// Waits until the header of the page's open conversation says `text`.
async fn header_says(page: &Browser, what: &str, text: &str) {
    let script = format!("return {SUBTITLE} === {};", json!(text));
    page.wait_js(what, &script).await;
}

#[tokio::test]
async fn presence_groups_and_leaving_as_two_people_see_them() {
    let (driver, app) = web_app_or_skip!();
    let (alice, bob) = alice_and_bob_sign_up(&driver, &app, "presence").await;

    // Alice starts a direct chat with bob: her header shows him online
    // without bob doing anything.
    message_new_contact(&alice, "bob", "hello bob").await;
    header_says(&alice, "alice's header to show bob online", "online").await;
    alice.screenshot("contact-online").await;

    // A group alice creates shows in bob's list at once, before anyone posts.
    alice.type_into("#new-group-name", "team").await;
    alice.type_into("#new-group-members", "bob").await;
    alice.click("#new-group-btn").await;
    listed(&bob, "bob", "team").await;
    bob.screenshot("new-group-listed").await;

    // Leaving asks for a second click; the first only arms the button.
    open(&bob, "team").await;
    bob.click("#leave-btn").await;
    let armed = bob
        .wait_js(
            "bob's Leave to ask for confirmation",
            "const b = document.querySelector('#leave-btn');
             return b.classList.contains('confirming') ? b.textContent : null;",
        )
        .await;
    assert_eq!(armed, "Confirm leave?");
    bob.screenshot("leave-armed").await;
    listed(&bob, "bob", "team").await;
    // Left alone, it disarms again.
    bob.wait_js(
        "bob's Leave to disarm",
        "const b = document.querySelector('#leave-btn');
         return !b.classList.contains('confirming') && b.textContent === 'Leave group';",
    )
    .await;
    // Alice has the group open when bob confirms: she is told in it.
    open(&alice, "team").await;
    bob.click("#leave-btn").await;
    bob.click("#leave-btn").await;
    bob.wait_js(
        "team to leave bob's list",
        "return ![...document.querySelectorAll('#conversation-list .conv-name')]
            .some(n => n.textContent === 'team');",
    )
    .await;
    let note = alice
        .wait_js(
            "alice to see that bob left",
            "const n = document.querySelector('#messages .system-note');
             return n ? n.textContent : null;",
        )
        .await;
    assert_eq!(note, "bob left");
    alice.screenshot("bob-left").await;

    // Bob logs out: alice's direct chat says when he was last seen.
    bob.click("#logout-btn").await;
    open(&alice, "bob").await;
    header_says(
        &alice,
        "alice's header to show bob last seen",
        "last seen just now",
    )
    .await;
    alice.screenshot("contact-last-seen").await;

    assert_no_console_errors(&alice).await;
    assert_no_console_errors(&bob).await;
    alice.quit().await;
    bob.quit().await;
}
