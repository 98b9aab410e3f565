//! HTTP/1.1 over a bare TCP socket, for requests a client library would not
//! send (a body that never arrives, a method it rewrites).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TestApp;

/// An open socket to `app` with `head` (request line and headers, no blank
/// line) and then `body_start` written.
pub async fn raw_request(app: &TestApp, head: &str, body_start: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let head = format!("{head}\r\nHost: 127.0.0.1\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body_start).await.expect("write body");
    stream
}

/// Everything the server writes until it closes the socket, within `within`
/// (a panic if it is still open then).
pub async fn read_until_closed<R: AsyncRead + Unpin>(stream: &mut R, within: Duration) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "the server kept the socket open past {within:?}; it wrote: {}",
            String::from_utf8_lossy(&got)
        )
    });
    String::from_utf8_lossy(&got).into_owned()
}

/// What the server writes on `stream` until it closes it (10 s at most),
/// while `chunk` is written to it every 100 ms (a body trickled well under
/// any sane minimum rate).
pub async fn answer_while_trickling(stream: &mut TcpStream, chunk: &[u8]) -> String {
    let (mut read_half, mut write_half) = stream.split();
    let trickle = async {
        while write_half.write_all(chunk).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        answer = read_until_closed(&mut read_half, Duration::from_secs(10)) => answer,
        () = trickle => unreachable!("pending"),
    }
}
