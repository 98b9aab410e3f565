//! Payments in chat (docs/ARCHITECTURE.md, "Payments are sagas with a step
//! log"): the provider client, the saga a payment actor runs, and the router
//! that starts, finds and resumes them.

pub mod client;
pub mod router;
pub mod saga;

pub use client::{ChargeAnswer, ProviderClient, RefundAnswer};
pub use router::PaymentRouter;

use crate::actors::breaker::Status;
use crate::actors::{ChatError, ChatResult, Deps};
use crate::domain::{Payment, TraceContext, Username};
use crate::resilience::BreakerState;
use crate::store::NewPayment;
use crate::supervision::Envelope;

/// Largest single payment, in minor units (keeps sums far from overflow).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Makes a payment (the `pay` frame and `POST /api/payments`): refused at
/// once while the provider's breaker is open, else the payer's funds are
/// held and the saga starts (`payment` frames go to the payer's and the
/// payee's sessions). Idempotent per payer by `key`: the same key gives back
/// the same payment (`true`), and nothing else happens.
pub async fn create(
    deps: &Deps,
    payer: Username,
    payee: Username,
    amount: i64,
    key: String,
    trace: TraceContext,
    reference: Option<String>,
) -> ChatResult<(Payment, bool)> {
    if payer == payee {
        return Err(ChatError::BadRequest(
            "a payment goes to another user".into(),
        ));
    }
    if !(1..=MAX_AMOUNT).contains(&amount) {
        return Err(ChatError::BadRequest(format!(
            "amount must be between 1 and {MAX_AMOUNT}"
        )));
    }
    let key_len = key.chars().count();
    if key_len == 0 || key_len > 64 {
        return Err(ChatError::BadRequest(
            "idempotencyKey must have 1 to 64 characters".into(),
        ));
    }
    // A repeated key gets its payment back even while the breaker is open.
    if let Some(p) = deps
        .store
        .payment_by_key(payer.clone(), key.clone())
        .await?
    {
        if p.payee != payee || p.amount != amount {
            return Err(ChatError::Conflict(
                "this idempotencyKey was used for another payment".into(),
            ));
        }
        if !p.step.is_terminal() {
            deps.payments.start(p.id);
        }
        return Ok((p, true));
    }
    // The saga posts into the direct conversation of payer and payee,
    // creating it: refused here, before any money moves, when the payer may
    // not start another conversation.
    crate::actors::quota::room_to_start(
        &deps.store,
        &payer,
        deps.settings.limits.max_conversations_per_user,
        Some(&payee),
    )
    .await?;
    if let Some((_, breaker)) = deps
        .breakers
        .iter()
        .find(|(name, _)| *name == "payment_provider")
    {
        if let Ok(status) = breaker.send(Envelope::new(trace, Status)).await {
            let open = match status.state {
                BreakerState::ForcedOpen => true,
                BreakerState::Open => status.open_remaining_ms.is_some_and(|ms| ms > 0),
                _ => false,
            };
            if open {
                // Refused before the call: counted as the breaker would
                // count a call it rejected, so `breaker_open` alerts fire.
                crate::actors::breaker::count_rejected("payment_provider");
                return Err(ChatError::Unavailable(
                    "the payment provider is unavailable (circuit breaker open); retry later"
                        .into(),
                ));
            }
        }
    }
    let (payment, existed) = deps
        .store
        .create_payment(NewPayment {
            payer,
            payee,
            amount,
            key,
            trace: trace.trace_id,
        })
        .await?;
    // The console links every payment's trace; kept before the cluster hears
    // of it, so other nodes keep their part too.
    crate::traces::keep(payment.trace_id, crate::traces::Keep::Payment);
    if !existed {
        tracing::info!(payment = %payment.id, amount, trace_id = %trace.trace_id, "payment created");
        saga::announce(&deps.cluster, &deps.registry, &payment, reference);
    }
    if !payment.step.is_terminal() && !deps.payments.start(payment.id) {
        tracing::warn!(payment = %payment.id, "too many payments running; this one resumes at the next start");
    }
    Ok((payment, existed))
}
