//! Abuse of the HTTP side from outside: bodies that never arrive, methods
//! and JSON that client libraries would not send.

use std::time::Duration;

use crate::helpers::{answer_while_trickling, raw_request, read_until_closed, spawn_app_with};

const SLOW_LOGIN: &str = "POST /api/login HTTP/1.1\r\nContent-Type: application/json\r\n\
                          Content-Length: 100000";

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408_and_its_socket_is_closed() {
    let app = spawn_app_with(|s| s.limits.http_body_timeout = Duration::from_millis(500)).await;
    // Fifty that send one byte of the 100,000 they announce, and one that
    // trickles a byte every 100 ms (well under any sane minimum rate).
    let mut stalled = Vec::new();
    for _ in 0..50 {
        stalled.push(raw_request(&app, SLOW_LOGIN, b"{").await);
    }
    // Others are served while those wait.
    app.user("alice").await;
    let mut trickler = raw_request(&app, SLOW_LOGIN, b"{").await;
    let trickled = answer_while_trickling(&mut trickler, b" ").await;
    assert!(trickled.starts_with("HTTP/1.1 408"), "{trickled}");
    for mut socket in stalled {
        let answer = read_until_closed(&mut socket, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");
        assert!(answer.contains("did not arrive within 500 ms"), "{answer}");
    }
}

#[tokio::test]
async fn an_object_naming_a_key_twice_is_bad_json_over_http_and_websocket() {
    let app = crate::helpers::spawn_app().await;
    // Which username would be registered is the point: neither.
    let (status, body) = app
        .post_raw(
            "/api/register",
            None,
            r#"{"username":"mallory","username":"alice","password":"password123"}"#,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "bad_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("duplicate key")),
        "{body}"
    );
    let alice = app.user("alice").await;
    let mut ws = crate::helpers::TestClient::connect(&app, &alice.token).await;
    ws.send_raw(r#"{"type":"typing","type":"send","ref":"d1"}"#)
        .await;
    let (code, _, _) = ws.expect_error().await;
    assert_eq!(code, "bad_json");
    ws.assert_alive().await;
}

#[tokio::test]
async fn head_is_answered_on_every_get_route_without_a_body() {
    let app = crate::helpers::spawn_app().await;
    let alice = app.user("alice").await;
    for (path, token) in [
        ("/healthz", None),
        ("/readyz", None),
        ("/api/me", Some(&alice.token)),
        ("/", None),
    ] {
        let mut req = app.http.head(app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("HEAD");
        assert_eq!(res.status(), 200, "HEAD {path}");
        let length = res
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let body = res.bytes().await.expect("body");
        assert!(body.is_empty(), "HEAD {path} sent a body");
        let get = app.get(path, token.map(String::as_str)).await;
        assert_eq!(get.0, 200, "GET {path}");
        assert!(
            length.is_some_and(|n| n > 0),
            "HEAD {path}: no Content-Length"
        );
    }
    // HEAD is GET without the body: a route without GET is still refused.
    let res = app
        .http
        .head(app.url("/api/login"))
        .send()
        .await
        .expect("HEAD");
    assert!(res.status().is_client_error(), "{}", res.status());
}

/// The value of the counter `name` (no labels) on `/metrics`, 0 if absent.
async fn counter(app: &crate::helpers::TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn malformed_requests_are_counted_and_the_server_keeps_serving() {
    let app = crate::helpers::spawn_app().await;
    let before = counter(&app, "parley_http_malformed_total").await;
    for _ in 0..30 {
        let mut socket = raw_request(&app, "GET / HTTP/1.1\r\nBad Header Line", b"").await;
        let answer = read_until_closed(&mut socket, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    }
    // The counter is the process's: other tests may add to it, never less.
    crate::helpers::wait_for(
        "thirty malformed requests counted",
        Duration::from_secs(10),
        || async {
            (counter(&app, "parley_http_malformed_total").await >= before + 30.0).then_some(())
        },
    )
    .await;
    app.user("alice").await;
}

#[tokio::test]
async fn a_chunked_body_trickled_past_the_deadline_is_cut_off_too() {
    let app = spawn_app_with(|s| s.limits.http_body_timeout = Duration::from_millis(500)).await;
    let head = "POST /api/login HTTP/1.1\r\nContent-Type: application/json\r\n\
                Transfer-Encoding: chunked";
    let mut socket = raw_request(&app, head, b"1\r\n{\r\n").await;
    let answer = answer_while_trickling(&mut socket, b"1\r\n \r\n").await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}
