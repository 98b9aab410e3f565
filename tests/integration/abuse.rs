//! Abuse from outside: inputs a client library would not send, over raw
//! sockets, and what the server does with them: refuse early, stay
//! bounded, and keep serving others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::helpers::{frame, frame_header, spawn_app, RawWs, TestApp, TestClient, TestUser};

/// Writes `head`, then up to `total` bytes of filler, counting what the
/// socket took; ends when the server stops reading for good (an error).
fn stream_after(
    mut ws_write: tokio::net::tcp::OwnedWriteHalf,
    head: Vec<u8>,
    total: u64,
) -> (tokio::task::JoinHandle<()>, Arc<AtomicU64>) {
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        if ws_write.write_all(&head).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        let mut left = total;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            if ws_write.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            counter.fetch_add(n as u64, Ordering::Relaxed);
            left -= n as u64;
        }
    });
    (writer, sent)
}

async fn still_serves(app: &TestApp, token: &str) {
    let mut again = TestClient::connect(app, token).await;
    again.assert_alive().await;
}

/// A fresh server, alice, and a raw socket of hers on it.
async fn alice_raw() -> (TestApp, TestUser, RawWs) {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let raw = RawWs::connect(&app, &alice.token).await;
    (app, alice, raw)
}

/// Writes `bytes` on a raw socket of alice's, expects the close 1009, and
/// a new session of hers is served.
async fn closes_with_1009(bytes: Vec<u8>) {
    let (
        app,
        alice,
        RawWs {
            mut reader,
            mut write,
        },
    ) = alice_raw().await;
    // The server may close before it has read it all.
    let _ = write.write_all(&bytes).await;
    assert_eq!(reader.close_code(Duration::from_secs(5)).await, Some(1009));
    still_serves(&app, &alice.token).await;
}

/// A header claiming 2^62 bytes, then as many bytes as the server takes (up
/// to 256 MiB): the server closes with 1009 at the header, so what the
/// client got to write is what the socket buffers hold, not the stream.
#[tokio::test]
async fn a_frame_claiming_2_pow_62_bytes_is_refused_at_its_header() {
    let (app, alice, RawWs { mut reader, write }) = alice_raw().await;
    let (writer, sent) = stream_after(write, frame_header(true, 2, 1 << 62), 256 << 20);
    let code = reader.close_code(Duration::from_secs(10)).await;
    let at_close = sent.load(Ordering::Relaxed);
    writer.abort();
    assert_eq!(code, Some(1009));
    assert!(
        at_close < 32 << 20,
        "{at_close} bytes of an oversized frame were taken before it was refused"
    );
    still_serves(&app, &alice.token).await;
}

/// A header claiming 64 MiB and a few bytes of it: refused without waiting
/// for the rest.
#[tokio::test]
async fn a_frame_claiming_64_mib_is_refused_before_its_payload_arrives() {
    let (app, alice, RawWs { mut reader, write }) = alice_raw().await;
    let (writer, _) = stream_after(write, frame_header(true, 1, 64 << 20), 1024);
    let code = reader.close_code(Duration::from_secs(5)).await;
    writer.abort();
    assert_eq!(code, Some(1009));
    still_serves(&app, &alice.token).await;
}

/// 70,000 bytes in 10 KB fragments is a message over the 65,536-byte limit:
/// 1009, as in one frame (PROTOCOL.md), not 1002.
#[tokio::test]
async fn a_fragmented_message_over_the_limit_closes_with_1009() {
    let mut bytes = Vec::new();
    for i in 0..7 {
        let opcode = if i == 0 { 1 } else { 0 };
        bytes.extend(frame(i == 6, opcode, &[b'x'; 10_000]));
    }
    closes_with_1009(bytes).await;
}

/// Thousands of empty continuation frames make one message in as many
/// fragments: refused once past the cap, like an oversized message.
#[tokio::test]
async fn a_message_in_too_many_fragments_closes_with_1009() {
    let mut bytes = frame(false, 1, b"{");
    for _ in 0..parley::limits::MAX_FRAGMENTS {
        bytes.extend(frame(false, 0, b""));
    }
    closes_with_1009(bytes).await;
}

/// A message in a few fragments within the limit is one ordinary frame.
#[tokio::test]
async fn a_fragmented_message_within_the_limit_is_answered() {
    let (
        _app,
        _alice,
        RawWs {
            mut reader,
            mut write,
        },
    ) = alice_raw().await;
    let text = br#"{"type":"ping","ref":"frag"}"#;
    let (a, b) = text.split_at(10);
    let mut bytes = frame(false, 1, a);
    bytes.extend(frame(true, 9, b"")); // a ping between the fragments
    bytes.extend(frame(true, 0, b));
    write.write_all(&bytes).await.expect("write");
    let pong = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (opcode, payload) = reader.read_frame().await.expect("a frame");
            if opcode == 1 {
                return String::from_utf8_lossy(&payload).to_string();
            }
        }
    })
    .await
    .expect("an answer in time");
    assert!(pong.contains("\"pong\"") && pong.contains("frag"), "{pong}");
}
