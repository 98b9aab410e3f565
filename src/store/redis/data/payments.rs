//! Payments: creating one holds the payer's funds in the same script; each
//! saga step moves its money, the payment and the step log in one script.

use serde::Deserialize;

use super::scripts::{PAY_ADVANCE, PAY_CREATE, PAY_GET, PAY_LIST};
use super::wire::{List, PaymentWire};
use crate::domain::{now_ms, Payment, PaymentId, PaymentStatus, TraceContext, Username};
use crate::store::redis::RedisStore;
use crate::store::StoreError;
use crate::store::StoreResult;
use crate::store::{NewPayment, PaymentFilter, SagaMove};

#[derive(Deserialize)]
struct CreatedWire {
    payment: PaymentWire,
    existed: bool,
}

impl RedisStore {
    /// A new payment with the payer's funds held (`InsufficientFunds`
    /// otherwise, nothing held), or the payer's existing one with that
    /// idempotency key (`true`); `Conflict` if that one differs.
    pub async fn create_payment(&self, p: NewPayment) -> StoreResult<(Payment, bool)> {
        let (payer, payee, key) = (p.payer, p.payee, p.key);
        let (amount, trace) = (p.amount, p.trace);
        // SQLite refuses these with a CHECK constraint; here the hold
        // (balance - amount) must not turn into a deposit.
        if amount <= 0 {
            return Err(StoreError::BadRequest("amount must be positive".into()));
        }
        let now = now_ms().to_string();
        let args = vec![
            PaymentId::new_v7().to_string(),
            payer.to_string(),
            payee.to_string(),
            amount.to_string(),
            (-amount).to_string(),
            key,
            trace.to_string(),
            now,
        ];
        let created: CreatedWire = self
            .eval_some(TraceContext::new(trace), &PAY_CREATE, args)
            .await?;
        Ok((created.payment.into_payment()?, created.existed))
    }

    /// Moves the saga to `to` with the money that step moves (credited pays
    /// the payee, released returns the payer's funds). Repeating the current
    /// step is a no-op; a step that does not follow is a `Conflict`.
    pub async fn advance_payment(&self, step: SagaMove) -> StoreResult<Payment> {
        let SagaMove { id, to, reason } = step;
        let (has_reason, reason) = match reason {
            Some(r) => ("1", r),
            None => ("0", String::new()),
        };
        let args = vec![
            id.to_string(),
            to.as_str().to_string(),
            has_reason.to_string(),
            reason,
            now_ms().to_string(),
        ];
        self.eval_some::<PaymentWire>(TraceContext::random(), &PAY_ADVANCE, args)
            .await?
            .into_payment()
    }

    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        self.get_payment(vec!["id".into(), id.to_string()]).await
    }

    /// The payer's payment with this idempotency key, if any.
    pub async fn payment_by_key(
        &self,
        payer: Username,
        key: String,
    ) -> StoreResult<Option<Payment>> {
        self.get_payment(vec!["key".into(), payer.to_string(), key])
            .await
    }

    /// Newest first (by id, a UUID v7); `unfinished`: sagas not yet done or
    /// released, which are exactly the `pending` ones.
    pub async fn payments(&self, filter: PaymentFilter) -> StoreResult<Vec<Payment>> {
        let (status, unfinished, limit) = (filter.status, filter.unfinished, filter.limit);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let index = match (unfinished, status) {
            (true, _) => PaymentStatus::Pending.as_str(),
            (false, Some(s)) => s.as_str(),
            (false, None) => "all",
        };
        // ZRANGE's LIMIT count is a signed 64-bit integer.
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let list: List<PaymentWire> = self
            .eval_some(
                TraceContext::random(),
                &PAY_LIST,
                vec![index.to_string(), limit.to_string()],
            )
            .await?;
        list.0.into_iter().map(PaymentWire::into_payment).collect()
    }

    async fn get_payment(&self, args: Vec<String>) -> StoreResult<Option<Payment>> {
        let found: Option<PaymentWire> = self.eval(TraceContext::random(), &PAY_GET, args).await?;
        found.map(PaymentWire::into_payment).transpose()
    }
}
