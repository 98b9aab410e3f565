//! Abuse limits (config `[limits]`): frames per second per session, failed
//! logins per address and per account, and the node's connection cap.

use serde_json::json;

use crate::helpers::{spawn_app_with, wait_for, Frame, TestApp, TestClient};

#[tokio::test]
async fn frames_over_the_rate_are_refused_then_sustained_abuse_closes_the_session() {
    let app = spawn_app_with(|s| {
        s.limits.frames_per_sec = 1;
        s.limits.frame_burst = 5;
        s.limits.rate_limited_close_after = 10;
    })
    .await;
    let alice = app.user("alice").await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    // Ten frames at once: the burst of five is handled, at least four of
    // the rest (one token a second) are refused with their ref.
    for i in 0..10 {
        a.send(json!({"type": "ping", "ref": format!("p{i}")}))
            .await;
    }
    let (mut pongs, mut refused) = (0, Vec::new());
    while pongs + refused.len() < 10 {
        match a.recv().await {
            Frame::Pong { .. } => pongs += 1,
            Frame::Error {
                code, reference, ..
            } => {
                assert_eq!(code, "rate_limited");
                refused.push(reference.unwrap_or_default());
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pongs >= 5, "{pongs} pongs");
    assert!(refused.len() >= 4, "{refused:?}");
    assert!(refused.iter().all(|r| r.starts_with('p')), "{refused:?}");
    // Keeping on without a pause: closed with 1008.
    for i in 0..30 {
        a.send(json!({"type": "ping", "ref": format!("q{i}")}))
            .await;
    }
    let (code, reason) = a.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "rate limit exceeded"));
}

async fn login(app: &crate::helpers::TestApp, user: &str, password: &str) -> reqwest::Response {
    app.http
        .post(app.url("/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("login request")
}

/// A server that throttles logins after `per_account` failures for one
/// account from one address, or `per_address` from one address.
async fn login_throttled_app(per_account: u32, per_address: u32) -> TestApp {
    spawn_app_with(|s| {
        s.limits.login_failures_per_account_address = per_account;
        s.limits.login_failures_per_address = per_address;
    })
    .await
}

#[tokio::test]
async fn failed_logins_at_one_account_from_one_address_wait_with_a_retry_time() {
    let app = login_throttled_app(3, 100).await;
    app.user("alice").await;
    app.user("bob").await;
    for _ in 0..3 {
        assert_eq!(login(&app, "alice", "wrong-password").await.status(), 401);
    }
    // Now even the right password waits: the guesser cannot tell.
    let res = login(&app, "alice", "password123").await;
    assert_eq!(res.status(), 429);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After header in seconds");
    assert!((1..=300).contains(&retry), "{retry}");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["retryAfterSecs"], retry);
    // Another account from the same address is not affected.
    assert_eq!(login(&app, "bob", "password123").await.status(), 200);
}

/// A login to `user` sent from the loopback address `from` (127.0.0.x).
async fn login_from(
    app: &crate::helpers::TestApp,
    from: [u8; 4],
    user: &str,
    password: &str,
) -> reqwest::Response {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(from))
        .build()
        .expect("a client bound to a loopback address");
    client
        .post(app.url("/api/login"))
        .json(&json!({"username": user, "password": password}))
        .send()
        .await
        .expect("login request")
}

#[tokio::test]
async fn a_guesser_cannot_lock_the_owner_out_from_another_address() {
    let app = login_throttled_app(3, 100).await;
    app.user("bob").await;
    for _ in 0..10 {
        let status = login_from(&app, [127, 0, 0, 2], "bob", "wrong-password")
            .await
            .status();
        assert!(status == 401 || status == 429, "{status}");
    }
    // The guesser waits, right password or not...
    let res = login_from(&app, [127, 0, 0, 2], "bob", "password123").await;
    assert_eq!(res.status(), 429);
    // ...and bob, from his own address, logs in at once.
    let res = login_from(&app, [127, 0, 0, 3], "bob", "password123").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address_across_accounts() {
    let app = login_throttled_app(100, 3).await;
    app.user("carol").await;
    // Guessing at several accounts (one of them not existing) from one address.
    for user in ["carol", "dave", "erin"] {
        assert_eq!(login(&app, user, "wrong-password").await.status(), 401);
    }
    assert_eq!(login(&app, "carol", "password123").await.status(), 429);
}

#[tokio::test]
async fn upgrades_beyond_the_connection_cap_get_503() {
    let app = spawn_app_with(|s| s.limits.max_connections = 2).await;
    let alice = app.user("alice").await;
    let first = TestClient::connect(&app, &alice.token).await;
    let _second = TestClient::connect(&app, &alice.token).await;
    let (status, body) = app.get("/ws", Some(&alice.token)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    // A place freed is a place taken again.
    first.close().await;
    wait_for(
        "a freed connection slot",
        std::time::Duration::from_secs(10),
        || async {
            let (status, _) = app.get("/ws", Some(&alice.token)).await;
            // Without upgrade headers a request under the cap gets 400.
            (status == 400).then_some(())
        },
    )
    .await;
    TestClient::connect(&app, &alice.token).await;
}

#[tokio::test]
async fn a_user_in_too_many_conversations_may_not_start_another() {
    let app = spawn_app_with(|s| s.limits.max_conversations_per_user = 2).await;
    let [alice, _bob, _carol] = app.users(["alice", "bob", "carol"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    a.say_to("bob", "hi bob", "d1").await;
    a.create("first", &["carol"]).await;
    // Full: no new group (WebSocket or HTTP), no direct with someone new.
    a.send(json!({"type": "create", "name": "third", "members": ["bob"], "ref": "c3"}))
        .await;
    let (code, reference, _) = a.expect_error().await;
    assert_eq!(
        (code.as_str(), reference.as_deref()),
        ("forbidden", Some("c3"))
    );
    let (status, body) = app.post_group(&alice.token, "third", &["bob"]).await;
    assert_eq!(status, 403, "{body}");
    a.send(json!({"type": "send", "to": "carol", "text": "hi", "clientMsgId": "d2", "ref": "d2"}))
        .await;
    let (code, _, _) = a.expect_error().await;
    assert_eq!(code, "forbidden");
    // A payment would start the direct conversation it is posted in.
    let (status, body) = app.post_payment(&alice.token, "carol", 5, "k1").await;
    assert_eq!(status, 403, "{body}");
    let (_, me) = app.get("/api/me", Some(&alice.token)).await;
    assert_eq!(me["balance"], 10_000, "no money moved: {me}");
    // An existing direct conversation is not a new one.
    let mut again = TestClient::connect(&app, &alice.token).await;
    again.say_to("bob", "still here", "d3").await;
    let (status, body) = app.post_payment(&alice.token, "bob", 5, "k2").await;
    assert_eq!(status, 202, "{body}");
}

/// Posts one message over HTTP; the status and the `Retry-After` seconds.
async fn post_once(app: &TestApp, token: &str, id: &str, n: u32) -> (u16, Option<u64>, String) {
    let res = app
        .http
        .post(app.url(&format!("/api/conversations/{id}/messages")))
        .bearer_auth(token)
        .json(&json!({"text": format!("burst {n}"), "clientMsgId": format!("b{n}")}))
        .send()
        .await
        .expect("request");
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (status, retry, res.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_burst_of_http_writes_is_limited_per_user_and_per_address() {
    let app = spawn_app_with(|s| {
        s.limits.http_writes_per_sec = 1;
        s.limits.http_write_burst = 10;
        s.limits.http_address_writes_per_sec = 1;
        s.limits.http_address_write_burst = 15;
    })
    .await;
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let id = app.group(&alice.token, "burst", &["bob"]).await;
    // 40 at once from alice: her burst of 10 passes (the group took one
    // write), the rest are refused with a time to come back.
    let sends = (0..40).map(|n| post_once(&app, &alice.token, &id, n));
    let answers = futures_util::future::join_all(sends).await;
    let passed = answers.iter().filter(|a| a.0 == 201).count();
    assert!((9..=12).contains(&passed), "{passed} of 40 passed");
    for (status, retry, body) in answers.iter().filter(|a| a.0 != 201) {
        assert_eq!(*status, 429, "{body}");
        assert!(body.contains("\"code\":\"rate_limited\""), "{body}");
        assert!(retry.is_some_and(|s| (1..=2).contains(&s)), "{retry:?}");
    }
    // Reads are not writes; bob has a bucket of his own.
    let (status, _) = app
        .get(
            &format!("/api/conversations/{id}/messages"),
            Some(&alice.token),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(post_once(&app, &bob.token, &id, 100).await.0, 201);
    // The address's bucket (15) is shared: alice spent 10 of it, so bob's
    // writes stop at what is left, well before his own 10 are gone.
    let mut bobs = Vec::new();
    for n in 101..120 {
        bobs.push(post_once(&app, &bob.token, &id, n).await.0);
    }
    let bob_passed = bobs.iter().filter(|s| **s == 201).count();
    assert!(bob_passed <= 7, "one address, one bucket: {bobs:?}");
    assert!(bobs.contains(&429), "{bobs:?}");
    // After the wait it said, alice writes again.
    wait_for(
        "alice's next write",
        std::time::Duration::from_secs(10),
        || async { (post_once(&app, &alice.token, &id, 200).await.0 == 201).then_some(()) },
    )
    .await;
}

/// The cap is exact: upgrades racing for the last places never pass it
/// together (each takes its place before the 101), and every place comes
/// back when its connection ends.
#[tokio::test]
async fn a_burst_of_upgrades_never_passes_the_connection_cap() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app_with(|s| {
        s.limits.max_connections = 5;
        s.session.sessions_per_user = 100;
    })
    .await;
    let alice = app.user("alice").await;
    let attempt = || {
        let mut req = app.ws_url().into_client_request().expect("request");
        let bearer = format!("Bearer {}", alice.token).parse().expect("header");
        req.headers_mut().insert("authorization", bearer);
        tokio_tungstenite::connect_async(req)
    };
    let results = futures_util::future::join_all((0..30).map(|_| attempt())).await;
    let (open, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    assert_eq!(open.len(), 5, "exactly the cap upgraded");
    assert_eq!(refused.len(), 25);
    drop(open);
    wait_for(
        "every place back",
        std::time::Duration::from_secs(10),
        || async {
            let again = futures_util::future::join_all((0..5).map(|_| attempt())).await;
            again.iter().all(|r| r.is_ok()).then_some(())
        },
    )
    .await;
}
