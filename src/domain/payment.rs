//! Payments and the steps of their saga.

use super::{PaymentId, TraceId, Username};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Pending,
    Completed,
    /// Money never left the payer, or was returned.
    Failed,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Completed => "completed",
            PaymentStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(PaymentStatus::Pending),
            "completed" => Some(PaymentStatus::Completed),
            "failed" => Some(PaymentStatus::Failed),
            _ => None,
        }
    }
}

/// The saga's log head: the step written before it acts.
///
/// reserved -> charging -> credited -> done (completed)
///                     \-> released (declined: failed)
///          \-> refunding -> released (provider unreachable past the deadline: failed)
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SagaStep {
    /// The payer's funds are held.
    Reserved,
    /// A charge (idempotency key = payment id) may have reached the provider.
    Charging,
    /// Charged, and the payee credited.
    Credited,
    /// The payment message is posted: completed.
    Done,
    /// Compensating: a refund by key may have reached the provider.
    Refunding,
    /// The payer's funds are back: failed.
    Released,
}

impl SagaStep {
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStep::Reserved => "reserved",
            SagaStep::Charging => "charging",
            SagaStep::Credited => "credited",
            SagaStep::Done => "done",
            SagaStep::Refunding => "refunding",
            SagaStep::Released => "released",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "reserved" => SagaStep::Reserved,
            "charging" => SagaStep::Charging,
            "credited" => SagaStep::Credited,
            "done" => SagaStep::Done,
            "refunding" => SagaStep::Refunding,
            "released" => SagaStep::Released,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, SagaStep::Done | SagaStep::Released)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub payer: Username,
    pub payee: Username,
    /// Minor units, > 0.
    pub amount: i64,
    pub idempotency_key: String,
    pub status: PaymentStatus,
    pub reason: Option<String>,
    pub step: SagaStep,
    /// Unix ms.
    pub created_at: i64,
    pub updated_at: i64,
    /// The trace of the request that created it; every saga step carries it.
    pub trace_id: TraceId,
}
