//! The chat page shows a message's traceId in its details (click, Enter or
//! Space on the message), ready to copy, and that trace can be looked up.

use serde_json::json;

use crate::helpers::web_app_or_skip;
use crate::web_ui::{
    assert_no_console_errors, message_new_contact, sign_in, stored_first_conversation,
};

const ENTER: &str = "\u{E007}";

#[tokio::test]
async fn a_message_s_details_show_its_trace_id_to_copy() {
    let (driver, app) = web_app_or_skip!();
    let page = driver.browser("trace-alice", 1280, 800).await;
    sign_in(&page, &app, "alice", true).await;
    app.user("bob").await;
    message_new_contact(&page, "bob", "where does this go").await;
    let first = "#messages .message[data-seq='1']";
    page.wait_js(
        "the committed message",
        &format!("return !!document.querySelector(\"{first}\");"),
    )
    .await;

    // What the server stored for it.
    let history = stored_first_conversation(&app, "alice").await;
    let trace = history["messages"][0]["traceId"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(trace.len(), 32, "{history}");

    // Keyboard: Enter on the message opens its details.
    let details = format!("{first} .details");
    let open = format!(
        "const d = document.querySelector(\"{details}\");
         return d && !d.hidden && d.closest('.message').getAttribute('aria-expanded') === 'true';"
    );
    page.press_on(first, ENTER).await;
    page.wait_js("the details to open", &open).await;
    assert_eq!(page.text(&format!("{details} .trace-id")).await, trace);
    page.screenshot("details").await;

    // Copy: the id is on the clipboard, or at least selected.
    page.click(&format!("{details} .copy-trace")).await;
    let copied = page
        .wait_js(
            "the copy",
            "const b = document.querySelector('.copy-trace');
             return b.textContent !== 'Copy' && [b.textContent, String(window.getSelection())];",
        )
        .await;
    assert_eq!(copied[1], json!(trace), "{copied}");
    assert!(copied[0] == "Copied" || copied[0] == "Selected", "{copied}");
    // The click inside left the details open; Enter closes them, a click opens.
    assert_eq!(page.script(&open, json!([])).await, true);
    page.press_on(first, ENTER).await;
    page.wait_js(
        "the details to close",
        &format!("return document.querySelector(\"{details}\").hidden;"),
    )
    .await;
    page.click(&format!("{first} .text")).await;
    page.wait_js("the details to open on a click", &open).await;

    // And the operator finds that trace (not sampled: among recent hops).
    let root = app.user("root").await;
    let (status, view) = app
        .get(&format!("/admin/traces/{trace}"), Some(&root.token))
        .await;
    assert_eq!(status, 200, "{view}");

    assert_no_console_errors(&page).await;
    page.quit().await;
}
