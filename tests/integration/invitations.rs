//! SPEC v2 consent (`limits.group_consent`, on by default): a user who
//! shares no conversation with you cannot make you a member; you get an
//! invitation and join only by accepting it. Contacts still add you.

use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, Frame, TestApp, TestClient};

/// A server with the default consent on (the suite's helper turns it off).
async fn consenting(tweak: impl FnOnce(&mut parley::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.limits.group_consent = true;
        tweak(s);
    })
    .await
}

/// The next `invitation` frame: (its group's id, who invited).
async fn invitation(c: &mut TestClient) -> (String, String) {
    c.wait_for("invitation", |f| match f {
        Frame::Invitation {
            conversation, from, ..
        } => Some((conversation.conversation_id.clone(), from.clone())),
        _ => None,
    })
    .await
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items: {list}"))
        .iter()
        .map(|i| {
            i["conversation"][field]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_stranger_s_group_is_an_invitation_until_it_is_accepted() {
    let app = consenting(|_| {}).await;
    let [(_alice, mut a), (bob, mut b)] = app.online(["alice", "bob"]).await;
    let group = a.create("strangers", &["bob"]).await;
    assert_eq!(group.members, ["alice"], "bob is invited, not a member");
    assert_eq!(
        invitation(&mut b).await,
        (group.conversation_id.clone(), "alice".into())
    );
    let (status, list) = app.get("/api/invitations", Some(&bob.token)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        ids(&list, "conversationId"),
        vec![group.conversation_id.clone()]
    );
    assert_eq!(list["items"][0]["from"], "alice");
    assert!(list["items"][0]["createdAt"].is_string(), "{list}");
    let (_, mine) = app.get("/api/conversations", Some(&bob.token)).await;
    assert_eq!(
        mine["items"],
        json!([]),
        "an invitation is not in the inbox"
    );
    // Not a member yet: the group refuses him.
    b.send(json!({"type": "send", "conversationId": group.conversation_id, "text": "hi", "clientMsgId": "b0"}))
        .await;
    assert_eq!(b.expect_error().await.0, "forbidden");

    b.send(json!({"type": "accept", "conversationId": group.conversation_id, "ref": "yes"}))
        .await;
    let accepted = b
        .wait_for("accepted", |f| match f {
            Frame::Accepted {
                conversation_id,
                reference,
                ..
            } => Some((conversation_id.clone(), reference.clone())),
            _ => None,
        })
        .await;
    assert_eq!(
        accepted,
        (group.conversation_id.clone(), Some("yes".into()))
    );
    let joined = a
        .wait_for("member_joined", |f| match f {
            Frame::MemberJoined { username, .. } => Some(username.clone()),
            _ => None,
        })
        .await;
    assert_eq!(joined, "bob");
    let (_, list) = app.get("/api/invitations", Some(&bob.token)).await;
    assert_eq!(list["items"], json!([]), "used up by the join");
    a.send(json!({"type": "send", "conversationId": group.conversation_id, "text": "welcome", "clientMsgId": "a1"}))
        .await;
    a.expect_ack().await;
    let text = b
        .wait_for("the message", |f| match f {
            Frame::Message(m) => Some(m.text.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        text, "welcome",
        "the new member's own member_joined comes first"
    );
    // Accepting twice: a member already.
    let path = format!("/api/invitations/{}/accept", group.conversation_id);
    let (status, body) = app.post(&path, Some(&bob.token), json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
}

#[tokio::test]
async fn a_declined_invitation_is_gone_and_only_the_invitee_s_own_act_makes_a_contact() {
    let app = consenting(|_| {}).await;
    let [(alice, mut a), (bob, mut b)] = app.online(["alice", "bob"]).await;
    let group = app.group(&alice.token, "g", &["bob"]).await;
    invitation(&mut b).await;
    let decline = format!("/api/invitations/{group}/decline");
    let (status, body) = app.post(&decline, Some(&bob.token), json!({})).await;
    assert_eq!(status, 204, "{body}");
    let (_, list) = app.get("/api/invitations", Some(&bob.token)).await;
    assert_eq!(list["items"], json!([]));
    let accept = format!("/api/invitations/{group}/accept");
    let (status, _) = app.post(&accept, Some(&bob.token), json!({})).await;
    assert_eq!(status, 404, "declined: nothing to accept");

    // A stranger's `invite` is an invitation too, and says so.
    assert!(invite_is_pending(&mut a, &group, "i1").await);
    invitation(&mut b).await;
    b.send(json!({"type": "decline", "conversationId": group, "ref": "no"}))
        .await;
    b.wait_for("declined", |f| {
        matches!(f, Frame::Declined { reference, .. } if reference.as_deref() == Some("no"))
            .then_some(())
    })
    .await;

    // A message bob was sent is not his consent: alice still only invites.
    a.say_to("bob", "hello", "d1").await;
    b.expect_message().await;
    assert!(
        invite_is_pending(&mut a, &group, "i2").await,
        "one DM must not open the door"
    );
    invitation(&mut b).await;
    // Bob accepts: a group of hers he joined is his consent to her.
    let accept = format!("/api/invitations/{group}/accept");
    let (status, body) = app.post(&accept, Some(&bob.token), json!({})).await;
    assert_eq!(status, 204, "{body}");
    let second = app.group(&alice.token, "second", &["bob"]).await;
    let listed = app.conversation_ids(&bob.token).await;
    assert!(
        listed.contains(&group) && listed.contains(&second),
        "{listed:?}"
    );
}

/// Alice's `invite` of bob to `group`: whether it was only an invitation.
async fn invite_is_pending(a: &mut TestClient, group: &str, reference: &str) -> bool {
    a.send(json!({"type": "invite", "conversationId": group, "username": "bob", "ref": reference}))
        .await;
    a.wait_for("invited", |f| match f {
        Frame::Invited { pending, .. } => Some(*pending),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn a_flood_of_groups_naming_a_user_leaves_them_free_and_bounded() {
    let app = consenting(|s| {
        s.limits.max_conversations_per_user = 3;
        s.limits.max_invitations_per_user = 3;
    })
    .await;
    let [mallory, victim, carol] = app.users(["mallory", "victim", "carol"]).await;
    // Mallory's own quota stops her at three groups; each names the victim.
    let mut groups = Vec::new();
    for i in 0..3 {
        groups.push(
            app.group(&mallory.token, &format!("spam{i}"), &["victim"])
                .await,
        );
    }
    let (status, _) = app.post_group(&mallory.token, "spam3", &["victim"]).await;
    assert_eq!(status, 403, "mallory is the one at her quota");
    let (_, mine) = app.get("/api/conversations", Some(&victim.token)).await;
    assert_eq!(mine["items"], json!([]), "no one put the victim anywhere");
    let (_, pending) = app.get("/api/invitations", Some(&victim.token)).await;
    let mut newest_first = groups.clone();
    newest_first.reverse();
    assert_eq!(ids(&pending, "conversationId"), newest_first);
    // The victim's own actions are not blocked by any of it.
    for i in 0..3 {
        app.group(&victim.token, &format!("mine{i}"), &["carol"])
            .await;
    }
    let (status, _) = app.post_group(&victim.token, "mine3", &["carol"]).await;
    assert_eq!(
        status, 403,
        "now the victim is at the quota, by their own groups"
    );
    // An invitation past the bound drops the victim's oldest.
    let carol_in = app.group(&carol.token, "carol's", &["victim"]).await;
    let (_, pending) = app.get("/api/invitations", Some(&victim.token)).await;
    assert_eq!(
        ids(&pending, "conversationId"),
        [carol_in, groups[2].clone(), groups[1].clone()]
    );
}
