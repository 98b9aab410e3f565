//! Typed HTTP calls the tests make again and again (create a group, post a
//! message, pay, force a breaker, poll an admin view), each one line at the
//! call site. They return the raw `(status, body)` so a test asserts the
//! status it expects (201, or a refusal) exactly as before.

use std::time::Duration;

use serde_json::{json, Value};

use super::TestApp;

impl TestApp {
    /// `POST` of a username and password (to `/api/register` or `/api/login`).
    pub async fn post_credentials(&self, path: &str, name: &str, password: &str) -> (u16, Value) {
        self.post(path, None, json!({"username": name, "password": password}))
            .await
    }

    /// `POST /api/conversations`: a group named `name` with `members`.
    pub async fn post_group(&self, token: &str, name: &str, members: &[&str]) -> (u16, Value) {
        self.post(
            "/api/conversations",
            Some(token),
            json!({"name": name, "members": members}),
        )
        .await
    }

    /// A group that must be created (201); its conversationId.
    pub async fn group(&self, token: &str, name: &str, members: &[&str]) -> String {
        let (status, body) = self.post_group(token, name, members).await;
        assert_eq!(status, 201, "create group {name}: {body}");
        body["conversationId"]
            .as_str()
            .unwrap_or_else(|| panic!("a conversation has a conversationId: {body}"))
            .to_string()
    }

    /// The ids of the conversations `GET /api/conversations` lists for the
    /// token's owner, in its order.
    pub async fn conversation_ids(&self, token: &str) -> Vec<String> {
        let (status, list) = self.get("/api/conversations", Some(token)).await;
        assert_eq!(status, 200, "{list}");
        list["items"]
            .as_array()
            .unwrap_or_else(|| panic!("items: {list}"))
            .iter()
            .filter_map(|c| c["conversationId"].as_str().map(str::to_string))
            .collect()
    }

    /// `POST /api/conversations/{id}/messages`.
    pub async fn post_message(
        &self,
        token: &str,
        conversation: &str,
        text: &str,
        client_msg_id: &str,
    ) -> (u16, Value) {
        self.post(
            &format!("/api/conversations/{conversation}/messages"),
            Some(token),
            json!({"text": text, "clientMsgId": client_msg_id}),
        )
        .await
    }

    /// `GET /api/conversations/{id}/messages` with `query` ("" or "?afterSeq=...").
    pub async fn get_messages(&self, token: &str, conversation: &str, query: &str) -> (u16, Value) {
        let path = format!("/api/conversations/{conversation}/messages{query}");
        self.get(&path, Some(token)).await
    }

    /// `POST /api/payments` from the token's owner to `to`.
    pub async fn post_payment(
        &self,
        token: &str,
        to: &str,
        amount: i64,
        key: &str,
    ) -> (u16, Value) {
        self.post(
            "/api/payments",
            Some(token),
            json!({"to": to, "amount": amount, "idempotencyKey": key}),
        )
        .await
    }

    /// A payment that must be accepted (202); its paymentId.
    pub async fn pay(&self, token: &str, to: &str, amount: i64, key: &str) -> String {
        let (status, body) = self.post_payment(token, to, amount, key).await;
        assert_eq!(status, 202, "pay {to} {amount}: {body}");
        body["paymentId"]
            .as_str()
            .unwrap_or_else(|| panic!("a payment has a paymentId: {body}"))
            .to_string()
    }

    /// `POST /admin/breakers/{name}` with `{"state": state}`.
    pub async fn force_breaker(&self, token: &str, name: &str, state: &str) -> (u16, Value) {
        self.post(
            &format!("/admin/breakers/{name}"),
            Some(token),
            json!({"state": state}),
        )
        .await
    }

    /// `POST /admin/faults` with `fault` as the body.
    pub async fn post_fault(&self, token: &str, fault: Value) -> (u16, Value) {
        self.post("/admin/faults", Some(token), fault).await
    }

    /// GETs `path` every few milliseconds until `pick` takes something
    /// from the body (`what` names the wait in the timeout's panic).
    pub async fn poll<T>(
        &self,
        what: &str,
        timeout: Duration,
        path: &str,
        token: &str,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> T {
        super::wait_for(what, timeout, || async {
            let (_, body) = self.get(path, Some(token)).await;
            pick(&body)
        })
        .await
    }
}

/// The string `key` of each entry of `list`, in order; panics unless
/// `list` is an array whose every entry has that string.
pub fn strings_of<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    let entries = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"));
    let string = |e: &'a Value| {
        e[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key:?} in {e}"))
    };
    entries.iter().map(string).collect()
}

/// The entry of `list` (a JSON array, as in `items` of a listing) whose
/// `key` is `value`.
pub fn find_item<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|item| item[key] == value)
}
