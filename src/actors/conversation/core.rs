//! The delivery core: which committed messages go to the members' sessions,
//! which wait, and what must be fetched or read again. A plain type (no
//! actix, no timers, no store, no registry): the conversation actor feeds it
//! events and carries out the `Action`s it returns, in order.
//!
//! Committed messages go out exactly in seq order, each at most once per
//! actor. With SQLite the commits of this actor are the only source and
//! arrive in order; in a cluster, messages come from the cluster channel
//! (every node's commits) and may arrive after a gap (the channel was down,
//! or a publication was dropped), so:
//!
//! - a message ahead of a gap is held, and the gap is fetched from the store;
//! - a message this node appended waits until its `ack` has been sent (the
//!   publication can overtake the append's own reply), so the sending
//!   session always sees `ack` before `message`.

use std::collections::{BTreeMap, HashSet};

use crate::domain::{ConversationId, MessageId, StoredMessage, TraceContext, Username};

#[cfg(test)]
mod model;
#[cfg(test)]
mod tests;

/// Messages held at most; beyond it they are dropped and fetched later.
pub(super) const MAX_HELD: usize = 4096;
/// Messages read per fetch of a gap.
pub(super) const FETCH_PAGE: u32 = 500;

/// Names one fetch or reload, so that an answer to one the core no longer
/// waits for (it belonged to an incarnation that failed) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket(u64);

/// What the actor must do, in the order given.
#[derive(Debug)]
pub(super) enum Action {
    /// Fan this message out to every session of every member.
    Deliver(StoredMessage, TraceContext),
    /// Read up to `limit` messages after `after` on `member`'s behalf and
    /// answer with `Delivery::fetched`.
    Fetch {
        ticket: Ticket,
        member: Username,
        after: u64,
        limit: u32,
    },
    /// Read the conversation again and answer with `Delivery::reloaded`.
    Reload { ticket: Ticket },
    /// The store failed: call `Delivery::retry` after a pause.
    RetryLater,
}

/// The outcome of an append of this actor's.
pub(super) enum Commit {
    /// Stored now, with this seq.
    Fresh(StoredMessage, TraceContext),
    /// A retry of a message stored before.
    Duplicate(StoredMessage, TraceContext),
    /// Not stored.
    Failed,
}

/// The answer to an `Action::Fetch`.
pub(super) enum Fetched {
    Page {
        messages: Vec<StoredMessage>,
        has_more: bool,
    },
    /// The member read for is no longer one.
    NotMember,
    Failed,
}

/// The answer to an `Action::Reload`.
pub(super) enum Reloaded {
    Members(Vec<Username>),
    /// The conversation is gone from the store.
    Missing,
    Failed,
}

/// What an ending actor leaves behind (see `Delivery::handover`).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Handover {
    /// The last delivered seq, for a successor to start from.
    pub remember: Option<u64>,
    /// Something was left undelivered: ask for a catch-up soon.
    pub lagging: bool,
}

/// The delivery state of one conversation on this node. It describes what
/// sessions have been sent and which appends are in the store's hands, so
/// it survives restarts of the actor (`restarted`).
#[derive(Debug)]
pub(super) struct Delivery {
    id: ConversationId,
    /// Cluster mode: messages come from the cluster channel.
    cluster: bool,
    /// The conversation is loaded; only then does anything go out.
    ready: bool,
    /// The actor has restarted at least once.
    restarted: bool,
    /// The members (for the fetch on a member's behalf); at most the group
    /// size limit, as the conversation's own list.
    members: Vec<Username>,
    /// The highest seq delivered; None until the first.
    delivered: Option<u64>,
    /// Messages that arrived ahead of a gap, or behind an unacked append of
    /// this node, by seq. Events add at most up to `MAX_HELD` (beyond it
    /// they are dropped and fetched from the store when their turn comes);
    /// a fetched page (`FETCH_PAGE`) always goes in whole, so at most
    /// `MAX_HELD + FETCH_PAGE`: it holds the next seqs to deliver, the ones
    /// that let `drain` move on, and refusing them at the cap would leave a
    /// full `held` waiting forever for a gap it has no room to fill.
    held: BTreeMap<u64, (StoredMessage, TraceContext)>,
    /// Appends of this node not acked yet; their message waits (in a
    /// cluster its publication, on one node a fetched copy), so the sending
    /// session sees `ack` before `message`. At most
    /// `conversations.max_inflight` (the actor refuses appends beyond it),
    /// each removed by its `committed`.
    awaiting_ack: HashSet<MessageId>,
    /// The fetch or reload running, if any.
    running: Option<Ticket>,
    next_ticket: u64,
    /// Every seq up to this one was committed before the running fetch was
    /// issued (the highest held then), so its page must hold them all.
    fetch_covers: u64,
    /// Messages were left out of `held` (it was full, or a fetched page had
    /// more): fetch again once the held ones are out.
    overflowed: bool,
    /// The membership may have changed unseen (the cluster channel was
    /// lost): read it again before the next fetch.
    stale_members: bool,
    /// last_seq at the first load that succeeded: an actor that has
    /// delivered nothing yet owes this node nothing before it, except
    /// messages whose events are already in its mailbox (see `offer`).
    loaded_seq: Option<u64>,
    /// Cluster mode: the seq of the first message event routed to this
    /// actor (`routed`); an actor that has delivered nothing owes it too.
    first_routed: Option<u64>,
}

impl Delivery {
    /// `delivered`: where a predecessor left off, if known.
    pub(super) fn new(id: ConversationId, cluster: bool, delivered: Option<u64>) -> Self {
        Delivery {
            id,
            cluster,
            ready: false,
            restarted: false,
            members: Vec::new(),
            delivered,
            held: BTreeMap::new(),
            awaiting_ack: HashSet::new(),
            running: None,
            next_ticket: 0,
            fetch_covers: 0,
            overflowed: false,
            stale_members: false,
            loaded_seq: None,
            first_routed: None,
        }
    }

    pub(super) fn delivered(&self) -> Option<u64> {
        self.delivered
    }

    pub(super) fn held(&self) -> usize {
        self.held.len()
    }

    /// Something is waiting to go out (the actor must not stop yet). A
    /// conversation that is not loaded has nobody to deliver to.
    pub(super) fn busy(&self) -> bool {
        self.ready
            && (!self.held.is_empty()
                || self.running.is_some()
                || self.overflowed
                || self.stale_members)
    }

    /// The router's note of the first message event routed to this actor
    /// (it notes it before the enqueue). Asked while nothing is delivered.
    /// The earliest note seen is kept, and no note does not erase one: a
    /// stop-and-restart in place hands the router a position (which clears
    /// its note) that the restarted actor does not get back, so the note
    /// this actor already had is still what it owes.
    pub(super) fn routed(&mut self, first: Option<u64>) {
        if let Some(f) = first {
            self.first_routed = Some(self.first_routed.map_or(f, |o| o.min(f)));
        }
    }

    /// Where an actor that has delivered nothing starts: its first load,
    /// or just before the first message routed to it if that is earlier
    /// (committed elsewhere between the actor's start and its load, its
    /// event in the mailbox, or refused at it).
    fn floor(&self, first_load: u64) -> u64 {
        self.first_routed
            .map_or(first_load, |f| first_load.min(f.saturating_sub(1)))
    }

    /// The conversation was read from the store (at start and after every
    /// restart).
    pub(super) fn loaded(&mut self, last_seq: u64, members: &[Username]) -> Vec<Action> {
        self.ready = true;
        self.members = members.to_vec();
        let first = *self.loaded_seq.get_or_insert(last_seq);
        if self.restarted && self.cluster {
            // The request that crashed the last incarnation is gone, and it
            // may have been a message event: fetch whatever this node has
            // not delivered rather than wait for a next message that may
            // never come (or that starts the sequence past it).
            let floor = self.floor(first);
            self.delivered.get_or_insert(floor);
            self.overflowed = true;
        }
        // After a restart: what was held (or being fetched) goes out now
        // rather than with the next message.
        self.drained()
    }

    /// The actor restarts from fresh state and loads again; the delivery
    /// state is kept, but a fetch in flight belonged to the failed
    /// incarnation.
    pub(super) fn restarted(&mut self) {
        self.ready = false;
        self.restarted = true;
        self.running = None;
    }

    /// The membership changed (an invite, a leave, a cluster event).
    pub(super) fn members_changed(&mut self, members: &[Username]) {
        self.members = members.to_vec();
    }

    /// An append of this node is in the store's hands.
    pub(super) fn appending(&mut self, message_id: MessageId) {
        // One node too: a gap fetched from the store (after a predecessor
        // stopped with outcomes queued) can read a message whose own
        // outcome is still in the mailbox.
        self.awaiting_ack.insert(message_id);
    }

    /// An append's outcome; its ack has been sent.
    pub(super) fn committed(&mut self, message_id: MessageId, commit: Commit) -> Vec<Action> {
        let mut out = Vec::new();
        self.awaiting_ack.remove(&message_id);
        match commit {
            // In a cluster the message comes back through the cluster
            // channel, in seq order with every node's.
            Commit::Fresh(message, trace) if !self.cluster => self.offer(message, trace, &mut out),
            // A retry of a stored message: its first commit's outcome may
            // have been dropped with a stopped actor (the sender got
            // `internal`, hence the retry), so it may never have gone out;
            // `offer` skips it if it did. An actor that does not know where
            // its deliveries stand leaves it: the retry may be of an old
            // message (a client resending after a reconnect), and starting
            // there would send everything after it again.
            Commit::Duplicate(message, trace) if self.delivered.is_some() => {
                self.offer(message, trace, &mut out)
            }
            _ => {}
        }
        if self.cluster {
            // Its publication may be held behind this ack.
            self.drain(&mut out);
        }
        out
    }

    /// Cluster mode: a message event from the channel (any node's commit).
    pub(super) fn remote(&mut self, message: StoredMessage, trace: TraceContext) -> Vec<Action> {
        let mut out = Vec::new();
        self.offer(message, trace, &mut out);
        out
    }

    /// The cluster channel was lost: take the membership afresh (its events
    /// may be among what was missed), then fetch whatever was committed
    /// since the last delivered message (or since the membership was
    /// loaded).
    pub(super) fn catch_up(&mut self) -> Vec<Action> {
        if !self.cluster {
            return Vec::new();
        }
        if self.delivered.is_none() {
            self.delivered = self.loaded_seq.map(|l| self.floor(l));
        }
        tracing::debug!(conversation = %self.id, delivered = ?self.delivered, fetching = self.running.is_some(), "catching up");
        self.overflowed = true;
        self.stale_members = true;
        self.drained()
    }

    /// The pause after a store failure is over.
    pub(super) fn retry(&mut self) -> Vec<Action> {
        self.drained()
    }

    /// The answer to `Action::Fetch`.
    pub(super) fn fetched(&mut self, ticket: Ticket, after: u64, fetched: Fetched) -> Vec<Action> {
        if self.running != Some(ticket) {
            return Vec::new();
        }
        self.running = None;
        let (messages, has_more) = match fetched {
            Fetched::Page { messages, has_more } => (messages, has_more),
            Fetched::NotMember => {
                // The member read for has left (an event this node
                // missed): take the membership afresh.
                self.overflowed = true;
                self.stale_members = true;
                return self.drained();
            }
            Fetched::Failed => {
                self.overflowed = true;
                return vec![Action::RetryLater];
            }
        };
        let delivered = self.delivered.unwrap_or(after);
        let next = delivered + 1;
        let found = messages.iter().any(|m| m.seq == next);
        // A later message in the page proves the store lacks `next` (the
        // page runs in seq order from `after`).
        let beyond = messages.iter().any(|m| m.seq > next);
        let mut count = 0u64;
        for m in messages {
            if m.seq > delivered && !self.held.contains_key(&m.seq) {
                let trace = TraceContext::new(m.trace_id);
                self.held.insert(m.seq, (m, trace));
                count += 1;
            }
        }
        metrics::counter!("parley_messages_fetched_total").increment(count);
        tracing::debug!(conversation = %self.id, after, delivered, fetched = count, found, more = has_more, "fetched missed messages");
        // A catch-up or an overflow while this page was read asks for
        // another fetch: keep it.
        self.overflowed |= has_more;
        if !found && !self.held.is_empty() {
            let first = self.held.first_key_value().map_or(next, |(&s, _)| s);
            // The store has no such message (it lost data): go on from
            // what there is rather than wait forever. Only on proof: a
            // later message in the page, or a whole page that should have
            // held it. A page read before the gap was committed (events
            // delivered meanwhile moved `next` past it) proves nothing:
            // read again (skipping there lost messages).
            let lost_to = if beyond {
                Some(first - 1)
            } else if !has_more && next <= self.fetch_covers {
                Some(first.min(self.fetch_covers + 1) - 1)
            } else {
                None
            };
            match lost_to {
                Some(to) => {
                    tracing::warn!(conversation = %self.id, from = next, to, "messages missing from the store are skipped");
                    self.delivered = Some(to);
                }
                None => self.overflowed = true,
            }
        }
        self.drained()
    }

    /// The answer to `Action::Reload`.
    pub(super) fn reloaded(&mut self, ticket: Ticket, reloaded: Reloaded) -> Vec<Action> {
        if self.running != Some(ticket) {
            return Vec::new();
        }
        self.running = None;
        match reloaded {
            Reloaded::Members(members) => self.members = members,
            Reloaded::Missing => {}
            Reloaded::Failed => {
                self.stale_members = true;
                return vec![Action::RetryLater];
            }
        }
        self.drained()
    }

    /// The actor ends (retired, stopped, or before a restart).
    pub(super) fn handover(&self) -> Handover {
        // A fetch or reload running counts: what it was to bring is not
        // in `held` yet (an actor stopped mid-fetch left its gap unfetched).
        let pending = !self.held.is_empty()
            || self.running.is_some()
            || !self.awaiting_ack.is_empty()
            || self.overflowed
            || self.stale_members;
        // One that delivered nothing still owes what was committed after
        // its load (or routed to it): its commit outcomes may have been
        // dropped with it, and its successor, loaded later, would start
        // past them.
        let remember = self
            .delivered
            .or_else(|| self.loaded_seq.map(|l| self.floor(l)));
        Handover {
            remember,
            // In a cluster, sooner: a catch-up within a second.
            lagging: remember.is_some() && self.cluster && pending,
        }
    }

    fn offer(&mut self, message: StoredMessage, trace: TraceContext, out: &mut Vec<Action>) {
        // The first message an actor sees starts its sequence, unless the
        // conversation had fewer messages when this actor loaded it: those
        // after the load were committed while it ran, so their events came
        // here, and one that is missing was lost on the way (a crash ate
        // it, or a full mailbox refused it) and is fetched. Those before it
        // were committed before this actor could have delivered them,
        // except those whose events were routed to it (`floor`).
        let delivered = match self.delivered {
            Some(d) => d,
            None => {
                let before = message.seq.saturating_sub(1);
                let start = self
                    .loaded_seq
                    .map_or(before, |l| self.floor(l).min(before));
                tracing::debug!(conversation = %self.id, seq = message.seq, start, "delivery starts");
                *self.delivered.insert(start)
            }
        };
        if message.seq <= delivered {
            return;
        }
        if self.held.len() >= MAX_HELD && !self.held.contains_key(&message.seq) {
            // Still in the store: fetched when the held ones have gone out.
            self.overflowed = true;
        } else {
            self.held.entry(message.seq).or_insert((message, trace));
        }
        self.drain(out);
    }

    fn drained(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        self.drain(&mut out);
        out
    }

    /// Delivers held messages while they are next in seq order; fetches a
    /// gap from the store when one blocks the way.
    fn drain(&mut self, out: &mut Vec<Action>) {
        // Only a ready actor delivers. One that failed to load after a
        // restart (the store down) and is retiring must not count as
        // delivered what it could not send: its successor starts after the
        // last delivered seq and would never fetch the message (a soak run
        // lost one acked message this way around a Redis restart).
        if !self.ready {
            return;
        }
        let Some(mut delivered) = self.delivered else {
            return;
        };
        while let Some(entry) = self.held.first_entry() {
            let seq = *entry.key();
            if seq <= delivered {
                entry.remove();
                continue;
            }
            if seq != delivered + 1 {
                break;
            }
            if self.awaiting_ack.contains(&entry.get().0.message_id) {
                // Its `committed` drains again once the ack is out.
                return;
            }
            let (message, trace) = entry.remove();
            out.push(Action::Deliver(message, trace));
            delivered = seq;
            self.delivered = Some(seq);
        }
        if self.stale_members {
            // The membership first: the page is read on a member's behalf,
            // and deliveries go to the members.
            self.reload(out);
        } else if !self.held.is_empty() || self.overflowed {
            self.fetch_missing(out);
        }
    }

    /// Reads the membership again (after the channel was lost, membership
    /// events may have been missed), then goes on delivering.
    fn reload(&mut self, out: &mut Vec<Action>) {
        if self.running.is_some() {
            // `stale_members` stays set: the running fetch drains when it
            // ends, and the reload follows.
            return;
        }
        self.stale_members = false;
        let ticket = self.ticket();
        out.push(Action::Reload { ticket });
    }

    /// Reads the messages after the last delivered one (one page at a time;
    /// the next page follows while any are missing).
    fn fetch_missing(&mut self, out: &mut Vec<Action>) {
        if self.running.is_some() {
            return;
        }
        let Some(after) = self.delivered else {
            return;
        };
        // History is read on behalf of a member; with none, nobody is
        // listening and there is nothing to deliver.
        let Some(member) = self.members.first().cloned() else {
            self.held.clear();
            self.overflowed = false;
            return;
        };
        self.overflowed = false;
        self.fetch_covers = self.held.last_key_value().map_or(after, |(&s, _)| s);
        let ticket = self.ticket();
        out.push(Action::Fetch {
            ticket,
            member,
            after,
            limit: FETCH_PAGE,
        });
    }

    fn ticket(&mut self) -> Ticket {
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        self.running = Some(ticket);
        ticket
    }
}
