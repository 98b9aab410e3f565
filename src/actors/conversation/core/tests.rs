//! The delivery core driven directly, one rule per test (the randomized
//! test is in model.rs).

use super::model::{fixed_members, message, user, World};
use super::*;

fn core(cluster: bool) -> (Delivery, ConversationId) {
    let id = ConversationId::new_random();
    let mut core = Delivery::new(id, cluster, None);
    assert!(core.loaded(0, &fixed_members()).is_empty());
    (core, id)
}

fn seqs(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Deliver(m, _) => Some(m.seq),
            _ => None,
        })
        .collect()
}

fn fetch_of(actions: &[Action]) -> Option<(Ticket, Username, u64)> {
    actions.iter().find_map(|a| match a {
        Action::Fetch {
            ticket,
            member,
            after,
            ..
        } => Some((*ticket, member.clone(), *after)),
        _ => None,
    })
}

/// Seq 1 arrives, then `ahead` past a gap: the fetch the core asks for.
fn fetch_past_gap(core: &mut Delivery, id: ConversationId, ahead: u64) -> (Ticket, Username, u64) {
    core.remote(message(id, 1), TraceContext::random());
    let out = core.remote(message(id, ahead), TraceContext::random());
    fetch_of(&out).expect("a fetch for the gap")
}

fn reload_of(actions: &[Action]) -> Option<Ticket> {
    actions.iter().find_map(|a| match a {
        Action::Reload { ticket } => Some(*ticket),
        _ => None,
    })
}

fn page(messages: Vec<StoredMessage>) -> Fetched {
    Fetched::Page {
        messages,
        has_more: false,
    }
}

#[test]
fn one_node_delivers_its_commits_in_order() {
    let (mut core, id) = core(false);
    for seq in 1..=3 {
        let m = message(id, seq);
        core.appending(m.message_id);
        let out = core.committed(m.message_id, Commit::Fresh(m, TraceContext::random()));
        assert_eq!(seqs(&out), vec![seq]);
    }
    assert_eq!(core.delivered(), Some(3));
    assert!(!core.busy());
}

#[test]
fn a_failed_commit_delivers_nothing() {
    let (mut core, _) = core(false);
    let id = MessageId::new_v7();
    core.appending(id);
    assert!(core.committed(id, Commit::Failed).is_empty());
    assert_eq!(core.delivered(), None);
}

#[test]
fn a_publication_of_this_node_waits_for_its_ack() {
    let (mut core, id) = core(true);
    let m = message(id, 1);
    core.appending(m.message_id);
    // The channel overtakes the append's reply.
    assert!(seqs(&core.remote(m.clone(), TraceContext::random())).is_empty());
    assert_eq!(core.held(), 1);
    // In a cluster a fresh commit is not offered: the event delivers it.
    let out = core.committed(m.message_id, Commit::Fresh(m, TraceContext::random()));
    assert_eq!(seqs(&out), vec![1]);
}

#[test]
fn a_message_ahead_of_a_gap_is_held_and_the_gap_fetched() {
    let (mut core, id) = core(true);
    let log: Vec<_> = (1..=3).map(|s| message(id, s)).collect();
    assert_eq!(
        seqs(&core.remote(log[0].clone(), TraceContext::random())),
        vec![1]
    );
    let out = core.remote(log[2].clone(), TraceContext::random());
    assert!(seqs(&out).is_empty());
    let (ticket, member, after) = fetch_of(&out).expect("a fetch of the gap");
    assert_eq!((member, after), (user("bob"), 1));
    assert!(core.busy());
    let out = core.fetched(ticket, after, page(log[1..].to_vec()));
    assert_eq!(seqs(&out), vec![2, 3]);
    assert!(!core.busy());
    // The event of the fetched message comes late: not again.
    assert!(core
        .remote(log[1].clone(), TraceContext::random())
        .is_empty());
}

#[test]
fn a_failed_fetch_is_retried_after_a_pause() {
    let (mut core, id) = core(true);
    let (ticket, _, after) = fetch_past_gap(&mut core, id, 3);
    let out = core.fetched(ticket, after, Fetched::Failed);
    assert!(matches!(out[..], [Action::RetryLater]));
    let (_, _, again) = fetch_of(&core.retry()).expect("fetched again");
    assert_eq!(again, 1);
}

#[test]
fn a_fetch_for_a_member_who_left_reloads_the_membership_first() {
    let (mut core, id) = core(true);
    core.members_changed(&[user("aaron"), user("bob")]);
    let (ticket, member, after) = fetch_past_gap(&mut core, id, 3);
    assert_eq!(member, user("aaron"));
    let ticket = reload_of(&core.fetched(ticket, after, Fetched::NotMember)).expect("a reload");
    let out = core.reloaded(ticket, Reloaded::Members(fixed_members()));
    let (_, member, after) = fetch_of(&out).expect("then the fetch");
    assert_eq!((member, after), (user("bob"), 1));
}

#[test]
fn a_catch_up_reloads_then_fetches_after_the_last_delivered() {
    let (mut core, id) = core(true);
    core.remote(message(id, 1), TraceContext::random());
    let ticket = reload_of(&core.catch_up()).expect("the membership first");
    // A failed reload is retried.
    assert!(matches!(
        core.reloaded(ticket, Reloaded::Failed)[..],
        [Action::RetryLater]
    ));
    let ticket = reload_of(&core.retry()).expect("reloaded again");
    let (_, _, after) = fetch_of(&core.reloaded(ticket, Reloaded::Members(fixed_members())))
        .expect("then the fetch");
    assert_eq!(after, 1);
}

#[test]
fn a_catch_up_before_any_message_starts_at_the_load() {
    let id = ConversationId::new_random();
    let mut core = Delivery::new(id, true, None);
    core.loaded(7, &fixed_members());
    let ticket = reload_of(&core.catch_up()).unwrap();
    let (_, _, after) = fetch_of(&core.reloaded(ticket, Reloaded::Missing)).unwrap();
    assert_eq!(after, 7);
    // One node has no channel to catch up with.
    let (mut single, _) = self::core(false);
    assert!(single.catch_up().is_empty());
}

#[test]
fn the_first_event_starts_the_sequence_no_later_than_the_load() {
    let id = ConversationId::new_random();
    let mut core = Delivery::new(id, true, None);
    core.loaded(4, &fixed_members());
    // Committed before the load, its event already queued: delivered.
    assert_eq!(
        seqs(&core.remote(message(id, 3), TraceContext::random())),
        vec![3]
    );
    let mut core = Delivery::new(id, true, None);
    core.loaded(4, &fixed_members());
    // After the load: 5 and 6 came while it ran, so 5 is fetched.
    let out = core.remote(message(id, 7), TraceContext::random());
    assert_eq!(fetch_of(&out).map(|f| f.2), Some(4));
}

#[test]
fn an_answer_for_a_failed_incarnation_is_ignored() {
    let (mut core, id) = core(true);
    let (old, _, after) = fetch_past_gap(&mut core, id, 3);
    core.restarted();
    assert!(!core.busy(), "not loaded: nobody to deliver to");
    let out = core.loaded(3, &fixed_members());
    // A restarted actor in a cluster fetches at once.
    let (new, _, _) = fetch_of(&out).expect("fetched again");
    assert_ne!(old, new);
    assert!(core
        .fetched(old, after, page(vec![message(id, 2)]))
        .is_empty());
    let out = core.fetched(new, after, page(vec![message(id, 2), message(id, 3)]));
    assert_eq!(seqs(&out), vec![2, 3]);
}

#[test]
fn nothing_goes_out_before_the_load() {
    let id = ConversationId::new_random();
    let mut core = Delivery::new(id, false, Some(2));
    let m = message(id, 3);
    assert!(core
        .committed(m.message_id, Commit::Fresh(m, TraceContext::random()))
        .is_empty());
    assert_eq!(seqs(&core.loaded(3, &fixed_members())), vec![3]);
}

#[test]
fn a_resend_is_delivered_only_by_an_actor_that_knows_its_position() {
    let id = ConversationId::new_random();
    let old = message(id, 1);
    let mut fresh = Delivery::new(id, false, None);
    fresh.loaded(5, &fixed_members());
    assert!(fresh
        .committed(
            MessageId::new_v7(),
            Commit::Duplicate(old.clone(), TraceContext::random())
        )
        .is_empty());
    // A successor of an actor whose outcome was dropped delivers it.
    let mut successor = Delivery::new(id, false, Some(0));
    successor.loaded(1, &fixed_members());
    let out = successor.committed(
        MessageId::new_v7(),
        Commit::Duplicate(old, TraceContext::random()),
    );
    assert_eq!(seqs(&out), vec![1]);
}

#[test]
fn beyond_max_held_messages_are_fetched_later() {
    let (mut core, id) = core(true);
    core.remote(message(id, 1), TraceContext::random());
    let mut fetch = None;
    for seq in 3..(3 + MAX_HELD as u64 + 10) {
        fetch = fetch.or(fetch_of(
            &core.remote(message(id, seq), TraceContext::random()),
        ));
    }
    assert_eq!(core.held(), MAX_HELD);
    let (ticket, _, after) = fetch.unwrap();
    let out = core.fetched(ticket, after, page(vec![message(id, 2)]));
    assert_eq!(seqs(&out).len(), MAX_HELD + 1);
    // The ones left out are fetched next.
    assert_eq!(fetch_of(&out).map(|f| f.2), Some(MAX_HELD as u64 + 2));
}

#[test]
fn messages_missing_from_the_store_are_skipped() {
    let (mut core, id) = core(true);
    let (ticket, _, after) = fetch_past_gap(&mut core, id, 4);
    let out = core.fetched(ticket, after, page(vec![message(id, 3)]));
    assert_eq!(seqs(&out), vec![3, 4]);
}

#[test]
fn with_no_member_left_nothing_is_fetched() {
    let (mut core, id) = core(true);
    core.remote(message(id, 1), TraceContext::random());
    core.members_changed(&[]);
    assert!(core
        .remote(message(id, 3), TraceContext::random())
        .is_empty());
    assert_eq!(core.held(), 0);
    assert!(!core.busy());
}

#[test]
fn the_handover_leaves_the_position_and_asks_for_a_catch_up() {
    let (mut core, id) = core(true);
    // Nothing delivered yet: it owes what came after its load.
    assert_eq!(
        core.handover(),
        Handover {
            remember: Some(0),
            lagging: false
        }
    );
    assert_eq!(Delivery::new(id, true, None).handover().remember, None);
    core.remote(message(id, 1), TraceContext::random());
    core.remote(message(id, 3), TraceContext::random());
    assert_eq!(
        core.handover(),
        Handover {
            remember: Some(1),
            lagging: true
        }
    );
    let (mut single, id) = self::core(false);
    let m = message(id, 2);
    single.committed(m.message_id, Commit::Fresh(m, TraceContext::random()));
    // One node: no catch-up to ask for; the next message shows the gap.
    assert!(!single.handover().lagging);
}

#[test]
fn the_world_settles_after_a_restart_that_ate_an_event() {
    let mut w = World::new(true);
    w.commit_elsewhere();
    w.commit_here();
    w.restart(true);
    w.settle();
    w.assert_all_delivered();
}

/// Found by the randomized test: on one node, a successor fetching its
/// predecessor's gap read a message whose own outcome was still queued,
/// and the sender saw `message` before `ack`.
#[test]
fn one_node_a_fetched_message_waits_for_its_ack() {
    let mut w = World::new(false);
    w.commit_here();
    w.commit_here();
    w.answer_commit();
    // Stopped with the second outcome queued (its sender gets `internal`).
    w.replace();
    w.commit_here();
    w.answer_commit();
    // The gap fetch runs while the fourth append's outcome is queued.
    w.commit_here();
    w.answer_fetch(false);
    assert_eq!(w.delivered, vec![1, 2, 3]);
    w.answer_commit();
    assert_eq!(w.delivered, vec![1, 2, 3, 4]);
    w.settle();
    w.assert_all_delivered();
}

/// Found by the randomized test: an actor stopped while its gap fetch ran
/// left no catch-up behind, and its successor (loaded past the gap) never
/// fetched it.
#[test]
fn an_actor_stopped_mid_fetch_asks_for_a_catch_up() {
    let mut w = World::new(true);
    w.commit_elsewhere();
    // Its event crashes the actor; the restarted one starts a fetch.
    w.restart(true);
    w.replace();
    w.settle();
    w.assert_all_delivered();
}

/// Found by the randomized test: a page read before the gap after it was
/// committed (events delivered while it was read moved the gap on) was
/// taken for a store that lost the gap's messages, and they were skipped.
#[test]
fn a_page_read_before_the_gap_is_no_proof_of_lost_messages() {
    let (mut core, id) = core(true);
    core.remote(message(id, 1), TraceContext::random());
    let ticket = reload_of(&core.catch_up()).unwrap();
    let (ticket, _, after) =
        fetch_of(&core.reloaded(ticket, Reloaded::Members(fixed_members()))).unwrap();
    // Read now: the store has 2 to 5.
    let page_then: Vec<_> = (2..=5).map(|s| message(id, s)).collect();
    for m in &page_then {
        core.remote(m.clone(), TraceContext::random());
    }
    // 6 and 7 are committed, their events lost; 8 arrives.
    let out = core.remote(message(id, 8), TraceContext::random());
    assert!(seqs(&out).is_empty());
    let out = core.fetched(ticket, after, page(page_then));
    assert!(seqs(&out).is_empty(), "6 and 7 skipped");
    let (ticket, _, after) = fetch_of(&out).expect("read again");
    assert_eq!(after, 5);
    let out = core.fetched(
        ticket,
        after,
        page((6..=8).map(|s| message(id, s)).collect()),
    );
    assert_eq!(seqs(&out), vec![6, 7, 8]);
}

#[test]
fn a_whole_page_without_a_message_it_must_hold_skips_it() {
    let (mut core, id) = core(true);
    // 3 was committed before the fetch was issued: 2 was too.
    let (ticket, _, after) = fetch_past_gap(&mut core, id, 3);
    let out = core.fetched(ticket, after, page(Vec::new()));
    assert_eq!(seqs(&out), vec![3]);
}

/// Issue 16, 3(a): a fresh actor that restarts before its first event
/// starts no later than the first message routed to it, so the events of
/// messages committed between its start and its load are not skipped.
#[test]
fn a_fresh_actor_restarted_before_its_first_event_owes_what_was_routed_to_it() {
    let id = ConversationId::new_random();
    let mut core = Delivery::new(id, true, None);
    // Messages 3 and 4 were committed after the start, before the load.
    core.loaded(4, &fixed_members());
    // The event of 3 crashes the actor before it is handled.
    core.restarted();
    core.routed(Some(3));
    let out = core.loaded(4, &fixed_members());
    let (ticket, _, after) = fetch_of(&out).expect("fetched from before it");
    assert_eq!(after, 2);
    let out = core.fetched(ticket, after, page(vec![message(id, 3), message(id, 4)]));
    assert_eq!(seqs(&out), vec![3, 4]);
    // Its event, still queued, goes nowhere again.
    assert!(core
        .remote(message(id, 4), TraceContext::random())
        .is_empty());
}

/// Found in review: a restart that runs `stopped` first (a supervisor's
/// restart, not a panic) hands the router a position, which clears its
/// note; the restarted actor asks again, gets no note, and must still start
/// before the event it was routed.
#[test]
fn a_restart_that_cleared_the_routers_note_still_owes_what_was_routed() {
    let id = ConversationId::new_random();
    let mut core = Delivery::new(id, true, None);
    core.loaded(4, &fixed_members());
    core.routed(Some(3));
    core.restarted();
    core.routed(None);
    let out = core.loaded(4, &fixed_members());
    let (_, _, after) = fetch_of(&out).expect("fetched from before it");
    assert_eq!(after, 2);
}

#[test]
fn the_world_delivers_what_was_committed_before_the_load_after_a_restart() {
    let mut w = World::new_after(true, 2);
    w.restart(true);
    w.settle();
    w.assert_all_delivered();
}

/// Found by the randomized test with the change above undone: a catch-up
/// handled before the event of a message committed between the actor's
/// start and its load started the sequence past it.
#[test]
fn a_catch_up_ahead_of_a_routed_event_does_not_skip_it() {
    let mut w = World::new_after(true, 1);
    w.catch_up();
    w.settle();
    w.assert_all_delivered();
}

/// Found by the randomized test once it stopped actors that had delivered
/// nothing (and behind the flakiness of
/// `supervision::a_conversation_stopped_with_a_commit_queued_still_delivers_it`):
/// on one node such an actor left no position, so its successor, loaded
/// after the commit whose outcome was dropped, started past it.
#[test]
fn one_node_a_successor_delivers_what_a_stopped_actor_that_delivered_nothing_committed() {
    let mut w = World::new(false);
    w.commit_here();
    // Stopped with the outcome queued; the sender gets `internal`.
    w.replace();
    // The retry is acked as the stored message; then the next one.
    w.resend(0);
    w.answer_commit();
    w.commit_here();
    w.answer_commit();
    w.answer_fetch(false);
    assert_eq!(w.delivered, vec![1, 2]);
}
