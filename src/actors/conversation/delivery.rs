//! Delivery: committed messages go to the members' sessions exactly in seq
//! order, each at most once per actor. With SQLite the commits of this
//! actor are the only source and arrive in order; in a cluster, messages
//! come from the cluster channel (every node's commits) and may arrive after
//! a gap (the channel was down, or a publication was dropped), so:
//!
//! - a message ahead of a gap is held, and the gap is fetched from the store;
//! - a message this node appended waits until its `ack` has been sent (the
//!   publication can overtake the append's own reply), so the sending
//!   session always sees `ack` before `message`.

use std::time::Duration;

use actix::prelude::*;

use super::{ConversationActor, State};
use crate::domain::{StoredMessage, TraceContext};
use crate::protocol::{MessageView, ServerFrame};
use crate::store::StoreError;

/// Messages held at most; beyond it they are dropped and fetched later.
pub(super) const MAX_HELD: usize = 4096;
/// Messages read per fetch of a gap.
const FETCH_PAGE: u32 = 500;
/// Wait before fetching again after the store failed.
const FETCH_RETRY: Duration = Duration::from_millis(500);

impl ConversationActor {
    /// A committed message for the members' sessions.
    pub(super) fn offer(
        &mut self,
        message: StoredMessage,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        // The first message an actor sees starts its sequence, unless the
        // conversation had fewer messages when this actor loaded it: those
        // after the load were committed while it ran, so their events came
        // here, and one that is missing was lost on the way (a crash ate
        // it, or a full mailbox refused it) and is fetched. Those before it
        // were committed before this actor could have delivered them.
        let delivered = match self.delivered {
            Some(d) => d,
            None => {
                let before = message.seq.saturating_sub(1);
                let start = self.loaded_seq.map_or(before, |l| l.min(before));
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
        self.drain(ctx);
    }

    /// Delivers held messages while they are next in seq order; fetches a
    /// gap from the store when one blocks the way.
    pub(super) fn drain(&mut self, ctx: &mut Context<Self>) {
        // Only a ready actor delivers. One that failed to load after a
        // restart (the store down) and is retiring must not count as
        // delivered what it could not send: its successor starts after the
        // last delivered seq and would never fetch the message (a soak run
        // lost one acked message this way around a Redis restart).
        if !matches!(self.state, State::Ready(_)) {
            self.maybe_stop(ctx);
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
                // Its `Committed` drains again once the ack is out.
                return;
            }
            let (message, trace) = entry.remove();
            self.deliver(&message, trace);
            delivered = seq;
            self.delivered = Some(seq);
        }
        if self.stale_members {
            // The membership first: the page is read on a member's behalf,
            // and deliveries go to the members.
            self.reload(ctx);
        } else if !self.held.is_empty() || self.overflowed {
            self.fetch_missing(ctx);
        }
        self.maybe_stop(ctx);
    }

    /// Reads the membership again (after the channel was lost, membership
    /// events may have been missed), then goes on delivering.
    fn reload(&mut self, ctx: &mut Context<Self>) {
        if self.fetching {
            // `stale_members` stays set: the running fetch drains when it
            // ends, and the reload follows.
            return;
        }
        self.fetching = true;
        self.stale_members = false;
        let store = self.store.clone();
        let id = self.id;
        ctx.spawn(
            async move { store.conversation(id).await }
                .into_actor(self)
                .map(|res, act, ctx| {
                    act.fetching = false;
                    match res {
                        Ok(Some(fresh)) => {
                            if let State::Ready(conv) = &mut act.state {
                                conv.members = fresh.members;
                                conv.last_seq = conv.last_seq.max(fresh.last_seq);
                                let members = &conv.members;
                                act.read_marks.retain(|u, _| members.contains(u));
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(conversation = %act.id, error = %e, "cannot reload the membership; retrying");
                            act.stale_members = true;
                            ctx.run_later(FETCH_RETRY, |act, ctx| act.drain(ctx));
                            return;
                        }
                    }
                    act.drain(ctx);
                }),
        );
    }

    /// Nothing is on its way to the store or to sessions: the actor may stop
    /// without losing a delivery. (A conversation that failed to load has
    /// nobody to deliver to.)
    pub(super) fn settled(&self) -> bool {
        let delivering = matches!(self.state, State::Ready(_))
            && (!self.held.is_empty() || self.fetching || self.overflowed || self.stale_members);
        self.inflight == 0 && !delivering
    }

    /// A retiring actor stops once settled.
    pub(super) fn maybe_stop(&mut self, ctx: &mut Context<Self>) {
        if self.stopping && self.settled() {
            ctx.stop();
        }
    }

    fn deliver(&mut self, message: &StoredMessage, trace: TraceContext) {
        if let State::Ready(conv) = &mut self.state {
            conv.last_seq = conv.last_seq.max(message.seq);
        }
        if let State::Ready(conv) = &self.state {
            let frame = ServerFrame::Message(MessageView::new(message, conv));
            self.fan_out(conv, &frame, trace, None);
        }
    }

    /// Reads the messages after the last delivered one from the store and
    /// offers them (one page at a time; the next page follows while any are
    /// missing).
    fn fetch_missing(&mut self, ctx: &mut Context<Self>) {
        if self.fetching {
            return;
        }
        let (Some(after), State::Ready(conv)) = (self.delivered, &self.state) else {
            return;
        };
        // History is read on behalf of a member; with none, nobody is
        // listening and there is nothing to deliver.
        let Some(member) = conv.members.first().cloned() else {
            self.held.clear();
            self.overflowed = false;
            return;
        };
        self.fetching = true;
        self.overflowed = false;
        let store = self.store.clone();
        let id = self.id;
        ctx.spawn(
            async move { store.history(member, id, after, FETCH_PAGE).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    act.fetching = false;
                    let page = match res {
                        Ok(page) => page,
                        Err(StoreError::NotMember) => {
                            // The member read for has left (an event this
                            // node missed): take the membership afresh.
                            act.overflowed = true;
                            act.stale_members = true;
                            act.drain(ctx);
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(conversation = %act.id, error = %e, "cannot fetch missed messages; retrying");
                            act.overflowed = true;
                            ctx.run_later(FETCH_RETRY, |act, ctx| act.drain(ctx));
                            return;
                        }
                    };
                    let delivered = act.delivered.unwrap_or(after);
                    let found = page.messages.iter().any(|m| m.seq == delivered + 1);
                    let mut fetched = 0u64;
                    for m in page.messages {
                        if m.seq > delivered && !act.held.contains_key(&m.seq) {
                            let trace = TraceContext::new(m.trace_id);
                            act.held.insert(m.seq, (m, trace));
                            fetched += 1;
                        }
                    }
                    metrics::counter!("parley_messages_fetched_total").increment(fetched);
                    tracing::debug!(conversation = %act.id, after, delivered, fetched, found, more = page.has_more, "fetched missed messages");
                    // A catch-up or an overflow while this page was read
                    // asks for another fetch: keep it.
                    act.overflowed |= page.has_more;
                    if !found {
                        // The store has no such message (it lost data): go
                        // on from what there is rather than wait forever.
                        if let Some((&first, _)) = act.held.first_key_value() {
                            tracing::warn!(conversation = %act.id, from = delivered + 1, to = first - 1, "messages missing from the store are skipped");
                            act.delivered = Some(first - 1);
                        }
                    }
                    act.drain(ctx);
                }),
        );
    }
}
