//! The provider's memory: charges and refunds by idempotency key (bounded),
//! and the behaviour settings tests may change at run time.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use super::ProviderOptions;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Charge {
    pub charge_id: String,
    pub idempotency_key: String,
    pub amount: i64,
    /// "succeeded" or "declined".
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decline_reason: Option<&'static str>,
    pub refunded: bool,
}

/// What may change while the provider runs (tests, drills).
#[derive(Debug, Clone, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderBehaviour {
    pub latency_ms: Option<u64>,
    pub failure_rate: Option<f64>,
    pub decline_rate: Option<f64>,
    /// true: every request gets 503 until set back to false.
    pub outage: Option<bool>,
}

struct Inner {
    options: ProviderOptions,
    outage: bool,
    /// key -> (request body fingerprint, charge)
    charges: HashMap<String, (String, Charge)>,
    /// refund key -> (request body, answer status, answer body)
    refunds: HashMap<String, (String, u16, serde_json::Value)>,
    requests: u64,
}

pub struct ProviderState {
    started: Instant,
    inner: Mutex<Inner>,
}

/// What a request should do before it is handled.
pub enum Gate {
    Serve,
    Unavailable,
}

impl ProviderState {
    pub fn new(options: ProviderOptions) -> Self {
        ProviderState {
            started: Instant::now(),
            inner: Mutex::new(Inner {
                options,
                outage: false,
                charges: HashMap::new(),
                refunds: HashMap::new(),
                requests: 0,
            }),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    pub fn latency(&self) -> Duration {
        self.lock().options.latency
    }

    /// Counts the request and decides whether it fails (outage, failure rate).
    pub fn gate(&self) -> Gate {
        let mut inner = self.lock();
        inner.requests += 1;
        let elapsed = self.started.elapsed().as_secs();
        let in_window = inner
            .options
            .outages
            .iter()
            .any(|(start, end)| (*start..*end).contains(&elapsed));
        if inner.outage || in_window || rand::thread_rng().gen::<f64>() < inner.options.failure_rate
        {
            Gate::Unavailable
        } else {
            Gate::Serve
        }
    }

    /// A charge by key: Ok(charge) (stored or new), Err(true) for a key
    /// reused with another body, Err(false) when the key store is full.
    pub fn charge(&self, key: &str, body: &str, amount: i64) -> Result<Charge, bool> {
        let mut inner = self.lock();
        if let Some((seen, charge)) = inner.charges.get(key) {
            // A voided key (refunded before any charge) declines every body.
            return if seen == body || charge.decline_reason == Some("voided") {
                Ok(charge.clone())
            } else {
                Err(true)
            };
        }
        if inner.charges.len() >= inner.options.max_keys {
            return Err(false);
        }
        let declined = rand::thread_rng().gen::<f64>() < inner.options.decline_rate;
        let charge = Charge {
            charge_id: format!("ch_{}", uuid::Uuid::new_v4().simple()),
            idempotency_key: key.to_string(),
            amount,
            status: if declined { "declined" } else { "succeeded" },
            decline_reason: declined.then_some("card_declined"),
            refunded: false,
        };
        inner
            .charges
            .insert(key.to_string(), (body.to_string(), charge.clone()));
        Ok(charge)
    }

    pub fn lookup(&self, key: &str) -> Option<Charge> {
        self.lock().charges.get(key).map(|(_, c)| c.clone())
    }

    /// A refund by its own key for the charge `charge_key`; answers as stored.
    pub fn refund(&self, key: &str, body: &str, charge_key: &str) -> (u16, serde_json::Value) {
        let mut inner = self.lock();
        if let Some((seen, status, answer)) = inner.refunds.get(key) {
            return if seen == body {
                (*status, answer.clone())
            } else {
                (
                    409,
                    serde_json::json!({"error": "idempotency key reused with another body"}),
                )
            };
        }
        if inner.refunds.len() >= inner.options.max_keys {
            return (503, serde_json::json!({"error": "provider key store full"}));
        }
        let answer = match inner.charges.get_mut(charge_key) {
            None => {
                // Voids the key: a charge with it arriving late (sent before
                // the refund, processed after) is declined, never taken.
                let void = Charge {
                    charge_id: format!("ch_{}", uuid::Uuid::new_v4().simple()),
                    idempotency_key: charge_key.to_string(),
                    amount: 0,
                    status: "declined",
                    decline_reason: Some("voided"),
                    refunded: false,
                };
                inner
                    .charges
                    .insert(charge_key.to_string(), (String::new(), void));
                (404, serde_json::json!({"error": "no such charge"}))
            }
            Some((_, c)) if c.status != "succeeded" => {
                (409, serde_json::json!({"error": "charge not succeeded"}))
            }
            Some((_, c)) => {
                c.refunded = true;
                (
                    200,
                    serde_json::json!({"refunded": true, "charge": c.clone()}),
                )
            }
        };
        inner.refunds.insert(
            key.to_string(),
            (body.to_string(), answer.0, answer.1.clone()),
        );
        answer
    }

    pub fn set(&self, b: &ProviderBehaviour) {
        let mut inner = self.lock();
        if let Some(ms) = b.latency_ms {
            inner.options.latency = Duration::from_millis(ms);
        }
        if let Some(r) = b.failure_rate {
            inner.options.failure_rate = r.clamp(0.0, 1.0);
        }
        if let Some(r) = b.decline_rate {
            inner.options.decline_rate = r.clamp(0.0, 1.0);
        }
        if let Some(o) = b.outage {
            inner.outage = o;
        }
    }

    /// Requests seen, charges kept, succeeded ones, refunded ones.
    pub fn stats(&self) -> serde_json::Value {
        let inner = self.lock();
        let succeeded = inner
            .charges
            .values()
            .filter(|(_, c)| c.status == "succeeded")
            .count();
        let refunded = inner.charges.values().filter(|(_, c)| c.refunded).count();
        serde_json::json!({
            "requests": inner.requests,
            "charges": inner.charges.len(),
            "succeeded": succeeded,
            "refunded": refunded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ProviderState {
        ProviderState::new(ProviderOptions {
            max_keys: 10,
            ..ProviderOptions::default()
        })
    }

    #[test]
    fn idempotency_like_stripe() {
        let s = state();
        let first = s.charge("k", r#"{"a":1}"#, 5).unwrap();
        assert_eq!(
            s.charge("k", r#"{"a":1}"#, 5).unwrap(),
            first,
            "same key, same body: same answer"
        );
        assert_eq!(
            s.charge("k", r#"{"a":2}"#, 6),
            Err(true),
            "same key, other body: conflict"
        );
        assert_eq!(s.refund("r", "b", "k").0, 200);
        assert_eq!(s.refund("r", "b", "k").0, 200, "a refund is idempotent too");
        assert!(s.lookup("k").unwrap().refunded);
    }

    #[test]
    fn a_refund_before_the_charge_voids_the_key() {
        let s = state();
        assert_eq!(s.refund("r", "b", "late").0, 404);
        let late = s.charge("late", r#"{"a":1}"#, 5).unwrap();
        assert_eq!(
            (late.status, late.decline_reason),
            ("declined", Some("voided"))
        );
    }
}
