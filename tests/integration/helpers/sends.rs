//! Client frames sent without waiting for what answers them, for tests
//! that read the answer themselves (`say` and `say_to` wait for it).

use serde_json::json;

use super::TestClient;

impl TestClient {
    /// A `send` of `text` to the direct conversation with `user`.
    pub async fn send_to(&mut self, user: &str, text: &str, client_msg_id: &str) {
        self.send(json!({"type": "send", "to": user, "text": text, "clientMsgId": client_msg_id}))
            .await;
    }

    /// A `send` of `text` to `conversation`.
    pub async fn send_in(&mut self, conversation: &str, text: &str, client_msg_id: &str) {
        let frame = json!({"type": "send", "conversationId": conversation, "text": text, "clientMsgId": client_msg_id});
        self.send(frame).await;
    }
}
