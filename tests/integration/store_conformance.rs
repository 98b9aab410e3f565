//! The store conformance suite: what every backend must do, written against
//! the `Store` handle only. Each check runs against SQLite here; a second
//! backend adds its own `backend!` line and must pass the same checks.

use parley::config::Settings;
use parley::domain::{
    ConversationId, ConversationKind, MessageId, MessageKind, PaymentStatus, SagaStep, TraceId,
    Username,
};
use parley::store::{NewMessage, NewUser, Store, StoreError};
use tempfile::TempDir;

fn u(name: &str) -> Username {
    Username::parse(name).unwrap()
}

fn msg(conv: ConversationId, sender: &str, client_msg_id: &str, text: &str) -> NewMessage {
    NewMessage {
        conversation_id: conv,
        message_id: MessageId::new_v7(),
        sender: u(sender),
        client_msg_id: client_msg_id.into(),
        kind: MessageKind::Text,
        text: text.into(),
        sent_at: 1_700_000_000_000,
        trace_id: TraceId::random(),
    }
}

async fn users(store: &Store, names: &[&str]) {
    for n in names {
        store
            .create_user(NewUser {
                username: u(n),
                password_hash: "hash".into(),
                balance: 100,
            })
            .await
            .unwrap();
    }
}

/// A fresh SQLite store in its own directory (kept alive with the store).
async fn sqlite() -> (Store, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(&dir);
    (store, dir)
}

fn open_sqlite(dir: &TempDir) -> Store {
    let settings = Settings::from_sources("", &[]).unwrap();
    Store::open_sqlite(&dir.path().join("conformance.db"), &settings.storage, None).unwrap()
}

macro_rules! backend {
    ($make:ident: $($check:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _guard) = $make().await;
                super::$check(&store).await;
            }
        )*
    };
}

mod sqlite_backend {
    use super::sqlite;
    backend!(sqlite: accounts, direct_conversations, groups_are_all_or_nothing, append_assigns_seq_and_dedups,
        history_pages_and_checks_membership, membership_changes, read_markers_only_move_forward,
        contacts, concurrent_appends_are_gap_free, shutdown_flushes_then_refuses,
        payments_hold_move_and_return_money);
}

async fn accounts(store: &Store) {
    users(store, &["alice"]).await;
    let dup = store
        .create_user(NewUser {
            username: u("alice"),
            password_hash: "other".into(),
            balance: 1,
        })
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    let rec = store.user(u("alice")).await.unwrap().unwrap();
    assert_eq!((rec.password_hash.as_str(), rec.balance), ("hash", 100));
    assert!(store.user(u("nobody")).await.unwrap().is_none());
    store.ping().await.unwrap();
}

async fn direct_conversations(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let c1 = store
        .direct_conversation(u("bob"), u("alice"))
        .await
        .unwrap();
    let c2 = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    assert_eq!(c1.id, c2.id);
    assert_eq!(c1.kind, ConversationKind::Direct);
    assert_eq!(c1.members, vec![u("alice"), u("bob")]);
    let missing = store.direct_conversation(u("alice"), u("ghost")).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(store.conversation(c1.id).await.unwrap(), Some(c1));
}

async fn groups_are_all_or_nothing(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let bad = store
        .create_group("g".into(), vec![u("alice"), u("bob"), u("ghost")])
        .await;
    assert!(matches!(bad, Err(StoreError::NotFound(_))), "{bad:?}");
    assert!(
        store.conversations_of(u("alice")).await.unwrap().is_empty(),
        "nothing half-written"
    );
    let g = store
        .create_group("g".into(), vec![u("bob"), u("alice"), u("bob")])
        .await
        .unwrap();
    assert_eq!(g.members, vec![u("alice"), u("bob")]);
    assert_eq!((g.kind, g.last_seq), (ConversationKind::Group, 0));
    assert_eq!(store.conversations_of(u("bob")).await.unwrap().len(), 1);
}

async fn append_assigns_seq_and_dedups(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let c = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    let first = store.append(msg(c.id, "alice", "m1", "one")).await.unwrap();
    assert_eq!((first.message.seq, first.duplicate), (1, false));
    let second = store.append(msg(c.id, "alice", "m2", "two")).await.unwrap();
    assert_eq!(second.message.seq, 2);
    let again = store
        .append(msg(c.id, "alice", "m1", "changed"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(
        again.message, first.message,
        "the original comes back unchanged"
    );
    // The same clientMsgId from another sender is another message.
    let bobs = store.append(msg(c.id, "bob", "m1", "bob's")).await.unwrap();
    assert_eq!((bobs.message.seq, bobs.duplicate), (3, false));
    let nowhere = store
        .append(msg(ConversationId::new_random(), "alice", "x", "?"))
        .await;
    assert!(
        matches!(nowhere, Err(StoreError::NotFound(_))),
        "{nowhere:?}"
    );
    assert_eq!(store.conversation(c.id).await.unwrap().unwrap().last_seq, 3);
}

async fn history_pages_and_checks_membership(store: &Store) {
    users(store, &["alice", "bob", "eve"]).await;
    let c = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    for i in 1..=5 {
        store
            .append(msg(c.id, "alice", &i.to_string(), &format!("t{i}")))
            .await
            .unwrap();
    }
    let page = store.history(u("bob"), c.id, 0, 2).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(page.has_more);
    let page = store.history(u("bob"), c.id, 3, 10).await.unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(!page.has_more);
    assert_eq!(page.messages[0].text, "t4");
    assert_eq!(page.conversation.id, c.id);
    assert!(matches!(
        store.history(u("eve"), c.id, 0, 10).await,
        Err(StoreError::NotMember)
    ));
    let missing = store
        .history(u("bob"), ConversationId::new_random(), 0, 10)
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

async fn membership_changes(store: &Store) {
    users(store, &["alice", "bob", "carol"]).await;
    let g = store
        .create_group("g".into(), vec![u("alice")])
        .await
        .unwrap();
    let g2 = store.add_member(g.id, u("bob"), 10).await.unwrap();
    assert_eq!(g2.members, vec![u("alice"), u("bob")]);
    assert!(matches!(
        store.add_member(g.id, u("bob"), 10).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.add_member(g.id, u("carol"), 2).await,
        Err(StoreError::BadRequest(_))
    ));
    assert!(matches!(
        store.add_member(g.id, u("ghost"), 10).await,
        Err(StoreError::NotFound(_))
    ));
    let g3 = store.remove_member(g.id, u("alice")).await.unwrap();
    assert_eq!(g3.members, vec![u("bob")]);
    assert!(matches!(
        store.remove_member(g.id, u("alice")).await,
        Err(StoreError::NotMember)
    ));
    let d = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    assert!(matches!(
        store.add_member(d.id, u("carol"), 10).await,
        Err(StoreError::BadRequest(_))
    ));
    assert!(matches!(
        store.remove_member(d.id, u("bob")).await,
        Err(StoreError::BadRequest(_))
    ));
}

async fn read_markers_only_move_forward(store: &Store) {
    users(store, &["alice", "bob", "eve"]).await;
    let c = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    store.set_read(c.id, u("bob"), 5).await.unwrap();
    store.set_read(c.id, u("bob"), 3).await.unwrap();
    let list = store.conversations_of(u("bob")).await.unwrap();
    assert_eq!(list[0].last_read_seq, 5);
    assert!(matches!(
        store.set_read(c.id, u("eve"), 1).await,
        Err(StoreError::NotMember)
    ));
}

async fn contacts(store: &Store) {
    users(store, &["alice", "bob", "carol", "dave"]).await;
    store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    store
        .create_group("g".into(), vec![u("alice"), u("carol"), u("bob")])
        .await
        .unwrap();
    let mut c = store.contacts_of(u("alice")).await.unwrap();
    c.sort();
    assert_eq!(c, vec![u("bob"), u("carol")]);
    assert!(store.contacts_of(u("dave")).await.unwrap().is_empty());
}

async fn concurrent_appends_are_gap_free(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let c = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..400 {
        let store = store.clone();
        let sender = if i % 2 == 0 { "alice" } else { "bob" };
        tasks.push(tokio::spawn(async move {
            store
                .append(msg(c.id, sender, &format!("c{i}"), "x"))
                .await
                .unwrap()
                .message
                .seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<u64>>());
}

async fn shutdown_flushes_then_refuses(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let c = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..50 {
        let tx = tx.clone();
        store.append_then(
            msg(c.id, "alice", &i.to_string(), "x"),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
    }
    store.shutdown().await.unwrap();
    for _ in 0..50 {
        assert!(
            rx.recv().await.unwrap().is_ok(),
            "queued before shutdown: committed"
        );
    }
    let late = store.append(msg(c.id, "alice", "late", "x")).await;
    assert!(matches!(late, Err(StoreError::Closed)), "{late:?}");
}

#[tokio::test]
async fn sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(&dir);
    users(&store, &["alice", "bob"]).await;
    let c = store
        .direct_conversation(u("alice"), u("bob"))
        .await
        .unwrap();
    store.append(msg(c.id, "alice", "1", "kept")).await.unwrap();
    store.shutdown().await.unwrap();
    drop(store);
    let store = open_sqlite(&dir);
    let page = store.history(u("bob"), c.id, 0, 10).await.unwrap();
    assert_eq!(page.messages[0].text, "kept");
    assert_eq!(
        store
            .append(msg(c.id, "bob", "2", "next"))
            .await
            .unwrap()
            .message
            .seq,
        2
    );
}

async fn balance(store: &Store, name: &str) -> i64 {
    store.user(u(name)).await.unwrap().unwrap().balance
}

async fn payments_hold_move_and_return_money(store: &Store) {
    users(store, &["alice", "bob"]).await; // 100 each
    let t = TraceId::random();
    let too_much = store
        .create_payment(u("alice"), u("bob"), 101, "k0".into(), t)
        .await;
    assert!(
        matches!(too_much, Err(StoreError::InsufficientFunds)),
        "{too_much:?}"
    );
    assert_eq!(balance(store, "alice").await, 100, "nothing held");
    let (p, existed) = store
        .create_payment(u("alice"), u("bob"), 30, "k1".into(), t)
        .await
        .unwrap();
    assert!(!existed);
    assert_eq!(
        (p.status, p.step),
        (PaymentStatus::Pending, SagaStep::Reserved)
    );
    assert_eq!(balance(store, "alice").await, 70, "held");
    let (again, existed) = store
        .create_payment(u("alice"), u("bob"), 30, "k1".into(), t)
        .await
        .unwrap();
    assert!(existed);
    assert_eq!(again.id, p.id);
    let other = store
        .create_payment(u("alice"), u("bob"), 31, "k1".into(), t)
        .await;
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    assert!(matches!(
        store.advance_payment(p.id, SagaStep::Done, None).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .advance_payment(p.id, SagaStep::Charging, None)
        .await
        .unwrap();
    let credited = store
        .advance_payment(p.id, SagaStep::Credited, None)
        .await
        .unwrap();
    assert_eq!(credited.step, SagaStep::Credited);
    // Repeating a step (a resumed saga) moves no money twice.
    store
        .advance_payment(p.id, SagaStep::Credited, None)
        .await
        .unwrap();
    assert_eq!(balance(store, "bob").await, 130);
    let done = store
        .advance_payment(p.id, SagaStep::Done, None)
        .await
        .unwrap();
    assert_eq!(done.status, PaymentStatus::Completed);

    let (q, _) = store
        .create_payment(u("alice"), u("bob"), 20, "k2".into(), t)
        .await
        .unwrap();
    assert_eq!(balance(store, "alice").await, 50);
    let failed = store
        .advance_payment(q.id, SagaStep::Released, Some("declined".into()))
        .await
        .unwrap();
    assert_eq!(
        (failed.status, failed.reason.as_deref()),
        (PaymentStatus::Failed, Some("declined"))
    );
    assert_eq!(balance(store, "alice").await, 70, "returned");
    assert_eq!(
        balance(store, "alice").await + balance(store, "bob").await,
        200,
        "conserved"
    );
    assert!(
        store.payments(None, true, 10).await.unwrap().is_empty(),
        "all finished"
    );
    assert_eq!(
        store
            .payments(Some(PaymentStatus::Failed), false, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.credit(u("bob"), 5).await.unwrap(), 135);
}
