//! A typed WebSocket test client over a real connection.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TestApp;

pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConversationItem {
    pub conversation_id: String,
    pub kind: String,
    pub name: String,
    pub members: Vec<String>,
    pub last_seq: u64,
    pub last_read_seq: Option<u64>,
    pub read_by: Option<BTreeMap<String, u64>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageItem {
    pub conversation_id: String,
    pub message_id: String,
    pub seq: u64,
    pub sender: String,
    pub receiver: Option<String>,
    pub text: String,
    pub kind: String,
    pub sent_at: String,
    pub trace_id: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PaymentItem {
    pub payment_id: String,
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub status: String,
    pub reason: Option<String>,
    pub trace_id: String,
}

/// Every server frame of SPEC.md, typed.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame {
    #[serde(rename_all = "camelCase")]
    Hello {
        username: String,
        session_id: String,
        node: String,
        heartbeat_secs: u64,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Ack {
        client_msg_id: String,
        conversation_id: String,
        message_id: String,
        seq: u64,
        sent_at: String,
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: String,
    },
    Message(MessageItem),
    #[serde(rename_all = "camelCase")]
    Created {
        conversation: ConversationItem,
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Invited {
        conversation_id: String,
        username: String,
        /// Whether `username` got an invitation rather than the membership.
        pending: bool,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Invitation {
        conversation: ConversationItem,
        from: String,
        created_at: String,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Accepted {
        conversation_id: String,
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Declined {
        conversation_id: String,
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    MemberJoined {
        conversation_id: String,
        username: String,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Left {
        conversation_id: String,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    MemberLeft {
        conversation_id: String,
        username: String,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    History {
        conversation_id: String,
        messages: Vec<MessageItem>,
        has_more: bool,
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Conversations {
        items: Vec<ConversationItem>,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Read {
        conversation_id: String,
        username: String,
        seq: u64,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Typing {
        conversation_id: String,
        username: String,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Presence {
        username: String,
        status: String,
        last_seen: Option<String>,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    ConversationAdded {
        conversation: ConversationItem,
        trace_id: String,
    },
    Payment(PaymentItem),
    #[serde(rename_all = "camelCase")]
    Pong {
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Error {
        code: String,
        message: String,
        #[serde(rename = "ref")]
        reference: Option<String>,
        trace_id: String,
    },
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct TestClient {
    ws: Ws,
    pub username: String,
    pub session_id: String,
    /// The node that said hello.
    pub node: String,
    /// Frames read while looking for another one, handed out first later.
    backlog: VecDeque<Value>,
}

impl TestClient {
    pub async fn connect(app: &TestApp, token: &str) -> TestClient {
        let mut req = app.ws_url().into_client_request().unwrap();
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("websocket connect");
        let mut client = TestClient {
            ws,
            username: String::new(),
            session_id: String::new(),
            node: String::new(),
            backlog: VecDeque::new(),
        };
        match client.recv_any().await {
            Frame::Hello {
                username,
                session_id,
                node,
                ..
            } => {
                client.username = username;
                client.session_id = session_id;
                client.node = node;
            }
            other => panic!("the first frame must be hello, got {other:?}"),
        }
        client
    }

    pub async fn send(&mut self, frame: Value) {
        self.send_raw(&frame.to_string()).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("ws send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::binary(bytes)).await.expect("ws send");
    }

    /// The next JSON frame from the socket (pings are answered by the library).
    async fn read_socket(&mut self) -> Value {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no frame within {WAIT:?}", self.username));
            match next {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str(&t)
                        .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {t}"))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("{}: expected a text frame, got {other:?}", self.username),
            }
        }
    }

    pub async fn recv_raw(&mut self) -> Value {
        match self.backlog.pop_front() {
            Some(v) => v,
            None => self.read_socket().await,
        }
    }

    pub async fn recv_any(&mut self) -> Frame {
        let v = self.recv_raw().await;
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("untyped frame ({e}): {v}"))
    }

    /// The next frame that is not presence or `conversation_added`
    /// (presence arrives whenever contacts come and go, and a new group is
    /// shown to its members whatever they are doing, which would make
    /// ordering checks flaky).
    pub async fn recv(&mut self) -> Frame {
        loop {
            let f = self.recv_any().await;
            if !matches!(
                f,
                Frame::Presence { .. } | Frame::ConversationAdded { .. } | Frame::Invitation { .. }
            ) {
                return f;
            }
        }
    }

    /// Reads until `pick` accepts a frame; the frames passed over stay queued.
    pub async fn wait_for<T>(&mut self, what: &str, pick: impl Fn(&Frame) -> Option<T>) -> T {
        let mut passed = Vec::new();
        let found = loop {
            let v = self.recv_raw().await;
            let f: Frame = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("untyped frame ({e}): {v}"));
            if let Some(t) = pick(&f) {
                break t;
            }
            passed.push(v);
            assert!(passed.len() < 10_000, "{}: never saw {what}", self.username);
        };
        for v in passed.into_iter().rev() {
            self.backlog.push_front(v);
        }
        found
    }

    /// Reads until the server closes; returns the close code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no close within {WAIT:?}", self.username));
            match next {
                Some(Ok(Message::Close(Some(c)))) => {
                    return (u16::from(c.code), c.reason.to_string())
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new())
                }
                Some(Ok(_)) => continue,
                other => panic!("{}: expected a close frame, got {other:?}", self.username),
            }
        }
    }

    /// Sends a ping frame and expects its pong: the session is alive.
    pub async fn assert_alive(&mut self) {
        self.send(json!({"type": "ping", "ref": "alive?"})).await;
        let pong = self
            .wait_for("pong", |f| match f {
                Frame::Pong { reference, .. } if reference.as_deref() == Some("alive?") => Some(()),
                _ => None,
            })
            .await;
        pong
    }

    // ---- typed requests ----

    pub async fn expect_ack(&mut self) -> Frame {
        match self.recv().await {
            f @ Frame::Ack { .. } => f,
            other => panic!("{}: expected ack, got {other:?}", self.username),
        }
    }

    pub async fn expect_message(&mut self) -> MessageItem {
        match self.recv().await {
            Frame::Message(m) => m,
            other => panic!("{}: expected message, got {other:?}", self.username),
        }
    }

    pub async fn expect_error(&mut self) -> (String, Option<String>, String) {
        match self.recv().await {
            Frame::Error {
                code,
                reference,
                trace_id,
                ..
            } => (code, reference, trace_id),
            other => panic!("{}: expected error, got {other:?}", self.username),
        }
    }

    /// Sends a new text to a conversation: expects its ack, then (SPEC) the
    /// message frame on this same session; returns the ack's seq and conversationId.
    pub async fn say(
        &mut self,
        conversation: &str,
        text: &str,
        client_msg_id: &str,
    ) -> (u64, String) {
        self.send_text(json!({"type": "send", "conversationId": conversation, "text": text, "clientMsgId": client_msg_id}), text)
            .await
    }

    /// `say` to a user: the direct conversation, created on first use.
    pub async fn say_to(&mut self, user: &str, text: &str, client_msg_id: &str) -> (u64, String) {
        self.send_text(
            json!({"type": "send", "to": user, "text": text, "clientMsgId": client_msg_id}),
            text,
        )
        .await
    }

    async fn send_text(&mut self, frame: Value, text: &str) -> (u64, String) {
        self.send(frame).await;
        let Frame::Ack {
            seq,
            conversation_id,
            ..
        } = self.expect_ack().await
        else {
            unreachable!()
        };
        let own = self.expect_message().await;
        assert_eq!(
            (own.seq, own.text.as_str()),
            (seq, text),
            "{}: own message after ack",
            self.username
        );
        (seq, conversation_id)
    }

    pub async fn create(&mut self, name: &str, members: &[&str]) -> ConversationItem {
        self.send(json!({"type": "create", "name": name, "members": members}))
            .await;
        match self.recv().await {
            Frame::Created { conversation, .. } => conversation,
            other => panic!("expected created, got {other:?}"),
        }
    }

    pub async fn history(
        &mut self,
        conversation: &str,
        after_seq: u64,
        limit: u32,
    ) -> (Vec<MessageItem>, bool) {
        self.send(json!({"type": "history", "conversationId": conversation, "afterSeq": after_seq, "limit": limit}))
            .await;
        self.wait_for("history", |f| match f {
            Frame::History {
                messages, has_more, ..
            } => Some((messages.clone(), *has_more)),
            _ => None,
        })
        .await
    }

    /// Every message of a conversation, paging through history.
    pub async fn full_history(&mut self, conversation: &str) -> Vec<MessageItem> {
        let mut all: Vec<MessageItem> = Vec::new();
        loop {
            let after = all.last().map_or(0, |m| m.seq);
            let (page, more) = self.history(conversation, after, 500).await;
            all.extend(page);
            if !more {
                return all;
            }
        }
    }

    /// Drops the socket without a close handshake (a crashed client).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The raw socket, for tests that misbehave on purpose.
    pub fn socket(&mut self) -> &mut Ws {
        &mut self.ws
    }
}
