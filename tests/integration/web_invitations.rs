//! The chat page under SPEC v2 consent (the default): a group a stranger
//! names you in is an invitation you accept or decline on the page.

use crate::helpers::{spawn_app_with, Chromedriver};
use crate::web_ui::{assert_no_console_errors, sign_in};

#[tokio::test]
async fn an_invitation_shows_on_the_page_and_accepting_it_opens_the_group() {
    let Some(driver) = Chromedriver::start().await else {
        return; // Chromedriver::start printed why
    };
    let app = spawn_app_with(|s| s.limits.group_consent = true).await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let page = driver.browser("invitations-bob", 1280, 800).await;
    sign_in(&page, &app, "bob", false).await;

    // Alice, a stranger to bob, names him in two groups while he is online.
    let first = app.group(&alice.token, "book club", &["bob"]).await;
    let second = app.group(&alice.token, "spam", &["bob"]).await;
    page.wait_js(
        "both invitations to show",
        "return document.querySelectorAll('#invitation-list li.invitation').length === 2
            && !document.querySelector('#invitations-panel').hidden;",
    )
    .await;
    let listed = page
        .script(
            "return document.querySelectorAll('#conversation-list li[data-conversation-id]').length;",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(listed, 0, "an invitation is not a conversation yet");
    page.screenshot("invitations").await;

    page.click(&format!(
        "#invitation-list li[data-conversation-id='{second}'] button.quiet"
    ))
    .await;
    page.click(&format!(
        "#invitation-list li[data-conversation-id='{first}'] button.primary"
    ))
    .await;
    page.wait_js(
        "the accepted group in the list, both invitations gone",
        &format!(
            "return !!document.querySelector(\"#conversation-list li[data-conversation-id='{first}']\")
                && !document.querySelector(\"#conversation-list li[data-conversation-id='{second}']\")
                && document.querySelector('#invitations-panel').hidden;"
        ),
    )
    .await;
    // The server agrees: bob is in the first group only, with nothing pending.
    let bob = app.login("bob").await.token;
    let (_, pending) = app.get("/api/invitations", Some(&bob)).await;
    assert_eq!(pending["items"], serde_json::json!([]));
    assert_eq!(app.conversation_ids(&bob).await, [first]);
    // Reloaded, nothing comes back.
    page.goto(&app.url("/")).await;
    crate::web_ui::wait_connected(&page, "bob's page to reconnect").await;
    assert_eq!(
        page.script(
            "return document.querySelector('#invitations-panel').hidden;",
            serde_json::json!([])
        )
        .await,
        true
    );
    assert_no_console_errors(&page).await;
    page.quit().await;
}
