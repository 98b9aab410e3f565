//! Chat over real WebSockets: fan-out, history, idempotency, membership,
//! typing, read receipts, presence and trace ids.

use serde_json::json;

use crate::helpers::{spawn_app, Acked, AliceInvitedBob, Frame, TestClient};

#[tokio::test]
async fn direct_chat_both_ways() {
    let app = spawn_app().await;
    let [mut a, mut b] = app.clients(["alice", "bob"]).await;

    a.send(
        json!({"type": "send", "to": "bob", "text": "hi bob", "clientMsgId": "a1", "ref": "r1"}),
    )
    .await;
    let Acked {
        seq,
        conversation_id,
        reference,
        ..
    } = a.acked().await;
    assert_eq!((seq, reference.as_deref()), (1, Some("r1")));
    // The sender's session gets the message frame too, after its ack.
    let mine = a.expect_message().await;
    assert_eq!((mine.seq, mine.sender.as_str()), (1, "alice"));
    let got = b.expect_message().await;
    assert_eq!(got.conversation_id, conversation_id);
    assert_eq!(got.text, "hi bob");
    assert_eq!(got.sender, "alice");
    assert_eq!(got.receiver.as_deref(), Some("bob"));
    assert_eq!(got.kind, "text");

    // Bob answers in the same conversation, by id.
    let (seq, _) = b.say(&conversation_id, "hi alice", "b1").await;
    assert_eq!(seq, 2);
    assert_eq!(a.expect_message().await.text, "hi alice");

    // `to` again lands in the same direct conversation.
    a.send_to("bob", "again", "a2").await;
    let Acked {
        conversation_id: c2,
        seq,
        ..
    } = a.acked().await;
    assert_eq!((c2.as_str(), seq), (conversation_id.as_str(), 3));
}

#[tokio::test]
async fn group_of_three_with_one_member_on_two_devices() {
    let app = spawn_app().await;
    let [alice, bob, carol] = app.users(["alice", "bob", "carol"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let mut b1 = TestClient::connect(&app, &bob.token).await;
    let mut b2 = TestClient::connect(&app, &bob.token).await;
    let mut c = TestClient::connect(&app, &carol.token).await;

    let group = a.create("trio", &["bob", "carol"]).await;
    assert_eq!(group.kind, "group");
    assert_eq!(group.members, vec!["alice", "bob", "carol"]);
    let id = group.conversation_id;

    let (seq, _) = a.say(&id, "hello all", "m1").await;
    assert_eq!(seq, 1);
    for client in [&mut b1, &mut b2, &mut c] {
        let m = client.expect_message().await;
        assert_eq!(
            (m.seq, m.text.as_str(), m.receiver.as_deref()),
            (1, "hello all", None)
        );
    }
    // Bob writes from one device; his other device sees it too.
    let (seq, _) = b1.say(&id, "from my phone", "p1").await;
    assert_eq!(seq, 2);
    for client in [&mut a, &mut b2, &mut c] {
        assert_eq!(client.expect_message().await.text, "from my phone");
    }
}

#[tokio::test]
async fn an_offline_member_catches_up_with_history() {
    let app = spawn_app().await;
    let AliceInvitedBob { bob, mut a, group } = AliceInvitedBob::on(&app).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    a.say(&group.conversation_id, "one", "1").await;
    assert_eq!(b.expect_message().await.seq, 1);
    b.close().await;

    for i in 2..=5 {
        a.say(&group.conversation_id, &format!("msg {i}"), &i.to_string())
            .await;
    }
    let mut b = TestClient::connect(&app, &bob.token).await;
    let (missed, more) = b.history(&group.conversation_id, 1, 100).await;
    assert!(!more);
    let seqs: Vec<u64> = missed.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4, 5]);
    assert_eq!(missed[0].text, "msg 2");

    // Paging: limit 2 says there is more.
    let (page, more) = b.history(&group.conversation_id, 0, 2).await;
    assert_eq!((page.len(), more), (2, true));
    assert_eq!(b.full_history(&group.conversation_id).await.len(), 5);
}

#[tokio::test]
async fn a_repeated_client_msg_id_gets_the_same_ack_and_no_second_message() {
    let app = spawn_app().await;
    let [(alice, mut a), (_bob, mut b)] = app.online(["alice", "bob"]).await;
    a.send_to("bob", "once", "same").await;
    let first = a.expect_ack().await;
    let Frame::Ack {
        conversation_id, ..
    } = &first
    else {
        unreachable!()
    };
    let conversation_id = conversation_id.clone();
    a.expect_message().await;
    b.expect_message().await;

    a.send_to("bob", "once", "same").await;
    let again = a.expect_ack().await;
    let strip = |f: &Frame| match f {
        Frame::Ack {
            client_msg_id,
            conversation_id,
            message_id,
            seq,
            sent_at,
            ..
        } => (
            client_msg_id.clone(),
            conversation_id.clone(),
            message_id.clone(),
            *seq,
            sent_at.clone(),
        ),
        _ => unreachable!(),
    };
    assert_eq!(strip(&first), strip(&again));

    // Across a reconnect, too.
    a.close().await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    a.send_in(&conversation_id, "once", "same").await;
    assert_eq!(strip(&a.expect_ack().await), strip(&first));

    // A new id makes seq 2: nothing was created by the repeats.
    let (seq, _) = a.say(&conversation_id, "twice", "other").await;
    assert_eq!(seq, 2);
    assert_eq!(b.expect_message().await.text, "twice");
    assert_eq!(a.full_history(&conversation_id).await.len(), 2);
}

#[tokio::test]
async fn a_non_member_is_forbidden() {
    let app = spawn_app().await;
    let [alice, _bob, eve] = app.users(["alice", "bob", "eve"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let group = a.create("private", &["bob"]).await;
    a.say(&group.conversation_id, "secret", "s1").await;
    let id = group.conversation_id.clone();

    let mut e = TestClient::connect(&app, &eve.token).await;
    let frames = [
        json!({"type": "send", "conversationId": id, "text": "let me in", "clientMsgId": "x", "ref": "f1"}),
        json!({"type": "history", "conversationId": id, "ref": "f2"}),
        json!({"type": "typing", "conversationId": id, "ref": "f3"}),
        json!({"type": "read", "conversationId": id, "seq": 1, "ref": "f4"}),
        json!({"type": "invite", "conversationId": id, "username": "eve", "ref": "f5"}),
        json!({"type": "leave", "conversationId": id, "ref": "f6"}),
    ];
    for frame in frames {
        let reference = frame["ref"].as_str().unwrap().to_string();
        e.send(frame).await;
        let (code, got_ref, _) = e.expect_error().await;
        assert_eq!(
            (code.as_str(), got_ref.as_deref()),
            ("forbidden", Some(reference.as_str()))
        );
    }
    let (status, body) = app.get_messages(&eve.token, &id, "").await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "forbidden");
    let (status, _) = app.post_message(&eve.token, &id, "x", "y").await;
    assert_eq!(status, 403);
    // Nothing leaked into the conversation.
    assert_eq!(a.full_history(&id).await.len(), 1);
    // And eve does not see it in her list.
    let (_, list) = app.get("/api/conversations", Some(&eve.token)).await;
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn a_trace_id_follows_the_message_to_every_member() {
    let app = spawn_app().await;
    let [(alice, mut a), (_bob, mut b)] = app.online(["alice", "bob"]).await;
    let trace = "0af7651916cd43dd8448eb211c80319c";
    a.send(json!({"type": "send", "to": "bob", "text": "traced", "clientMsgId": "t1", "traceId": trace}))
        .await;
    let Acked {
        trace_id,
        conversation_id,
        ..
    } = a.acked().await;
    assert_eq!(trace_id, trace);
    assert_eq!(a.expect_message().await.trace_id, trace);
    assert_eq!(b.expect_message().await.trace_id, trace);

    // Over HTTP, the traceparent header's trace id.
    let trace2 = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = app
        .http
        .post(app.url(&format!("/api/conversations/{conversation_id}/messages")))
        .bearer_auth(&alice.token)
        .header("traceparent", format!("00-{trace2}-00f067aa0ba902b7-01"))
        .json(&json!({"text": "via http", "clientMsgId": "h1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let ack: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        (ack["traceId"].as_str(), ack["seq"].as_u64()),
        (Some(trace2), Some(2))
    );
    assert_eq!(b.expect_message().await.trace_id, trace2);

    // A malformed trace id is replaced by a fresh one.
    a.send(json!({"type": "ping", "traceId": "NOT-A-TRACE"}))
        .await;
    let Frame::Pong { trace_id, .. } = a
        .wait_for("pong", |f| {
            matches!(f, Frame::Pong { .. }).then(|| f.clone())
        })
        .await
    else {
        unreachable!()
    };
    assert!(
        trace_id.len() == 32
            && trace_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
}

#[tokio::test]
async fn typing_read_receipts_and_presence() {
    let app = spawn_app().await;
    let AliceInvitedBob { bob, mut a, group } = AliceInvitedBob::on(&app).await;
    let id = group.conversation_id.clone();

    // Bob comes online: alice hears it; bob learns alice is online.
    let mut b = TestClient::connect(&app, &bob.token).await;
    let status = a
        .wait_for("presence of bob", |f| match f {
            Frame::Presence {
                username, status, ..
            } if username == "bob" => Some(status.clone()),
            _ => None,
        })
        .await;
    assert_eq!(status, "online");
    b.wait_presence("alice", "online").await;

    a.send(json!({"type": "typing", "conversationId": id}))
        .await;
    let Frame::Typing {
        username,
        conversation_id,
        ..
    } = b.recv().await
    else {
        panic!("expected typing")
    };
    assert_eq!(
        (username.as_str(), conversation_id.as_str()),
        ("alice", id.as_str())
    );

    a.say(&id, "read me", "r1").await;
    b.expect_message().await;
    b.send(json!({"type": "read", "conversationId": id, "seq": 1}))
        .await;
    let Frame::Read { username, seq, .. } = a.recv().await else {
        panic!("expected read")
    };
    assert_eq!((username.as_str(), seq), ("bob", 1));
    // A read beyond the last message is refused.
    b.send(json!({"type": "read", "conversationId": id, "seq": 9, "ref": "too-far"}))
        .await;
    let (code, reference, _) = b.expect_error().await;
    assert_eq!(
        (code.as_str(), reference.as_deref()),
        ("bad_request", Some("too-far"))
    );

    // The read marker is stored: bob's list shows it.
    let items = crate::helpers::wait_for(
        "stored read marker",
        std::time::Duration::from_secs(5),
        || async {
            let (_, list) = app.get("/api/conversations", Some(&bob.token)).await;
            (list["items"][0]["lastReadSeq"] == 1).then_some(list)
        },
    )
    .await;
    assert_eq!(items["items"][0]["lastSeq"], 1);

    // Bob leaves: alice hears he is offline.
    b.close().await;
    let status = a
        .wait_for("bob offline", |f| match f {
            Frame::Presence {
                username, status, ..
            } if username == "bob" && status == "offline" => Some(status.clone()),
            _ => None,
        })
        .await;
    assert_eq!(status, "offline");
}

#[tokio::test]
async fn invite_and_leave() {
    let app = spawn_app().await;
    let [mut a, mut b, mut c] = app.clients(["alice", "bob", "carol"]).await;
    let group = a.create("club", &["bob"]).await;
    let id = group.conversation_id.clone();

    a.send(json!({"type": "invite", "conversationId": id, "username": "carol", "ref": "inv"}))
        .await;
    let Frame::Invited { username, .. } = a.recv().await else {
        panic!("expected invited")
    };
    assert_eq!(username, "carol");
    for client in [&mut a, &mut b, &mut c] {
        let Frame::MemberJoined { username, .. } = client.recv().await else {
            panic!("expected member_joined")
        };
        assert_eq!(username, "carol");
    }
    // Inviting again is a conflict; inviting nobody is not_found.
    a.send(json!({"type": "invite", "conversationId": id, "username": "carol"}))
        .await;
    assert_eq!(a.expect_error().await.0, "conflict");
    a.send(json!({"type": "invite", "conversationId": id, "username": "nobody"}))
        .await;
    assert_eq!(a.expect_error().await.0, "not_found");

    // Carol can now write; everyone gets it.
    c.say(&id, "thanks", "c1").await;
    for client in [&mut a, &mut b] {
        assert_eq!(client.expect_message().await.sender, "carol");
    }

    b.send(json!({"type": "leave", "conversationId": id})).await;
    assert!(matches!(b.recv().await, Frame::Left { .. }));
    for client in [&mut a, &mut c] {
        let Frame::MemberLeft { username, .. } = client.recv().await else {
            panic!("expected member_left")
        };
        assert_eq!(username, "bob");
    }
    // Bob no longer gets messages, and may not send.
    a.say(&id, "bye bob", "a2").await;
    c.expect_message().await;
    b.send_in(&id, "wait", "b9").await;
    assert_eq!(b.expect_error().await.0, "forbidden");
    // Direct conversations cannot be left.
    a.send_to("bob", "dm", "d1").await;
    let Acked {
        conversation_id: dm,
        ..
    } = a.acked().await;
    a.expect_message().await;
    a.send(json!({"type": "leave", "conversationId": dm})).await;
    assert_eq!(a.expect_error().await.0, "bad_request");
}

#[tokio::test]
async fn chat_over_http() {
    let app = spawn_app().await;
    let [alice, bob] = app.users(["alice", "bob"]).await;
    let mut b = TestClient::connect(&app, &bob.token).await;
    let (status, conv) = app.post_group(&alice.token, "http", &["bob"]).await;
    assert_eq!(status, 201, "{conv}");
    assert_eq!(conv["members"], json!(["alice", "bob"]));
    let id = conv["conversationId"].as_str().unwrap().to_string();

    for i in 1..=3 {
        let (text, client_msg_id) = (format!("n{i}"), format!("h{i}"));
        let (status, ack) = app
            .post_message(&alice.token, &id, &text, &client_msg_id)
            .await;
        assert_eq!(status, 201, "{ack}");
        assert_eq!(ack["seq"], i);
        assert_eq!(b.expect_message().await.seq, i);
    }
    let (status, page) = app
        .get_messages(&bob.token, &id, "?afterSeq=1&limit=1")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["hasMore"], true);
    assert_eq!(page["messages"][0]["seq"], 2);
    assert_eq!(page["messages"][0]["text"], "n2");
    let (_, list) = app.get("/api/conversations", Some(&bob.token)).await;
    assert_eq!(list["items"][0]["lastSeq"], 3);
    // The same list over the socket.
    b.send(json!({"type": "conversations"})).await;
    let Frame::Conversations { items, .. } = b.recv().await else {
        panic!("expected conversations")
    };
    assert_eq!(items[0].conversation_id, id);
}

#[tokio::test]
async fn concurrent_senders_get_gap_free_unique_seqs() {
    let app = spawn_app().await;
    let names = ["ann", "ben", "cat", "dan"];
    let mut users = Vec::new();
    for n in names {
        users.push(app.user(n).await);
    }
    let mut first = TestClient::connect(&app, &users[0].token).await;
    let group = first.create("busy", &names[1..]).await;
    let id = group.conversation_id.clone();
    let per_sender = 50;
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
        let mut c = TestClient::connect(&app, &u.token).await;
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            // Everything is sent at once, then the acks are collected.
            for k in 0..per_sender {
                c.send(json!({"type": "send", "conversationId": id, "text": format!("{i}-{k}"), "clientMsgId": format!("{i}-{k}")}))
                    .await;
            }
            let mut acked = Vec::new();
            while acked.len() < per_sender {
                if let Frame::Ack { seq, .. } = c.recv().await {
                    acked.push(seq);
                }
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=(names.len() * per_sender) as u64).collect();
    assert_eq!(all, expected);
    let history = first.full_history(&id).await;
    let seqs: Vec<u64> = history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, expected);
    // The first client saw every message live, in seq order.
    let mut live = Vec::new();
    while live.len() < expected.len() {
        if let Frame::Message(m) = first.recv().await {
            live.push(m.seq);
        }
    }
    assert_eq!(live, expected);
}

#[tokio::test]
async fn one_senders_messages_keep_their_order() {
    let app = spawn_app().await;
    let [alice, _bob] = app.users(["alice", "bob"]).await;
    let mut a = TestClient::connect(&app, &alice.token).await;
    let group = a.create("ordered", &["bob"]).await;
    // Pipelined: every frame goes out before any ack is read. The first ones
    // race the conversation actor's start.
    for i in 0..100 {
        a.send(json!({"type": "send", "conversationId": group.conversation_id, "text": format!("{i}"), "clientMsgId": format!("{i}")}))
            .await;
    }
    let mut acked = Vec::new();
    while acked.len() < 100 {
        if let Frame::Ack {
            client_msg_id, seq, ..
        } = a.recv().await
        {
            acked.push((client_msg_id.parse::<u64>().unwrap(), seq));
        }
    }
    let expected: Vec<(u64, u64)> = (0..100).map(|i| (i, i + 1)).collect();
    assert_eq!(
        acked, expected,
        "acks come in send order with seq in send order"
    );
}
