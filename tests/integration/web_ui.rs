//! The browser pages (`GET /` chat client, `GET /admin/ui` console) in a
//! real headless Chromium against a real server: real clicks and keys, the
//! page's own WebSocket, screenshots kept as artifacts
//! (`target/tmp/browser-artifacts/`).

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{spawn_app, wait_for, web_app_or_skip, Browser, Chromedriver, TestApp};

const PASSWORD: &str = "password123";

/// Logs `user` in through the page's form (registering first when asked)
/// and waits for its WebSocket to be open.
pub(crate) async fn sign_in(page: &Browser, app: &TestApp, user: &str, register: bool) {
    page.goto(&app.url("/")).await;
    page.type_into("#username", user).await;
    page.type_into("#password", PASSWORD).await;
    page.click(if register {
        "#register-btn"
    } else {
        "#login-btn"
    })
    .await;
    wait_connected(page, &format!("{user}'s page to connect")).await;
    assert_eq!(page.text("#me").await, user);
}

/// Waits for the page's WebSocket to be open.
pub(crate) async fn wait_connected(page: &Browser, what: &str) {
    page.wait_js(
        what,
        "return document.querySelector('#conn-status')?.dataset.state === 'open';",
    )
    .await;
}

/// Alice and Bob register through pages of their own (`{prefix}-alice`,
/// `{prefix}-bob`), each signed in and connected.
pub(crate) async fn alice_and_bob_sign_up(
    driver: &Chromedriver,
    app: &TestApp,
    prefix: &str,
) -> (Browser, Browser) {
    let alice = driver.browser(&format!("{prefix}-alice"), 1280, 800).await;
    let bob = driver.browser(&format!("{prefix}-bob"), 1280, 800).await;
    sign_in(&alice, app, "alice", true).await;
    sign_in(&bob, app, "bob", true).await;
    (alice, bob)
}

/// The messages of `user`'s first listed conversation, as the server
/// stored them (`GET .../messages`).
pub(crate) async fn stored_first_conversation(app: &TestApp, user: &str) -> Value {
    let token = app.login(user).await.token;
    let (_, list) = app.get("/api/conversations", Some(&token)).await;
    let id = list["items"][0]["conversationId"].as_str().unwrap_or("");
    app.get_messages(&token, id, "").await.1
}

/// Opens a chat with `to` from the page's "New conversation" form and sends
/// `text` in it (the first send creates the direct conversation).
pub(crate) async fn message_new_contact(page: &Browser, to: &str, text: &str) {
    page.type_into("#new-direct-user", to).await;
    page.click("#new-direct-btn").await;
    page.type_into("#message-input", text).await;
    page.click("#send-btn").await;
}

/// The committed messages the open conversation shows: (seq, sender, text).
pub(crate) async fn shown(page: &Browser) -> Vec<(u64, String, String)> {
    let v = page
        .script(
            "return [...document.querySelectorAll('#messages .message[data-seq]')].map(m =>
                [Number(m.dataset.seq), m.dataset.sender, m.querySelector('.text').textContent]);",
            json!([]),
        )
        .await;
    serde_json::from_value(v).expect("message rows")
}

pub(crate) async fn wait_shown(
    page: &Browser,
    what: &str,
    want: impl Fn(&[(u64, String, String)]) -> bool,
) {
    wait_for(what, Duration::from_secs(20), || async {
        want(&shown(page).await).then_some(())
    })
    .await;
}

pub(crate) async fn assert_no_console_errors(page: &Browser) {
    let errors = page.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

/// Bob's group `name` with alice, holding "message 1" to "message {count}"
/// (posted over HTTP), opened in alice's page `page_name`; the page, bob's
/// token and the group's id.
async fn alice_opens_bobs_group(
    driver: &Chromedriver,
    app: &TestApp,
    page_name: &str,
    name: &str,
    count: u32,
) -> (Browser, String, String) {
    app.user("alice").await;
    let bob = app.user("bob").await.token;
    let id = app.group(&bob, name, &["alice"]).await;
    post_messages(app, &bob, &id, 1..=count).await;
    let alice = driver.browser(page_name, 1280, 800).await;
    sign_in(&alice, app, "alice", false).await;
    alice
        .click(&format!(
            "#conversation-list li[data-conversation-id='{id}']"
        ))
        .await;
    (alice, bob, id)
}

/// Sends "message {n}" for each n from a session of its own (frames, not
/// HTTP writes: those are limited to bursts of 50), each acked before the next.
async fn post_messages(
    app: &TestApp,
    token: &str,
    id: &str,
    numbers: std::ops::RangeInclusive<u32>,
) {
    let mut sender = crate::helpers::TestClient::connect(app, token).await;
    for n in numbers {
        let (text, client_msg_id) = (format!("message {n}"), format!("m{n}"));
        sender.say(id, &text, &client_msg_id).await;
    }
}

#[tokio::test]
async fn pages_and_assets_are_served_with_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/admin/ui", "text/html"),
        ("/assets/chat.js", "text/javascript"),
        ("/assets/chat.css", "text/css"),
        ("/assets/admin.js", "text/javascript"),
        ("/assets/admin.css", "text/css"),
    ] {
        let res = app.http.get(app.url(path)).send().await.expect("request");
        assert_eq!(res.status(), 200, "{path}");
        let header = |name: &str| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        assert!(
            header("content-security-policy").contains("script-src 'self'"),
            "{path}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        // Nothing is fetched from elsewhere: no absolute URL to another
        // host (the SVG namespace is a name, not a fetch).
        let body = res
            .text()
            .await
            .expect("body")
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path} refers to another host"
        );
    }
    // Only the listed assets; the pages are not assets.
    for path in [
        "/assets/index.html",
        "/assets/../Cargo.toml",
        "/assets/nope.js",
    ] {
        let (status, _) = app.get(path, None).await;
        assert_eq!(status, 404, "{path}");
    }
    // The console asks whether it may offer fault injection.
    let (status, _) = app.get("/admin/faults", None).await;
    assert_eq!(status, 401);
    let root = app.user("root").await;
    let (status, body) = app.get("/admin/faults", Some(&root.token)).await;
    assert_eq!((status, body), (200, json!({"enabled": false})));
}

#[tokio::test]
async fn two_users_chat_in_two_browsers_and_see_typing_and_read_state() {
    let (driver, app) = web_app_or_skip!();
    let (alice, bob) = alice_and_bob_sign_up(&driver, &app, "chat").await;

    // Alice starts a direct conversation; the first send creates it.
    message_new_contact(&alice, "bob", "hello bob").await;
    wait_shown(&alice, "alice's own message", |m| {
        m == [(1, "alice".into(), "hello bob".into())]
    })
    .await;

    // Bob's list shows it unread; opening it shows the message and marks it read.
    let unread = bob
        .wait_js(
            "bob's unread count",
            "const u = document.querySelector('#conversation-list li[data-conversation-id] .unread');
             return u && u.dataset.count === '1' ? u.textContent : null;",
        )
        .await;
    assert_eq!(unread, "1");
    bob.screenshot("unread").await;
    bob.click("#conversation-list li[data-conversation-id]")
        .await;
    wait_shown(&bob, "bob sees alice's message", |m| {
        m == [(1, "alice".into(), "hello bob".into())]
    })
    .await;
    bob.wait_js(
        "bob's unread count to clear",
        "const u = document.querySelector('#conversation-list li[data-conversation-id] .unread');
         return u && u.dataset.count === '0';",
    )
    .await;
    alice
        .wait_js(
            "alice to see that bob read it",
            "return (document.querySelector('#read-state')?.textContent || '').includes('bob');",
        )
        .await;

    // Bob types: alice sees it; his message then replaces the indicator.
    bob.type_into("#message-input", "hi alice, typing here")
        .await;
    alice
        .wait_js(
            "alice to see bob typing",
            "const t = document.querySelector('#typing');
             return t && !t.hidden && t.textContent.includes('bob');",
        )
        .await;
    alice.screenshot("typing").await;
    bob.click("#send-btn").await;
    wait_shown(&alice, "bob's reply at alice", |m| {
        m.len() == 2 && m[1] == (2, "bob".into(), "hi alice, typing here".into())
    })
    .await;
    alice
        .wait_js(
            "the typing indicator to clear",
            "const t = document.querySelector('#typing');
             return t && (t.hidden || !t.textContent.includes('bob'));",
        )
        .await;
    bob.wait_js(
        "bob to see that alice read his reply",
        "return (document.querySelector('#read-state')?.textContent || '').includes('alice');",
    )
    .await;
    alice.screenshot("conversation").await;
    bob.screenshot("conversation").await;

    // What the pages showed is what the server stored.
    let page = stored_first_conversation(&app, "alice").await;
    let texts: Vec<_> = page["messages"]
        .as_array()
        .map(|m| m.iter().map(|m| m["text"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(
        texts,
        vec![json!("hello bob"), json!("hi alice, typing here")]
    );

    assert_no_console_errors(&alice).await;
    assert_no_console_errors(&bob).await;
    alice.quit().await;
    bob.quit().await;
}

/// The session of `user` on the server, via the admin API.
async fn session_of(app: &TestApp, root: &str, user: &str) -> Option<String> {
    let (_, list) = app.get("/admin/sessions", Some(root)).await;
    list["items"]
        .as_array()?
        .iter()
        .find(|s| s["username"] == user)
        .and_then(|s| s["sessionId"].as_str().map(String::from))
}

#[tokio::test]
async fn the_page_reconnects_after_the_server_drops_it_and_misses_nothing() {
    let (driver, app) = web_app_or_skip!();
    let root = app.user("root").await.token;
    let (alice, bob, id) =
        alice_opens_bobs_group(&driver, &app, "reconnect-alice", "crew", 3).await;
    wait_shown(&alice, "the first three messages", |m| m.len() == 3).await;

    // The server drops the page's socket; bob writes while it is away.
    let first = session_of(&app, &root, "alice")
        .await
        .expect("alice's session");
    let (status, _) = app
        .http
        .delete(app.url(&format!("/admin/sessions/{first}")))
        .bearer_auth(&root)
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("disconnect");
    assert_eq!(status, 200);
    // Posted once the page has seen its socket close: it waits at least
    // half a second before reconnecting, so these land while it is away
    // and reach it only through its catch-up.
    alice
        .wait_js(
            "the page to see its socket closed",
            "return document.querySelector('#conn-status')?.dataset.state !== 'open';",
        )
        .await;
    post_messages(&app, &bob, &id, 4..=8).await;

    // The page comes back on a new session and catches up without a gap.
    wait_for(
        "alice's page to reconnect",
        Duration::from_secs(20),
        || async {
            session_of(&app, &root, "alice")
                .await
                .filter(|s| *s != first)
        },
    )
    .await;
    wait_shown(&alice, "all eight messages once, in order", |m| {
        m.iter().map(|(seq, _, _)| *seq).collect::<Vec<_>>() == (1..=8).collect::<Vec<_>>()
    })
    .await;
    let texts: Vec<String> = shown(&alice).await.into_iter().map(|m| m.2).collect();
    assert_eq!(texts[7], "message 8");
    alice
        .wait_js(
            "the connection state to be open again",
            "return document.querySelector('#conn-status')?.dataset.state === 'open';",
        )
        .await;

    // What alice writes now still arrives.
    alice.type_into("#message-input", "back again").await;
    alice.click("#send-btn").await;
    wait_shown(&alice, "alice's message after the reconnect", |m| {
        m.last() == Some(&(9, "alice".into(), "back again".into()))
    })
    .await;
    alice.screenshot("after-reconnect").await;
    assert_no_console_errors(&alice).await;
    alice.quit().await;
}

/// Fills in and submits the admin console's login form as `user`.
async fn submit_admin_login(page: &Browser, app: &TestApp, user: &str) {
    page.goto(&app.url("/admin/ui")).await;
    page.type_into("#admin-username", user).await;
    page.type_into("#admin-password", PASSWORD).await;
    page.click("#admin-login-btn").await;
}

/// Logs into the admin console as `root`.
pub(crate) async fn admin_sign_in(page: &Browser, app: &TestApp) {
    submit_admin_login(page, app, "root").await;
    page.wait_js(
        "the console to show",
        "const c = document.querySelector('#console'); return c && !c.hidden;",
    )
    .await;
}

#[tokio::test]
async fn the_admin_console_shows_the_tree_and_forces_a_breaker_open() {
    let (driver, app) = web_app_or_skip!();
    let root = app.user("root").await.token;
    app.user("carol").await;

    // A non-admin account is turned away at the login form.
    let page = driver.browser("admin", 1280, 800).await;
    submit_admin_login(&page, &app, "carol").await;
    page.wait_js(
        "the not-an-admin message",
        "return (document.querySelector('#login-error')?.textContent || '').includes('admin');",
    )
    .await;

    admin_sign_in(&page, &app).await;

    // The tree: every node the server reports, with its status.
    let (_, tree) = app.get("/admin/supervision", Some(&root)).await;
    let mut names = Vec::new();
    collect_names(&tree["tree"], &mut names);
    assert!(names.len() >= 5, "{tree}");
    for name in &names {
        let status = page
            .wait_js(
                &format!("tree node {name}"),
                &format!(
                    "const n = document.querySelector('#supervision li[data-node=\"{name}\"] > .node-status')
                        || document.querySelector('#supervision li[data-node=\"{name}\"] .node-status');
                     return n ? n.textContent : null;"
                ),
            )
            .await;
        assert!(!status.as_str().unwrap_or("").is_empty(), "{name}");
    }

    // A breaker forced open from the page is forced open on the server.
    let (_, breakers) = app.get("/admin/breakers", Some(&root)).await;
    let name = breakers["items"][0]["name"]
        .as_str()
        .expect("a breaker")
        .to_string();
    // The button asks "Confirm?" first (web_console.rs tests that); the
    // second click forces.
    let open = format!("#breakers tr[data-breaker='{name}'] button[data-force='forced_open']");
    page.click(&open).await;
    page.wait_js(
        "the force button to ask for confirmation",
        &format!("return document.querySelector(\"{open}\")?.textContent === 'Confirm?';"),
    )
    .await;
    page.click(&open).await;
    page.wait_js(
        "the breaker row to say forced_open",
        &format!(
            "return document.querySelector(\"#breakers tr[data-breaker='{name}'] .breaker-state\")
                ?.textContent.trim() === 'forced_open';"
        ),
    )
    .await;
    let (_, breakers) = app.get("/admin/breakers", Some(&root)).await;
    let state = breakers["items"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name.as_str()))
        .map(|b| b["status"]["state"].clone());
    assert_eq!(state, Some(json!("forced_open")), "{breakers}");

    // Four live charts, drawn.
    let charts = page
        .wait_js(
            "the four charts",
            "const f = document.querySelectorAll('#charts figure[data-series] svg');
             return f.length === 4 ? f.length : null;",
        )
        .await;
    assert_eq!(charts, 4);

    // A trace looked up by id shows its hops: a message sent with a
    // client-given trace id (always recorded) crosses several actors.
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (status, conv) = app.post_group(&root, "ops", &["carol"]).await;
    assert_eq!(status, 201, "{conv}");
    let id = conv["conversationId"].as_str().unwrap_or_default();
    let res = app
        .http
        .post(app.url(&format!("/api/conversations/{id}/messages")))
        .bearer_auth(&root)
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .json(&json!({"text": "traced", "clientMsgId": "t1"}))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 201);
    let hops = wait_for("the trace's hops", Duration::from_secs(10), || async {
        let (_, v) = app
            .get(&format!("/admin/traces/{trace}"), Some(&root))
            .await;
        v["hops"].as_array().filter(|h| h.len() >= 2).map(Vec::len)
    })
    .await;
    page.type_into("#trace-id", trace).await;
    page.click("#trace-btn").await;
    let drawn = page
        .wait_js(
            "the trace timeline",
            "const n = document.querySelectorAll('#trace-timeline .hop').length;
             return n > 0 ? n : null;",
        )
        .await;
    assert!(
        drawn.as_u64() >= Some(hops as u64),
        "{drawn} of {hops} hops"
    );
    page.screenshot("console").await;
    assert_no_console_errors(&page).await;
    page.quit().await;
}

fn collect_names(node: &Value, out: &mut Vec<String>) {
    if let Some(name) = node["name"].as_str() {
        out.push(name.to_string());
    }
    for child in node["children"].as_array().into_iter().flatten() {
        collect_names(child, out);
    }
}

#[tokio::test]
async fn both_pages_fit_a_phone_sized_window() {
    let (driver, app) = web_app_or_skip!();
    app.user("root").await;
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth
                    ? window.innerWidth : null;";

    let chat = driver.browser("phone-chat", 390, 844).await;
    chat.goto(&app.url("/")).await;
    chat.wait_js("the sign-in form to fit", fits).await;
    chat.screenshot("sign-in").await;
    sign_in(&chat, &app, "dave", true).await;
    chat.wait_js("the chat page to fit", fits).await;
    chat.screenshot("chat").await;
    assert_no_console_errors(&chat).await;
    chat.quit().await;

    let admin = driver.browser("phone-admin", 390, 844).await;
    admin_sign_in(&admin, &app).await;
    admin.wait_js("the console to fit", fits).await;
    admin.screenshot("console").await;
    assert_no_console_errors(&admin).await;
    admin.quit().await;
}

#[tokio::test]
async fn older_history_loads_on_scroll_and_a_payment_shows_its_status() {
    let (driver, app) = web_app_or_skip!();
    let (alice, _bob, _id) =
        alice_opens_bobs_group(&driver, &app, "history-alice", "long", 130).await;
    // The latest page first, then older pages each time the list is
    // scrolled to its top, until the first message.
    wait_shown(&alice, "the latest page", |m| {
        m.last().map(|l| l.0) == Some(130)
    })
    .await;
    assert!(shown(&alice).await.len() < 130, "everything loaded at once");
    wait_for("every older page", Duration::from_secs(30), || async {
        alice
            .script(
                "document.querySelector('#messages').scrollTop = 0;",
                json!([]),
            )
            .await;
        let seqs: Vec<u64> = shown(&alice).await.iter().map(|m| m.0).collect();
        (seqs == (1..=130).collect::<Vec<_>>()).then_some(())
    })
    .await;
    alice.screenshot("top-of-history").await;

    // A payment: pending at once, then completed, and the balance follows.
    alice.type_into("#pay-to", "bob").await;
    alice.type_into("#pay-amount", "1.50").await;
    alice.click("#pay-btn").await;
    alice
        .wait_js(
            "the payment to complete",
            "const s = document.querySelector('#payments li[data-payment-id] .status');
             return s && s.dataset.status === 'completed';",
        )
        .await;
    let token = app.login("alice").await.token;
    let (_, me) = app.get("/api/me", Some(&token)).await;
    assert_eq!(me["balance"], 10_000 - 150, "{me}");
    alice
        .wait_js(
            "the balance to follow",
            "return (document.querySelector('#balance')?.textContent || '').includes('98.50');",
        )
        .await;
    alice.screenshot("payment").await;
    // The payment's message reads the amount as the badge and the balance do.
    alice
        .wait_js(
            "the direct conversation with bob to be listed",
            "const li = [...document.querySelectorAll('#conversation-list li[data-conversation-id]')]
                 .find((l) => l.textContent.includes('bob') && !l.textContent.includes('long'));
             if (li) li.click();
             return !!li;",
        )
        .await;
    alice
        .wait_js(
            "the payment message in major units",
            "const m = document.querySelector('#messages li.message.payment');
             return !!m && m.querySelector('.text').textContent === 'paid 1.50 to bob'
                 && m.querySelector('.pay-badge').textContent === 'Payment · 1.50';",
        )
        .await;
    assert_no_console_errors(&alice).await;
    alice.quit().await;
}
