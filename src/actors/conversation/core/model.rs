//! A model world around the delivery core, for its unit and randomized
//! tests: a store (the committed log and the membership), the cluster
//! channel, this node's pending commit outcomes, and the sessions' view of
//! what was delivered. It plays the conversation actor: it feeds the core
//! events and carries out its actions, checking each delivery as it goes.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::domain::{MessageKind, TraceId};

/// The model store's page size (the core asks for `FETCH_PAGE`).
const SHORT_PAGE: usize = 3;

pub(super) fn user(name: &str) -> Username {
    Username::parse(name).expect("a valid test username")
}

/// `bob` and `dave` stay members throughout; `aaron` (first in order, so
/// the member fetches are read for) joins and leaves.
pub(super) fn fixed_members() -> Vec<Username> {
    vec![user("bob"), user("dave")]
}

pub(super) fn message(conversation_id: ConversationId, seq: u64) -> StoredMessage {
    StoredMessage {
        conversation_id,
        message_id: MessageId::new_v7(),
        seq,
        sender: user("bob"),
        client_msg_id: format!("c{seq}"),
        kind: MessageKind::Text,
        text: format!("message {seq}"),
        sent_at: 0,
        trace_id: TraceId::random(),
    }
}

/// An event on the cluster channel, not yet handed to the conversation.
#[derive(Debug, Clone)]
enum ChannelEvent {
    Message(u64),
    Joined(Username),
    Left(Username),
}

/// What the store answers a pending commit with.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Fresh(u64),
    Duplicate(u64),
    Failed,
}

pub(super) struct World {
    pub id: ConversationId,
    pub cluster: bool,
    pub core: Delivery,
    /// The committed log: `log[i]` has seq `i + 1`.
    pub log: Vec<StoredMessage>,
    pub store_members: Vec<Username>,
    /// The conversation actor's own membership (its `Conversation`).
    actor_members: Vec<Username>,
    channel: Vec<ChannelEvent>,
    commits: VecDeque<(MessageId, Outcome)>,
    fetch: Option<(Ticket, Username, u64, u32)>,
    reload: Option<Ticket>,
    retry: bool,
    /// An event was lost: the router (a refused event) or the channel (a
    /// reconnect) asks for a catch-up.
    lagging: bool,
    /// Appends of this node whose ack has not been sent.
    unacked: HashSet<MessageId>,
    /// Seqs delivered, in delivery order.
    pub delivered: Vec<u64>,
    /// The router's note of the first message event routed to the actor.
    first_routed: Option<u64>,
}

impl World {
    /// A conversation loaded before its first message.
    pub fn new(cluster: bool) -> World {
        World::new_after(cluster, 0)
    }

    /// Cluster mode: `before` messages were committed elsewhere between the
    /// actor's start and its load; their events are in its mailbox.
    pub fn new_after(cluster: bool, before: usize) -> World {
        let id = ConversationId::new_random();
        let members = fixed_members();
        let mut world = World {
            id,
            cluster,
            core: Delivery::new(id, cluster, None),
            log: Vec::new(),
            store_members: members.clone(),
            actor_members: members,
            channel: Vec::new(),
            commits: VecDeque::new(),
            fetch: None,
            reload: None,
            retry: false,
            lagging: false,
            unacked: HashSet::new(),
            delivered: Vec::new(),
            first_routed: None,
        };
        if cluster {
            for _ in 0..before {
                world.store_append();
            }
            if before > 0 {
                world.first_routed = Some(1);
            }
        }
        world.load();
        world
    }

    fn last_seq(&self) -> u64 {
        self.log.len() as u64
    }

    fn load(&mut self) {
        self.actor_members = self.store_members.clone();
        self.note_routed();
        let actions = self.core.loaded(self.last_seq(), &self.store_members);
        self.apply(actions);
    }

    fn store_append(&mut self) -> u64 {
        let seq = self.last_seq() + 1;
        self.log.push(message(self.id, seq));
        if self.cluster {
            self.channel.push(ChannelEvent::Message(seq));
        }
        seq
    }

    /// Another node commits a message (cluster mode).
    pub fn commit_elsewhere(&mut self) {
        if self.cluster {
            self.store_append();
        }
    }

    /// This node sends a message; the store commits it now, its outcome
    /// comes back later (`answer_commit`).
    pub fn commit_here(&mut self) {
        let seq = self.store_append();
        let id = self.log[seq as usize - 1].message_id;
        self.core.appending(id);
        self.unacked.insert(id);
        self.commits.push_back((id, Outcome::Fresh(seq)));
    }

    /// This node resends an earlier message (a retry after `internal`).
    pub fn resend(&mut self, pick: usize) {
        if self.log.is_empty() {
            return;
        }
        let seq = (pick % self.log.len()) as u64 + 1;
        let id = MessageId::new_v7();
        self.core.appending(id);
        self.commits.push_back((id, Outcome::Duplicate(seq)));
    }

    /// This node sends a message the store fails to commit.
    pub fn fail_here(&mut self) {
        let id = MessageId::new_v7();
        self.core.appending(id);
        self.commits.push_back((id, Outcome::Failed));
    }

    pub fn answer_commit(&mut self) {
        let Some((id, outcome)) = self.commits.pop_front() else {
            return;
        };
        self.unacked.remove(&id);
        let trace = TraceContext::random();
        let commit = match outcome {
            Outcome::Fresh(seq) => Commit::Fresh(self.log[seq as usize - 1].clone(), trace),
            Outcome::Duplicate(seq) => Commit::Duplicate(self.log[seq as usize - 1].clone(), trace),
            Outcome::Failed => Commit::Failed,
        };
        let actions = self.core.committed(id, commit);
        self.apply(actions);
    }

    fn take_event(&mut self, pick: usize, keep: bool) -> Option<ChannelEvent> {
        if self.channel.is_empty() {
            return None;
        }
        let at = pick % self.channel.len();
        Some(if keep {
            self.channel[at].clone()
        } else {
            self.channel.remove(at)
        })
    }

    /// Hands the conversation a channel event (`pick` 0: the next in order).
    pub fn event(&mut self, pick: usize, duplicate: bool) {
        let Some(event) = self.take_event(pick, duplicate) else {
            return;
        };
        match event {
            ChannelEvent::Message(seq) => {
                self.first_routed.get_or_insert(seq);
                self.note_routed();
                let m = self.log[seq as usize - 1].clone();
                let actions = self.core.remote(m, TraceContext::random());
                self.apply(actions);
            }
            ChannelEvent::Joined(u) => {
                if let Err(at) = self.actor_members.binary_search(&u) {
                    self.actor_members.insert(at, u);
                }
                self.core.members_changed(&self.actor_members);
            }
            ChannelEvent::Left(u) => {
                if let Ok(at) = self.actor_members.binary_search(&u) {
                    self.actor_members.remove(at);
                }
                self.core.members_changed(&self.actor_members);
            }
        }
    }

    /// An event lost: refused at the conversation's full mailbox (the
    /// router noted it), or, after the load, lost on the channel (then the
    /// note makes no difference: the next event shows the gap).
    pub fn drop_event(&mut self, pick: usize) {
        if let Some(event) = self.take_event(pick, false) {
            if let ChannelEvent::Message(seq) = event {
                self.first_routed.get_or_insert(seq);
            }
            self.lagging = true;
        }
    }

    /// What the actor does before `loaded`, `remote` and `catch_up`.
    fn note_routed(&mut self) {
        if self.core.delivered().is_none() {
            self.core.routed(self.first_routed);
        }
    }

    /// `aaron` joins or leaves on another node.
    pub fn toggle_aaron(&mut self) {
        if !self.cluster {
            return;
        }
        let aaron = user("aaron");
        match self.store_members.binary_search(&aaron) {
            Ok(at) => {
                self.store_members.remove(at);
                self.channel.push(ChannelEvent::Left(aaron));
            }
            Err(at) => {
                self.store_members.insert(at, aaron.clone());
                self.channel.push(ChannelEvent::Joined(aaron));
            }
        }
    }

    pub fn catch_up(&mut self) {
        self.lagging = false;
        self.note_routed();
        let actions = self.core.catch_up();
        self.apply(actions);
    }

    /// Answers the running fetch from the store (or fails it).
    pub fn answer_fetch(&mut self, fail: bool) {
        let Some((ticket, member, after, limit)) = self.fetch.take() else {
            return;
        };
        let fetched = if fail {
            Fetched::Failed
        } else if !self.store_members.contains(&member) {
            Fetched::NotMember
        } else {
            // Pages far shorter than asked, so that short runs page too.
            let limit = (limit as usize).min(SHORT_PAGE);
            let rest: Vec<StoredMessage> = self.log.iter().skip(after as usize).cloned().collect();
            let has_more = rest.len() > limit;
            Fetched::Page {
                messages: rest.into_iter().take(limit).collect(),
                has_more,
            }
        };
        let actions = self.core.fetched(ticket, after, fetched);
        self.apply(actions);
    }

    pub fn answer_reload(&mut self, fail: bool) {
        let Some(ticket) = self.reload.take() else {
            return;
        };
        let reloaded = if fail {
            Reloaded::Failed
        } else {
            self.actor_members = self.store_members.clone();
            Reloaded::Members(self.store_members.clone())
        };
        let actions = self.core.reloaded(ticket, reloaded);
        self.apply(actions);
    }

    pub fn retry(&mut self) {
        if std::mem::take(&mut self.retry) {
            let actions = self.core.retry();
            self.apply(actions);
        }
    }

    /// The actor panics on the next channel event (`crash_on_event`: the
    /// event is lost with it) or elsewhere; the supervisor restarts it.
    /// Its spawned reads and timers end with the failed incarnation.
    pub fn restart(&mut self, crash_on_event: bool) {
        if crash_on_event {
            // Lost with the panic; the restarted actor fetches it.
            if let Some(ChannelEvent::Message(seq)) = self.take_event(0, false) {
                self.first_routed.get_or_insert(seq);
            }
        }
        if self.core.handover().lagging {
            self.lagging = true;
        }
        self.core.restarted();
        self.fetch = None;
        self.reload = None;
        self.retry = false;
        self.load();
    }

    /// The actor is stopped (a `stop` fault drops its queued commit
    /// outcomes) and a successor takes over from where it left off.
    pub fn replace(&mut self) {
        self.note_routed();
        let handover = self.core.handover();
        if handover.lagging {
            self.lagging = true;
        }
        for (id, _) in self.commits.drain(..) {
            // The sender is answered `internal`; the message may be stored.
            self.unacked.remove(&id);
        }
        self.core = Delivery::new(self.id, self.cluster, handover.remember);
        if handover.remember.is_some() {
            self.first_routed = None;
        } else {
            // Events queued now are routed to the successor (Redis keeps
            // their order) before any later one.
            let queued = self.channel.iter().filter_map(|e| match e {
                ChannelEvent::Message(seq) => Some(*seq),
                _ => None,
            });
            self.first_routed = self.first_routed.into_iter().chain(queued).min();
        }
        self.fetch = None;
        self.reload = None;
        self.retry = false;
        self.load();
    }

    /// Everything in flight is answered and every event handed over, the
    /// way the actor and the router would eventually do it.
    pub fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.channel.is_empty() {
                self.event(0, false);
            } else if !self.commits.is_empty() {
                self.answer_commit();
            } else if self.lagging {
                self.catch_up();
            } else if self.reload.is_some() {
                self.answer_reload(false);
            } else if self.fetch.is_some() {
                self.answer_fetch(false);
            } else if self.retry {
                self.retry();
            } else if !self.cluster && self.delivered.len() < self.log.len() {
                // One node: a successor delivers what its predecessor's
                // dropped outcomes left out when its next message shows
                // the gap.
                self.commit_here();
            } else {
                return;
            }
        }
        panic!("the world does not settle");
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Deliver(m, _) => self.deliver(m),
                Action::Fetch {
                    ticket,
                    member,
                    after,
                    limit,
                } => {
                    assert!(
                        self.fetch.is_none() && self.reload.is_none(),
                        "two reads at once"
                    );
                    self.fetch = Some((ticket, member, after, limit));
                }
                Action::Reload { ticket } => {
                    assert!(
                        self.fetch.is_none() && self.reload.is_none(),
                        "two reads at once"
                    );
                    self.reload = Some(ticket);
                }
                Action::RetryLater => self.retry = true,
            }
        }
    }

    fn deliver(&mut self, m: StoredMessage) {
        let Some(stored) = self.log.get((m.seq as usize).wrapping_sub(1)) else {
            panic!("seq {} delivered but never committed", m.seq);
        };
        assert_eq!(
            stored.message_id, m.message_id,
            "seq {} is another message",
            m.seq
        );
        let expected = self.delivered.last().map_or(1, |l| l + 1);
        assert_eq!(
            m.seq, expected,
            "delivered out of order or twice: {:?}",
            self.delivered
        );
        assert!(
            !self.unacked.contains(&m.message_id),
            "seq {} delivered before its ack",
            m.seq
        );
        self.delivered.push(m.seq);
    }

    /// Every committed seq went out once, in order (checked as delivered).
    pub fn assert_all_delivered(&self) {
        let all: Vec<u64> = (1..=self.last_seq()).collect();
        assert_eq!(self.delivered, all);
        assert!(!self.core.busy(), "settled but still busy: {:?}", self.core);
    }
}

#[derive(Debug, Clone)]
pub(super) enum Op {
    CommitElsewhere,
    CommitHere,
    Resend(usize),
    FailHere,
    AnswerCommit,
    Event(usize),
    DuplicateEvent(usize),
    DropEvent(usize),
    ToggleAaron,
    CatchUp,
    AnswerFetch { fail: bool },
    AnswerReload { fail: bool },
    Retry,
    Restart { crash_on_event: bool },
    Replace,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::CommitElsewhere),
        3 => Just(Op::CommitHere),
        1 => any::<usize>().prop_map(Op::Resend),
        1 => Just(Op::FailHere),
        3 => Just(Op::AnswerCommit),
        // Mostly the next event in order.
        4 => Just(Op::Event(0)),
        1 => any::<usize>().prop_map(Op::Event),
        1 => any::<usize>().prop_map(Op::DuplicateEvent),
        1 => any::<usize>().prop_map(Op::DropEvent),
        1 => Just(Op::ToggleAaron),
        1 => Just(Op::CatchUp),
        2 => any::<bool>().prop_map(|fail| Op::AnswerFetch { fail }),
        1 => any::<bool>().prop_map(|fail| Op::AnswerReload { fail }),
        1 => Just(Op::Retry),
        1 => any::<bool>().prop_map(|crash_on_event| Op::Restart { crash_on_event }),
        1 => Just(Op::Replace),
    ]
}

pub(super) fn run(cluster: bool, before: usize, ops: &[Op]) -> World {
    let mut w = World::new_after(cluster, before);
    for op in ops {
        match *op {
            Op::CommitElsewhere => w.commit_elsewhere(),
            Op::CommitHere => w.commit_here(),
            Op::Resend(pick) => w.resend(pick),
            Op::FailHere => w.fail_here(),
            Op::AnswerCommit => w.answer_commit(),
            Op::Event(pick) => w.event(pick, false),
            Op::DuplicateEvent(pick) => w.event(pick, true),
            Op::DropEvent(pick) => w.drop_event(pick),
            Op::ToggleAaron => w.toggle_aaron(),
            Op::CatchUp => w.catch_up(),
            Op::AnswerFetch { fail } => w.answer_fetch(fail),
            Op::AnswerReload { fail } => w.answer_reload(fail),
            Op::Retry => w.retry(),
            Op::Restart { crash_on_event } => w.restart(crash_on_event),
            Op::Replace => w.replace(),
        }
    }
    w.settle();
    w.assert_all_delivered();
    w
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Cluster mode: commits from both nodes, events duplicated, reordered
    /// and dropped, fetches and reloads answered or failed, restarts,
    /// successors and membership changes; once settled, every committed
    /// seq went out exactly once, in order, after its ack. `before`:
    /// messages committed between the actor's start and its load.
    #[test]
    fn cluster_delivers_every_commit_once_in_order(
        before in 0..3usize,
        ops in proptest::collection::vec(op(), 0..48),
    ) {
        run(true, before, &ops);
    }

    /// One node: this node's commits are the only source.
    #[test]
    fn single_node_delivers_every_commit_once_in_order(ops in proptest::collection::vec(op(), 0..48)) {
        run(false, 0, &ops);
    }
}
