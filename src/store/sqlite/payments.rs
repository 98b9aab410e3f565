//! Payments on the writer side: creating one holds the payer's funds in the
//! same transaction; each saga step moves money and the log head together,
//! so a crash never leaves one without the other.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::queries;
use crate::domain::{now_ms, Payment, PaymentId, PaymentStatus, SagaStep, TraceId, Username};
use crate::store::{NewPayment, SagaMove, StoreError, StoreResult};

pub const PAYMENT_COLUMNS: &str =
    "id, payer, payee, amount, idempotency_key, status, reason, step, created_at, updated_at, trace_id";

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::backend(format!("corrupt {what} in the database: {v:?}"))
}

pub fn payment_row(row: &Row<'_>) -> StoreResult<Payment> {
    let id: String = row.get(0)?;
    let status: String = row.get(5)?;
    let step: String = row.get(7)?;
    let trace: String = row.get(10)?;
    Ok(Payment {
        id: PaymentId::parse(&id).map_err(|_| corrupt("payment id", &id))?,
        payer: queries::username(&row.get::<_, String>(1)?)?,
        payee: queries::username(&row.get::<_, String>(2)?)?,
        amount: row.get(3)?,
        idempotency_key: row.get(4)?,
        status: PaymentStatus::parse(&status).ok_or_else(|| corrupt("payment status", &status))?,
        reason: row.get(6)?,
        step: SagaStep::parse(&step).ok_or_else(|| corrupt("saga step", &step))?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
        trace_id: TraceId::parse(&trace).ok_or_else(|| corrupt("trace id", &trace))?,
    })
}

pub fn load(conn: &Connection, id: PaymentId) -> StoreResult<Option<Payment>> {
    conn.prepare_cached(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments WHERE id = ?1"
    ))?
    .query_row(params![id.to_string()], |r| Ok(payment_row(r)))
    .optional()?
    .transpose()
}

fn log_step(conn: &Connection, id: PaymentId, step: SagaStep, at: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO payment_steps (payment_id, step, at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id.to_string(), step.as_str(), at])?;
    Ok(())
}

fn add_balance(conn: &Connection, user: &Username, delta: i64) -> StoreResult<()> {
    let changed = conn
        .prepare_cached(
            "UPDATE users SET balance = balance + ?2 WHERE username = ?1 AND balance + ?2 >= 0",
        )?
        .execute(params![user.as_str(), delta])?;
    if changed == 0 {
        return Err(StoreError::InsufficientFunds);
    }
    Ok(())
}

/// A new payment with the payer's funds held, or the payer's existing
/// payment with that idempotency key (`true`: it existed).
pub fn create(conn: &Connection, new: &NewPayment) -> StoreResult<(Payment, bool)> {
    let (payer, payee, key) = (&new.payer, &new.payee, new.key.as_str());
    let (amount, trace) = (new.amount, new.trace);
    let existing = conn
        .prepare_cached(&format!(
            "SELECT {PAYMENT_COLUMNS} FROM payments WHERE payer = ?1 AND idempotency_key = ?2"
        ))?
        .query_row(params![payer.as_str(), key], |r| Ok(payment_row(r)))
        .optional()?
        .transpose()?;
    if let Some(p) = existing {
        if p.payee != *payee || p.amount != amount {
            return Err(StoreError::Conflict(
                "this idempotencyKey was used for another payment".into(),
            ));
        }
        return Ok((p, true));
    }
    if !queries::user_exists(conn, payee)? {
        return Err(StoreError::NotFound(format!("no user named {payee}")));
    }
    add_balance(conn, payer, -amount)?;
    let now = now_ms();
    let payment = Payment {
        id: PaymentId::new_v7(),
        payer: payer.clone(),
        payee: payee.clone(),
        amount,
        idempotency_key: key.to_string(),
        status: PaymentStatus::Pending,
        reason: None,
        step: SagaStep::Reserved,
        created_at: now,
        updated_at: now,
        trace_id: trace,
    };
    conn.prepare_cached(&format!(
        "INSERT INTO payments ({PAYMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8, ?8, ?9)"
    ))?
    .execute(params![
        payment.id.to_string(),
        payer.as_str(),
        payee.as_str(),
        amount,
        key,
        payment.status.as_str(),
        payment.step.as_str(),
        now,
        trace.to_string(),
    ])?;
    log_step(conn, payment.id, SagaStep::Reserved, now)?;
    Ok((payment, false))
}

/// Moves a payment's saga to `to`, with the money that step moves:
/// credited pays the payee, released returns the payer's funds. Repeating
/// a step already taken is a no-op (resuming after a crash); a step that
/// does not follow the current one is a `Conflict`.
pub fn advance(conn: &Connection, step: &SagaMove) -> StoreResult<Payment> {
    let (id, to, reason) = (step.id, step.to, step.reason.as_deref());
    let p = load(conn, id)?.ok_or_else(|| StoreError::NotFound("no such payment".into()))?;
    if p.step == to {
        return Ok(p);
    }
    use SagaStep::*;
    let allowed = matches!(
        (p.step, to),
        (Reserved, Charging)
            | (Reserved | Charging, Refunding)
            | (Charging, Credited)
            | (Reserved | Charging | Refunding, Released)
            | (Credited, Done)
    );
    if !allowed {
        return Err(StoreError::Conflict(format!(
            "payment {id} cannot go from {} to {}",
            p.step.as_str(),
            to.as_str()
        )));
    }
    match to {
        Credited => add_balance(conn, &p.payee, p.amount)?,
        Released => add_balance(conn, &p.payer, p.amount)?,
        _ => {}
    }
    let status = match to {
        Done => PaymentStatus::Completed,
        Released => PaymentStatus::Failed,
        _ => PaymentStatus::Pending,
    };
    let now = now_ms();
    conn.prepare_cached(
        "UPDATE payments SET step = ?2, status = ?3, reason = COALESCE(?4, reason), updated_at = ?5 WHERE id = ?1",
    )?
    .execute(params![id.to_string(), to.as_str(), status.as_str(), reason, now])?;
    log_step(conn, id, to, now)?;
    load(conn, id)?.ok_or_else(|| StoreError::backend("payment vanished"))
}

/// Adds `amount` to a wallet (admin credit); returns the new balance.
pub fn credit(conn: &Connection, user: &Username, amount: i64) -> StoreResult<i64> {
    if !queries::user_exists(conn, user)? {
        return Err(StoreError::NotFound(format!("no user named {user}")));
    }
    add_balance(conn, user, amount)?;
    Ok(conn
        .prepare_cached("SELECT balance FROM users WHERE username = ?1")?
        .query_row(params![user.as_str()], |r| r.get(0))?)
}
