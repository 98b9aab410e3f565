//! Waits for the frames the tests look for among others (presence, a
//! payment's progress, the message a payment posts), typed, so each test
//! names what it waits for instead of repeating the match.

use super::client::{MessageItem, PaymentItem};
use super::{Frame, TestClient};

impl TestClient {
    /// Until `username` is shown with `status` ("online", "offline").
    pub async fn wait_presence(&mut self, username: &str, status: &str) {
        let what = format!("{username} {status}");
        self.wait_for(&what, |f| match f {
            Frame::Presence {
                username: u,
                status: s,
                ..
            } if u == username && s == status => Some(()),
            _ => None,
        })
        .await
    }

    /// Until a payment frame with `status` ("pending", "completed", ...).
    pub async fn wait_payment(&mut self, status: &str) -> PaymentItem {
        self.wait_for(status, |f| match f {
            Frame::Payment(p) if p.status == status => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Until the message a payment posts into the direct conversation.
    pub async fn wait_payment_message(&mut self) -> MessageItem {
        self.wait_for("the payment message", |f| match f {
            Frame::Message(m) if m.kind == "payment" => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// Until a message of `conversation` (`what` names the wait).
    pub async fn wait_message_in(&mut self, what: &str, conversation: &str) -> MessageItem {
        self.wait_for(what, |f| match f {
            Frame::Message(m) if m.conversation_id == conversation => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// Until a message reading `text` (`what` names the wait).
    pub async fn wait_message_text(&mut self, what: &str, text: &str) -> MessageItem {
        self.wait_for(what, |f| match f {
            Frame::Message(m) if m.text == text => Some(m.clone()),
            _ => None,
        })
        .await
    }

    /// The seqs of every message of `conversation`, paging through history.
    pub async fn history_seqs(&mut self, conversation: &str) -> Vec<u64> {
        let all = self.full_history(conversation).await;
        all.iter().map(|m| m.seq).collect()
    }
}
