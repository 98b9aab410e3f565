//! Payments as sagas against a real (simulated, HTTP) provider, guarded by
//! the provider's circuit breaker.

use std::time::Duration;

use parley::domain::SagaStep;
use parley_provider::{ProviderBehaviour, ProviderOptions};
use serde_json::{json, Value};

use crate::helpers::{
    spawn_app_with, strings_of, tree_child, wait_for, Frame, TestApp, TestClient, TestProvider,
};

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

/// A provider keeping 1000 keys, and a server paying through it with fast
/// retries, `retry_deadline`, and `tweak`.
async fn with_provider(
    retry_deadline: Duration,
    tweak: impl FnOnce(&mut parley::config::Settings),
) -> (TestProvider, TestApp) {
    let provider = TestProvider::start(ProviderOptions {
        max_keys: 1000,
        ..ProviderOptions::default()
    });
    let url = provider.url();
    let app = spawn_app_with(move |s| {
        s.payments.provider_url = Some(url);
        fast_retries(s);
        s.payments.retry_deadline = retry_deadline;
        tweak(s);
    })
    .await;
    (provider, app)
}

#[tokio::test]
async fn a_payment_completes_moves_money_and_posts_a_message() {
    let app = spawn_app_with(|_| {}).await;
    let [alice, bob, eve] = app.users(["alice", "bob", "eve"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    a.send(
        json!({"type": "pay", "to": "bob", "amount": 1500, "idempotencyKey": "k1", "ref": "p1"}),
    )
    .await;
    let pending = a.wait_payment("pending").await;
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
        let m = c.wait_payment_message().await;
        assert_eq!(
            (m.sender.as_str(), m.receiver.as_deref(), m.text.as_str()),
            ("alice", Some("bob"), "paid 15.00 to bob"),
            "amounts read in major units, as the pages show them"
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
    let (status, again) = app.post_payment(&alice.token, "bob", 1500, "k1").await;
    assert_eq!(
        (status, again["paymentId"].as_str()),
        (202, Some(pending.payment_id.as_str()))
    );
    assert_eq!(balance(&app, &alice.token).await, 8500);
    let (status, err) = app.post_payment(&alice.token, "bob", 99, "k1").await;
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
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let (status, p) = app.post_payment(&alice.token, "bob", 700, "d1").await;
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
    let [alice, _bob] = app.users(["alice", "bob"]).await;
    let (status, err) = app.post_payment(&alice.token, "bob", 10001, "big").await;
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
    let (provider, app) = with_provider(Duration::from_secs(30), |s| {
        let b = &mut s.breakers[0];
        b.config.minimum_calls = 3;
        b.config.wait_open = Duration::from_secs(2);
        b.config.max_wait = Duration::from_secs(2);
        b.config.jitter = 0.0;
        b.config.half_open_calls = 1;
    })
    .await;
    let [root, alice, bob] = app.users(["root", "alice", "bob"]).await;
    // The provider fails every request; a payment keeps trying and trips the breaker.
    provider.state.set(&ProviderBehaviour {
        outage: Some(true),
        ..ProviderBehaviour::default()
    });
    let (status, first) = app.post_payment(&alice.token, "bob", 100, "b1").await;
    assert_eq!(status, 202, "{first}");
    wait_for("the breaker to open", Duration::from_secs(10), || async {
        let (_, list) = app.get("/admin/breakers", Some(&root.token)).await;
        (list["items"][0]["status"]["state"] == "open").then_some(())
    })
    .await;
    let requests = |p: &TestProvider| p.state.stats()["requests"].as_u64().unwrap();
    let seen = requests(&provider);
    // While open, a new payment fails at once, nothing held, and no request
    // reaches the provider (the first saga's retries are rejected too).
    let (status, err) = app.post_payment(&alice.token, "bob", 100, "b2").await;
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
    let (_, list) = app.get("/admin/breakers", Some(&root.token)).await;
    assert_eq!(
        list["items"][0]["status"]["state"], "open",
        "still open: {list}"
    );
    assert_eq!(
        requests(&provider),
        seen,
        "nothing reached the provider while open"
    );
    // The provider is back: the next probe succeeds and the breaker closes.
    provider.state.set(&ProviderBehaviour {
        outage: Some(false),
        ..ProviderBehaviour::default()
    });
    let done = settled(&app, &alice.token, first["paymentId"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed");
    let (_, list) = app.get("/admin/breakers", Some(&root.token)).await;
    let status = &list["items"][0]["status"];
    assert_eq!(status["state"], "closed", "{list}");
    let path = strings_of(&status["transitions"], "to");
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
    let (mut provider, app) = with_provider(Duration::from_secs(1), |s| {
        s.breakers[0].config.wait_open = Duration::from_millis(200);
        s.breakers[0].config.max_wait = Duration::from_millis(200);
    })
    .await;
    let [root, alice, bob] = app.users(["root", "alice", "bob"]).await;
    provider.stop().await;
    let (_, p) = app.post_payment(&alice.token, "bob", 300, "c1").await;
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
    // Never charged: the refund voided the key at the provider.
    let voided = provider.state.lookup(&id).expect("the key is known");
    assert_eq!(
        (voided.status, voided.decline_reason),
        ("declined", Some("voided"))
    );
}

#[tokio::test]
async fn injected_panics_during_sagas_change_nothing_in_the_outcome() {
    let app = spawn_app_with(|s| {
        s.faults_enabled = true;
        fast_retries(s);
    })
    .await;
    let [root, alice, bob] = app.users(["root", "alice", "bob"]).await;
    let (status, _) = app
        .post_fault(
            &root.token,
            json!({"target": "payment", "kind": "panic", "count": 3}),
        )
        .await;
    assert_eq!(status, 202);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (_, p) = app
            .post_payment(&alice.token, "bob", 100, &format!("f{i}"))
            .await;
        ids.push(p["paymentId"].as_str().unwrap().to_string());
    }
    for id in &ids {
        assert_eq!(settled(&app, &alice.token, id).await["status"], "completed");
    }
    assert_eq!(balance(&app, &alice.token).await, 9700);
    assert_eq!(balance(&app, &bob.token).await, 10300);
    let (_, view) = app.get("/admin/supervision", Some(&root.token)).await;
    let payments = tree_child(&view["tree"], "payments");
    assert_eq!(payments["restarts"], 3, "{payments}");
}

#[tokio::test]
async fn a_process_stopped_at_any_saga_step_resumes_every_saga_at_start() {
    let app = spawn_app_with(fast_retries).await;
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let (settings, dir) = app.stop_keeping_data().await;
    // While the server is down, leave one saga at each unfinished step, as a
    // crash would have.
    let store =
        parley::store::Store::open_sqlite(&settings.storage.sqlite_path, &settings.storage, None)
            .unwrap();
    let u = |n: &str| parley::domain::Username::parse(n).unwrap();
    let trace = parley::domain::TraceId::random();
    let mut ids = Vec::new();
    for (key, steps) in [
        ("at-reserved", vec![]),
        ("at-charging", vec![SagaStep::Charging]),
        ("at-credited", vec![SagaStep::Charging, SagaStep::Credited]),
        ("at-refunding", vec![SagaStep::Refunding]),
    ] {
        let (p, _) = store
            .create_payment(parley::store::NewPayment {
                payer: u("alice"),
                payee: u("bob"),
                amount: 100,
                key: key.into(),
                trace,
            })
            .await
            .unwrap();
        for step in steps {
            store
                .advance_payment(parley::store::SagaMove {
                    id: p.id,
                    to: step,
                    reason: None,
                })
                .await
                .unwrap();
        }
        ids.push(p.id.to_string());
    }
    store.shutdown().await.unwrap();
    drop(store);

    let app = TestApp::start_again(settings, dir).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    let outcomes: Vec<String> = {
        let mut v = Vec::new();
        for id in &ids {
            v.push(
                settled(&app, &alice.token, id).await["status"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        v
    };
    assert_eq!(
        outcomes,
        vec!["completed", "completed", "completed", "failed"]
    );
    assert_eq!(balance(&app, &alice.token).await, 9700);
    assert_eq!(balance(&app, &bob.token).await, 10300);
    // The credited one had not posted its message yet: it is posted once.
    let (_, list) = app.get("/api/conversations", Some(&bob.token)).await;
    let conv = list["items"][0]["conversationId"]
        .as_str()
        .unwrap()
        .to_string();
    let history = b.full_history(&conv).await;
    assert_eq!(history.iter().filter(|m| m.kind == "payment").count(), 3);
}

#[tokio::test]
async fn random_payments_failures_kills_and_a_restart_conserve_money() {
    use rand::{Rng, SeedableRng};
    let seed = 0x5eed_u64;
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let provider = TestProvider::start(ProviderOptions {
        failure_rate: 0.3,
        decline_rate: 0.2,
        max_keys: 10_000,
        ..ProviderOptions::default()
    });
    let url = provider.url();
    let tweak = move |s: &mut parley::config::Settings| {
        s.payments.provider_url = Some(url.clone());
        s.faults_enabled = true;
        fast_retries(s);
        // Random failures must not keep the breaker open for long.
        s.breakers[0].config.wait_open = Duration::from_millis(100);
        s.breakers[0].config.max_wait = Duration::from_millis(200);
    };
    let mut app = spawn_app_with(tweak.clone()).await;
    let names = ["ann", "ben", "cat", "dan", "eve"];
    let mut tokens = Vec::new();
    for n in names {
        tokens.push(app.user(n).await.token);
    }
    let root = app.user("root").await.token;
    let total_before: i64 = 5 * 10_000 + 10_000;
    let mut ids = Vec::new();
    for round in 0..2 {
        let (status, _) = app
            .post_fault(
                &root,
                json!({"target": "payment", "kind": "panic", "count": 8}),
            )
            .await;
        assert_eq!(status, 202);
        for i in 0..20 {
            let from = rng.gen_range(0..names.len());
            let to = (from + rng.gen_range(1..names.len())) % names.len();
            let amount = rng.gen_range(1..4000);
            let (status, p) = app
                .post_payment(&tokens[from], names[to], amount, &format!("r{round}-{i}"))
                .await;
            match status {
                202 => ids.push((from, p["paymentId"].as_str().unwrap().to_string())),
                402 | 503 => {}
                other => panic!("unexpected {other}: {p}"),
            }
        }
        if round == 0 {
            // A process restart with sagas in flight.
            app = app.restart().await;
        }
    }
    let mut completed = 0;
    for (from, id) in &ids {
        let p = settled(&app, &tokens[*from], id).await;
        let charge = provider.state.lookup(id);
        match p["status"].as_str().unwrap() {
            "completed" => {
                completed += 1;
                let c = charge.expect("a completed payment was charged");
                assert!(c.status == "succeeded" && !c.refunded, "{id}: {c:?}");
            }
            "failed" => assert!(
                charge
                    .as_ref()
                    .is_none_or(|c| c.status == "declined" || c.refunded),
                "{id}: a failed payment kept a charge: {charge:?}"
            ),
            other => panic!("{other}"),
        }
    }
    let mut total = 0;
    for t in tokens.iter().chain([&root]) {
        let b = balance(&app, t).await;
        assert!(b >= 0, "a balance went negative: {b}");
        total += b;
    }
    assert_eq!(total, total_before, "money is conserved");
    assert!(completed > 0, "some payments completed");
    println!("{} payments, {completed} completed", ids.len());
}
