//! A WebSocket client over a bare TCP socket, for the inputs a WebSocket
//! library refuses to send: frames whose header claims more than follows,
//! fragments of any size. It does the upgrade by hand and reads the
//! server's (unmasked) frames; what it writes is exactly what the test
//! gives it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::TestApp;

pub struct RawWs {
    pub reader: RawReader,
    pub write: OwnedWriteHalf,
}

/// The server's side of the stream, read apart from the writes so that a
/// test can write without end while it waits for the close.
pub struct RawReader {
    read: OwnedReadHalf,
    /// Bytes read and not yet taken as a frame.
    buffered: Vec<u8>,
}

/// A masked client frame: `fin`, `opcode`, and a header that claims
/// `declared` bytes, followed by `payload` (which may be shorter).
pub fn frame_header(fin: bool, opcode: u8, declared: u64) -> Vec<u8> {
    let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
    if declared < 126 {
        h.push(0x80 | declared as u8);
    } else if declared <= u64::from(u16::MAX) {
        h.push(0x80 | 126);
        h.extend_from_slice(&(declared as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&declared.to_be_bytes());
    }
    // A zero mask leaves the payload as written.
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// A whole masked frame.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = frame_header(fin, opcode, payload.len() as u64);
    f.extend_from_slice(payload);
    f
}

impl RawWs {
    /// Upgrades `/ws` with the bearer `token` and reads the `hello` frame.
    pub async fn connect(app: &TestApp, token: &str) -> RawWs {
        let addr = app.ws_url().replace("ws://", "").replace("/ws", "");
        let stream = TcpStream::connect(&addr).await.expect("connect");
        let (mut read, mut write) = stream.into_split();
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Authorization: Bearer {token}\r\n\r\n"
        );
        write
            .write_all(request.as_bytes())
            .await
            .expect("write upgrade");
        let mut got = Vec::new();
        let end = loop {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), read.read(&mut buf))
                .await
                .expect("upgrade answer in time")
                .expect("read upgrade");
            assert!(n > 0, "closed during the upgrade");
            got.extend_from_slice(&buf[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&got[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        let mut reader = RawReader {
            read,
            buffered: got[end..].to_vec(),
        };
        let (opcode, payload) = reader.read_frame().await.expect("the hello frame");
        assert_eq!(opcode, 1);
        assert!(String::from_utf8_lossy(&payload).contains("\"hello\""));
        RawWs { reader, write }
    }
}

impl RawReader {
    /// The server's next frame (opcode, payload); `None` when the socket
    /// closed first.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((used, frame)) = parse_server_frame(&self.buffered) {
                self.buffered.drain(..used);
                return Some(frame);
            }
            let mut buf = [0u8; 8192];
            let n = self.read.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buffered.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads until the close frame and returns its code (`None`: the socket
    /// closed without one), within `timeout`.
    pub async fn close_code(&mut self, timeout: Duration) -> Option<u16> {
        tokio::time::timeout(timeout, async {
            loop {
                let (opcode, payload) = self.read_frame().await?;
                if opcode == 8 {
                    return payload.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]]));
                }
            }
        })
        .await
        .expect("a close within the timeout")
    }
}

/// A complete unmasked server frame at the start of `b`: bytes used, and
/// (opcode, payload).
fn parse_server_frame(b: &[u8]) -> Option<(usize, (u8, Vec<u8>))> {
    let [first, second, ..] = *b else {
        return None;
    };
    let (len, at) = match second & 0x7f {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => {
            let bytes: [u8; 8] = b.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes) as usize, 10)
        }
        n => (n as usize, 2),
    };
    let payload = b.get(at..at + len)?.to_vec();
    Some((at + len, (first & 0x0f, payload)))
}
