//! The authorization matrix (issue 9): every HTTP route and every client
//! frame, tried by anonymous callers (no token, a garbage one, one signed
//! with another deployment's secret, an expired one, a tampered one), a plain
//! user, a user who is not a member of the conversation (nor party to the
//! payment) in question, and an admin. Each must get the answer SPEC.md and
//! docs/PROTOCOL.md document, and nothing of another user's conversations,
//! messages, balance or payments may reach anyone else.
//!
//! The tables are the point: a new route or frame type is one more line.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use futures_util::StreamExt;
use parley::auth::Tokens;
use parley::config::Settings;
use parley::domain::{now_ms, Username};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{spawn_app, spawn_app_with, wait_for, Frame, TestApp, TestClient};

/// How long a WebSocket handshake or its `hello` may take.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// A `read` seq no conversation of these tests reaches: the conversation
/// actor answers it (`bad_request` to a member, `forbidden` to anyone else),
/// which makes it a barrier request that changes nothing.
const BEYOND_ANY_SEQ: u64 = 4_000_000;

// ---------------------------------------------------------------------------
// Callers
// ---------------------------------------------------------------------------

/// Which column of a table a caller's answer is read from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// No valid token, however it is presented.
    Anonymous,
    /// A user acting on their own things: a member of the conversation, the
    /// payer of the payment.
    Plain,
    /// A user who is not a member of the conversation nor party to the payment.
    Outsider,
    /// A user listed in `auth.admins` (not a member of anything here).
    Admin,
}

impl Role {
    fn column(self) -> usize {
        match self {
            Role::Anonymous => 0,
            Role::Plain => 1,
            Role::Outsider => 2,
            Role::Admin => 3,
        }
    }
}

/// One way of calling: a role and the credentials presented.
struct Caller {
    what: String,
    role: Role,
    /// Sent as `Authorization: Bearer <header>`.
    header: Option<String>,
    /// Sent as `?token=<query>` (the browsers' form).
    query: Option<String>,
}

impl Caller {
    fn new(what: &str, role: Role, header: Option<&str>, query: Option<&str>) -> Caller {
        Caller {
            what: what.to_string(),
            role,
            header: header.map(str::to_string),
            query: query.map(str::to_string),
        }
    }
}

/// Tokens that must not open anything, for the admin "root": each is a way
/// an attacker could try to pass as someone.
struct BadTokens {
    /// Well formed, signed with another deployment's secret.
    foreign: String,
    /// Signed with this server's secret, but its expiry has passed.
    expired: String,
    /// A real token of `plain_token`'s user with its payload swapped for
    /// root's claims, keeping the original signature.
    tampered: String,
}

/// The control of the expired rows: a token minted the same way but still
/// valid is accepted, so the expired one is refused for its expiry alone.
async fn expired_control(app: &TestApp) {
    let root = Username::parse("root").expect("root is a valid username");
    let (fresh, _) = Tokens::new(
        app.settings.auth.token_secret.clone(),
        Duration::from_secs(3600),
    )
    .issue(&root, now_ms());
    let (status, body) = app.get("/api/me", Some(&fresh)).await;
    assert_eq!(
        status, 200,
        "a token minted with the server's secret: {body}"
    );
}

fn bad_tokens(app: &TestApp, plain_token: &str) -> BadTokens {
    let root = Username::parse("root").expect("root is a valid username");
    let hour = Duration::from_secs(3600);

    let other = Settings::from_sources(
        "[auth]\ntoken_secret = \"a different deployment's secret, 32+ bytes\"\n",
        &[],
    )
    .unwrap_or_else(|e| panic!("settings with another secret: {e}"));
    let (foreign, _) = Tokens::new(other.auth.token_secret, hour).issue(&root, now_ms());

    // Issued two hours ago with a one-hour lifetime, under the server's own
    // secret (so only its expiry can refuse it: see `expired_control`).
    let (expired, exp) = Tokens::new(app.settings.auth.token_secret.clone(), hour)
        .issue(&root, now_ms() - 2 * 3_600_000);
    assert!(exp < now_ms(), "the token must already be expired");

    let parts: Vec<&str> = plain_token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "a token is v1.<payload>.<signature>: {plain_token}"
    );
    let claims = json!({"sub": "root", "exp": now_ms() + 3_600_000, "iat": now_ms()});
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        B64.encode(claims.to_string()),
        parts[2]
    );
    BadTokens {
        foreign,
        expired,
        tampered,
    }
}

/// Every caller of the matrices: the anonymous variants, then a plain user,
/// an outsider and the admin, in that order (so refusals are tried before
/// the one caller whose request succeeds and may change things).
fn callers(bad: &BadTokens, plain: &str, outsider: &str, admin: &str) -> Vec<Caller> {
    use Role::*;
    vec![
        Caller::new("no token", Anonymous, None, None),
        Caller::new("an empty bearer token", Anonymous, Some(""), None),
        Caller::new("a garbage token", Anonymous, Some("garbage"), None),
        Caller::new(
            "root's token from another deployment (other secret)",
            Anonymous,
            Some(&bad.foreign),
            None,
        ),
        Caller::new("root's expired token", Anonymous, Some(&bad.expired), None),
        Caller::new(
            "root's claims under a plain user's signature",
            Anonymous,
            Some(&bad.tampered),
            None,
        ),
        Caller::new(
            "root's expired token in ?token=",
            Anonymous,
            None,
            Some(&bad.expired),
        ),
        // PROTOCOL: "The header is used when present", so a valid query
        // token does not rescue a bad header.
        Caller::new(
            "a garbage header beside a valid ?token=",
            Anonymous,
            Some("garbage"),
            Some(plain),
        ),
        Caller::new("a plain user (member, payer)", Plain, Some(plain), None),
        Caller::new("a non-member", Outsider, Some(outsider), None),
        Caller::new("the admin (no member)", Admin, Some(admin), None),
    ]
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

/// One line of the HTTP matrix: the request and the status each role must
/// get, in the order [anonymous, plain, outsider, admin].
struct Route {
    method: &'static str,
    path: String,
    body: Option<Value>,
    want: [u16; 4],
}

fn route(
    method: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    want: [u16; 4],
) -> Route {
    Route {
        method,
        path: path.into(),
        body,
        want,
    }
}

async fn call(app: &TestApp, who: &Caller, r: &Route) -> (u16, String) {
    let mut url = app.url(&r.path);
    if let Some(t) = &who.query {
        url.push(if r.path.contains('?') { '&' } else { '?' });
        url.push_str("token=");
        url.push_str(t);
    }
    let method = reqwest::Method::from_bytes(r.method.as_bytes())
        .unwrap_or_else(|e| panic!("method {}: {e}", r.method));
    let mut req = app.http.request(method, url);
    if let Some(t) = &who.header {
        req = req.bearer_auth(t);
    }
    if let Some(b) = &r.body {
        req = req.json(b);
    }
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{} {} as {}: {e}", r.method, r.path, who.what));
    let status = res.status().as_u16();
    let text = res
        .text()
        .await
        .unwrap_or_else(|e| panic!("{} {} as {}: body: {e}", r.method, r.path, who.what));
    (status, text)
}

fn is_trace_id(s: &str) -> bool {
    s.len() == 32
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// The documented error body for `status`, and nothing beside it.
fn assert_error_body(status: u16, text: &str, context: &str) {
    let code = match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        other => panic!("{context}: no error code is expected with status {other}"),
    };
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{context}: the {status} body is not JSON ({e}): {text}"));
    let err = &body["error"];
    assert_eq!(err["code"], code, "{context}: {body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{context}: the error needs a message: {body}"
    );
    assert!(
        err["traceId"].as_str().is_some_and(is_trace_id),
        "{context}: the error needs a traceId: {body}"
    );
    // A refusal carries the error and nothing else.
    assert_eq!(
        (
            body.as_object().map(|o| o.len()),
            err.as_object().map(|o| o.len())
        ),
        (Some(1), Some(3)),
        "{context}: an error body is exactly {{\"error\":{{code,message,traceId}}}}: {body}"
    );
}

/// A recorded trace id: any request whose `traceparent` the client gave is
/// recorded, so `GET /admin/traces/{id}` has something to show the admin.
async fn recorded_trace(app: &TestApp) -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let res = app
        .http
        .get(app.url("/healthz"))
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /healthz: {e}"));
    assert_eq!(res.status().as_u16(), 200);
    trace
}

#[tokio::test]
async fn every_http_route_answers_each_caller_as_documented() {
    // Fault injection on, so that a 403 from POST /admin/faults can only
    // mean "not an admin".
    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let alice = app.user("alice").await;
    let _bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let mallory = app.user("mallory").await;
    let root = app.user("root").await;

    // Alice's things: a group with Bob holding a message, a payment to Bob.
    let secret_text = "secret: the plan is at noon";
    let group = app.group(&alice.token, "plans", &["bob"]).await;
    let (status, ack) = app
        .post_message(&alice.token, &group, secret_text, "seed")
        .await;
    assert_eq!(status, 201, "{ack}");
    let payment = app.pay(&alice.token, "bob", 250, "seed").await;
    // A session for the admin to disconnect (Carol's: she is no caller).
    let mut carol_ws = TestClient::connect(&app, &carol.token).await;
    let session = carol_ws.session_id.clone();
    let trace = recorded_trace(&app).await;
    let no_conversation = uuid::Uuid::new_v4();
    let no_payment = uuid::Uuid::now_v7();

    expired_control(&app).await;
    let bad = bad_tokens(&app, &alice.token);
    let callers = callers(&bad, &alice.token, &mallory.token, &root.token);

    let g = format!("/api/conversations/{group}/messages");
    let nog = format!("/api/conversations/{no_conversation}/messages");
    #[rustfmt::skip]
    let routes = vec![
        // Public: served to anyone, whatever token comes along.
        route("GET", "/healthz", None, [200, 200, 200, 200]),
        route("GET", "/readyz", None, [200, 200, 200, 200]),
        route("GET", "/metrics", None, [200, 200, 200, 200]),
        route("GET", "/", None, [200, 200, 200, 200]),
        route("GET", "/assets/chat.js", None, [200, 200, 200, 200]),
        // The console page itself; its data needs an admin token.
        route("GET", "/admin/ui", None, [200, 200, 200, 200]),
        route("POST", "/api/register", Some(json!({"username": "alice", "password": "password123"})), [409, 409, 409, 409]),
        route("POST", "/api/login", Some(json!({"username": "bob", "password": "password123"})), [200, 200, 200, 200]),
        // Unknown routes, and known paths with another method: 404 before any token is looked at.
        route("GET", "/api/nope", None, [404, 404, 404, 404]),
        route("DELETE", "/api/me", None, [404, 404, 404, 404]),
        route("GET", "/admin/nope", None, [404, 404, 404, 404]),
        // The WebSocket route without an upgrade: the token first, then 400.
        route("GET", "/ws", None, [401, 400, 400, 400]),
        // One's own account and conversations.
        route("GET", "/api/me", None, [401, 200, 200, 200]),
        route("GET", "/api/conversations", None, [401, 200, 200, 200]),
        // Whether a user exists: any signed-in caller may ask.
        route("GET", "/api/users/bob", None, [401, 200, 200, 200]),
        route("GET", "/api/users/nobody_here", None, [401, 404, 404, 404]),
        route("GET", "/api/users/NOT%20VALID", None, [401, 400, 400, 400]),
        route("POST", "/api/conversations", Some(json!({"name": "mine", "members": []})), [401, 201, 201, 201]),
        // Alice's group: members only. Being an admin gives no access to conversations.
        route("GET", g.clone(), None, [401, 200, 403, 403]),
        route("GET", format!("{g}?afterSeq=0&limit=1"), None, [401, 200, 403, 403]),
        route("POST", g.clone(), Some(json!({"text": "hello again", "clientMsgId": "matrix"})), [401, 201, 403, 403]),
        route("GET", nog.clone(), None, [401, 404, 404, 404]),
        route("POST", nog, Some(json!({"text": "hello?", "clientMsgId": "matrix"})), [401, 404, 404, 404]),
        route("GET", "/api/conversations/not-a-uuid/messages", None, [401, 400, 400, 400]),
        // Payments: anyone pays from their own wallet; a payment is shown to
        // its payer, its payee and an admin, and to anyone else does not exist.
        route("POST", "/api/payments", Some(json!({"to": "bob", "amount": 1, "idempotencyKey": "matrix"})), [401, 202, 202, 202]),
        route("GET", format!("/api/payments/{payment}"), None, [401, 200, 404, 200]),
        route("GET", format!("/api/payments/{no_payment}"), None, [401, 404, 404, 404]),
        route("GET", "/api/payments/not-a-uuid", None, [401, 400, 400, 400]),
        // Admin routes: 401 without a valid token, 403 for anyone else.
        route("GET", "/admin/sessions", None, [401, 403, 403, 200]),
        route("GET", "/admin/conversations", None, [401, 403, 403, 200]),
        route("GET", "/admin/supervision", None, [401, 403, 403, 200]),
        route("GET", "/admin/faults", None, [401, 403, 403, 200]),
        // A fault on a conversation that does not exist: armed, never hit.
        route("POST", "/admin/faults", Some(json!({"target": format!("conversation:{no_conversation}"), "kind": "delay", "delayMs": 1, "count": 1})), [401, 403, 403, 202]),
        route("GET", "/admin/payments", None, [401, 403, 403, 200]),
        route("GET", "/admin/payments?status=pending", None, [401, 403, 403, 200]),
        route("POST", "/admin/wallets/carol/credit", Some(json!({"amount": 1})), [401, 403, 403, 200]),
        route("GET", "/admin/breakers", None, [401, 403, 403, 200]),
        route("POST", "/admin/breakers/webhook", Some(json!({"state": "closed"})), [401, 403, 403, 200]),
        route("GET", format!("/admin/traces/{trace}"), None, [401, 403, 403, 200]),
        route("GET", "/admin/metrics/series", None, [401, 403, 403, 200]),
        route("GET", "/admin/metrics/series?name=errors&seconds=60", None, [401, 403, 403, 200]),
        route("GET", "/admin/alerts", None, [401, 403, 403, 200]),
        // Last: the admin's call closes Carol's session.
        route("DELETE", format!("/admin/sessions/{session}"), None, [401, 403, 403, 200]),
    ];

    // What only Alice (and, for the payment, Bob and the admin) may see.
    let secrets = [group.as_str(), secret_text, payment.as_str()];
    let mut failures = Vec::new();
    for r in &routes {
        for who in &callers {
            let want = r.want[who.role.column()];
            let (status, text) = call(&app, who, r).await;
            let context = format!("{} {} as {}", r.method, r.path, who.what);
            if status != want {
                // Collected, so one run reports every disagreement at once.
                failures.push(format!("{context}: expected {want}, got {status}: {text}"));
                continue;
            }
            if status >= 400 {
                assert_error_body(status, &text, &context);
            }
            // Nothing of Alice's reaches an anonymous caller or an outsider,
            // and no refusal carries any of it.
            if matches!(who.role, Role::Anonymous | Role::Outsider) || status >= 400 {
                for s in secrets {
                    assert!(
                        !text.contains(s),
                        "{context}: the answer reveals {s:?}: {text}"
                    );
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers disagree with PROTOCOL.md:\n{}",
        failures.len(),
        routes.len() * callers.len(),
        failures.join("\n")
    );

    // The refusals changed nothing: only the admin's credit reached Carol's wallet...
    let (_, me) = app.get("/api/me", Some(&carol.token)).await;
    let initial = app.settings.payments.initial_balance;
    assert_eq!(me["balance"], initial + 1, "{me}");
    // ...and only Alice's messages are in her group.
    let (status, page) = app.get(&g, Some(&alice.token)).await;
    assert_eq!(status, 200, "{page}");
    let texts: Vec<&str> = page["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["text"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(texts, [secret_text, "hello again"], "{page}");
    // The admin's DELETE took effect; the refused ones had not.
    assert_eq!(
        carol_ws.expect_close().await,
        (1008, "disconnected by an admin".to_string())
    );
}

#[tokio::test]
async fn lists_and_lookups_show_only_the_callers_own_data() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mallory = app.user("mallory").await;
    let root = app.user("root").await;

    let (status, group) = app.post_group(&alice.token, "plans", &["bob"]).await;
    assert_eq!(status, 201, "{group}");
    let (status, own) = app.post_group(&mallory.token, "mallory's own", &[]).await;
    assert_eq!(status, 201, "{own}");
    let (status, payment) = app.post_payment(&alice.token, "bob", 250, "k1").await;
    assert_eq!(status, 202, "{payment}");
    let payment_path = format!(
        "/api/payments/{}",
        payment["paymentId"].as_str().unwrap_or("?")
    );
    // The payment creates (and posts into) the direct conversation of Alice and Bob.
    let done = wait_for(
        "the payment to complete",
        Duration::from_secs(10),
        || async {
            let (_, p) = app.get(&payment_path, Some(&alice.token)).await;
            (p["status"] == "completed").then_some(p)
        },
    )
    .await;
    assert_eq!(done["amount"], 250, "{done}");

    // Each caller's list, over HTTP and over WebSocket, is exactly theirs.
    let ids = |list: &Value| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("?").to_string(),
                            c["conversationId"].as_str().unwrap_or("?").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let group_id = group["conversationId"].as_str().unwrap_or("?").to_string();
    let own_id = own["conversationId"].as_str().unwrap_or("?").to_string();
    let (_, alice_list) = app.get("/api/conversations", Some(&alice.token)).await;
    let direct_id = alice_list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|c| c["kind"] == "direct"))
        .and_then(|c| c["conversationId"].as_str())
        .unwrap_or_else(|| panic!("the payment made a direct conversation: {alice_list}"))
        .to_string();
    let expected = [
        (
            "alice",
            &alice.token,
            vec![
                ("alice,bob".to_string(), direct_id.clone()),
                ("plans".to_string(), group_id.clone()),
            ],
        ),
        (
            "mallory",
            &mallory.token,
            vec![("mallory's own".to_string(), own_id)],
        ),
        ("root", &root.token, vec![]),
    ];
    for (name, token, want) in expected {
        let (status, list) = app.get("/api/conversations", Some(token)).await;
        assert_eq!(status, 200, "{name}: {list}");
        assert_eq!(ids(&list), want, "{name}'s conversations over HTTP: {list}");

        let mut ws = TestClient::connect(&app, token).await;
        ws.send(json!({"type": "conversations", "ref": "mine"}))
            .await;
        let mut seen = Vec::new();
        let frame = answer_to(&mut ws, "mine", &mut seen).await;
        assert_eq!(frame["type"], "conversations", "{name}: {frame}");
        assert_eq!(
            ids(&frame),
            want,
            "{name}'s conversations over WebSocket: {frame}"
        );

        // /api/me names the caller and no one else.
        let (_, me) = app.get("/api/me", Some(token)).await;
        assert_eq!(me["username"], name, "{me}");
        assert_eq!(me["admin"], name == "root", "{me}");
    }

    // Balances are the owners' own: Mallory's is untouched by Alice's payment.
    let initial = app.settings.payments.initial_balance;
    let (_, me) = app.get("/api/me", Some(&mallory.token)).await;
    assert_eq!(me["balance"], initial, "{me}");
    let (_, me) = app.get("/api/me", Some(&alice.token)).await;
    assert_eq!(me["balance"], initial - 250, "{me}");

    // The payment: payer, payee and admin see the same payment; to Mallory
    // it does not exist.
    for (name, token) in [
        ("alice", &alice.token),
        ("bob", &bob.token),
        ("root", &root.token),
    ] {
        let (status, p) = app.get(&payment_path, Some(token)).await;
        assert_eq!(status, 200, "{name}: {p}");
        assert_eq!(
            (&p["from"], &p["to"], &p["amount"]),
            (&json!("alice"), &json!("bob"), &json!(250)),
            "{name}: {p}"
        );
    }
    let (status, p) = app.get(&payment_path, Some(&mallory.token)).await;
    assert_eq!(status, 404, "{p}");
    assert_error_body(404, &p.to_string(), "mallory reads alice's payment");
}

// ---------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------

/// Opens `/ws` as `who`: Ok(the hello's username), or Err(status, body) when
/// the server refused the upgrade.
async fn upgrade(app: &TestApp, who: &Caller) -> Result<String, (u16, String)> {
    let mut url = app.ws_url();
    if let Some(t) = &who.query {
        url = format!("{url}?token={t}");
    }
    let mut req = url
        .into_client_request()
        .unwrap_or_else(|e| panic!("ws request: {e}"));
    if let Some(t) = &who.header {
        let value = format!("Bearer {t}")
            .parse()
            .unwrap_or_else(|e| panic!("header for {}: {e}", who.what));
        req.headers_mut().insert("authorization", value);
    }
    let Ok(connected) =
        tokio::time::timeout(HANDSHAKE, tokio_tungstenite::connect_async(req)).await
    else {
        panic!("{}: no handshake answer within {HANDSHAKE:?}", who.what)
    };
    match connected {
        Ok((mut ws, _)) => {
            let first = tokio::time::timeout(HANDSHAKE, ws.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no hello within {HANDSHAKE:?}", who.what));
            let Some(Ok(tungstenite::Message::Text(text))) = first else {
                panic!(
                    "{}: the first frame must be a text hello, got {first:?}",
                    who.what
                );
            };
            let hello: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: hello is not JSON ({e}): {text}", who.what));
            assert_eq!(hello["type"], "hello", "{}: {hello}", who.what);
            let _ = ws.close(None).await;
            Ok(hello["username"].as_str().unwrap_or("?").to_string())
        }
        Err(tungstenite::Error::Http(res)) => {
            let body = res
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((res.status().as_u16(), body))
        }
        Err(e) => panic!(
            "{}: the upgrade failed without an HTTP answer: {e}",
            who.what
        ),
    }
}

#[tokio::test]
async fn the_websocket_upgrade_needs_a_valid_token() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let root = app.user("root").await;
    expired_control(&app).await;
    let bad = bad_tokens(&app, &alice.token);
    let callers = callers(&bad, &alice.token, &mallory.token, &root.token);
    for who in &callers {
        match (who.role, upgrade(&app, who).await) {
            // SPEC: a missing or bad token gets HTTP 401 before any upgrade.
            (Role::Anonymous, Err((status, body))) => {
                assert_eq!(status, 401, "{}: {body}", who.what);
                assert_error_body(status, &body, &format!("GET /ws as {}", who.what));
            }
            (Role::Anonymous, Ok(user)) => {
                panic!("{}: the upgrade succeeded, as {user}", who.what)
            }
            (_, Ok(user)) => {
                let want = match who.role {
                    Role::Plain => "alice",
                    Role::Outsider => "mallory",
                    _ => "root",
                };
                assert_eq!(user, want, "{}: hello names the token's user", who.what);
            }
            (_, Err((status, body))) => panic!("{}: refused with {status}: {body}", who.what),
        }
    }
    // Browsers pass the token in the query string; it opens the same session.
    let by_query = Caller::new(
        "alice's token in ?token=",
        Role::Plain,
        None,
        Some(&alice.token),
    );
    assert_eq!(upgrade(&app, &by_query).await, Ok("alice".to_string()));
}

/// Reads `c` until the frame whose `ref` is `reference`; every frame read
/// (that one included) is appended to `log`.
async fn answer_to(c: &mut TestClient, reference: &str, log: &mut Vec<Value>) -> Value {
    loop {
        let v = c.recv_raw().await;
        log.push(v.clone());
        if v["ref"] == reference {
            return v;
        }
    }
}

/// Makes sure every frame that any earlier request to these conversations
/// fanned out to `member` has arrived, and returns the frames read meanwhile
/// (presence left out). `member` asks each conversation's actor something
/// that it answers (a read beyond the last message): an actor handles one
/// request at a time and fans out before it takes the next, and a session
/// writes frames in the order they were queued, so every earlier fan-out to
/// this session is read before the answer.
async fn settle(member: &mut TestClient, conversations: &[&str], tag: &str) -> Vec<Value> {
    let mut refs: Vec<String> = Vec::new();
    for (i, conv) in conversations.iter().enumerate() {
        let reference = format!("settle/{tag}/{i}");
        member
            .send(json!({"type": "read", "conversationId": conv, "seq": BEYOND_ANY_SEQ, "ref": reference}))
            .await;
        refs.push(reference);
    }
    let mut seen = Vec::new();
    while !refs.is_empty() {
        let v = member.recv_raw().await;
        let answered = refs.iter().position(|r| v["ref"] == r.as_str());
        match answered {
            Some(i) => {
                assert_eq!(
                    (v["type"].as_str(), v["code"].as_str()),
                    (Some("error"), Some("bad_request")),
                    "{}: a read beyond the last message: {v}",
                    member.username
                );
                refs.remove(i);
            }
            None if v["type"] == "presence" => {}
            None => seen.push(v),
        }
    }
    seen
}

/// What a frame must get from one caller.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// A direct reply of this type, carrying the frame's `ref`.
    Reply(&'static str),
    /// An `error` with this code and the frame's `ref`.
    Error(&'static str),
    /// No reply at all (`read`, `typing`); the other members hear of it.
    Silent,
}

/// The conversations of the frame matrix.
struct Ids {
    /// Alice and Bob's group.
    group: String,
    /// Another group of Alice and Bob, for Alice to leave.
    to_leave: String,
    /// Alice and Bob's direct conversation.
    direct: String,
    /// A conversation id that exists nowhere.
    unknown: String,
}

/// One line of the frame matrix: the frame (built for the conversation ids
/// and the caller's own username) and what [member, outsider, admin] get.
/// Anonymous callers never get this far: their upgrade is refused.
struct FrameCase {
    what: &'static str,
    frame: fn(&Ids, &str) -> Value,
    want: [Want; 3],
}

fn case(what: &'static str, frame: fn(&Ids, &str) -> Value, want: [Want; 3]) -> FrameCase {
    FrameCase { what, frame, want }
}

#[rustfmt::skip]
fn frame_cases() -> Vec<FrameCase> {
    use Want::*;
    vec![
        case("send to the group", |ids: &Ids, me: &str| json!({"type": "send", "conversationId": ids.group, "text": format!("from {me}"), "clientMsgId": format!("{me}-1")}), [Reply("ack"), Error("forbidden"), Error("forbidden")]),
        case("send to an unknown conversation", |ids, me| json!({"type": "send", "conversationId": ids.unknown, "text": "hello?", "clientMsgId": format!("{me}-2")}), [Error("not_found"); 3]),
        case("create a group", |_, me| json!({"type": "create", "name": format!("{me}'s"), "members": []}), [Reply("created"); 3]),
        case("invite someone else into the group", |ids, _| json!({"type": "invite", "conversationId": ids.group, "username": "carol"}), [Reply("invited"), Error("forbidden"), Error("forbidden")]),
        case("invite oneself into the group", |ids, me| json!({"type": "invite", "conversationId": ids.group, "username": me}), [Error("conflict"), Error("forbidden"), Error("forbidden")]),
        case("invite into an unknown conversation", |ids, _| json!({"type": "invite", "conversationId": ids.unknown, "username": "carol"}), [Error("not_found"); 3]),
        case("history of the group", |ids, _| json!({"type": "history", "conversationId": ids.group}), [Reply("history"), Error("forbidden"), Error("forbidden")]),
        case("history of the direct conversation", |ids, _| json!({"type": "history", "conversationId": ids.direct, "afterSeq": 0, "limit": 500}), [Reply("history"), Error("forbidden"), Error("forbidden")]),
        case("history of an unknown conversation", |ids, _| json!({"type": "history", "conversationId": ids.unknown}), [Error("not_found"); 3]),
        case("list conversations", |_, _| json!({"type": "conversations"}), [Reply("conversations"); 3]),
        case("read in the group", |ids, _| json!({"type": "read", "conversationId": ids.group, "seq": 1}), [Silent, Error("forbidden"), Error("forbidden")]),
        // A non-member must not learn lastSeq from the bad_request's message.
        case("read beyond the group's last message", |ids, _| json!({"type": "read", "conversationId": ids.group, "seq": BEYOND_ANY_SEQ}), [Error("bad_request"), Error("forbidden"), Error("forbidden")]),
        case("read in the direct conversation", |ids, _| json!({"type": "read", "conversationId": ids.direct, "seq": 1}), [Silent, Error("forbidden"), Error("forbidden")]),
        case("read in an unknown conversation", |ids, _| json!({"type": "read", "conversationId": ids.unknown, "seq": 1}), [Error("not_found"); 3]),
        case("typing in the group", |ids, _| json!({"type": "typing", "conversationId": ids.group}), [Silent, Error("forbidden"), Error("forbidden")]),
        case("typing in the direct conversation", |ids, _| json!({"type": "typing", "conversationId": ids.direct}), [Silent, Error("forbidden"), Error("forbidden")]),
        case("typing in an unknown conversation", |ids, _| json!({"type": "typing", "conversationId": ids.unknown}), [Error("not_found"); 3]),
        case("leave the direct conversation", |ids, _| json!({"type": "leave", "conversationId": ids.direct}), [Error("bad_request"), Error("forbidden"), Error("forbidden")]),
        case("leave the second group", |ids, _| json!({"type": "leave", "conversationId": ids.to_leave}), [Reply("left"), Error("forbidden"), Error("forbidden")]),
        case("leave an unknown conversation", |ids, _| json!({"type": "leave", "conversationId": ids.unknown}), [Error("not_found"); 3]),
        // Everyone pays from their own wallet.
        case("pay someone", |_, me| json!({"type": "pay", "to": "carol", "amount": 1, "idempotencyKey": format!("{me}-pay")}), [Reply("payment"); 3]),
        case("pay oneself", |_, me| json!({"type": "pay", "to": me, "amount": 1, "idempotencyKey": format!("{me}-self")}), [Error("bad_request"); 3]),
        case("ping", |_, _| json!({"type": "ping"}), [Reply("pong"); 3]),
    ]
}

/// Sends one case's frame as `me` and checks the answer; every frame read
/// goes to `log`.
async fn try_frame(
    c: &mut TestClient,
    log: &mut Vec<Value>,
    ids: &Ids,
    case: &FrameCase,
    want: Want,
) -> Result<(), String> {
    let me = c.username.clone();
    let reference = format!("{}/{me}", case.what);
    let mut frame = (case.frame)(ids, &me);
    frame["ref"] = json!(reference);
    c.send(frame.clone()).await;
    let context = format!("{} as {me}", case.what);
    match want {
        Want::Reply(kind) => {
            let v = answer_to(c, &reference, log).await;
            if v["type"] != kind {
                return Err(format!("{context}: expected {kind}, got {v}"));
            }
        }
        Want::Error(code) => {
            let v = answer_to(c, &reference, log).await;
            if (v["type"].as_str(), v["code"].as_str()) != (Some("error"), Some(code)) {
                return Err(format!("{context}: expected error {code}, got {v}"));
            }
            assert!(
                v["traceId"].as_str().is_some_and(is_trace_id),
                "{context}: {v}"
            );
        }
        Want::Silent => {
            // No reply on success. The session's requests reach the
            // conversation's actor in order, so once a request that is
            // answered has been, nothing can answer this one any more.
            let barrier = format!("{reference}/barrier");
            let from = log.len();
            c.send(json!({"type": "read", "conversationId": frame["conversationId"], "seq": BEYOND_ANY_SEQ, "ref": barrier}))
                .await;
            answer_to(c, &barrier, log).await;
            if let Some(v) = log[from..].iter().find(|v| v["ref"] == reference.as_str()) {
                return Err(format!("{context}: expected no reply, got {v}"));
            }
        }
    }
    Ok(())
}

/// Frames that mention any of `secrets` (conversation ids are not looked
/// for in `error` frames, which may name the conversation their request gave).
fn leaks<'a>(frames: &'a [Value], ids: &[&str], texts: &[&str]) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|v| {
            let s = v.to_string();
            texts.iter().any(|t| s.contains(t))
                || (v["type"] != "error" && ids.iter().any(|id| s.contains(id)))
        })
        .collect()
}

#[tokio::test]
async fn every_client_frame_answers_each_caller_as_documented() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let _carol = app.user("carol").await;
    let mallory = app.user("mallory").await;
    let root = app.user("root").await;

    // A payment from Alice to Bob, finished (and its status frames read)
    // before the checks, whose frames they would otherwise interleave.
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    let (status, p) = app.post_payment(&alice.token, "bob", 250, "seed").await;
    assert_eq!(status, 202, "{p}");
    let payment_id = p["paymentId"].as_str().unwrap_or("?").to_string();
    let payment_path = format!("/api/payments/{payment_id}");
    wait_for(
        "the payment to complete",
        Duration::from_secs(10),
        || async {
            let (_, p) = app.get(&payment_path, Some(&alice.token)).await;
            (p["status"] == "completed").then_some(())
        },
    )
    .await;
    for c in [&mut a, &mut b] {
        // `completed` is the last status frame of a payment; the payment's
        // message comes by another path (the conversation's fan-out), so
        // before or after it.
        let (mut completed, mut message) = (false, false);
        while !(completed && message) {
            match c.recv().await {
                Frame::Payment(p) if p.status == "completed" => completed = true,
                Frame::Message(m) if m.kind == "payment" => message = true,
                _ => {}
            }
        }
    }
    let group = a.create("plans", &["bob"]).await.conversation_id;
    let to_leave = a.create("leaving", &["bob"]).await.conversation_id;
    let group_text = "secret: the plan is at noon";
    let direct_text = "secret: just between us";
    a.say(&group, group_text, "seed-g").await;
    assert_eq!(b.expect_message().await.text, group_text);
    let (_, direct) = a.say_to("bob", direct_text, "seed-d").await;
    assert_eq!(b.expect_message().await.text, direct_text);
    let ids = Ids {
        group,
        to_leave,
        direct,
        unknown: uuid::Uuid::new_v4().to_string(),
    };

    let mut m = TestClient::connect(&app, &mallory.token).await;
    let mut r = TestClient::connect(&app, &root.token).await;
    let (mut a_log, mut m_log, mut r_log) = (Vec::new(), Vec::new(), Vec::new());
    let cases = frame_cases();
    let mut failures = Vec::new();

    // The non-members first, while Bob watches: nothing they do may reach him.
    for case in &cases {
        if let Err(e) = try_frame(&mut m, &mut m_log, &ids, case, case.want[1]).await {
            failures.push(e);
        }
        if let Err(e) = try_frame(&mut r, &mut r_log, &ids, case, case.want[2]).await {
            failures.push(e);
        }
    }
    let convs = [
        ids.group.as_str(),
        ids.to_leave.as_str(),
        ids.direct.as_str(),
    ];
    let at_bob = settle(&mut b, &convs, "outsiders").await;
    assert!(
        at_bob.is_empty(),
        "the members' sessions got frames caused by non-members (typing, read, invite, leave, send): {at_bob:#?}"
    );

    // Then the member.
    for case in &cases {
        if let Err(e) = try_frame(&mut a, &mut a_log, &ids, case, case.want[0]).await {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} answers disagree with PROTOCOL.md:\n{}",
        failures.len(),
        cases.len() * 3,
        failures.join("\n")
    );

    // The same checks see the member's doings at Bob: had a non-member's
    // typing or read gone through, Bob would have seen it the same way.
    let at_bob = settle(&mut b, &convs, "member").await;
    let saw = |kind: &str, conv: &str, field: &str, value: Value| {
        at_bob
            .iter()
            .any(|v| v["type"] == kind && v["conversationId"] == conv && v[field] == value)
    };
    for (kind, conv, field, value) in [
        ("message", &ids.group, "text", json!("from alice")),
        ("member_joined", &ids.group, "username", json!("carol")),
        ("read", &ids.group, "username", json!("alice")),
        ("read", &ids.direct, "username", json!("alice")),
        ("typing", &ids.group, "username", json!("alice")),
        ("typing", &ids.direct, "username", json!("alice")),
        ("member_left", &ids.to_leave, "username", json!("alice")),
    ] {
        assert!(
            saw(kind, conv, field, value.clone()),
            "bob never got {kind} with {field} {value} in {conv}: {at_bob:#?}"
        );
    }
    let strangers: Vec<&Value> = at_bob
        .iter()
        .filter(|v| {
            ["mallory", "root"]
                .iter()
                .any(|u| v["username"] == *u || v["sender"] == *u)
        })
        .collect();
    assert!(
        strangers.is_empty(),
        "bob got frames from non-members: {strangers:#?}"
    );

    // Every fan-out is done (settled above); whatever was queued for the
    // non-members is read before their pong. None of it may be Alice and Bob's.
    for (c, log) in [(&mut m, &mut m_log), (&mut r, &mut r_log)] {
        c.send(json!({"type": "ping", "ref": "last"})).await;
        answer_to(c, "last", log).await;
        let found = leaks(
            log,
            &convs,
            &[
                group_text,
                direct_text,
                "from alice",
                &payment_id,
                "paid 2.50 to bob",
            ],
        );
        assert!(
            found.is_empty(),
            "{} got Alice and Bob's conversations, messages or payment: {found:#?}",
            c.username
        );
        // Not even their names: no presence, typing, read or message of theirs.
        let about: Vec<&Value> = log
            .iter()
            .filter(|v| {
                ["username", "sender", "receiver", "from", "to"]
                    .iter()
                    .any(|f| v[*f] == "alice" || v[*f] == "bob")
            })
            .collect();
        assert!(
            about.is_empty(),
            "{} shares no conversation with Alice or Bob, yet got: {about:#?}",
            c.username
        );
    }
    // Payment frames reach the payer and the payee only (everyone paid Carol).
    for (who, log) in [
        ("alice", &a_log),
        ("bob", &at_bob),
        ("mallory", &m_log),
        ("root", &r_log),
    ] {
        let others: Vec<&Value> = log
            .iter()
            .filter(|v| v["type"] == "payment" && v["from"] != who && v["to"] != who)
            .collect();
        assert!(others.is_empty(), "{who} got others' payments: {others:#?}");
    }
}

#[tokio::test]
async fn a_member_who_left_gets_nothing_more_of_the_group() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    let group = a.create("for a while", &["bob"]).await.conversation_id;
    a.say(&group, "before", "1").await;
    b.expect_message().await;

    let mut a_log = Vec::new();
    a.send(json!({"type": "leave", "conversationId": group, "ref": "bye"}))
        .await;
    let left = answer_to(&mut a, "bye", &mut a_log).await;
    assert_eq!(left["type"], "left", "{left}");
    match b.recv().await {
        Frame::MemberLeft { username, .. } => assert_eq!(username, "alice"),
        other => panic!("bob: expected member_left, got {other:?}"),
    }
    let after = "said after alice left";
    b.say(&group, after, "2").await;
    b.send(json!({"type": "typing", "conversationId": group}))
        .await;
    b.send(json!({"type": "read", "conversationId": group, "seq": 2}))
        .await;
    // Bob's fan-outs are done once the actor has answered him again; then
    // whatever was queued for Alice is read before her pong.
    settle(&mut b, &[&group], "after-leave").await;
    a_log.clear();
    a.send(json!({"type": "ping", "ref": "barrier"})).await;
    answer_to(&mut a, "barrier", &mut a_log).await;
    let about_group: Vec<&Value> = a_log
        .iter()
        .filter(|v| v["conversationId"] == group.as_str())
        .collect();
    assert!(
        about_group.is_empty(),
        "alice left, yet got frames of the group: {about_group:#?}"
    );

    // And she can no longer read or write it, over either protocol.
    for (i, frame) in [
        json!({"type": "history", "conversationId": group}),
        json!({"type": "send", "conversationId": group, "text": "back?", "clientMsgId": "3"}),
        json!({"type": "typing", "conversationId": group}),
        json!({"type": "read", "conversationId": group, "seq": 1}),
        json!({"type": "invite", "conversationId": group, "username": "alice"}),
        json!({"type": "leave", "conversationId": group}),
    ]
    .into_iter()
    .enumerate()
    {
        let reference = format!("gone/{i}");
        let mut frame = frame;
        frame["ref"] = json!(reference);
        a.send(frame.clone()).await;
        let v = answer_to(&mut a, &reference, &mut a_log).await;
        assert_eq!(
            (v["type"].as_str(), v["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{frame} after leaving: {v}"
        );
    }
    let path = format!("/api/conversations/{group}/messages");
    let (status, body) = app.get(&path, Some(&alice.token)).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.to_string().contains(after), "{body}");
    let (status, body) = app
        .post(
            &path,
            Some(&alice.token),
            json!({"text": "back?", "clientMsgId": "4"}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, list) = app.get("/api/conversations", Some(&alice.token)).await;
    assert!(!list.to_string().contains(group.as_str()), "{list}");
}
