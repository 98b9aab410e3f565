//! The admin console names what it shows and confirms what it changes, in
//! a real headless Chromium: usernames beside session ids (table and
//! tree), group names, amounts in major units, breaker transitions at clock
//! time, chart values on hover and from the keyboard, and a breaker force
//! that needs a second click.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{wait_for, web_app_or_skip, TestApp, TestClient};
use crate::web_ui::{admin_sign_in, assert_no_console_errors};

/// WebDriver's ArrowLeft.
const ARROW_LEFT: &str = "\u{E012}";

/// The state of breaker `name` on the server.
async fn breaker_state(app: &TestApp, root: &str, name: &str) -> Value {
    let (_, breakers) = app.get("/admin/breakers", Some(root)).await;
    breakers["items"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name))
        .map(|b| b["status"].clone())
        .unwrap_or_else(|| panic!("no breaker {name}: {breakers}"))
}

#[tokio::test]
async fn the_console_names_sessions_groups_and_amounts_and_confirms_a_breaker_force() {
    let (driver, app) = web_app_or_skip!();
    let root = app.user("root").await.token;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let group = a.create("ops room", &["bob"]).await;
    a.say(&group.conversation_id, "hello", "1").await;
    let (status, payment) = app
        .post_payment(&alice.token, "bob", 1250, "console-1")
        .await;
    assert_eq!(status, 202, "{payment}");
    let payment_id = payment["paymentId"].as_str().unwrap_or_default();

    let page = driver.browser("console", 1280, 900).await;
    admin_sign_in(&page, &app).await;

    // Sessions: the username beside the session id, in the table and the tree.
    let sid = &a.session_id;
    let row = format!("#session-rows tr[data-session-id='{sid}']");
    let who = page
        .wait_js(
            "alice's session row",
            &format!(
                "const c = document.querySelector(\"{row} .session-user\");
                 return c ? [c.querySelector('strong').textContent, c.querySelector('.id').title] : null;"
            ),
        )
        .await;
    assert_eq!(who, json!(["alice", sid]));
    let conversation = &group.conversation_id;
    for (what, css, want) in [
        (
            "alice's session in the tree",
            format!("#tree li[data-node=\"session:{sid}\"] > .node-user"),
            "alice",
        ),
        // Conversations: the group's name.
        (
            "the group's name",
            format!("#conversation-rows tr[data-conversation-id='{conversation}'] .conv-name"),
            "ops room",
        ),
        // Payments: 1250 minor units read 12.50.
        (
            "the payment's amount",
            format!("#payment-rows tr[data-payment-id='{payment_id}'] .pay-amount"),
            "12.50",
        ),
    ] {
        assert_eq!(page.wait_text(what, &css).await, want, "{what}");
    }

    // A breaker force: the first click only asks, the second forces.
    let breaker = "payment_provider";
    let open = format!("#breakers tr[data-breaker='{breaker}'] button[data-force='forced_open']");
    let text_is = |css: &str, want: &str| {
        format!("return document.querySelector(\"{css}\")?.textContent === '{want}';")
    };
    page.wait_js("the breaker row", &text_is(&open, "Open"))
        .await;
    page.click(&open).await;
    page.wait_js("the force button to ask", &text_is(&open, "Confirm?"))
        .await;
    assert_eq!(breaker_state(&app, &root, breaker).await["state"], "closed");
    page.click(&open).await;
    let status = wait_for(
        "the breaker to be forced open",
        Duration::from_secs(10),
        || async {
            let s = breaker_state(&app, &root, breaker).await;
            (s["state"] == "forced_open").then_some(s)
        },
    )
    .await;
    page.wait_js("the button to read Open again", &text_is(&open, "Open"))
        .await;

    // Its transition at clock time, the full timestamp in the title.
    let at = status["transitions"][0]["at"].as_str().unwrap_or_default();
    let shown = page
        .wait_js(
            "the transition's time",
            &format!(
                "const t = document.querySelector(\"#breakers tr[data-breaker='{breaker}'] .transition-at\");
                 return t && t.dateTime ? [t.textContent, t.title] : null;"
            ),
        )
        .await;
    let text = shown[0].as_str().unwrap_or_default();
    let clock = text.trim().trim_start_matches("at ");
    assert!(
        clock.len() == 8
            && clock.chars().enumerate().all(|(i, c)| if i == 2 || i == 5 {
                c == ':'
            } else {
                c.is_ascii_digit()
            }),
        "{text:?} is not at HH:MM:SS"
    );
    assert!(
        shown[1].as_str().unwrap_or_default().contains(at),
        "{shown}"
    );

    // Charts: a value with its unit where the mouse points...
    let committed = "#charts figure[data-series='messages_committed'] svg";
    page.wait_js(
        "the messages chart to be drawn",
        &format!("return document.querySelector(\"{committed}\").childElementCount > 0;"),
    )
    .await;
    let width = page
        .script(
            &format!(
                "return document.querySelector(\"{committed}\").getBoundingClientRect().width;"
            ),
            json!([]),
        )
        .await
        .as_f64()
        .unwrap_or_default();
    page.hover(committed, (width * 0.4) as i64, 0).await;
    let readout = |series: &str| {
        format!(
            "const r = document.querySelector(\"#charts figure[data-series='{series}'] .chart-readout\");
             return r ? r.textContent : null;"
        )
    };
    let read = page
        .wait_js("a read-out on hover", &readout("messages_committed"))
        .await;
    let read = read.as_str().unwrap_or_default();
    assert!(
        is_reading(read, "messages/s"),
        "{read:?} is not 'HH:MM:SS · n messages/s'"
    );

    // ...and from the keyboard: focus shows the last second, arrows move.
    let p99 = "#charts figure[data-series='delivery_p99_ms'] svg";
    page.script(
        &format!("document.querySelector(\"{p99}\").focus();"),
        json!([]),
    )
    .await;
    let read = page
        .wait_js("a read-out on focus", &readout("delivery_p99_ms"))
        .await;
    let read = read.as_str().unwrap_or_default();
    assert!(
        is_reading(read, "ms") || read.ends_with("· no delivery"),
        "{read:?} is not 'HH:MM:SS · n ms'"
    );
    let cursor =
        format!("return Number(document.querySelector(\"{p99} .cursor\")?.getAttribute('x1'));");
    let before = page.wait_js("the cursor", &cursor).await.as_f64();
    page.press(ARROW_LEFT).await;
    let after = page.script(&cursor, json!([])).await.as_f64();
    assert!(
        after < before,
        "ArrowLeft moved the cursor from {before:?} to {after:?}"
    );

    page.screenshot("named").await;
    assert_no_console_errors(&page).await;
    page.quit().await;
}

/// "14:03:21 · 3 messages/s": a clock time, a number and the unit.
fn is_reading(text: &str, unit: &str) -> bool {
    let Some((time, value)) = text.split_once(" · ") else {
        return false;
    };
    let clock = time.len() == 8 && time.chars().filter(|c| *c == ':').count() == 2;
    let value = value
        .strip_suffix(" (this second, still counting)")
        .unwrap_or(value);
    let number = value
        .strip_suffix(unit)
        .map(|n| n.trim().parse::<f64>().is_ok())
        .unwrap_or(false);
    clock && number
}
