//! The payment provider's HTTP client. Every call carries `traceparent` and
//! goes through the provider's circuit breaker; what counts as a breaker
//! failure is decided here: connection errors and 5xx yes, 4xx no.

use std::future::Future;

use actix::Addr;
use serde::Deserialize;
use serde_json::json;

use crate::actors::breaker::{BreakerActor, Call, CallError, CallResult};
use crate::domain::{PaymentId, TraceContext};
use crate::supervision::{Envelope, Responder};
use crate::traces::{self, ActorRef};
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeAnswer {
    Succeeded,
    Declined(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAnswer {
    Refunded,
    /// The provider never charged this payment: nothing to refund.
    NoCharge,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChargeBody {
    status: String,
    decline_reason: Option<String>,
}

#[derive(Clone)]
pub struct ProviderClient {
    http: reqwest::Client,
    base: String,
    breaker: Addr<BreakerActor>,
}

fn failed(message: String, counts: bool) -> CallError {
    CallError::Failed {
        message,
        counts,
        cause: None,
    }
}

impl ProviderClient {
    pub fn new(base: String, breaker: Addr<BreakerActor>) -> Self {
        ProviderClient {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_string(),
            breaker,
        }
    }

    /// Runs `call` through the breaker (rejected at once while open).
    /// Runs `call` through the breaker (rejected at once while open) and
    /// records the provider hop `op` in the trace.
    async fn guarded<T: Send + 'static>(
        &self,
        op: &'static str,
        trace: TraceContext,
        call: impl Future<Output = CallResult<T>> + Send + 'static,
    ) -> CallResult<T> {
        let started = Instant::now();
        let (reply, answer) = Responder::oneshot();
        let call = Call {
            call: Box::pin(call),
            reply,
        };
        let result = if self.breaker.try_send(Envelope::new(trace, call)).is_err() {
            Err(failed("the breaker is overloaded".into(), false))
        } else {
            answer.await.unwrap_or(Err(CallError::Lost))
        };
        let outcome = match &result {
            Ok(_) => format!("{op}: answered"),
            Err(e) => format!("{op}: {e}"),
        };
        traces::hop(
            trace.trace_id,
            "provider",
            ActorRef::Named("payment_provider"),
            outcome,
            started.elapsed(),
        );
        result
    }

    fn charge_from(
        status: u16,
        body: Result<ChargeBody, String>,
    ) -> CallResult<Option<ChargeAnswer>> {
        match status {
            200 => {
                let b = body.map_err(|e| failed(format!("unreadable charge: {e}"), true))?;
                Ok(Some(match b.status.as_str() {
                    "succeeded" => ChargeAnswer::Succeeded,
                    _ => ChargeAnswer::Declined(
                        b.decline_reason.unwrap_or_else(|| "declined".into()),
                    ),
                }))
            }
            404 => Ok(None),
            s if s >= 500 => Err(failed(format!("provider answered {s}"), true)),
            s => Err(failed(format!("provider refused the request: {s}"), false)),
        }
    }

    /// Sends a charge request (new or lookup) through the breaker and reads
    /// the charge it answers with (None: 404, no such charge).
    async fn charge_call(
        &self,
        op: &'static str,
        req: reqwest::RequestBuilder,
        trace: TraceContext,
    ) -> CallResult<Option<ChargeAnswer>> {
        let req = req.header("traceparent", trace.traceparent());
        self.guarded(op, trace, async move {
            let res = req
                .send()
                .await
                .map_err(|e| failed(format!("provider unreachable: {e}"), true))?;
            let status = res.status().as_u16();
            Self::charge_from(
                status,
                res.json::<ChargeBody>().await.map_err(|e| e.to_string()),
            )
        })
        .await
    }

    /// Charges `amount` with the payment id as idempotency key.
    pub async fn charge(
        &self,
        id: PaymentId,
        amount: i64,
        trace: TraceContext,
    ) -> CallResult<ChargeAnswer> {
        let req = self
            .http
            .post(format!("{}/v1/charges", self.base))
            .json(&json!({"idempotencyKey": id.to_string(), "amount": amount}));
        self.charge_call("charge", req, trace)
            .await?
            .ok_or_else(|| failed("provider answered 404 to a charge".into(), true))
    }

    /// The charge made with this payment's key, if any.
    pub async fn lookup(
        &self,
        id: PaymentId,
        trace: TraceContext,
    ) -> CallResult<Option<ChargeAnswer>> {
        let req = self.http.get(format!("{}/v1/charges/{id}", self.base));
        self.charge_call("lookup", req, trace).await
    }

    /// Refunds this payment's charge (its own key: `<id>:refund`).
    pub async fn refund(&self, id: PaymentId, trace: TraceContext) -> CallResult<RefundAnswer> {
        let op = "refund";
        let req = self
            .http
            .post(format!("{}/v1/refunds", self.base))
            .header("traceparent", trace.traceparent())
            .json(&json!({"idempotencyKey": format!("{id}:refund"), "chargeKey": id.to_string()}));
        self.guarded(op, trace, async move {
            let res = req
                .send()
                .await
                .map_err(|e| failed(format!("provider unreachable: {e}"), true))?;
            match res.status().as_u16() {
                200 => Ok(RefundAnswer::Refunded),
                // No such charge, or a declined one: nothing was taken.
                404 | 409 => Ok(RefundAnswer::NoCharge),
                s if s >= 500 => Err(failed(format!("provider answered {s}"), true)),
                s => Err(failed(format!("provider refused the refund: {s}"), false)),
            }
        })
        .await
    }
}
