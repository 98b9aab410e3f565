//! One actor per payment in flight: it runs the payment's saga (see
//! `payments::saga`) as a future in its context, so a panic at any step
//! fails the actor, and its supervisor restarts it, which resumes the saga
//! from the step in the store.

use actix::prelude::*;

use crate::domain::PaymentId;
use crate::payments::saga::{SagaDeps, SagaEnd};
use crate::payments::PaymentRouter;

pub struct PaymentActor {
    id: PaymentId,
    deps: SagaDeps,
    router: PaymentRouter,
    finished: bool,
}

impl PaymentActor {
    pub fn new(id: PaymentId, deps: SagaDeps, router: PaymentRouter) -> Self {
        PaymentActor {
            id,
            deps,
            router,
            finished: false,
        }
    }
}

impl Actor for PaymentActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let saga = self.deps.clone().run(self.id);
        ctx.spawn(saga.into_actor(self).map(|end, act, ctx| {
            act.finished = end == SagaEnd::Finished;
            if !act.finished {
                tracing::warn!(payment = %act.id, "payment actor stopped mid-saga (injected fault)");
            }
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.router.finished(self.id);
        if !self.finished {
            // Stopped mid-saga (not a panic, so not restarted in place): the
            // payment router starts it again shortly, from its log.
            let (router, id) = (self.router.clone(), self.id);
            actix_rt::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                router.start(id);
            });
        }
    }
}

/// All state is in the store: a restart runs the saga again from its log.
impl Supervised for PaymentActor {}
