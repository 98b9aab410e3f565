//! The server's life: restarts keep history and seq, graceful shutdown,
//! authentication of upgrades, heartbeats, slow consumers, bad settings.

use std::ffi::OsString;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::helpers::{
    http_receiver, spawn_app, spawn_app_with, wait_for, Acked, AliceInvitedBob, Frame, TestClient,
};

#[tokio::test]
async fn a_restart_keeps_history_and_seq_continues() {
    let app = spawn_app().await;
    let [alice, _bob] = app.users(["alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    a.send_to("bob", "before", "1").await;
    let Acked {
        conversation_id, ..
    } = a.acked().await;
    a.expect_message().await;
    for i in 2..=3 {
        a.say(&conversation_id, "before", &i.to_string()).await;
    }
    drop(a);

    let app = app.restart().await;
    // Tokens stay valid (same secret); accounts and history are on disk.
    let mut a = TestClient::connect(&app, &alice.token).await;
    let history = a.full_history(&conversation_id).await;
    assert_eq!(
        history.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let (seq, _) = a.say(&conversation_id, "after", "4").await;
    assert_eq!(seq, 4);
    // Idempotency survives the restart too.
    a.send_in(&conversation_id, "before", "2").await;
    let Acked { seq, .. } = a.acked().await;
    assert_eq!(seq, 2);
}

#[tokio::test]
async fn graceful_shutdown_closes_sessions_with_1001_and_flushes() {
    let app = spawn_app().await;
    let [(alice, mut a), (_bob, mut b)] = app.online(["alice", "bob"]).await;
    a.send_to("bob", "x", "0").await;
    let Acked {
        conversation_id, ..
    } = a.acked().await;
    // Queue sends and shut down without waiting for their acks.
    for i in 1..=20 {
        a.send(json!({"type": "send", "conversationId": conversation_id, "text": "x", "clientMsgId": i.to_string()}))
            .await;
    }
    let acked = {
        let mut acked = vec![1];
        // Collect what was acked before the close frame.
        let dir = app.dir.clone();
        let settings = app.settings.clone();
        let stopping = tokio::spawn(app.stop());
        loop {
            match tokio::time::timeout(Duration::from_secs(10), a.socket().next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "ack" {
                        acked.push(v["seq"].as_u64().unwrap());
                    }
                }
                Ok(Some(Ok(Message::Close(Some(c))))) => {
                    assert_eq!(u16::from(c.code), 1001);
                    break;
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("expected frames then a 1001 close, got {other:?}"),
            }
        }
        assert_eq!(b.expect_close().await.0, 1001);
        stopping
            .await
            .unwrap()
            .expect("shutdown returns Ok (exit code 0)");
        // Every ack that went out is on disk after the restart.
        let app = crate::helpers::spawn_app_with(|s| {
            *s = settings.clone();
        })
        .await;
        let _keep = dir;
        let mut a = TestClient::connect(&app, &alice.token).await;
        let stored: Vec<u64> = a.history_seqs(&conversation_id).await;
        for seq in &acked {
            assert!(
                stored.contains(seq),
                "acked seq {seq} lost; stored {stored:?}"
            );
        }
        stored
    };
    assert!(!acked.is_empty());
}

#[tokio::test]
async fn an_upgrade_without_a_valid_token_gets_401() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let status_of = |res: Result<_, WsError>| match res {
        Err(WsError::Http(r)) => r.status().as_u16(),
        Ok(_) => 101,
        Err(e) => panic!("unexpected error {e}"),
    };
    let plain = app.ws_url().into_client_request().unwrap();
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(plain).await),
        401
    );
    let mut forged = app.ws_url().into_client_request().unwrap();
    forged
        .headers_mut()
        .insert("authorization", "Bearer v1.e30.AAAA".parse().unwrap());
    assert_eq!(
        status_of(tokio_tungstenite::connect_async(forged).await),
        401
    );
    // A browser passes the token in the query string.
    let url = format!("{}?token={}", app.ws_url(), alice.token);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("query-string token");
    let Some(Ok(Message::Text(hello))) = ws.next().await else {
        panic!("no hello")
    };
    let hello: serde_json::Value = serde_json::from_str(&hello).unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["username"], "alice");
    assert_eq!(hello["node"], "test-node");
    assert_eq!(hello["heartbeatSecs"], 20);
}

#[tokio::test]
async fn heartbeats_ping_and_silent_clients_are_closed() {
    let app = spawn_app_with(|s| {
        s.session.heartbeat = Duration::from_secs(1);
        s.session.heartbeat_timeout = Duration::from_secs(2);
    })
    .await;
    let AliceInvitedBob { bob, mut a, .. } = AliceInvitedBob::on(&app).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    // Alice reads: she sees pings (and answers them) and stays.
    let saw_ping = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(Ok(Message::Ping(_))) = a.socket().next().await {
                return;
            }
        }
    })
    .await;
    assert!(saw_ping.is_ok(), "no ping within 5 s");
    // Bob reads nothing, so he answers no ping: alice hears he went offline.
    let watcher = tokio::spawn(async move {
        a.wait_presence("bob", "offline").await;
        a
    });
    let mut a = tokio::time::timeout(Duration::from_secs(15), watcher)
        .await
        .expect("bob was not closed for silence")
        .unwrap();
    let (code, reason) = b.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "heartbeat timeout"));
    a.assert_alive().await;
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_1008_and_keeps_its_history() {
    let app = spawn_app_with(|s| {
        s.session.outbound_queue = 32;
        s.session.slow_consumer_close_grace = Duration::from_secs(60);
        // The flood below is the point: no limit on HTTP writes.
        s.limits.http_writes_per_sec = 0;
        s.limits.http_address_writes_per_sec = 0;
    })
    .await;
    let [alice, bob, carol] = app.users(["alice", "bob", "carol"]).await;
    let mut c = TestClient::connect(&app, &carol.token).await;
    let group = c.create("flood", &["alice", "bob"]).await;
    let id = group.conversation_id.clone();
    // Bob connects and never reads.
    let mut b = TestClient::connect(&app, &bob.token).await;
    let bob_gone = Arc::new(AtomicBool::new(false));
    let flag = bob_gone.clone();
    let watcher = tokio::spawn(async move {
        loop {
            match c.recv_any().await {
                Frame::Presence {
                    username, status, ..
                } if username == "bob" && status == "offline" => {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
                _ => {}
            }
        }
    });
    let text = "x".repeat(4000);
    let mut sent = 0u64;
    while !bob_gone.load(Ordering::SeqCst) {
        assert!(sent < 20_000, "bob was never closed as a slow consumer");
        let mut batch = Vec::new();
        for _ in 0..16 {
            sent += 1;
            let (http, url, token, body) = (
                app.http.clone(),
                app.url(&format!("/api/conversations/{id}/messages")),
                alice.token.clone(),
                json!({"text": text, "clientMsgId": sent.to_string()}),
            );
            batch.push(tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        for t in batch {
            assert_eq!(t.await.unwrap(), 201);
        }
    }
    watcher.await.unwrap();
    let (code, reason) = b.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    // Everything stays in history for when bob comes back.
    let mut b = TestClient::connect(&app, &bob.token).await;
    let all = b.full_history(&id).await;
    assert_eq!(all.len() as u64, sent);
    assert!(all.iter().enumerate().all(|(i, m)| m.seq == i as u64 + 1));
}

#[tokio::test]
async fn an_invalid_setting_stops_start_up_naming_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("PARLEY__SESSION__OUTBOUND_QUEUE", "lots")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PARLEY__SESSION__OUTBOUND_QUEUE"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[storage]\nsqlite_synchronous = \"sometimes\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("storage.sqlite_synchronous"));
}

/// The `parley` binary serving on `port` from `dir`, with `env` added and
/// its output discarded.
fn serve_quietly(dir: &std::path::Path, port: u16, env: &[(&str, OsString)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning the parley binary")
}

#[tokio::test]
async fn the_binary_serves_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let db = dir.path().join("db/parley.db");
    let mut child = serve_quietly(
        dir.path(),
        port,
        &[("PARLEY__STORAGE__SQLITE_PATH", OsString::from(db))],
    );
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    wait_for("the binary to be ready", Duration::from_secs(20), || {
        let (http, url) = (http.clone(), url.clone());
        async move {
            match http.get(url).send().await {
                Ok(r) if r.status().is_success() => Some(()),
                _ => None,
            }
        }
    })
    .await;
    assert!(
        dir.path().join("db/parley.db").exists(),
        "the database is created on first start"
    );
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn spans_are_exported_over_otlp_with_the_request_trace_id() {
    // A collector stand-in: accepts OTLP/HTTP JSON on /v1/traces.
    let (collector, bodies) = http_receiver("/v1/traces");
    let dir = tempfile::tempdir().unwrap();
    let port = crate::helpers::free_port();
    let env = [
        (
            "PARLEY__STORAGE__SQLITE_PATH",
            OsString::from(dir.path().join("parley.db")),
        ),
        (
            "PARLEY__TELEMETRY__OTLP_ENDPOINT",
            OsString::from(format!("http://127.0.0.1:{collector}")),
        ),
    ];
    let mut child = serve_quietly(dir.path(), port, &env);
    let http = reqwest::Client::new();
    let trace = "5e1ec7ed5e1ec7ed5e1ec7ed5e1ec7ed";
    wait_for("the binary to answer", Duration::from_secs(20), || {
        let http = http.clone();
        async move {
            let res = http
                .post(format!("http://127.0.0.1:{port}/api/register"))
                .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
                .json(&json!({"username": "otto", "password": "password123"}))
                .send()
                .await
                .ok()?;
            (res.status().as_u16() == 201).then_some(())
        }
    })
    .await;
    // Shutting down flushes the exporter.
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let exported = wait_for(
        "a span with the request's trace id",
        Duration::from_secs(10),
        || {
            let bodies = bodies.clone();
            async move {
                bodies
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|b| b.contains(trace))
                    .cloned()
            }
        },
    )
    .await;
    assert!(
        exported.contains("\"http\""),
        "the HTTP request's span: {exported}"
    );
}

#[tokio::test]
async fn a_known_or_missing_token_secret_is_refused_where_it_would_be_unsafe() {
    let refuse = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_parley"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("PARLEY__AUTH__TOKEN_SECRET")
            .env_remove("PARLEY__AUTH__ALLOW_DEV_SECRET")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running parley");
        assert!(!out.status.success(), "{env:?} started");
        String::from_utf8_lossy(&out.stderr).to_lowercase()
    };
    // A cluster without a shared secret: nodes would not accept each other's tokens.
    let err = refuse(&[("PARLEY__STORAGE__BACKEND", "redis")]);
    assert!(err.contains("token_secret"), "{err}");
    // The secret published in the repository, without the development flag.
    let err = refuse(&[(
        "PARLEY__AUTH__TOKEN_SECRET",
        "parley-development-secret-do-not-use-in-production",
    )]);
    assert!(err.contains("published development secret"), "{err}");
}
