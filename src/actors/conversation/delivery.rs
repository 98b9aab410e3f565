//! Carries out what the delivery core (`core.rs`) decides: fan-out, fetches
//! and reloads from the store, retries after a pause. The decisions are the
//! core's; this file only runs them.

use std::time::Duration;

use actix::prelude::*;

use super::core::{Action, Fetched, Reloaded, Ticket};
use super::{ConversationActor, State};
use crate::domain::{StoredMessage, TraceContext, Username};
use crate::protocol::{MessageView, ServerFrame};
use crate::store::{HistoryQuery, StoreError};

/// Wait before fetching again after the store failed.
const FETCH_RETRY: Duration = Duration::from_millis(500);

impl ConversationActor {
    /// Runs the core's actions in order, then stops if retiring and settled.
    pub(super) fn apply(&mut self, actions: Vec<Action>, ctx: &mut Context<Self>) {
        for action in actions {
            match action {
                Action::Deliver(message, trace) => self.deliver(&message, trace),
                Action::Fetch {
                    ticket,
                    member,
                    after,
                    limit,
                } => self.fetch(ticket, member, after, limit, ctx),
                Action::Reload { ticket } => self.reload(ticket, ctx),
                Action::RetryLater => {
                    ctx.run_later(FETCH_RETRY, |act, ctx| {
                        let actions = act.delivery.retry();
                        act.apply(actions, ctx);
                    });
                }
            }
        }
        self.maybe_stop(ctx);
    }

    /// While nothing is delivered, tells the core the router's note of the
    /// first message event routed here (a lock on the router's map; once
    /// something is delivered the core needs it no more).
    pub(super) fn note_routed(&mut self) {
        if self.cluster.is_shared() && self.delivery.delivered().is_none() {
            self.delivery.routed(self.router.first_routed(self.id));
        }
    }

    /// Nothing is on its way to the store or to sessions: the actor may stop
    /// without losing a delivery.
    pub(super) fn settled(&self) -> bool {
        self.inflight == 0 && !self.delivery.busy()
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

    /// Reads the membership again for the core.
    fn reload(&mut self, ticket: Ticket, ctx: &mut Context<Self>) {
        let store = self.store.clone();
        let id = self.id;
        ctx.spawn(
            async move { store.conversation(id).await }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let reloaded = match res {
                        Ok(Some(fresh)) => {
                            if let State::Ready(conv) = &mut act.state {
                                conv.members = fresh.members.clone();
                                conv.last_seq = conv.last_seq.max(fresh.last_seq);
                                let members = &conv.members;
                                act.read_marks.retain(|u, _| members.contains(u));
                            }
                            Reloaded::Members(fresh.members)
                        }
                        Ok(None) => Reloaded::Missing,
                        Err(e) => {
                            tracing::warn!(conversation = %act.id, error = %e, "cannot reload the membership; retrying");
                            Reloaded::Failed
                        }
                    };
                    let actions = act.delivery.reloaded(ticket, reloaded);
                    act.apply(actions, ctx);
                }),
        );
    }

    /// Reads a page of history after `after` for the core.
    fn fetch(
        &mut self,
        ticket: Ticket,
        member: Username,
        after: u64,
        limit: u32,
        ctx: &mut Context<Self>,
    ) {
        let store = self.store.clone();
        let id = self.id;
        ctx.spawn(
            async move {
                let page = HistoryQuery {
                    reader: member,
                    id,
                    after_seq: after,
                    limit,
                };
                store.history(page).await
            }
                .into_actor(self)
                .map(move |res, act, ctx| {
                    let fetched = match res {
                        Ok(page) => Fetched::Page {
                            messages: page.messages,
                            has_more: page.has_more,
                        },
                        Err(StoreError::NotMember) => Fetched::NotMember,
                        Err(e) => {
                            tracing::warn!(conversation = %act.id, error = %e, "cannot fetch missed messages; retrying");
                            Fetched::Failed
                        }
                    };
                    let actions = act.delivery.fetched(ticket, after, fetched);
                    act.apply(actions, ctx);
                }),
        );
    }
}
