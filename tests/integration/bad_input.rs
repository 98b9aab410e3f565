//! Bad input: every malformed frame gets an `error` with its SPEC code, the
//! frame's `ref` and a traceId, and the session stays open; bad HTTP bodies
//! get the matching status and code. Nothing half-written is left behind.

use serde_json::json;

use crate::helpers::{spawn_app, Frame, TestClient};

const CONV: &str = "0191d8f0-6a3c-7cc2-a1b0-0a0b0c0d0e0f";

#[tokio::test]
async fn a_table_of_bad_frames() {
    let app = spawn_app().await;
    let [alice, _bob] = app.users(["alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let too_long = "x".repeat(4097);
    let long_ref = "r".repeat(65);
    // (frame text, expected code, expected ref)
    let table: Vec<(String, &str, Option<&str>)> = vec![
        ("{".into(), "bad_json", None),
        ("not json at all".into(), "bad_json", None),
        ("[1,2,3]".into(), "bad_json", None),
        ("\"a string\"".into(), "bad_json", None),
        ("{}".into(), "bad_request", None),
        (r#"{"ref":"t1"}"#.into(), "bad_request", Some("t1")),
        (r#"{"type":7,"ref":"t2"}"#.into(), "bad_request", Some("t2")),
        (r#"{"type":"dance","ref":"t3"}"#.into(), "unknown_type", Some("t3")),
        (format!(r#"{{"type":"ping","ref":"{long_ref}"}}"#), "bad_request", None),
        (r#"{"type":"send","ref":"s1"}"#.into(), "bad_request", Some("s1")),
        (r#"{"type":"send","to":"bob","clientMsgId":"c","ref":"s2"}"#.into(), "bad_request", Some("s2")),
        (r#"{"type":"send","to":"bob","text":"","clientMsgId":"c","ref":"s3"}"#.into(), "bad_request", Some("s3")),
        (format!(r#"{{"type":"send","to":"bob","text":"{too_long}","clientMsgId":"c","ref":"s4"}}"#), "bad_request", Some("s4")),
        (r#"{"type":"send","to":"bob","text":"hi","clientMsgId":"","ref":"s5"}"#.into(), "bad_request", Some("s5")),
        (format!(r#"{{"type":"send","to":"bob","text":"hi","clientMsgId":"{}","ref":"s6"}}"#, "c".repeat(65)), "bad_request", Some("s6")),
        (r#"{"type":"send","to":"Bob!","text":"hi","clientMsgId":"c","ref":"s7"}"#.into(), "bad_request", Some("s7")),
        (format!(r#"{{"type":"send","to":"bob","conversationId":"{CONV}","text":"hi","clientMsgId":"c","ref":"s8"}}"#), "bad_request", Some("s8")),
        (r#"{"type":"send","conversationId":"not-a-uuid","text":"hi","clientMsgId":"c","ref":"s9"}"#.into(), "bad_request", Some("s9")),
        (r#"{"type":"send","to":"bob","text":42,"clientMsgId":"c","ref":"s10"}"#.into(), "bad_request", Some("s10")),
        (r#"{"type":"send","to":"alice","text":"me","clientMsgId":"c","ref":"s11"}"#.into(), "bad_request", Some("s11")),
        (r#"{"type":"send","to":"ghost","text":"boo","clientMsgId":"c","ref":"s12"}"#.into(), "not_found", Some("s12")),
        (format!(r#"{{"type":"send","conversationId":"{CONV}","text":"hi","clientMsgId":"c","ref":"s13"}}"#), "not_found", Some("s13")),
        (format!(r#"{{"type":"history","conversationId":"{CONV}","limit":0,"ref":"h1"}}"#), "bad_request", Some("h1")),
        (format!(r#"{{"type":"history","conversationId":"{CONV}","limit":501,"ref":"h2"}}"#), "bad_request", Some("h2")),
        (format!(r#"{{"type":"history","conversationId":"{CONV}","afterSeq":-1,"ref":"h3"}}"#), "bad_request", Some("h3")),
        (format!(r#"{{"type":"history","conversationId":"{CONV}","ref":"h4"}}"#), "not_found", Some("h4")),
        (r#"{"type":"create","name":"g","ref":"c1"}"#.into(), "bad_request", Some("c1")),
        (r#"{"type":"create","name":"","members":[],"ref":"c2"}"#.into(), "bad_request", Some("c2")),
        (r#"{"type":"create","name":"g","members":["ghost"],"ref":"c3"}"#.into(), "not_found", Some("c3")),
        (r#"{"type":"create","name":"g","members":"bob","ref":"c4"}"#.into(), "bad_request", Some("c4")),
        (format!(r#"{{"type":"invite","conversationId":"{CONV}","ref":"i1"}}"#), "bad_request", Some("i1")),
        (format!(r#"{{"type":"read","conversationId":"{CONV}","seq":"one","ref":"r1"}}"#), "bad_request", Some("r1")),
        (r#"{"type":"typing","ref":"ty1"}"#.into(), "bad_request", Some("ty1")),
        (r#"{"type":"pay","to":"bob","amount":-5,"idempotencyKey":"k","ref":"p1"}"#.into(), "bad_request", Some("p1")),
    ];
    assert!(table.len() >= 20);
    for (text, code, reference) in &table {
        a.send_raw(text).await;
        let frame = a.recv().await;
        let Frame::Error {
            code: got,
            reference: got_ref,
            trace_id,
            message,
        } = frame
        else {
            panic!("{text}: expected an error, got {frame:?}");
        };
        assert_eq!(
            (&got.as_str(), &got_ref.as_deref()),
            (code, reference),
            "{text}: {message}"
        );
        assert_eq!(trace_id.len(), 32, "{text}");
        assert!(!message.is_empty());
        a.assert_alive().await;
    }
    // A frame's own traceId comes back on its error.
    a.send_raw(r#"{"type":"dance","traceId":"4bf92f3577b34da6a3ce929d0e0e4736"}"#)
        .await;
    let Frame::Error { trace_id, .. } = a.recv().await else {
        panic!("expected error")
    };
    assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");

    // A binary frame is unsupported; the session stays.
    a.send_binary(vec![1, 2, 3]).await;
    assert_eq!(a.expect_error().await.0, "unsupported");
    a.assert_alive().await;

    // None of it stored anything: alice has no conversation at all.
    let (_, list) = app.get("/api/conversations", Some(&alice.token)).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let big = format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70_000));
    a.send_raw(&big).await;
    let (code, _) = a.expect_close().await;
    assert_eq!(code, 1009);
    // The server is fine: a new session works.
    let mut again = TestClient::connect(&app, &alice.token).await;
    again.assert_alive().await;
}

#[tokio::test]
async fn a_table_of_bad_http_bodies() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let t = Some(alice.token.as_str());
    let (_, conv) = app
        .post(
            "/api/conversations",
            t,
            json!({"name": "solo", "members": []}),
        )
        .await;
    let id = conv["conversationId"].as_str().unwrap().to_string();
    let messages = format!("/api/conversations/{id}/messages");
    let big: &'static str =
        Box::leak(format!(r#"{{"name":"{}","members":[]}}"#, "x".repeat(70_000)).into_boxed_str());
    // (path, token?, raw body, status, code)
    let table: Vec<(&str, Option<&str>, &'static str, u16, &str)> = vec![
        ("/api/register", None, "{", 400, "bad_json"),
        ("/api/register", None, "[]", 400, "bad_json"),
        (
            "/api/register",
            None,
            r#"{"username":"x"}"#,
            400,
            "bad_request",
        ),
        (
            "/api/register",
            None,
            r#"{"username":"ab","password":"password123"}"#,
            400,
            "bad_request",
        ),
        (
            "/api/register",
            None,
            r#"{"username":"UPPER","password":"password123"}"#,
            400,
            "bad_request",
        ),
        (
            "/api/register",
            None,
            r#"{"username":"shorty","password":"short"}"#,
            400,
            "bad_request",
        ),
        (
            "/api/register",
            None,
            r#"{"username":5,"password":"password123"}"#,
            400,
            "bad_request",
        ),
        ("/api/login", None, "", 400, "bad_json"),
        (
            "/api/login",
            None,
            r#"{"username":"alice"}"#,
            400,
            "bad_request",
        ),
        (
            "/api/conversations",
            t,
            r#"{"name":"g"}"#,
            400,
            "bad_request",
        ),
        (
            "/api/conversations",
            t,
            r#"{"name":"","members":[]}"#,
            400,
            "bad_request",
        ),
        (
            "/api/conversations",
            t,
            r#"{"name":"g","members":["ghost"]}"#,
            404,
            "not_found",
        ),
        ("/api/conversations", t, big, 413, "too_large"),
        (
            "/api/conversations",
            None,
            r#"{"name":"g","members":[]}"#,
            401,
            "unauthorized",
        ),
        (&messages, t, r#"{"text":""}"#, 400, "bad_request"),
        (
            &messages,
            t,
            r#"{"text":"","clientMsgId":"c"}"#,
            400,
            "bad_request",
        ),
        (
            &messages,
            t,
            r#"{"text":"hi","clientMsgId":""}"#,
            400,
            "bad_request",
        ),
        (
            "/api/conversations/nope/messages",
            t,
            r#"{"text":"hi","clientMsgId":"c"}"#,
            400,
            "bad_request",
        ),
        ("/api/nothing-here", t, "{}", 404, "not_found"),
    ];
    for (path, token, body, status, code) in table {
        let (got_status, got) = app.post_raw(path, token, body).await;
        let shown: String = body.chars().take(60).collect();
        assert_eq!(got_status, status, "{path} {shown}: {got}");
        assert_eq!(got["error"]["code"], code, "{path} {shown}: {got}");
        assert_eq!(
            got["error"]["traceId"].as_str().map(str::len),
            Some(32),
            "{path}"
        );
    }
    // Bad query strings on history.
    for q in ["limit=0", "limit=501", "afterSeq=-3", "limit=abc"] {
        let (status, body) = app.get(&format!("{messages}?{q}"), t).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{q}"
        );
    }
    // Nothing half-written: the conversation is still empty and alone.
    let (_, page) = app.get(&messages, t).await;
    assert_eq!(page["messages"], json!([]));
    let (_, list) = app.get("/api/conversations", t).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}
