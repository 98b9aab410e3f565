//! The store conformance suite: what every backend must do, written against
//! the `Store` handle only. Each check runs against SQLite and against Redis
//! (a real `redis-server` per test, skipped with the reason printed when it
//! is not installed and `CI` is unset); a backend adds its own `backend!`
//! line and must pass the same checks.

use std::time::Duration;

use futures_util::StreamExt;
use parley::config::Settings;
use parley::domain::{
    Conversation, ConversationId, ConversationKind, MessageId, MessageKind, PaymentId,
    PaymentStatus, SagaStep, SessionId, TraceId, Username,
};
use parley::store::redis::{ClusterEvent, EventKind, RedisOptions};
use parley::store::{
    Completion, HistoryQuery, InboxCursor, InboxQuery, Invitations, Join, Leave, NewGroup,
    NewInvitation, NewMessage, NewPayment, NewUser, Pair, PaymentFilter, Quota, SagaMove, Store,
    StoreError,
};
use tempfile::TempDir;

use crate::helpers::RedisServer;

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

/// `add_member` (at most `max` members) with a trace of its own.
async fn add(
    store: &Store,
    id: ConversationId,
    user: &str,
    max: usize,
) -> Result<Conversation, StoreError> {
    store
        .add_member(join(id, u(user), max, TraceId::random(), None))
        .await
}

// The store's requests, built from positional arguments as the checks
// below read best.
fn new_group(
    name: String,
    members: Vec<Username>,
    invite: Option<Invitations>,
    quota: Option<Quota>,
) -> NewGroup {
    NewGroup {
        name,
        members,
        invite,
        quota,
    }
}

fn new_invitation(
    id: ConversationId,
    user: Username,
    from: Username,
    max_pending: usize,
) -> NewInvitation {
    NewInvitation {
        id,
        user,
        from,
        max_pending,
    }
}

fn join(
    id: ConversationId,
    user: Username,
    max_members: usize,
    trace: TraceId,
    quota: Option<Quota>,
) -> Join {
    Join {
        id,
        user,
        max_members,
        trace,
        quota,
    }
}

fn leave(id: ConversationId, user: Username, trace: TraceId, session: Option<SessionId>) -> Leave {
    Leave {
        id,
        user,
        trace,
        session,
    }
}

fn new_payment(
    payer: Username,
    payee: Username,
    amount: i64,
    key: String,
    trace: TraceId,
) -> NewPayment {
    NewPayment {
        payer,
        payee,
        amount,
        key,
        trace,
    }
}

fn pair(a: Username, b: Username, quota: Option<Quota>) -> Pair {
    Pair { a, b, quota }
}

fn saga_move(id: PaymentId, to: SagaStep, reason: Option<String>) -> SagaMove {
    SagaMove { id, to, reason }
}

fn history_of(reader: Username, id: ConversationId, after_seq: u64, limit: u32) -> HistoryQuery {
    HistoryQuery {
        reader,
        id,
        after_seq,
        limit,
    }
}

/// `remove_member` with a trace of its own, from no session.
async fn remove(store: &Store, id: ConversationId, user: &str) -> Result<Conversation, StoreError> {
    store
        .remove_member(leave(id, u(user), TraceId::random(), None))
        .await
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

/// Appends "t1" to "t{count}" from `sender` (client ids "1" to "{count}").
async fn append_texts(store: &Store, conv: ConversationId, sender: &str, count: u64) {
    for i in 1..=count {
        store
            .append(msg(conv, sender, &i.to_string(), &format!("t{i}")))
            .await
            .unwrap();
    }
}

/// Accounts alice and bob and their direct conversation.
async fn alice_and_bob(store: &Store) -> parley::domain::Conversation {
    users(store, &["alice", "bob"]).await;
    store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap()
}

/// A fresh SQLite store in its own directory (kept alive with the store).
async fn sqlite() -> Option<(Store, TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = open_sqlite(&dir);
    Some((store, dir))
}

fn open_sqlite(dir: &TempDir) -> Store {
    let settings = Settings::from_sources("", &[]).unwrap();
    Store::open_sqlite(&dir.path().join("conformance.db"), &settings.storage, None).unwrap()
}

/// A Redis store on its own redis-server (the guard keeps the server
/// alive; dropping it kills the server), under a prefix of its own. None,
/// with the reason printed, when redis-server is not installed.
async fn redis() -> Option<(Store, RedisServer)> {
    let server = RedisServer::start()?;
    let store = Store::open_redis(redis_options(&server), None)
        .await
        .unwrap();
    Some((store, server))
}

fn redis_options(server: &RedisServer) -> RedisOptions {
    RedisOptions {
        url: server.url(),
        prefix: format!("t{:016x}:", rand::random::<u64>()),
        node: "node-a".into(),
        timeout: Duration::from_secs(2),
        node_ttl: Duration::from_secs(10),
    }
}

/// Each check as a test of this backend. An actix System, as in the
/// server: a Redis append runs on the arbiter it was made on.
macro_rules! backend {
    ($make:ident: $($check:ident),* $(,)?) => {
        $(
            #[actix_rt::test]
            async fn $check() {
                let Some((store, _guard)) = $make().await else {
                    return; // the maker printed why
                };
                super::$check(&store).await;
            }
        )*
    };
}

/// Each check every backend must pass, then the backend's own (`$extra`),
/// as tests of the backend `$make` makes.
macro_rules! every_check {
    ($make:ident: $($extra:ident),* $(,)?) => {
        backend!($make: accounts, direct_conversations, direct_conversation_is_race_free,
            groups_are_all_or_nothing, append_assigns_seq_and_dedups,
            completions_come_in_seq_order, history_pages_and_checks_membership, history_edges,
            membership_changes, conversations_list_in_creation_order,
            read_markers_only_move_forward, own_messages_are_read,
            conversations_list_every_members_marker, contacts, concurrent_appends_are_gap_free,
            payments_hold_move_and_return_money, payment_lookups_and_listing,
            invitations_wait_for_their_answer, invitations_are_bounded_and_atomic_with_groups,
            consent_and_the_quota_count_only_what_a_user_did, inbox_pages_by_last_activity,
            $($extra),*);
    };
}

mod sqlite_backend {
    use super::sqlite;
    every_check!(sqlite: shutdown_flushes_then_refuses);
}

/// Every check but `shutdown_flushes_then_refuses`: Redis buffers nothing
/// in the process, so its shutdown has nothing to flush and refuses nothing
/// (other nodes keep using the same Redis). `sqlite_data_survives_reopening`
/// is SQLite-only too; the Redis-only checks follow the shared ones.
mod redis_backend {
    use super::redis;
    every_check!(redis:);
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
    assert!(!rec.admin, "no account starts with admin rights");
    assert!(store.user(u("nobody")).await.unwrap().is_none());
    // Admin rights are granted and taken back; no one else has them.
    store.set_admin(u("alice"), true).await.unwrap();
    assert!(store.user(u("alice")).await.unwrap().unwrap().admin);
    store.set_admin(u("alice"), false).await.unwrap();
    assert!(!store.user(u("alice")).await.unwrap().unwrap().admin);
    let ghost = store.set_admin(u("nobody"), true).await;
    assert!(matches!(ghost, Err(StoreError::NotFound(_))), "{ghost:?}");
    store.ping().await.unwrap();
}

async fn direct_conversations(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let c1 = store
        .direct_conversation(pair(u("bob"), u("alice"), None))
        .await
        .unwrap();
    let c2 = store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    assert_eq!(c1.id, c2.id);
    assert_eq!(c1.kind, ConversationKind::Direct);
    assert_eq!(c1.members, vec![u("alice"), u("bob")]);
    let missing = store
        .direct_conversation(pair(u("alice"), u("ghost"), None))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
    assert_eq!(store.conversation(c1.id).await.unwrap(), Some(c1));
}

async fn groups_are_all_or_nothing(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let bad = store
        .create_group(new_group(
            "g".into(),
            vec![u("alice"), u("bob"), u("ghost")],
            None,
            None,
        ))
        .await;
    assert!(matches!(bad, Err(StoreError::NotFound(_))), "{bad:?}");
    assert!(
        store.conversations_of(u("alice")).await.unwrap().is_empty(),
        "nothing half-written"
    );
    let g = store
        .create_group(new_group(
            "g".into(),
            vec![u("bob"), u("alice"), u("bob")],
            None,
            None,
        ))
        .await
        .unwrap();
    assert_eq!(g.members, vec![u("alice"), u("bob")]);
    assert_eq!((g.kind, g.last_seq), (ConversationKind::Group, 0));
    assert_eq!(store.conversations_of(u("bob")).await.unwrap().len(), 1);
}

async fn append_assigns_seq_and_dedups(store: &Store) {
    let c = alice_and_bob(store).await;
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
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    append_texts(store, c.id, "alice", 5).await;
    let page = store
        .history(history_of(u("bob"), c.id, 0, 2))
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(page.has_more);
    let page = store
        .history(history_of(u("bob"), c.id, 3, 10))
        .await
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert!(!page.has_more);
    assert_eq!(page.messages[0].text, "t4");
    assert_eq!(page.conversation.id, c.id);
    assert!(matches!(
        store.history(history_of(u("eve"), c.id, 0, 10)).await,
        Err(StoreError::NotMember)
    ));
    let missing = store
        .history(history_of(u("bob"), ConversationId::new_random(), 0, 10))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound(_))));
}

async fn membership_changes(store: &Store) {
    users(store, &["alice", "bob", "carol"]).await;
    let g = store
        .create_group(new_group("g".into(), vec![u("alice")], None, None))
        .await
        .unwrap();
    let g2 = add(store, g.id, "bob", 10).await.unwrap();
    assert_eq!(g2.members, vec![u("alice"), u("bob")]);
    let twice = add(store, g.id, "bob", 10).await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))));
    let full = add(store, g.id, "carol", 2).await;
    assert!(matches!(full, Err(StoreError::BadRequest(_))));
    let ghost = add(store, g.id, "ghost", 10).await;
    assert!(matches!(ghost, Err(StoreError::NotFound(_))));
    let g3 = remove(store, g.id, "alice").await.unwrap();
    assert_eq!(g3.members, vec![u("bob")]);
    let not_member = remove(store, g.id, "alice").await;
    assert!(matches!(not_member, Err(StoreError::NotMember)));
    let d = store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    let into_direct = add(store, d.id, "carol", 10).await;
    assert!(matches!(into_direct, Err(StoreError::BadRequest(_))));
    let out_of_direct = remove(store, d.id, "bob").await;
    assert!(matches!(out_of_direct, Err(StoreError::BadRequest(_))));
}

async fn read_markers_only_move_forward(store: &Store) {
    users(store, &["alice", "bob", "eve"]).await;
    let c = store
        .direct_conversation(pair(u("alice"), u("bob"), None))
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

/// The marker of a conversation in `user`'s list.
async fn marker(store: &Store, user: &str, id: ConversationId) -> u64 {
    let list = store.conversations_of(u(user)).await.unwrap();
    let listed = list.iter().find(|s| s.conversation.id == id).unwrap();
    listed.last_read_seq
}

async fn own_messages_are_read(store: &Store) {
    let c = alice_and_bob(store).await;
    store.append(msg(c.id, "alice", "a1", "one")).await.unwrap();
    assert_eq!(
        marker(store, "alice", c.id).await,
        1,
        "the sender has read it"
    );
    assert_eq!(marker(store, "bob", c.id).await, 0, "the others have not");
    let payment = NewMessage {
        kind: MessageKind::Payment,
        ..msg(c.id, "bob", "p1", "paid")
    };
    store.append(payment).await.unwrap();
    assert_eq!(marker(store, "bob", c.id).await, 2, "a payment message too");
    assert_eq!(marker(store, "alice", c.id).await, 1);
    // A retry of a stored message moves nothing.
    store.set_read(c.id, u("alice"), 2).await.unwrap();
    store.append(msg(c.id, "alice", "a1", "one")).await.unwrap();
    assert_eq!(marker(store, "alice", c.id).await, 2);
    // Markers never go back: one set past an append stays.
    store.set_read(c.id, u("bob"), 9).await.unwrap();
    store.append(msg(c.id, "bob", "b2", "three")).await.unwrap();
    assert_eq!(marker(store, "bob", c.id).await, 9);
    store
        .append(msg(c.id, "alice", "a2", "four"))
        .await
        .unwrap();
    assert_eq!(marker(store, "alice", c.id).await, 4);
}

async fn conversations_list_every_members_marker(store: &Store) {
    users(store, &["alice", "bob", "carol"]).await;
    let g = store
        .create_group(new_group(
            "trio".into(),
            vec![u("alice"), u("bob"), u("carol")],
            None,
            None,
        ))
        .await
        .unwrap();
    for cmid in ["1", "2", "3"] {
        store.append(msg(g.id, "alice", cmid, "hi")).await.unwrap();
    }
    store.set_read(g.id, u("bob"), 2).await.unwrap();
    let expected: std::collections::BTreeMap<Username, u64> =
        [(u("alice"), 3), (u("bob"), 2), (u("carol"), 0)].into();
    for user in ["alice", "bob", "carol"] {
        let list = store.conversations_of(u(user)).await.unwrap();
        assert_eq!(list[0].read_by, expected, "as {user} sees it");
    }
    // A member who left is no longer listed.
    remove(store, g.id, "carol").await.unwrap();
    let list = store.conversations_of(u("alice")).await.unwrap();
    assert_eq!(
        list[0].read_by.keys().cloned().collect::<Vec<_>>(),
        vec![u("alice"), u("bob")]
    );
}

async fn contacts(store: &Store) {
    users(store, &["alice", "bob", "carol", "dave"]).await;
    store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    store
        .create_group(new_group(
            "g".into(),
            vec![u("alice"), u("carol"), u("bob")],
            None,
            None,
        ))
        .await
        .unwrap();
    let mut c = store.contacts_of(u("alice")).await.unwrap();
    c.sort();
    assert_eq!(c, vec![u("bob"), u("carol")]);
    assert!(store.contacts_of(u("dave")).await.unwrap().is_empty());
}

fn quota(user: &str, max: usize) -> Quota {
    Quota { user: u(user), max }
}

/// Whether `who` has consented to be added to groups by `inviter`.
async fn consents(store: &Store, inviter: &str, who: &str) -> bool {
    store.consenting(u(inviter), vec![u(who)]).await.unwrap() == vec![u(who)]
}

async fn consent_and_the_quota_count_only_what_a_user_did(store: &Store) {
    users(store, &["alice", "bob", "carol"]).await;
    // Alice messages bob: she started it, he did not.
    let d = store
        .direct_conversation(pair(u("alice"), u("bob"), Some(quota("alice", 2))))
        .await
        .unwrap();
    assert!(
        !consents(store, "alice", "bob").await,
        "a message he got is not consent"
    );
    assert!(
        consents(store, "bob", "alice").await,
        "she reached out to him"
    );
    assert_eq!(store.started_count(u("alice")).await.unwrap(), 1);
    assert_eq!(store.started_count(u("bob")).await.unwrap(), 0);
    // A group alice makes with bob in it counts for her, not for him.
    store
        .create_group(new_group(
            "g".into(),
            vec![u("alice"), u("bob")],
            None,
            Some(quota("alice", 2)),
        ))
        .await
        .unwrap();
    assert_eq!(store.started_count(u("bob")).await.unwrap(), 0);
    // Full: no new group or direct conversation for alice, in the same
    // transaction that would make it; the existing direct one is no new one.
    assert!(matches!(
        store
            .create_group(new_group(
                "h".into(),
                vec![u("alice")],
                None,
                Some(quota("alice", 2))
            ))
            .await,
        Err(StoreError::Forbidden(_))
    ));
    assert!(matches!(
        store
            .direct_conversation(pair(u("alice"), u("carol"), Some(quota("alice", 2))))
            .await,
        Err(StoreError::Forbidden(_))
    ));
    let again = store
        .direct_conversation(pair(u("bob"), u("alice"), Some(quota("alice", 2))))
        .await
        .unwrap();
    assert_eq!(again.id, d.id);
    assert_eq!(store.conversations_of(u("alice")).await.unwrap().len(), 2);
    // Bob is free to start his own.
    store
        .direct_conversation(pair(u("bob"), u("carol"), Some(quota("bob", 1))))
        .await
        .unwrap();
}

async fn invitations_wait_for_their_answer(store: &Store) {
    users(store, &["alice", "bob", "carol"]).await;
    let g = store
        .create_group(new_group("g".into(), vec![u("alice")], None, None))
        .await
        .unwrap();
    assert!(!consents(store, "alice", "bob").await);
    let (first, new) = store
        .invite(new_invitation(g.id, u("bob"), u("alice"), 10))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(
        (first.conversation.id, first.from.clone()),
        (g.id, u("alice"))
    );
    // Asked again: the pending one, nothing new.
    let (again, new) = store
        .invite(new_invitation(g.id, u("bob"), u("carol"), 10))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(again, first);
    // Not a membership: bob is in no conversation, and shares none.
    assert!(store.conversations_of(u("bob")).await.unwrap().is_empty());
    assert!(!consents(store, "alice", "bob").await);
    assert_eq!(
        store.invitations_of(u("bob")).await.unwrap(),
        vec![first.clone()]
    );
    assert_eq!(store.invitation(g.id, u("bob")).await.unwrap(), Some(first));
    // Accepting (a join of his own, within his quota) uses it up, once.
    let accept = || {
        store.add_member(join(
            g.id,
            u("bob"),
            10,
            TraceId::random(),
            Some(quota("bob", 10)),
        ))
    };
    accept().await.unwrap();
    assert_eq!(store.invitation(g.id, u("bob")).await.unwrap(), None);
    assert!(
        consents(store, "alice", "bob").await,
        "he joined a group of hers"
    );
    remove(store, g.id, "bob").await.unwrap();
    assert!(matches!(accept().await, Err(StoreError::NotFound(m)) if m.contains("invitation")));
    assert!(!consents(store, "alice", "bob").await);
    add(store, g.id, "bob", 10).await.unwrap();
    // A member is not invited; nor is a user who does not exist.
    assert!(matches!(
        store
            .invite(new_invitation(g.id, u("bob"), u("alice"), 10))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .invite(new_invitation(g.id, u("ghost"), u("alice"), 10))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Declined: gone, once.
    store
        .invite(new_invitation(g.id, u("carol"), u("alice"), 10))
        .await
        .unwrap();
    assert!(store.decline(g.id, u("carol")).await.unwrap());
    assert!(!store.decline(g.id, u("carol")).await.unwrap());
    assert!(store.invitations_of(u("carol")).await.unwrap().is_empty());
    // Direct conversations have no invitations.
    let d = store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    assert!(matches!(
        store
            .invite(new_invitation(d.id, u("carol"), u("alice"), 10))
            .await,
        Err(StoreError::BadRequest(_))
    ));
}

async fn invitations_are_bounded_and_atomic_with_groups(store: &Store) {
    users(store, &["mallory", "victim", "carol"]).await;
    let invite = |at: i64| Invitations {
        from: u("mallory"),
        to: vec![u("victim")],
        at,
        max_pending: 3,
    };
    let mut groups = Vec::new();
    for i in 0..5 {
        let g = store
            .create_group(new_group(
                format!("spam{i}"),
                vec![u("mallory")],
                Some(invite(1_000 + i)),
                None,
            ))
            .await
            .unwrap();
        assert_eq!(g.members, vec![u("mallory")], "invited, not a member");
        groups.push(g.id);
    }
    // The newest three, newest first.
    let pending: Vec<ConversationId> = store
        .invitations_of(u("victim"))
        .await
        .unwrap()
        .iter()
        .map(|i| i.conversation.id)
        .collect();
    assert_eq!(pending, vec![groups[4], groups[3], groups[2]]);
    assert!(store
        .conversations_of(u("victim"))
        .await
        .unwrap()
        .is_empty());
    // A missing invitee: no group, no invitation.
    let bad = Invitations {
        to: vec![u("carol"), u("ghost")],
        ..invite(2_000)
    };
    assert!(matches!(
        store
            .create_group(new_group("bad".into(), vec![u("mallory")], Some(bad), None))
            .await,
        Err(StoreError::NotFound(m)) if m.contains("ghost")
    ));
    assert!(store.invitations_of(u("carol")).await.unwrap().is_empty());
    assert_eq!(store.conversations_of(u("mallory")).await.unwrap().len(), 5);
}

async fn concurrent_appends_are_gap_free(store: &Store) {
    let c = alice_and_bob(store).await;
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
    let c = alice_and_bob(store).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..50 {
        let tx = tx.clone();
        store.append_then(
            msg(c.id, "alice", &i.to_string(), "x"),
            Completion::new(move |r| {
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
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    store.append(msg(c.id, "alice", "1", "kept")).await.unwrap();
    store.shutdown().await.unwrap();
    drop(store);
    let store = open_sqlite(&dir);
    let page = store
        .history(history_of(u("bob"), c.id, 0, 10))
        .await
        .unwrap();
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
        .create_payment(new_payment(u("alice"), u("bob"), 101, "k0".into(), t))
        .await;
    assert!(
        matches!(too_much, Err(StoreError::InsufficientFunds)),
        "{too_much:?}"
    );
    assert_eq!(balance(store, "alice").await, 100, "nothing held");
    let (p, existed) = store
        .create_payment(new_payment(u("alice"), u("bob"), 30, "k1".into(), t))
        .await
        .unwrap();
    assert!(!existed);
    assert_eq!(
        (p.status, p.step),
        (PaymentStatus::Pending, SagaStep::Reserved)
    );
    assert_eq!(balance(store, "alice").await, 70, "held");
    let (again, existed) = store
        .create_payment(new_payment(u("alice"), u("bob"), 30, "k1".into(), t))
        .await
        .unwrap();
    assert!(existed);
    assert_eq!(again.id, p.id);
    let other = store
        .create_payment(new_payment(u("alice"), u("bob"), 31, "k1".into(), t))
        .await;
    assert!(matches!(other, Err(StoreError::Conflict(_))), "{other:?}");
    assert!(matches!(
        store
            .advance_payment(saga_move(p.id, SagaStep::Done, None))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .advance_payment(saga_move(p.id, SagaStep::Charging, None))
        .await
        .unwrap();
    let credited = store
        .advance_payment(saga_move(p.id, SagaStep::Credited, None))
        .await
        .unwrap();
    assert_eq!(credited.step, SagaStep::Credited);
    // Repeating a step (a resumed saga) moves no money twice.
    store
        .advance_payment(saga_move(p.id, SagaStep::Credited, None))
        .await
        .unwrap();
    assert_eq!(balance(store, "bob").await, 130);
    let done = store
        .advance_payment(saga_move(p.id, SagaStep::Done, None))
        .await
        .unwrap();
    assert_eq!(done.status, PaymentStatus::Completed);

    let (q, _) = store
        .create_payment(new_payment(u("alice"), u("bob"), 20, "k2".into(), t))
        .await
        .unwrap();
    assert_eq!(balance(store, "alice").await, 50);
    let failed = store
        .advance_payment(saga_move(q.id, SagaStep::Released, Some("declined".into())))
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
        store
            .payments(PaymentFilter {
                status: None,
                unfinished: true,
                limit: 10
            })
            .await
            .unwrap()
            .is_empty(),
        "all finished"
    );
    assert_eq!(
        store
            .payments(PaymentFilter {
                status: Some(PaymentStatus::Failed),
                unfinished: false,
                limit: 10
            })
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.credit(u("bob"), 5).await.unwrap(), 135);
}

async fn direct_conversation_is_race_free(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let (a, b) = if i % 2 == 0 {
            ("alice", "bob")
        } else {
            ("bob", "alice")
        };
        tasks.push(tokio::spawn(async move {
            store
                .direct_conversation(pair(u(a), u(b), None))
                .await
                .unwrap()
                .id
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one conversation: {ids:?}"
    );
    assert_eq!(store.conversations_of(u("alice")).await.unwrap().len(), 1);
}

/// `append_then` completions run in commit order: forwarded to a mailbox,
/// they arrive in seq order.
async fn completions_come_in_seq_order(store: &Store) {
    let c = alice_and_bob(store).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..200 {
        let tx = tx.clone();
        store.append_then(
            msg(c.id, "alice", &format!("o{i}"), "x"),
            Completion::new(move |r| {
                let _ = tx.send(r.map(|o: parley::store::AppendOutcome| o.message.seq));
            }),
        );
    }
    drop(tx);
    let mut seqs = Vec::new();
    while let Some(r) = rx.recv().await {
        seqs.push(r.unwrap());
    }
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
}

async fn history_edges(store: &Store) {
    users(store, &["alice", "bob", "eve"]).await;
    let c = store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    let empty = store
        .history(history_of(u("alice"), c.id, 0, 10))
        .await
        .unwrap();
    assert!(empty.messages.is_empty() && !empty.has_more);
    append_texts(store, c.id, "bob", 3).await;
    let none = store
        .history(history_of(u("alice"), c.id, 0, 0))
        .await
        .unwrap();
    assert!(none.messages.is_empty() && none.has_more);
    let exact = store
        .history(history_of(u("alice"), c.id, 1, 2))
        .await
        .unwrap();
    assert_eq!(
        exact.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(!exact.has_more);
    assert_eq!(exact.conversation.last_seq, 3);
    let past = store
        .history(history_of(u("alice"), c.id, u64::MAX, 10))
        .await
        .unwrap();
    assert!(past.messages.is_empty() && !past.has_more);
    assert!(matches!(
        store
            .history(history_of(u("eve"), c.id, u64::MAX, 10))
            .await,
        Err(StoreError::NotMember)
    ));
}

fn inbox(user: &str, limit: u32, before: Option<InboxCursor>) -> InboxQuery {
    InboxQuery {
        user: u(user),
        limit,
        before,
    }
}

/// The inbox: newest activity first (the last message's time, else the
/// creation's), ties by conversation id; pages that follow each other with
/// the last item's cursor list every conversation once.
async fn inbox_pages_by_last_activity(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let mut groups = Vec::new();
    for i in 0..5 {
        let members = vec![u("alice"), u("bob")];
        let g = store
            .create_group(new_group(format!("g{i}"), members, None, None))
            .await
            .unwrap();
        groups.push(g.id);
    }
    // Two conversations active in the same millisecond, after every creation.
    let later = parley::domain::now_ms() + 86_400_000;
    for (g, cmid) in [(groups[1], "a"), (groups[3], "b")] {
        let m = NewMessage {
            sent_at: later,
            ..msg(g, "bob", cmid, "hi")
        };
        store.append(m).await.unwrap();
    }
    let all = store.inbox(inbox("alice", 200, None)).await.unwrap();
    assert!(!all.has_more);
    let order: Vec<_> = all
        .items
        .iter()
        .map(|s| (s.updated_at, s.conversation.id))
        .collect();
    let mut expected = order.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(order, expected, "newest activity first, ties by id");
    assert_eq!(order.len(), 5);
    let mut tied = vec![groups[1], groups[3]];
    tied.sort_by_key(|id| std::cmp::Reverse(id.to_string()));
    assert_eq!(vec![order[0].1, order[1].1], tied);
    assert_eq!((order[0].0, order[1].0), (later, later));
    assert_eq!(all.items[0].conversation.last_seq, 1);
    assert_eq!(
        all.items[0].last_read_seq, 0,
        "bob's message is unread for alice"
    );
    // Two at a time with the last item's cursor: every one once, in order.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store.inbox(inbox("alice", 2, before)).await.unwrap();
        assert!(page.items.len() <= 2);
        paged.extend(page.items.iter().map(|s| (s.updated_at, s.conversation.id)));
        let Some(last) = page.items.last() else { break };
        before = Some(InboxCursor {
            updated_at: last.updated_at,
            id: Some(last.conversation.id),
        });
        if !page.has_more {
            break;
        }
    }
    assert_eq!(paged, order);
    // Without the id a cursor skips the whole millisecond.
    let past_tie = InboxCursor {
        updated_at: later,
        id: None,
    };
    let rest = store
        .inbox(inbox("alice", 200, Some(past_tie)))
        .await
        .unwrap();
    let rest: Vec<_> = rest.items.iter().map(|s| s.conversation.id).collect();
    assert_eq!(rest, order[2..].iter().map(|o| o.1).collect::<Vec<_>>());
    // Exactly a page: nothing more. Only the user's own conversations.
    let exact = store.inbox(inbox("alice", 5, None)).await.unwrap();
    assert_eq!((exact.items.len(), exact.has_more), (5, false));
    remove(store, groups[4], "bob").await.unwrap();
    let bobs = store.inbox(inbox("bob", 200, None)).await.unwrap();
    assert_eq!(bobs.items.len(), 4);
    assert!(bobs.items.iter().all(|s| s.conversation.id != groups[4]));
    let none = store.inbox(inbox("nobody", 10, None)).await.unwrap();
    assert!(none.items.is_empty() && !none.has_more);
}

async fn conversations_list_in_creation_order(store: &Store) {
    users(store, &["alice", "bob", "carol"]).await;
    let mut made = Vec::new();
    for name in ["first", "second", "third"] {
        let g = store
            .create_group(new_group(
                name.into(),
                vec![u("alice"), u("bob")],
                None,
                None,
            ))
            .await
            .unwrap();
        made.push(g.id);
        // created_at has millisecond resolution.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let d = store
        .direct_conversation(pair(u("carol"), u("alice"), None))
        .await
        .unwrap();
    made.push(d.id);
    let listed = store.conversations_of(u("alice")).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.conversation.id).collect::<Vec<_>>(),
        made
    );
    assert_eq!(listed[3].conversation.name, "alice,carol");
    assert!(listed.iter().all(|s| s.last_read_seq == 0));
    // Leaving drops the conversation from the list; the rest keep their order.
    remove(store, made[1], "alice").await.unwrap();
    let listed = store.conversations_of(u("alice")).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.conversation.id).collect::<Vec<_>>(),
        vec![made[0], made[2], made[3]]
    );
    assert_eq!(store.conversations_of(u("bob")).await.unwrap().len(), 3);
    assert!(store
        .conversations_of(u("nobody"))
        .await
        .unwrap()
        .is_empty());
}

async fn payment_lookups_and_listing(store: &Store) {
    users(store, &["alice", "bob"]).await;
    let t = TraceId::random();
    let mut made = Vec::new();
    for k in ["a", "b", "c"] {
        let (p, _) = store
            .create_payment(new_payment(u("alice"), u("bob"), 10, k.into(), t))
            .await
            .unwrap();
        assert_eq!((p.idempotency_key.as_str(), p.trace_id), (k, t));
        made.push(p);
    }
    let newest: Vec<_> = store
        .payments(PaymentFilter {
            status: None,
            unfinished: false,
            limit: 2,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(newest, vec![made[2].id, made[1].id], "newest first");
    assert!(store
        .payments(PaymentFilter {
            status: None,
            unfinished: false,
            limit: 0
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.payment(made[0].id).await.unwrap(),
        Some(made[0].clone())
    );
    assert_eq!(
        store
            .payment_by_key(u("alice"), "b".into())
            .await
            .unwrap()
            .map(|p| p.id),
        Some(made[1].id)
    );
    assert!(store
        .payment_by_key(u("bob"), "b".into())
        .await
        .unwrap()
        .is_none());
    assert!(store.payment(PaymentId::new_v7()).await.unwrap().is_none());
    assert!(matches!(
        store
            .advance_payment(saga_move(PaymentId::new_v7(), SagaStep::Charging, None))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .create_payment(new_payment(u("alice"), u("ghost"), 10, "g".into(), t))
            .await,
        Err(StoreError::NotFound(_))
    ));
    // A refund path: reserved -> refunding -> released, reason kept.
    store
        .advance_payment(saga_move(
            made[0].id,
            SagaStep::Refunding,
            Some("timeout".into()),
        ))
        .await
        .unwrap();
    let released = store
        .advance_payment(saga_move(made[0].id, SagaStep::Released, None))
        .await
        .unwrap();
    assert_eq!(
        (released.status, released.reason.as_deref()),
        (PaymentStatus::Failed, Some("timeout"))
    );
    assert!(released.updated_at >= released.created_at);
    assert!(matches!(
        store
            .advance_payment(saga_move(made[0].id, SagaStep::Charging, None))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let unfinished: Vec<_> = store
        .payments(PaymentFilter {
            status: None,
            unfinished: true,
            limit: 10,
        })
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(unfinished, vec![made[2].id, made[1].id]);
    assert_eq!(
        store
            .payments(PaymentFilter {
                status: Some(PaymentStatus::Pending),
                unfinished: false,
                limit: 10
            })
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(balance(store, "alice").await, 80, "two held, one returned");
    assert!(matches!(
        store.credit(u("ghost"), 5).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.credit(u("alice"), -81).await,
        Err(StoreError::InsufficientFunds)
    ));
    assert_eq!(store.credit(u("alice"), -80).await.unwrap(), 0);
}

// ---- Redis only ----

async fn next_event(events: &mut ::redis::aio::PubSubStream) -> ClusterEvent {
    let m = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event within 5 s")
        .expect("the subscription is open");
    let payload: String = m.get_payload().unwrap();
    ClusterEvent::from_json(&payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
}

/// The append script publishes the message event itself, in the wire
/// format `ClusterEvent::from_json` reads; a duplicate publishes nothing.
/// On a multi-threaded tokio runtime (no actix System): `append_then`
/// must work there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_append_publishes_the_message_event() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = redis_options(&server);
    let channel = format!("{}events", options.prefix);
    let store = Store::open_redis(options, None).await.unwrap();
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(&channel).await.unwrap();
    let mut events = pubsub.into_on_message();
    users(&store, &["alice", "bob"]).await;
    let c = store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    let mut first = msg(c.id, "alice", "e1", "héllo \"there\"\n\\ / \u{1}");
    // Past cjson's 14 significant digits: the script must write it exactly.
    first.sent_at = 123_456_789_012_345_678;
    first.kind = MessageKind::Payment;
    let stored = store.append(first.clone()).await.unwrap();
    let event = next_event(&mut events).await;
    assert_eq!(event.node, "node-a");
    assert_eq!(event.trace, first.trace_id);
    match &event.what {
        EventKind::Message(m) => {
            assert_eq!(m, &stored.message);
            assert_eq!((m.seq, m.message_id), (1, first.message_id));
            assert_eq!(
                (m.text.as_str(), m.sent_at),
                (first.text.as_str(), first.sent_at)
            );
        }
        other => panic!("not a message event: {other:?}"),
    }
    let page = store
        .history(history_of(u("bob"), c.id, 0, 10))
        .await
        .unwrap();
    assert_eq!(page.messages, vec![stored.message.clone()]);

    let again = store
        .append(msg(c.id, "alice", "e1", "again"))
        .await
        .unwrap();
    assert!(again.duplicate);
    let second = store.append(msg(c.id, "bob", "e2", "two")).await.unwrap();
    let event = next_event(&mut events).await;
    match event.what {
        EventKind::Message(m) => {
            assert_eq!(m.seq, 2, "the duplicate published nothing");
            assert_eq!(m, second.message);
        }
        other => panic!("not a message event: {other:?}"),
    }
}

/// Two nodes on one Redis (same prefix) see one set of data: the same
/// direct conversation, one seq counter, one dedup record.
#[actix_rt::test]
async fn redis_nodes_share_one_store() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let a_options = redis_options(&server);
    let b_options = RedisOptions {
        node: "node-b".into(),
        ..a_options.clone()
    };
    let a = Store::open_redis(a_options, None).await.unwrap();
    let b = Store::open_redis(b_options, None).await.unwrap();
    users(&a, &["alice", "bob"]).await;
    let (ca, cb) = tokio::join!(
        a.direct_conversation(pair(u("alice"), u("bob"), None)),
        b.direct_conversation(pair(u("bob"), u("alice"), None))
    );
    let (ca, cb) = (ca.unwrap(), cb.unwrap());
    assert_eq!(ca.id, cb.id);
    let m = msg(ca.id, "alice", "x", "once");
    let first = a.append(m.clone()).await.unwrap();
    let retried = b.append(m).await.unwrap();
    assert!(retried.duplicate);
    assert_eq!(retried.message, first.message);
    assert_eq!(
        b.append(msg(ca.id, "bob", "y", "next"))
            .await
            .unwrap()
            .message
            .seq,
        2
    );
}

/// What Redis holds is not trusted: a malformed value is a `Backend` error
/// naming it, and a non-member cannot append.
#[actix_rt::test]
async fn redis_malformed_values_are_backend_errors() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let options = redis_options(&server);
    let prefix = options.prefix.clone();
    let store = Store::open_redis(options, None).await.unwrap();
    users(&store, &["alice", "bob", "eve"]).await;
    let c = store
        .direct_conversation(pair(u("alice"), u("bob"), None))
        .await
        .unwrap();
    assert!(matches!(
        store.append(msg(c.id, "eve", "1", "sneaky")).await,
        Err(StoreError::NotMember)
    ));
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = ::redis::cmd("HSET")
        .arg(format!("{prefix}user:alice"))
        .arg("balance")
        .arg("lots")
        .query_async(&mut conn)
        .await
        .unwrap();
    let bad = store.user(u("alice")).await;
    assert!(
        matches!(&bad, Err(StoreError::Backend { reason, .. }) if reason.contains("balance")),
        "{bad:?}"
    );
    let _: () = ::redis::cmd("HSET")
        .arg(format!("{prefix}conv:{}", c.id))
        .arg("kind")
        .arg("triangle")
        .query_async(&mut conn)
        .await
        .unwrap();
    let bad = store.conversation(c.id).await;
    assert!(
        matches!(&bad, Err(StoreError::Backend { reason, .. }) if reason.contains("kind")),
        "{bad:?}"
    );
}
