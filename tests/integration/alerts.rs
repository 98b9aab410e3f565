//! Alarms: an injected storm of panics fires the restart-storm rule; a
//! local webhook receiver gets the firing and, later, the resolved notice.

use std::time::Duration;

use parley::alerts::Rule;
use serde_json::{json, Value};

use crate::helpers::{http_receiver, spawn_app_with, strings_of, wait_for, Inbox, TestClient};

fn seen(inbox: &Inbox, state: &str) -> Option<Value> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .find(|b| b["alert"] == "restart_storm" && b["state"] == state)
}

#[tokio::test]
async fn a_restart_storm_fires_and_resolves_through_the_webhook() {
    let (port, inbox) = http_receiver("/hook");
    let app = spawn_app_with(move |s| {
        s.faults_enabled = true;
        s.alert_rules =
            vec![Rule::parse("restart_storm|actor_restarts|sum|2|>|3|0|critical").unwrap()];
        s.alert_webhook = Some(format!("http://127.0.0.1:{port}/hook"));
    })
    .await;
    let [root, alice] = app.users(["root", "alice"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let (status, _) = app
        .post_fault(
            &root.token,
            json!({"target": format!("session:{}", a.session_id), "kind": "panic", "count": 6}),
        )
        .await;
    assert_eq!(status, 202);
    for i in 0..6 {
        a.send(json!({"type": "ping", "ref": format!("p{i}")}))
            .await;
        assert_eq!(a.expect_error().await.0, "internal");
    }
    let firing = wait_for("the firing notice", Duration::from_secs(15), || async {
        seen(&inbox, "firing")
    })
    .await;
    assert_eq!(firing["severity"], "critical");
    assert!(firing["value"].as_f64().unwrap() > 3.0);
    assert_eq!(firing["node"], "test-node");
    wait_for("the resolved notice", Duration::from_secs(30), || async {
        seen(&inbox, "resolved")
    })
    .await;
    let (_, alerts) = app.get("/admin/alerts", Some(&root.token)).await;
    let storm = &alerts["items"][0];
    assert_eq!(storm["name"], "restart_storm");
    let path = strings_of(&storm["history"], "to");
    assert!(
        path.windows(2).any(|w| w == ["firing", "resolved"]),
        "{path:?}"
    );
}

/// A breaker forced open counts like any open breaker: a payment refused
/// while `payment_provider` is forced open (refused before the provider is
/// called) lands in the `breaker_open` series, and its alert fires.
#[tokio::test]
async fn a_payment_refused_by_a_forced_open_breaker_fires_breaker_open() {
    let app = spawn_app_with(|s| {
        s.alert_rules =
            vec![Rule::parse("breaker_open|breaker_open|sum|30|>|0|0|critical").unwrap()];
    })
    .await;
    let [root, alice] = app.users(["root", "alice"]).await;
    app.user("bob").await;
    let (status, _) = app
        .force_breaker(&root.token, "payment_provider", "forced_open")
        .await;
    assert_eq!(status, 200);
    let (status, body) = app.post_payment(&alice.token, "bob", 1250, "k1").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );
    let (_, series) = app
        .get(
            "/admin/metrics/series?name=breaker_open&seconds=60",
            Some(&root.token),
        )
        .await;
    // The series are per process, and other tests in this binary may add
    // refusals of their own: at least this one must be there.
    let refused: f64 = series["points"]
        .as_array()
        .unwrap_or_else(|| panic!("no points in {series}"))
        .iter()
        .filter_map(|b| b["sum"].as_f64())
        .sum();
    assert!(refused >= 1.0, "{series}");
    wait_for("breaker_open to fire", Duration::from_secs(10), || async {
        let (_, alerts) = app.get("/admin/alerts", Some(&root.token)).await;
        (alerts["items"][0]["state"] == "firing").then_some(())
    })
    .await;
}
