//! The directory: presence and the per-user session cap. Sessions put
//! themselves in the registry before their `hello` (so a client that has its
//! hello already receives every message) and tell the directory; a user goes
//! online with their first session and offline with their last, and everyone
//! who shares a conversation with them hears it.
//!
//! In a cluster, "first" and "last" are cluster-wide: the directory records
//! this node's users in Redis (one change at a time, in the order sessions
//! came and went), the presence scripts publish the transitions, and every
//! node's directory tells its own sessions when the event arrives
//! (`RemotePresence`). The per-user session cap stays per node.
//!
//! A user who goes offline is told with the time they were last seen
//! (`lastSeen`), and a new session hears it about its offline contacts.
//! Users who come to share a conversation are introduced (introduce.rs).

mod introduce;
mod last_seen;

pub use introduce::{introduce, introduce_direct, Introduce, RemoteIntroduce};

use actix::prelude::*;
use actix_ws::CloseCode;

use super::registry::SessionRegistry;
use super::session::SessionHandle;
use crate::cluster::ClusterHandle;
use crate::domain::{now_ms, rfc3339_ms, TraceContext, Username};
use crate::protocol::ServerFrame;
use crate::store::redis::{Status, LAST_SEEN_CAPACITY};
use crate::store::Store;
use crate::store::StoreError;
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

/// Cluster mode: a user went online or offline somewhere in the cluster.
pub struct RemotePresence {
    pub user: Username,
    pub online: bool,
    /// Offline: when (ms).
    pub last_seen: Option<i64>,
}

impl Msg for RemotePresence {
    type Reply = ();
    const NAME: &'static str = "remote_presence";
}

/// Cluster mode: the cluster channel or Redis was lost and is back (Redis
/// may have restarted): record this node's online users again.
pub struct Reassert;

impl Msg for Reassert {
    type Reply = ();
    const NAME: &'static str = "reassert_presence";
}

pub struct Directory {
    registry: SessionRegistry,
    store: Store,
    /// Cluster mode: presence is kept in Redis.
    cluster: ClusterHandle,
    sessions_per_user: usize,
    faults: Arc<Faults>,
    /// One process: when each user's last session closed (cluster mode
    /// keeps these in Redis).
    last_seen: last_seen::LastSeen,
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
            cluster: ClusterHandle::of(&store),
            registry,
            store,
            sessions_per_user,
            faults,
            last_seen: last_seen::LastSeen::new(LAST_SEEN_CAPACITY),
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
        ctx.spawn(self.with_contacts(user, move |act, user, contacts| {
            if tell_contacts {
                let status = act.status(&user);
                act.tell(&contacts, user, status, trace);
            }
            if let Some(session) = joined {
                let statuses = contacts.into_iter().map(|c| {
                    let s = act.status(&c);
                    (c, s)
                });
                greet_with(&session, statuses, trace);
            }
        }));
    }

    /// One process: a user's presence as this node knows it.
    fn status(&self, user: &Username) -> Status {
        if self.registry.is_online(user) {
            Status::Online
        } else {
            Status::Offline(self.last_seen.get(user))
        }
    }

    /// Reads `user`'s contacts, then runs `then` on the actor with them; a
    /// store that cannot answer is logged and no presence is sent.
    fn with_contacts(
        &self,
        user: Username,
        then: impl FnOnce(&mut Self, Username, Vec<Username>) + 'static,
    ) -> impl ActorFuture<Self, Output = ()> {
        let store = self.store.clone();
        let who = user.clone();
        async move { store.contacts_of(who).await }
            .into_actor(self)
            .map(move |res, act, _| match res {
                Ok(contacts) => then(act, user, contacts),
                Err(e) => {
                    tracing::warn!(error = %e, user = %user, "presence not sent: contacts unavailable")
                }
            })
    }

    /// Sends `user`'s status to every session of each of `contacts` on this node.
    fn tell(&self, contacts: &[Username], user: Username, status: Status, trace: TraceContext) {
        let frame = presence_text(user, status, trace);
        for contact in contacts {
            self.registry.for_each_session(contact, |s| {
                s.deliver(frame.clone(), trace);
            });
        }
    }

    /// Tells this node's sessions of `user`'s contacts the status a presence
    /// event announced.
    fn tell_contacts(
        &self,
        user: Username,
        status: Status,
        trace: TraceContext,
        ctx: &mut Context<Self>,
    ) {
        // One event at a time, in channel order, so an online/offline pair
        // is told in the order it happened.
        ctx.wait(self.with_contacts(user, move |act, user, contacts| {
            act.tell(&contacts, user, status, trace);
        }));
    }

    /// Tells a new session which of its contacts are online anywhere, and
    /// when the others were last seen.
    fn greet(&self, session: SessionHandle, trace: TraceContext, ctx: &mut Context<Self>) {
        let (store, Some(redis)) = (self.store.clone(), self.cluster.redis().cloned()) else {
            return;
        };
        let user = session.username.clone();
        ctx.spawn(
            async move {
                let contacts = store.contacts_of(user).await?;
                let statuses = redis.statuses(&contacts).await?;
                Ok(contacts.into_iter().zip(statuses))
            }
            .into_actor(self)
            .map(move |res: Result<_, StoreError>, _, _| match res {
                Ok(statuses) => greet_with(&session, statuses, trace),
                Err(e) => tracing::warn!(error = %e, "initial presence not sent"),
            }),
        );
    }

    /// Records a presence change in Redis; the next change waits for it, so
    /// changes reach Redis in the order sessions came and went. A failure
    /// (Redis down) is logged; `Reassert` repairs it when Redis is back.
    fn record(&self, user: Username, up: bool, trace: TraceContext, ctx: &mut Context<Self>) {
        let Some(redis) = self.cluster.redis().cloned() else {
            return;
        };
        ctx.wait(
            async move {
                let res = if up {
                    redis.presence_up(&user, trace.trace_id).await
                } else {
                    redis.presence_down(&user, trace.trace_id).await
                };
                if let Err(e) = res {
                    tracing::warn!(error = %e, user = %user, "presence not recorded in redis");
                }
            }
            .into_actor(self),
        );
    }
}

/// Tells a new session its contacts' presence: who is online, and when
/// those remembered were last seen (the rest say nothing: a page that knew
/// nothing of them still knows nothing).
fn greet_with(
    session: &SessionHandle,
    statuses: impl IntoIterator<Item = (Username, Status)>,
    trace: TraceContext,
) {
    for (contact, status) in statuses {
        if status != Status::Offline(None) {
            session.deliver(presence_text(contact, status, trace), trace);
        }
    }
}

/// A `presence` frame.
fn presence_text(user: Username, status: Status, trace: TraceContext) -> bytestring::ByteString {
    let (status, last_seen) = match status {
        Status::Online => ("online", None),
        Status::Offline(at) => ("offline", at.map(rfc3339_ms)),
    };
    ServerFrame::Presence {
        username: user,
        status,
        last_seen,
        trace_id: trace.trace_id,
    }
    .to_text()
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
        if self.cluster.is_shared() {
            if count == 1 {
                self.record(user, true, env.trace, ctx);
            }
            self.greet(handle, env.trace, ctx);
            return;
        }
        // Contacts hear of the first session only; every session learns who is online.
        self.announce(user, count == 1, Some(handle), env.trace, ctx);
    }
}

impl Handler<Envelope<Left>> for Directory {
    type Result = ();

    fn handle(&mut self, env: Envelope<Left>, ctx: &mut Self::Context) {
        let _scope = env.enter("directory");
        if env.msg.remaining == 0 {
            if self.cluster.is_shared() {
                // Only if no session came back meanwhile (the registry is
                // ahead of this mailbox).
                if !self.registry.is_online(&env.msg.user) {
                    self.record(env.msg.user, false, env.trace, ctx);
                }
                return;
            }
            if !self.registry.is_online(&env.msg.user) {
                self.last_seen.record(env.msg.user.clone(), now_ms());
            }
            self.announce(env.msg.user, true, None, env.trace, ctx);
        }
    }
}

impl Handler<Envelope<RemotePresence>> for Directory {
    type Result = ();

    fn handle(&mut self, env: Envelope<RemotePresence>, ctx: &mut Self::Context) {
        let _scope = env.enter("directory");
        let RemotePresence {
            user,
            online,
            last_seen,
        } = env.msg;
        let status = if online {
            Status::Online
        } else {
            Status::Offline(last_seen)
        };
        self.tell_contacts(user, status, env.trace, ctx);
    }
}

impl Handler<Envelope<Reassert>> for Directory {
    type Result = ();

    fn handle(&mut self, env: Envelope<Reassert>, ctx: &mut Self::Context) {
        let _scope = env.enter("directory");
        let Some(redis) = self.cluster.redis().cloned() else {
            return;
        };
        let mut users: Vec<Username> = self
            .registry
            .all_sessions()
            .into_iter()
            .map(|s| s.username)
            .collect();
        users.sort();
        users.dedup();
        let trace = env.trace.trace_id;
        // In line with `record`: later joins and leaves apply after this.
        ctx.wait(
            async move {
                if let Err(e) = redis.replace_presence(&users, trace).await {
                    tracing::warn!(error = %e, "presence not repaired; the next recovery tries again");
                }
            }
            .into_actor(self),
        );
    }
}
