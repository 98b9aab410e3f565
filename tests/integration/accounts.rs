//! Accounts and tokens over real HTTP.

use serde_json::json;

use std::time::Duration;

use crate::helpers::{spawn_app, wait_for};

#[tokio::test]
async fn register_login_me() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (status, me) = app.get("/api/me", Some(&alice.token)).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        me,
        json!({"username": "alice", "admin": false, "balance": 10000})
    );

    let root = app.user("root").await;
    let (_, me) = app.get("/api/me", Some(&root.token)).await;
    assert_eq!(me["admin"], true);

    // Refusals: (path, username, password, status, error code if checked).
    for (path, name, password, want, code) in [
        (
            "/api/register",
            "alice",
            "password123",
            409,
            Some("conflict"),
        ),
        (
            "/api/login",
            "alice",
            "wrong-password",
            401,
            Some("unauthorized"),
        ),
        ("/api/login", "nobody", "password123", 401, None),
    ] {
        let (status, body) = app.post_credentials(path, name, password).await;
        assert_eq!(status, want, "{path} {name}: {body}");
        if let Some(code) = code {
            assert_eq!(body["error"]["code"], code, "{path} {name}");
        }
    }

    let (_, login) = app
        .post_credentials("/api/login", "alice", "password123")
        .await;
    let expires = login["expiresAt"].as_str().unwrap();
    assert!(expires.ends_with('Z') && expires.len() == 24, "{expires}");
}

#[tokio::test]
async fn protected_routes_need_a_valid_token() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for path in ["/api/me", "/api/conversations"] {
        let (status, body) = app.get(path, None).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(body["error"]["traceId"].as_str().map(str::len), Some(32));
        let forged = format!("{}x", alice.token);
        let (status, _) = app.get(path, Some(&forged)).await;
        assert_eq!(status, 401, "{path} with a forged token");
    }
}

#[tokio::test]
async fn traceparent_is_honoured_and_returned() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(app.url("/api/me"))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(
        res.headers()["x-trace-id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz", None).await.0, 200);
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["store"], "ok");
}

#[tokio::test]
async fn a_signed_in_user_can_ask_whether_a_username_exists() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    app.user("bob").await;
    let (status, body) = app.get("/api/users/bob", Some(&alice.token)).await;
    assert_eq!((status, body), (200, json!({"username": "bob"})));
    let (status, body) = app.get("/api/users/nobody_here", Some(&alice.token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = app.get("/api/users/x", Some(&alice.token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = app.get("/api/users/bob", None).await;
    assert_eq!(status, 401);
}

/// SPEC v2 "Admin rights": no one becomes an admin through the public API.
/// A listed name cannot be registered; the operator makes the account on
/// the host, and can take its rights away and give them back.
#[tokio::test]
async fn admin_rights_come_only_from_the_host() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_credentials("/api/register", "root", "password123")
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");

    let out = app.host_admin(&["create-user", "root"], "short\n").await;
    assert!(!out.status.success(), "a short password is refused");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("8 to 128"),
        "{out:?}"
    );

    let root = app.admin("root").await;
    let (status, _) = app.get("/admin/supervision", Some(&root.token)).await;
    assert_eq!(status, 200);
    let out = app.host_admin(&["revoke", "root"], "").await;
    assert!(out.status.success(), "{out:?}");
    // The same token: rights are re-read (every 2 s), not kept in it.
    let status_of = |path: &'static str| {
        let (app, token) = (&app, root.token.clone());
        move || {
            let token = token.clone();
            async move { app.get(path, Some(&token)).await.0 }
        }
    };
    let supervision = status_of("/admin/supervision");
    wait_for("the revocation", Duration::from_secs(10), || async {
        (supervision().await == 403).then_some(())
    })
    .await;
    let (_, me) = app.get("/api/me", Some(&root.token)).await;
    assert_eq!(me["admin"], false);
    let out = app.host_admin(&["grant", "root"], "").await;
    assert!(out.status.success(), "{out:?}");
    wait_for("the grant", Duration::from_secs(10), || async {
        (supervision().await == 200).then_some(())
    })
    .await;

    // A granted account whose name is not listed has no rights.
    let alice = app.user("alice").await;
    let out = app.host_admin(&["grant", "alice"], "").await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("not in auth.admins"), "{out:?}");
    let (status, _) = app.get("/admin/supervision", Some(&alice.token)).await;
    assert_eq!(status, 403);
    let out = app.host_admin(&["grant", "nobody"], "").await;
    assert!(!out.status.success(), "no such account: {out:?}");
}
