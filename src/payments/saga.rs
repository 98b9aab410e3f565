//! The saga one payment actor runs, step by step from its durable log:
//! reserve (done at creation) -> charge the provider (the pivot, key =
//! payment id) -> credit the payee -> post the payment message -> done; a
//! decline releases the hold; a provider unreachable past the deadline is
//! compensated (refund by key, then release). Every step is written before
//! it acts, and every step may run twice after a crash: the provider's
//! idempotency keys, the store's step transitions and the message's
//! clientMsgId make a repeat harmless.

use std::time::{Duration, Instant};

use rand::Rng;

use crate::actors::breaker::CallError;
use crate::actors::conversation::ConvRequest;
use crate::actors::conversations::ConversationRouter;
use tracing::Instrument;

use crate::actors::registry::SessionRegistry;
use crate::cluster::ClusterHandle;
use crate::domain::{now_ms, MessageKind, Payment, PaymentId, SagaStep, TraceContext};
use crate::protocol::ServerFrame;
use crate::store::redis::EventKind;
use crate::store::{Pair, SagaMove, Store, StoreError};
use crate::supervision::faults::{Faults, Injected};
use crate::supervision::policy::{Backoff, BackoffState};
use crate::supervision::{Envelope, Responder, TraceScope};
use crate::traces::{self, ActorRef};

use super::client::{ChargeAnswer, ProviderClient, RefundAnswer};

/// What the saga needs; cloned into each payment actor.
#[derive(Clone)]
pub struct SagaDeps {
    pub store: Store,
    /// Leases (one node runs a saga) and status announcements.
    pub cluster: ClusterHandle,
    pub provider: ProviderClient,
    pub conversations: ConversationRouter,
    pub registry: SessionRegistry,
    pub faults: std::sync::Arc<Faults>,
    /// After this long without a definite answer, compensate.
    pub deadline: Duration,
    /// Pauses between tries of a store write or a provider call: doubling
    /// from `payments.retry_base_ms` to `payments.retry_max_ms`, each cut by
    /// a random share of up to `supervision.backoff_jitter`, so sagas that
    /// failed together (an outage) do not all retry in the same instant.
    pub retry: Backoff,
    /// Cluster mode: how long a saga lease lasts unrenewed.
    pub lease: Duration,
}

/// How a run of the saga ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SagaEnd {
    Finished,
    /// An injected `stop` fault: the actor stops mid-saga.
    Stopped,
}

/// The retries of one step (see `SagaDeps::retry`).
struct Retry {
    policy: Backoff,
    state: BackoffState,
}

impl Retry {
    /// Sleeps with jittered exponential backoff (a timer, never a busy loop).
    async fn pause(&mut self) {
        let unit = rand::thread_rng().gen::<f64>();
        let delay = self.state.next_delay(&self.policy, Instant::now(), unit);
        tokio::time::sleep(delay).await;
    }
}

/// Counts a payment that reached its end.
fn count_end(p: &Payment) {
    let status = p.status.as_str();
    metrics::counter!("parley_payments_total", "status" => status).increment(1);
    crate::series::record(
        if status == "completed" {
            "payments_completed"
        } else {
            "payments_failed"
        },
        1.0,
    );
}

/// Tells the payer's and payee's sessions about the payment's status; the
/// request's `ref` (the payer's own correlation string) goes to the payer's
/// sessions only.
/// Tells this node's payer and payee sessions, and, in a cluster, the other
/// nodes (which tell theirs).
pub fn announce(
    cluster: &ClusterHandle,
    registry: &SessionRegistry,
    p: &Payment,
    reference: Option<String>,
) {
    notify(registry, p, reference);
    let what = EventKind::Payment { payment_id: p.id };
    cluster.tell_others(what, p.trace_id, "payment status");
}

/// Tells this node's payer and payee sessions (the payer's asking session
/// gets `reference` back).
pub fn notify(registry: &SessionRegistry, p: &Payment, reference: Option<String>) {
    let trace = TraceContext::new(p.trace_id);
    let plain = ServerFrame::payment(p, None).to_text();
    let to_payer = match reference {
        Some(r) => ServerFrame::payment(p, Some(r)).to_text(),
        None => plain.clone(),
    };
    registry.for_each_session(&p.payer, |s| {
        s.deliver(to_payer.clone(), trace);
    });
    registry.for_each_session(&p.payee, |s| {
        s.deliver(plain.clone(), trace);
    });
}

impl SagaDeps {
    fn announce(&self, p: &Payment) {
        announce(&self.cluster, &self.registry, p, None);
    }

    fn retry(&self) -> Retry {
        Retry {
            policy: self.retry,
            state: BackoffState::default(),
        }
    }

    /// A store write, retried while the store is busy or failing.
    async fn advance(&self, id: PaymentId, to: SagaStep, reason: Option<&str>) -> Payment {
        let mut retry = self.retry();
        loop {
            match self
                .store
                .advance_payment(SagaMove {
                    id,
                    to,
                    reason: reason.map(str::to_string),
                })
                .await
            {
                Ok(p) => return p,
                Err(e) => {
                    tracing::warn!(payment = %id, step = to.as_str(), error = %e, "saga step not stored; retrying");
                    retry.pause().await;
                }
            }
        }
    }

    async fn load(&self, id: PaymentId) -> Option<Payment> {
        let mut retry = self.retry();
        loop {
            match self.store.payment(id).await {
                Ok(p) => return p,
                Err(StoreError::Closed) => return None,
                Err(e) => {
                    tracing::warn!(payment = %id, error = %e, "payment not readable; retrying");
                    retry.pause().await;
                }
            }
        }
    }

    /// Runs the saga of `id` from its logged step to the end.
    pub async fn run(self, id: PaymentId) -> SagaEnd {
        loop {
            let Some(p) = self.load(id).await else {
                return SagaEnd::Finished;
            };
            let trace = TraceContext::new(p.trace_id);
            // Also when resumed here after a restart or on another node.
            traces::keep(p.trace_id, traces::Keep::Payment);
            // The span is entered only while this saga is polled
            // (`instrument`): a guard held across an await would leak it
            // onto whatever else runs on the thread.
            let span = tracing::info_span!("saga", payment = %id, step = p.step.as_str(), trace_id = %p.trace_id);
            // The trace scope is held only around this synchronous fault
            // point (a scope held across an await would leak to other tasks).
            let injected = span.in_scope(|| {
                let _scope = TraceScope::enter(p.trace_id, None);
                self.faults.inject("payment", || id.to_string())
            });
            if injected == Injected::Stop {
                return SagaEnd::Stopped;
            }
            let step_started = std::time::Instant::now();
            let step = p.step;
            let finished = async {
                tracing::info!("saga step");
                match p.step {
                    SagaStep::Reserved => {
                        self.advance(id, SagaStep::Charging, None).await;
                    }
                    SagaStep::Charging => self.charge(&p, trace).await,
                    SagaStep::Credited => {
                        self.post_message(&p, trace).await;
                        let done = self.advance(id, SagaStep::Done, None).await;
                        count_end(&done);
                        self.announce(&done);
                    }
                    SagaStep::Refunding => self.refund(&p, trace).await,
                    SagaStep::Done | SagaStep::Released => return true,
                }
                false
            }
            .instrument(span)
            .await;
            if finished {
                return SagaEnd::Finished;
            }
            traces::hop(
                p.trace_id,
                "payment",
                ActorRef::Payment(id),
                step.as_str(),
                step_started.elapsed(),
            );
        }
    }

    /// The pivot. A timeout leaves the outcome unknown: ask the provider by
    /// key before deciding. Unreachable (or the breaker open) past the
    /// deadline: compensate.
    async fn charge(&self, p: &Payment, trace: TraceContext) {
        let mut retry = self.retry();
        loop {
            let answer = match self.provider.charge(p.id, p.amount, trace).await {
                Err(CallError::Timeout(_) | CallError::Lost) => {
                    match self.provider.lookup(p.id, trace).await {
                        Ok(Some(a)) => Ok(a),
                        // Not charged (yet): charging again with the same key
                        // is safe, after the usual pause and deadline check.
                        Ok(None) => Err(CallError::Failed {
                            message: "the charge timed out and the provider has no charge for it"
                                .into(),
                            counts: false,
                            cause: None,
                        }),
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            match answer {
                Ok(ChargeAnswer::Succeeded) => {
                    self.advance(p.id, SagaStep::Credited, None).await;
                    return;
                }
                Ok(ChargeAnswer::Declined(reason)) => {
                    let failed = self.advance(p.id, SagaStep::Released, Some(&reason)).await;
                    count_end(&failed);
                    self.announce(&failed);
                    return;
                }
                Err(e) => {
                    let waited = now_ms().saturating_sub(p.created_at);
                    if waited >= self.deadline.as_millis() as i64 {
                        tracing::warn!(error = %e, "provider unavailable past the deadline; compensating");
                        self.advance(
                            p.id,
                            SagaStep::Refunding,
                            Some("payment provider unavailable"),
                        )
                        .await;
                        return;
                    }
                    tracing::info!(error = %e, "charge not done; retrying");
                    retry.pause().await;
                }
            }
        }
    }

    /// Compensation: refund by key (retried until the provider answers),
    /// then release the hold.
    async fn refund(&self, p: &Payment, trace: TraceContext) {
        let mut retry = self.retry();
        loop {
            match self.provider.refund(p.id, trace).await {
                Ok(RefundAnswer::Refunded | RefundAnswer::NoCharge) => {
                    let failed = self.advance(p.id, SagaStep::Released, None).await;
                    count_end(&failed);
                    self.announce(&failed);
                    return;
                }
                Err(e) => {
                    tracing::info!(error = %e, "refund not done; retrying");
                    retry.pause().await;
                }
            }
        }
    }

    /// The payment message in the payer's and payee's direct conversation;
    /// its clientMsgId is the payment id, so a repeat stores nothing new.
    async fn post_message(&self, p: &Payment, trace: TraceContext) {
        let mut retry = self.retry();
        loop {
            let conversation = match self
                .store
                .direct_conversation(Pair {
                    a: p.payer.clone(),
                    b: p.payee.clone(),
                    quota: Some(started_by(&p.payer)),
                })
                .await
            {
                Ok(c) => {
                    // A payment to a new contact starts their conversation.
                    let directory = self.conversations.directory();
                    crate::actors::directory::introduce_direct(directory, c.clone(), trace);
                    c
                }
                Err(e) => {
                    tracing::warn!(error = %e, "direct conversation not ready; retrying");
                    retry.pause().await;
                    continue;
                }
            };
            let (reply, answer) = Responder::oneshot();
            let request = ConvRequest::Send {
                sender: p.payer.clone(),
                client_msg_id: p.id.to_string(),
                // Written for people: major units, as the pages show amounts.
                text: format!(
                    "paid {} to {}",
                    crate::domain::money::major_units(p.amount),
                    p.payee
                ),
                kind: MessageKind::Payment,
                reply,
            };
            self.conversations
                .route(conversation.id, Envelope::new(trace, request));
            match answer.await {
                Ok(Ok(_)) => return,
                Ok(Err(e)) => tracing::warn!(error = %e, "payment message not posted; retrying"),
                Err(_) => tracing::warn!("payment message answer lost; retrying"),
            }
            retry.pause().await;
        }
    }
}

/// The payer starts the direct conversation a payment posts in. Its quota
/// was checked before any money moved (`payments::create`); by now the
/// money has moved, so the conversation is never refused, only counted.
fn started_by(payer: &crate::domain::Username) -> crate::store::Quota {
    crate::store::Quota {
        user: payer.clone(),
        max: usize::MAX,
    }
}
