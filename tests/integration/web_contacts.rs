//! The chat page checks a name before it opens a chat with someone new.

use crate::helpers::web_app_or_skip;
use crate::web_ui::sign_in;

#[tokio::test]
async fn messaging_someone_who_does_not_exist_is_refused_before_any_send() {
    let (driver, app) = web_app_or_skip!();
    app.user("alice").await;
    app.user("bob").await;
    let page = driver.browser("contacts-alice", 1280, 800).await;
    sign_in(&page, &app, "alice", false).await;

    page.type_into("#new-direct-user", "nobody_here").await;
    page.click("#new-direct-btn").await;
    page.wait_js(
        "the page to say there is no such user",
        "return (document.querySelector('#new-error')?.textContent || '').includes('no user named \"nobody_here\"');",
    )
    .await;
    let opened = page
        .script(
            "return !document.querySelector('#conversation').hidden;",
            serde_json::json!([]),
        )
        .await;
    assert_eq!(opened, false, "no chat opened with nobody");
    page.screenshot("no-such-user").await;

    // Someone who exists: the chat opens and the error is gone.
    page.script(
        "document.querySelector('#new-direct-user').value = '';",
        serde_json::json!([]),
    )
    .await;
    page.type_into("#new-direct-user", "bob").await;
    page.click("#new-direct-btn").await;
    page.wait_js(
        "the draft chat with bob to open",
        "return !document.querySelector('#conversation').hidden
            && document.querySelector('#new-error').textContent === '';",
    )
    .await;
    // The check's 404 is logged by Chromium as a failed request; it is the
    // only console error allowed.
    let errors: Vec<String> = page
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !(e.contains("/api/users/nobody_here") && e.contains("404")))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    page.quit().await;
}
