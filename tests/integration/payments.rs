//! Payments as sagas against a real (simulated, HTTP) provider, guarded by
//! the provider's circuit breaker.

use std::time::Duration;

use parley::provider::ProviderOptions;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, wait_for, Frame, TestApp, TestClient, TestProvider};

async fn pay(app: &TestApp, token: &str, to: &str, amount: i64, key: &str) -> (u16, Value) {
    app.post(
        "/api/payments",
        Some(token),
        json!({"to": to, "amount": amount, "idempotencyKey": key}),
    )
    .await
}

/// Waits until the payment is completed or failed.
async fn settled(app: &TestApp, token: &str, id: &str) -> Value {
    wait_for("the payment to settle", Duration::from_secs(30), || async {
        let (status, p) = app.get(&format!("/api/payments/{id}"), Some(token)).await;
        assert_eq!(status, 200, "{p}");
        (p["status"] != "pending").then_some(p)
    })
    .await
}

async fn balance(app: &TestApp, token: &str) -> i64 {
    app.get("/api/me", Some(token)).await.1["balance"]
        .as_i64()
        .unwrap()
}

fn fast_retries(s: &mut parley::config::Settings) {
    s.payments.retry_base = Duration::from_millis(20);
    s.payments.retry_max = Duration::from_millis(100);
}

#[tokio::test]
async fn a_payment_completes_moves_money_and_posts_a_message() {
    let app = spawn_app_with(|_| {}).await;
    let (alice, bob, eve) = (
        app.user("alice").await,
        app.user("bob").await,
        app.user("eve").await,
    );
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    a.send(
        json!({"type": "pay", "to": "bob", "amount": 1500, "idempotencyKey": "k1", "ref": "p1"}),
    )
    .await;
    let pending = a
        .wait_for("pending", |f| match f {
            Frame::Payment(p) if p.status == "pending" => Some(p.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (pending.from.as_str(), pending.to.as_str(), pending.amount),
        ("alice", "bob", 1500)
    );
    for c in [&mut a, &mut b] {
        c.wait_for("completed", |f| match f {
            Frame::Payment(p) if p.status == "completed" && p.payment_id == pending.payment_id => {
                Some(())
            }
            _ => None,
        })
        .await;
        let m = c
            .wait_for("the payment message", |f| match f {
                Frame::Message(m) if m.kind == "payment" => Some(m.clone()),
                _ => None,
            })
            .await;
        assert_eq!(
            (m.sender.as_str(), m.receiver.as_deref()),
            ("alice", Some("bob"))
        );
    }
    assert_eq!(balance(&app, &alice.token).await, 8500);
    assert_eq!(balance(&app, &bob.token).await, 11500);
    let path = format!("/api/payments/{}", pending.payment_id);
    assert_eq!(
        app.get(&path, Some(&bob.token)).await.1["status"],
        "completed"
    );
    assert_eq!(
        app.get(&path, Some(&eve.token)).await.0,
        404,
        "not eve's business"
    );
    // The same key again: the same payment, nothing new.
    let (status, again) = pay(&app, &alice.token, "bob", 1500, "k1").await;
    assert_eq!(
        (status, again["paymentId"].as_str()),
        (202, Some(pending.payment_id.as_str()))
    );
    assert_eq!(balance(&app, &alice.token).await, 8500);
    let (status, err) = pay(&app, &alice.token, "bob", 99, "k1").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
}

#[tokio::test]
async fn a_decline_fails_the_payment_and_returns_the_money() {
    let provider = TestProvider::start(ProviderOptions {
        decline_rate: 1.0,
        max_keys: 1000,
        ..ProviderOptions::default()
    });
    let url = provider.url();
    let app = spawn_app_with(move |s| s.payments.provider_url = Some(url)).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let (status, p) = pay(&app, &alice.token, "bob", 700, "d1").await;
    assert_eq!(status, 202, "{p}");
    let done = settled(&app, &alice.token, p["paymentId"].as_str().unwrap()).await;
    assert_eq!(
        (done["status"].as_str(), done["reason"].as_str()),
        (Some("failed"), Some("card_declined"))
    );
    assert_eq!(balance(&app, &alice.token).await, 10000);
    assert_eq!(balance(&app, &bob.token).await, 10000);
}

#[tokio::test]
async fn insufficient_funds_are_refused_and_nothing_is_held() {
    let app = spawn_app_with(|_| {}).await;
    let (alice, _bob) = (app.user("alice").await, app.user("bob").await);
    let (status, err) = pay(&app, &alice.token, "bob", 10001, "big").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (402, Some("insufficient_funds"))
    );
    assert_eq!(balance(&app, &alice.token).await, 10000);
    let mut a = TestClient::connect(&app, &alice.token).await;
    a.send(json!({"type": "pay", "to": "bob", "amount": 20000, "idempotencyKey": "x", "ref": "r"}))
        .await;
    let (code, reference, _) = a.expect_error().await;
    assert_eq!(
        (code.as_str(), reference.as_deref()),
        ("insufficient_funds", Some("r"))
    );
    for (body, what) in [
        (
            json!({"to": "alice", "amount": 5, "idempotencyKey": "self"}),
            "to self",
        ),
        (
            json!({"to": "bob", "amount": 0, "idempotencyKey": "zero"}),
            "zero",
        ),
        (
            json!({"to": "ghost", "amount": 5, "idempotencyKey": "ghost"}),
            "nobody",
        ),
    ] {
        let (status, _) = app.post("/api/payments", Some(&alice.token), body).await;
        assert!(status == 400 || status == 404, "{what}: {status}");
    }
    let root = app.user("root").await;
    let (status, credited) = app
        .post(
            "/admin/wallets/alice/credit",
            Some(&root.token),
            json!({"amount": 500}),
        )
        .await;
    assert_eq!((status, credited["balance"].as_i64()), (200, Some(10500)));
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_and_closes_when_the_provider_is_back() {
    let mut provider = TestProvider::start(ProviderOptions {
        max_keys: 1000,
        ..ProviderOptions::default()
    });
    let url = provider.url();
    let app = spawn_app_with(move |s| {
        s.payments.provider_url = Some(url);
        fast_retries(s);
        s.payments.retry_deadline = Duration::from_secs(30);
        let b = &mut s.breakers[0];
        b.config.minimum_calls = 3;
        b.config.wait_open = Duration::from_millis(500);
        b.config.max_wait = Duration::from_millis(500);
        b.config.jitter = 0.0;
        b.config.half_open_calls = 1;
    })
    .await;
    let (root, alice, bob) = (
        app.user("root").await,
        app.user("alice").await,
        app.user("bob").await,
    );
    // The provider goes away; a payment keeps trying and trips the breaker.
    provider.stop().await;
    let (status, first) = pay(&app, &alice.token, "bob", 100, "b1").await;
    assert_eq!(status, 202, "{first}");
    wait_for("the breaker to open", Duration::from_secs(10), || async {
        let (_, list) = app.get("/admin/breakers", Some(&root.token)).await;
        (list["items"][0]["status"]["state"] == "open").then_some(())
    })
    .await;
    // While open, a new payment fails at once, nothing held.
    let (status, err) = pay(&app, &alice.token, "bob", 100, "b2").await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (503, Some("unavailable")),
        "{err}"
    );
    assert_eq!(
        balance(&app, &alice.token).await,
        9900,
        "only the first payment holds money"
    );
    // The provider is back: the next probe succeeds and the breaker closes.
    provider.restart();
    let done = settled(&app, &alice.token, first["paymentId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    let (_, list) = app.get("/admin/breakers", Some(&root.token)).await;
    let status = &list["items"][0]["status"];
    assert_eq!(status["state"], "closed", "{list}");
    let path: Vec<&str> = status["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert!(path.ends_with(&["half_open", "closed"]), "{path:?}");
    assert_eq!(balance(&app, &bob.token).await, 10100);
    let charge = provider
        .state
        .lookup(first["paymentId"].as_str().unwrap())
        .expect("charged once");
    assert_eq!(charge.status, "succeeded");
}

#[tokio::test]
async fn an_unreachable_provider_past_the_deadline_is_compensated() {
    let mut provider = TestProvider::start(ProviderOptions {
        max_keys: 1000,
        ..ProviderOptions::default()
    });
    let url = provider.url();
    let app = spawn_app_with(move |s| {
        s.payments.provider_url = Some(url);
        fast_retries(s);
        s.payments.retry_deadline = Duration::from_secs(1);
        s.breakers[0].config.wait_open = Duration::from_millis(200);
        s.breakers[0].config.max_wait = Duration::from_millis(200);
    })
    .await;
    let (root, alice, bob) = (
        app.user("root").await,
        app.user("alice").await,
        app.user("bob").await,
    );
    provider.stop().await;
    let (_, p) = pay(&app, &alice.token, "bob", 300, "c1").await;
    let id = p["paymentId"].as_str().unwrap().to_string();
    // The deadline passes: the saga compensates, and its refund waits for the provider.
    wait_for(
        "the saga to compensate",
        Duration::from_secs(15),
        || async {
            let (_, list) = app.get("/admin/payments", Some(&root.token)).await;
            (list["items"][0]["step"] == "refunding").then_some(())
        },
    )
    .await;
    provider.restart();
    let done = settled(&app, &alice.token, &id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["reason"], "payment provider unavailable");
    assert_eq!(balance(&app, &alice.token).await, 10000);
    assert_eq!(balance(&app, &bob.token).await, 10000);
    assert!(provider.state.lookup(&id).is_none(), "never charged");
}

#[tokio::test]
async fn injected_panics_during_sagas_change_nothing_in_the_outcome() {
    let app = spawn_app_with(|s| {
        s.faults_enabled = true;
        fast_retries(s);
    })
    .await;
    let (root, alice, bob) = (
        app.user("root").await,
        app.user("alice").await,
        app.user("bob").await,
    );
    let (status, _) = app
        .post(
            "/admin/faults",
            Some(&root.token),
            json!({"target": "payment", "kind": "panic", "count": 3}),
        )
        .await;
    assert_eq!(status, 202);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, p) = pay(&app, &alice.token, "bob", 100, &format!("f{i}")).await;
        ids.push(p["paymentId"].as_str().unwrap().to_string());
    }
    for id in &ids {
        assert_eq!(settled(&app, &alice.token, id).await["status"], "completed");
    }
    assert_eq!(balance(&app, &alice.token).await, 9700);
    assert_eq!(balance(&app, &bob.token).await, 10300);
    let (_, view) = app.get("/admin/supervision", Some(&root.token)).await;
    let payments = view["tree"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "payments")
        .unwrap()
        .clone();
    assert_eq!(payments["restarts"], 3, "{payments}");
}
