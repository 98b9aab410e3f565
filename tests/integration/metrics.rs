//! `GET /metrics` passes `promtool check metrics` (Debian's prometheus
//! package) on a live server's output.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::helpers::{spawn_app_with, wait_for, TestClient};

#[tokio::test]
async fn promtool_accepts_the_metrics() {
    if Command::new("promtool").arg("--version").output().is_err() {
        let msg = "promtool is not installed: install Debian's `prometheus` package (apt-get install prometheus)";
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        println!("skipped: {msg}");
        return;
    }
    let app = spawn_app_with(|s| s.faults_enabled = true).await;
    let [root, alice, _bob] = app.users(["root", "alice", "bob"]).await;
    // Some traffic so that every kind of metric has a value.
    let mut a = TestClient::connect(&app, &alice.token).await;
    a.send_to("bob", "hi", "m").await;
    a.expect_ack().await;
    app.post_fault(&root.token, json!({"target": "directory", "kind": "panic"}))
        .await;
    let _second = TestClient::connect(&app, &alice.token).await;
    app.post_payment(&alice.token, "bob", 5, "k").await;
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = res.text().await.unwrap();
    for name in [
        "parley_sessions_connected",
        "parley_messages_committed_total",
        "parley_store_commit_seconds",
        "parley_breaker_state",
        "parley_frames_in_total",
        "parley_frames_out_total",
        "parley_http_requests_total",
    ] {
        assert!(
            text.contains(&format!("# HELP {name}")),
            "{name} is not described:\n{text}"
        );
    }
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool rejected /metrics:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn per_second_series_fill_from_live_traffic() {
    let app = crate::helpers::spawn_app().await;
    let [root, alice, _bob] = app.users(["root", "alice", "bob"]).await;
    let (status, list) = app.get("/admin/metrics/series", Some(&root.token)).await;
    assert_eq!(status, 200, "{list}");
    assert!(list["series"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "delivery_ms"));
    let mut a = TestClient::connect(&app, &alice.token).await;
    for i in 0..5 {
        a.send(json!({"type": "send", "to": "bob", "text": "x", "clientMsgId": format!("s{i}")}))
            .await;
        a.expect_ack().await;
        a.expect_message().await;
    }
    let (status, view) = app
        .get(
            "/admin/metrics/series?name=messages_committed&seconds=60",
            Some(&root.token),
        )
        .await;
    assert_eq!(status, 200, "{view}");
    let committed: u64 = view["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    // Process-wide: other tests may add to it.
    assert!(committed >= 5, "{view}");
    let (_, delivery) = app
        .get(
            "/admin/metrics/series?name=delivery_ms&seconds=60",
            Some(&root.token),
        )
        .await;
    let p = &delivery["points"][0];
    assert!(
        p["min"].as_f64().unwrap() <= p["max"].as_f64().unwrap(),
        "{delivery}"
    );
    // Each finished second's p99 becomes one point (the current second's is
    // not known until it ends).
    let p99 = wait_for("a p99 point", Duration::from_secs(5), || async {
        let (_, v) = app
            .get(
                "/admin/metrics/series?name=delivery_p99_ms&seconds=60",
                Some(&root.token),
            )
            .await;
        v["points"].get(0).cloned()
    })
    .await;
    assert_eq!(p99["count"], 1, "{p99}");
    assert!(p99["max"].as_f64().unwrap_or(-1.0) > 0.0, "{p99}");
    assert_eq!(
        app.get("/admin/metrics/series?name=nope", Some(&root.token))
            .await
            .0,
        404
    );
    assert_eq!(
        app.get(
            "/admin/metrics/series?name=errors&seconds=0",
            Some(&root.token)
        )
        .await
        .0,
        400
    );
    assert_eq!(
        app.get(
            "/admin/metrics/series?name=errors&seconds=86401",
            Some(&root.token)
        )
        .await
        .0,
        400
    );
}

/// `server.internal_listen`: `/metrics` and `/admin/*` on the operators'
/// listener only, the public routes on the public one only, health on both.
#[tokio::test]
async fn an_internal_listener_takes_the_operators_routes_off_the_public_one() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.server.internal_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let internal_port = app.internal_port.expect("the internal listener's port");
    let root = app.user("root").await;
    let internal = |path: &str| format!("http://127.0.0.1:{internal_port}{path}");
    let status = |res: reqwest::Response| res.status().as_u16();
    for (path, public, private) in [
        ("/metrics", 404, 200),
        ("/admin/supervision", 404, 200),
        ("/admin/ui", 404, 200),
        ("/healthz", 200, 200),
        ("/readyz", 200, 200),
        ("/api/conversations", 200, 404),
        // Encoded paths are judged as the router decodes them.
        ("/%6Detrics", 404, 200),
        ("/%61dmin/supervision", 404, 200),
        // The console's page, its assets and its login work there.
        ("/assets/admin.js", 200, 200),
        ("/assets/chat.js", 200, 404),
        ("/api/me", 200, 200),
    ] {
        let on_public = app
            .http
            .get(app.url(path))
            .bearer_auth(&root.token)
            .send()
            .await;
        let on_internal = app
            .http
            .get(internal(path))
            .bearer_auth(&root.token)
            .send()
            .await;
        assert_eq!(
            (
                status(on_public.expect("public")),
                status(on_internal.expect("internal"))
            ),
            (public, private),
            "{path}"
        );
    }
}
