//! The cluster link's three loops as supervised actors. Each runs its loop
//! as a future in its own context, so a panic in it fails this actor alone
//! and the supervision runner restarts it in place (backoff, intensity,
//! `/admin/supervision` and `parley_actor_restarts_total` like any child).
//! A restarted subscription or heartbeat asks every conversation to catch
//! up and the directory to reassert presence: while it was down, cluster
//! events may have gone by unseen.

use actix::prelude::*;

use crate::actors::directory::Reassert;
use crate::actors::Deps;
use crate::domain::TraceContext;
use crate::store::redis::RedisStore;
use crate::supervision::faults::{Faults, Injected};
use crate::supervision::Envelope;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Subscription,
    Heartbeat,
    Sweep,
}

impl Job {
    /// The child's name in the tree, and the fault target's key
    /// (`cluster:subscription`, …).
    pub fn name(self) -> &'static str {
        match self {
            Job::Subscription => "cluster:subscription",
            Job::Heartbeat => "cluster:heartbeat",
            Job::Sweep => "cluster:sweep",
        }
    }

    fn key(self) -> &'static str {
        &self.name()["cluster:".len()..]
    }
}

/// Injected faults for a cluster task (`POST /admin/faults` with target
/// `cluster:<job>` or `cluster`): a panic fails the task, a delay blocks it.
/// A task has no request to drop, so a `stop` is taken as a panic (the
/// task is permanent: stopping it would only restart it).
pub(super) fn fault(faults: &Faults, job: Job) {
    if faults.inject("cluster", || job.key().to_string()) == Injected::Stop {
        panic!("injected fault: stop in a cluster task ({})", job.key());
    }
}

pub struct ClusterTask {
    job: Job,
    deps: Deps,
    redis: RedisStore,
    /// Turns true when the link stops: the loop ends.
    stop: tokio::sync::watch::Receiver<bool>,
    incarnation: u64,
    /// Its own address: nobody else holds one, and an actix actor nobody
    /// can reach stops when its context is idle (after a restart, or once
    /// the link has stopped), which the supervisor would take for a
    /// permanent child's exit and restart again and again. It stops when
    /// the tree shuts down.
    me: Option<Addr<ClusterTask>>,
}

impl ClusterTask {
    pub fn new(
        job: Job,
        deps: Deps,
        redis: RedisStore,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        ClusterTask {
            job,
            deps,
            redis,
            stop,
            incarnation: 0,
            me: None,
        }
    }
}

impl Actor for ClusterTask {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.me = Some(ctx.address());
        if *self.stop.borrow() {
            return;
        }
        if self.incarnation > 0 && self.job != Job::Sweep {
            tracing::warn!(
                task = self.job.name(),
                "cluster task restarted: catching up"
            );
            let trace = TraceContext::random();
            self.deps.conversations.catch_up_all(trace);
            self.deps.directory.do_send(Envelope::new(trace, Reassert));
        }
        let (deps, redis) = (self.deps.clone(), self.redis.clone());
        let work: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> = match self.job {
            Job::Subscription => Box::pin(super::subscription(deps, redis)),
            Job::Heartbeat => Box::pin(super::heartbeat(deps, redis)),
            Job::Sweep => Box::pin(super::sweep(deps)),
        };
        let mut stop = self.stop.clone();
        ctx.spawn(
            async move {
                tokio::select! {
                    () = work => {}
                    _ = stop.wait_for(|stopping| *stopping) => {}
                }
            }
            .into_actor(self),
        );
    }
}

impl Supervised for ClusterTask {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.incarnation += 1;
    }
}
