//! The directory: presence and the per-user session cap. Sessions put
//! themselves in the registry before their `hello` (so a client that has its
//! hello already receives every message) and tell the directory; a user goes
//! online with their first session and offline with their last, and everyone
//! who shares a conversation with them hears it.

use actix::prelude::*;
use actix_ws::CloseCode;

use super::registry::SessionRegistry;
use super::session::SessionHandle;
use crate::domain::{TraceContext, Username};
use crate::protocol::ServerFrame;
use crate::store::Store;
use crate::supervision::faults::{Faults, Injected};
use crate::supervision::policy::RestartType;
use crate::supervision::{ChildSpec, Envelope, Msg, Supervisor};
use std::sync::Arc;

/// A session has put itself in the registry; `count` is how many sessions
/// its user has now.
pub struct Joined {
    pub handle: SessionHandle,
    pub count: usize,
}

impl Msg for Joined {
    type Reply = ();
    const NAME: &'static str = "joined";
}

/// A session has taken itself out of the registry; `remaining` sessions of
/// its user are left.
pub struct Left {
    pub user: Username,
    pub remaining: usize,
}

impl Msg for Left {
    type Reply = ();
    const NAME: &'static str = "left";
}

pub struct Directory {
    registry: SessionRegistry,
    store: Store,
    sessions_per_user: usize,
    faults: Arc<Faults>,
}

impl Directory {
    /// Starts the directory as a permanent child of `supervisor`.
    pub fn start(
        supervisor: &Supervisor,
        registry: SessionRegistry,
        store: Store,
        sessions_per_user: usize,
        faults: Arc<Faults>,
    ) -> Addr<Directory> {
        let directory = Directory {
            registry,
            store,
            sessions_per_user,
            faults,
        };
        // Joined/Left arrive with `do_send` (one pair per session), so the
        // session cap bounds them; the capacity only sets the parking point.
        let spec = ChildSpec::new("directory", "directory", RestartType::Permanent, 1024);
        supervisor.spawn(spec, directory, None)
    }

    /// Tells `user`'s contacts their current status; a new session (`joined`)
    /// also hears which of its contacts are online. The status is read when
    /// the contact list arrives, so a quick online/offline pair can never
    /// leave a contact believing the wrong final state.
    fn announce(
        &self,
        user: Username,
        tell_contacts: bool,
        joined: Option<SessionHandle>,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        let store = self.store.clone();
        let who = user.clone();
        ctx.spawn(async move { store.contacts_of(who).await }.into_actor(self).map(
            move |res, act, _| {
                let contacts = match res {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, user = %user, "presence not sent: contacts unavailable");
                        return;
                    }
                };
                let status = if act.registry.is_online(&user) { "online" } else { "offline" };
                let frame = ServerFrame::Presence {
                    username: user.clone(),
                    status,
                    trace_id: trace.trace_id,
                }
                .to_text();
                for contact in contacts.iter().filter(|_| tell_contacts) {
                    act.registry.for_each_session(contact, |s| {
                        s.deliver(frame.clone(), trace);
                    });
                }
                if let Some(session) = joined {
                    for contact in contacts.into_iter().filter(|c| act.registry.is_online(c)) {
                        let f = ServerFrame::Presence {
                            username: contact,
                            status: "online",
                            trace_id: trace.trace_id,
                        };
                        session.deliver(f.to_text(), trace);
                    }
                }
            },
        ));
    }
}

impl Actor for Directory {
    type Context = Context<Self>;
}

/// Its state is the registry, which outlives any incarnation: a restart
/// needs no recovery.
impl Supervised for Directory {}

impl Handler<Envelope<Joined>> for Directory {
    type Result = ();

    fn handle(&mut self, env: Envelope<Joined>, ctx: &mut Self::Context) {
        let _scope = env.enter("directory");
        if self.faults.inject("directory", || "directory".into()) == Injected::Stop {
            return ctx.stop();
        }
        let Joined { handle, count } = env.msg;
        if count > self.sessions_per_user {
            // The upgrade checks the cap first; this closes the race between
            // two upgrades of the same user.
            handle.close(
                CloseCode::Policy,
                "too many sessions for this user",
                env.trace,
            );
            return;
        }
        let user = handle.username.clone();
        // Contacts hear of the first session only; every session learns who is online.
        self.announce(user, count == 1, Some(handle), env.trace, ctx);
    }
}

impl Handler<Envelope<Left>> for Directory {
    type Result = ();

    fn handle(&mut self, env: Envelope<Left>, ctx: &mut Self::Context) {
        let _scope = env.enter("directory");
        if env.msg.remaining == 0 {
            self.announce(env.msg.user, true, None, env.trace, ctx);
        }
    }
}
