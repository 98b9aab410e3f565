//! A circuit-breaker actor per remote dependency. It wraps the pure
//! [`Breaker`] state machine and runs the guarded calls itself: a call is
//! rejected at once (`unavailable`) while the breaker is open, otherwise it
//! runs with the per-call timeout and its outcome is recorded when it ends.
//! Calls run concurrently as futures in the actor's context; the actor never
//! waits on one, so rejections stay immediate while calls are slow.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::Rng;

use crate::cause::Cause;
use crate::resilience::{Breaker, BreakerConfig, BreakerState, Outcome, Rejected, Snapshot};
use crate::supervision::faults::{Faults, Injected};
use crate::supervision::{Envelope, Msg, Responder, Unanswered};
use std::sync::Arc;

/// Why a guarded call did not give an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Rejected(Rejected),
    #[error("the call timed out after {0:?}")]
    Timeout(Duration),
    /// The remote answered or failed; `counts` says whether the breaker
    /// counts it as a failure (5xx, connection errors: yes; 4xx: no).
    /// `cause`: the error underneath, when there is one.
    #[error("{message}")]
    Failed {
        message: String,
        counts: bool,
        #[source]
        cause: Option<Cause>,
    },
    #[error("the breaker actor failed while the call was in flight")]
    Lost,
}

pub type CallResult<T> = Result<T, CallError>;

impl<T> Unanswered for CallResult<T> {
    fn unanswered() -> Self {
        Err(CallError::Lost)
    }
}

type CallFuture<T> = Pin<Box<dyn Future<Output = CallResult<T>> + Send>>;

/// Run `call` through the breaker; the answer comes through `reply`.
pub struct Call<T: Send + 'static> {
    pub call: CallFuture<T>,
    pub reply: Responder<CallResult<T>>,
}

impl<T: Send + 'static> Msg for Call<T> {
    type Reply = ();
    const NAME: &'static str = "breaker_call";
}

/// An operator's order (`POST /admin/breakers/{name}`).
pub struct Force(pub BreakerState);

impl Msg for Force {
    type Reply = ();
    const NAME: &'static str = "breaker_force";
}

pub struct Status;

impl Msg for Status {
    type Reply = Snapshot;
    const NAME: &'static str = "breaker_status";
}

pub struct BreakerActor {
    name: &'static str,
    faults: Arc<Faults>,
    config: BreakerConfig,
    timeout: Duration,
    breaker: Breaker,
}

impl BreakerActor {
    pub fn new(
        name: &'static str,
        config: BreakerConfig,
        timeout: Duration,
        faults: Arc<Faults>,
    ) -> Self {
        BreakerActor {
            name,
            faults,
            breaker: new_breaker(&config),
            config,
            timeout,
        }
    }

    fn record_state(&self) {
        let value = match self.breaker.state() {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
            BreakerState::ForcedOpen => 3.0,
            BreakerState::Disabled => 4.0,
        };
        metrics::gauge!("parley_breaker_state", "breaker" => self.name).set(value);
    }
}

/// Counts one call refused because the breaker is open (or forced open),
/// in the `breaker_open` series the alert watches and in the calls metric.
/// Also used by callers that check the state before calling, so a call
/// refused that way counts like one the breaker itself rejected.
pub fn count_rejected(breaker: &'static str) {
    crate::series::record("breaker_open", 1.0);
    metrics::counter!("parley_breaker_calls_total", "breaker" => breaker, "outcome" => "rejected")
        .increment(1);
}

/// A fresh state machine, told the wall-clock time it starts at (it reads
/// no clock itself) so its transitions can be shown at clock time.
fn new_breaker(config: &BreakerConfig) -> Breaker {
    let mut b = Breaker::new(config.clone(), Instant::now());
    b.set_wall_clock(crate::domain::now_ms());
    b
}

impl Actor for BreakerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.record_state();
    }
}

/// A restarted breaker starts closed with an empty window (its calls in
/// flight were answered `Lost` when their futures were dropped).
impl Supervised for BreakerActor {
    fn restarting(&mut self, _: &mut Self::Context) {
        self.breaker = new_breaker(&self.config);
    }
}

impl<T: Send + 'static> Handler<Envelope<Call<T>>> for BreakerActor {
    type Result = ();

    fn handle(&mut self, env: Envelope<Call<T>>, ctx: &mut Self::Context) {
        let _scope = env.enter("breaker");
        if self.faults.inject("breaker", || self.name.to_string()) == Injected::Stop {
            return ctx.stop();
        }
        let Call { call, reply } = env.msg;
        let permit = match self.breaker.try_acquire(Instant::now()) {
            Ok(p) => p,
            Err(rejected) => {
                self.record_state();
                count_rejected(self.name);
                return reply.respond(Err(CallError::Rejected(rejected)));
            }
        };
        self.record_state();
        let timeout = self.timeout;
        let guarded = async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result,
                Err(_) => Err(CallError::Timeout(timeout)),
            }
        };
        ctx.spawn(guarded.into_actor(self).map(move |result, act, _| {
            let (outcome, label) = match &result {
                Ok(_) => (Outcome::Success, "success"),
                Err(CallError::Failed { counts: false, .. }) => (Outcome::Success, "ignored"),
                Err(CallError::Timeout(_)) => (Outcome::Failure, "timeout"),
                Err(_) => (Outcome::Failure, "failure"),
            };
            act.breaker
                .on_result(permit, outcome, Instant::now(), rand::thread_rng().gen::<f64>());
            act.record_state();
            metrics::counter!("parley_breaker_calls_total", "breaker" => act.name, "outcome" => label).increment(1);
            reply.respond(result);
        }));
    }
}

impl Handler<Envelope<Force>> for BreakerActor {
    type Result = ();

    fn handle(&mut self, env: Envelope<Force>, _: &mut Self::Context) {
        let _scope = env.enter("breaker");
        tracing::warn!(breaker = self.name, state = ?env.msg.0, "breaker state forced");
        self.breaker.force(env.msg.0, Instant::now());
        self.record_state();
    }
}

impl Handler<Envelope<Status>> for BreakerActor {
    type Result = MessageResult<Envelope<Status>>;

    fn handle(&mut self, _: Envelope<Status>, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.breaker.snapshot(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TraceContext;
    use crate::resilience::WindowKind;

    fn config() -> BreakerConfig {
        BreakerConfig {
            window: WindowKind::Count(4),
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(5),
            minimum_calls: 4,
            wait_open: Duration::from_secs(60),
            wait_multiplier: 2.0,
            max_wait: Duration::from_secs(600),
            jitter: 0.0,
            half_open_calls: 1,
        }
    }

    async fn call(addr: &Addr<BreakerActor>, result: CallResult<u32>) -> CallResult<u32> {
        let (reply, answer) = Responder::oneshot();
        let call: CallFuture<u32> = Box::pin(async move { result });
        addr.do_send(Envelope::new(TraceContext::random(), Call { call, reply }));
        answer.await.unwrap_or(Err(CallError::Lost))
    }

    #[actix_rt::test]
    async fn failures_open_it_and_open_rejects_at_once() {
        let faults = Arc::new(Faults::new(false));
        let addr = BreakerActor::new("test", config(), Duration::from_secs(1), faults).start();
        assert_eq!(call(&addr, Ok(1)).await, Ok(1));
        // 4xx-like failures are answered but do not count.
        let not_counted = CallError::Failed {
            message: "declined".into(),
            counts: false,
            cause: None,
        };
        for _ in 0..4 {
            assert_eq!(
                call(&addr, Err(not_counted.clone())).await,
                Err(not_counted.clone())
            );
        }
        let status = addr
            .send(Envelope::new(TraceContext::random(), Status))
            .await
            .unwrap();
        assert_eq!(status.state, BreakerState::Closed);
        let counted = CallError::Failed {
            message: "503".into(),
            counts: true,
            cause: None,
        };
        for _ in 0..4 {
            let _ = call(&addr, Err(counted.clone())).await;
        }
        assert_eq!(
            call(&addr, Ok(2)).await,
            Err(CallError::Rejected(Rejected::Open))
        );
        let status = addr
            .send(Envelope::new(TraceContext::random(), Status))
            .await
            .unwrap();
        assert_eq!(status.state, BreakerState::Open);
        // The window (4 calls) held 2 successes and 2 failures after the
        // second failure: 50 % opened it, so the last two failing calls and
        // the success were all rejected.
        assert_eq!(status.rejected, 3);
        addr.do_send(Envelope::new(
            TraceContext::random(),
            Force(BreakerState::Disabled),
        ));
        assert_eq!(call(&addr, Ok(3)).await, Ok(3));
    }

    #[actix_rt::test]
    async fn a_slow_call_times_out_and_counts_as_a_failure() {
        let faults = Arc::new(Faults::new(false));
        let addr = BreakerActor::new("test", config(), Duration::from_millis(20), faults).start();
        let (reply, answer) = Responder::oneshot();
        let call: CallFuture<u32> = Box::pin(async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(1)
        });
        addr.do_send(Envelope::new(TraceContext::random(), Call { call, reply }));
        assert_eq!(
            answer.await.unwrap(),
            Err(CallError::Timeout(Duration::from_millis(20)))
        );
        let status = addr
            .send(Envelope::new(TraceContext::random(), Status))
            .await
            .unwrap();
        assert_eq!((status.calls, status.failures), (1, 1));
    }
}
