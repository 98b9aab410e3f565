//! One actor per payment in flight: it runs the payment's saga (see
//! `payments::saga`) as a future in its context, so a panic at any step
//! fails the actor, and its supervisor restarts it, which resumes the saga
//! from the step in the store.
//!
//! In a cluster the actor first takes the saga's lease in Redis and renews
//! it while it runs, so one node at a time runs a saga; when the lease is
//! someone else's, it stops at once and leaves the saga to them.

use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::domain::PaymentId;
use crate::payments::saga::{SagaDeps, SagaEnd};
use crate::payments::PaymentRouter;

pub struct PaymentActor {
    id: PaymentId,
    deps: SagaDeps,
    router: PaymentRouter,
    finished: bool,
    /// Cluster mode: when the saga lease was last taken or renewed.
    leased_at: Instant,
}

impl PaymentActor {
    pub fn new(id: PaymentId, deps: SagaDeps, router: PaymentRouter) -> Self {
        PaymentActor {
            id,
            deps,
            router,
            finished: false,
            leased_at: Instant::now(),
        }
    }
}

impl Actor for PaymentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (cluster, id, lease) = (self.deps.cluster.clone(), self.id, self.deps.lease);
        ctx.wait(
            async move { cluster.claim_saga(id, lease).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(true) => {
                        act.leased_at = Instant::now();
                        act.run_saga(ctx);
                        ctx.run_interval(act.deps.lease / 3, |act, ctx| act.renew(ctx));
                    }
                    Ok(false) => {
                        // Another node runs it; nothing to resume here.
                        act.finished = true;
                        ctx.stop();
                    }
                    Err(e) => {
                        // The cluster's periodic sweep tries again.
                        tracing::warn!(payment = %act.id, error = %e, "cannot take the saga lease");
                        act.finished = true;
                        ctx.stop();
                    }
                }),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.router.finished(self.id);
        if self.finished {
            self.deps.cluster.release_saga(self.id);
            return;
        }
        // Stopped mid-saga (not a panic, so not restarted in place): the
        // payment router starts it again shortly, from its log.
        let (router, id) = (self.router.clone(), self.id);
        actix_rt::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            router.start(id);
        });
    }
}

impl PaymentActor {
    fn run_saga(&mut self, ctx: &mut Context<Self>) {
        let saga = self.deps.clone().run(self.id);
        ctx.spawn(saga.into_actor(self).map(|end, act, ctx| {
            act.finished = end == SagaEnd::Finished;
            if !act.finished {
                tracing::warn!(payment = %act.id, "payment actor stopped mid-saga (injected fault)");
            }
            ctx.stop();
        }));
    }

    /// Renews the lease; if another node holds it now (this node was cut
    /// off longer than the lease), stop and leave the saga to it.
    fn renew(&mut self, ctx: &mut Context<Self>) {
        let (cluster, id, lease) = (self.deps.cluster.clone(), self.id, self.deps.lease);
        ctx.spawn(
            async move { cluster.claim_saga(id, lease).await }
                .into_actor(self)
                .map(|res, act, ctx| match res {
                    Ok(true) => act.leased_at = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(payment = %act.id, "saga lease taken by another node; stopping here");
                        act.finished = true;
                        ctx.stop();
                    }
                    Err(e) if act.leased_at.elapsed() >= act.deps.lease / 2 => {
                        // The lease may lapse before Redis is back: stop
                        // well before another node could take the saga over;
                        // a sweep (here or elsewhere) resumes it from its log.
                        tracing::warn!(payment = %act.id, error = %e, "saga lease not renewed for half its life; pausing the saga");
                        act.finished = true;
                        ctx.stop();
                    }
                    Err(e) => tracing::warn!(payment = %act.id, error = %e, "saga lease not renewed"),
                }),
        );
    }
}

/// All state is in the store: a restart runs the saga again from its log.
impl Supervised for PaymentActor {}
