//! HTTP writes (POST, PUT, PATCH, DELETE behind a token) per user and per
//! client address: a token bucket for each (`rate` a second, at most `burst`
//! saved up). A write that finds either empty is refused `rate_limited` with
//! how long until a token is back (`Retry-After`), and not handled.
//!
//! Written here rather than taken from a crate (governor's keyed limiter is
//! the obvious one) because its key store grows with every key seen until it
//! is swept, and this one must say what happens when it is full: buckets
//! that have refilled (idle callers: the same as no bucket) are forgotten,
//! and when every tracked caller is active a new one is refused until a
//! sweep makes room, at most one sweep a second so a flood of new addresses
//! cannot make every write scan the table. The refill arithmetic is
//! `FrameLimiter`'s written a second time (that one also counts strikes and
//! gives no wait), over an injected `Instant` likewise.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::domain::Username;

/// The limits of one kind of key.
#[derive(Debug, Clone, Copy)]
pub struct WriteRate {
    /// Tokens a second; 0 turns the limit off.
    pub per_sec: u32,
    pub burst: u32,
}

pub struct WriteLimiter {
    users: Buckets<Username>,
    addresses: Buckets<IpAddr>,
}

impl WriteLimiter {
    /// `capacity`: callers tracked per kind of key.
    pub fn new(user: WriteRate, address: WriteRate, capacity: usize) -> Self {
        WriteLimiter {
            users: Buckets::new(user, capacity),
            addresses: Buckets::new(address, capacity),
        }
    }

    /// Takes a token for the user and one for the address (see
    /// `login::address_key` for what an address is); `Err(wait)`: refused,
    /// a token is back after `wait`.
    pub fn take(
        &self,
        user: &Username,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        self.users.take(user, now)?;
        match address {
            Some(a) => self.addresses.take(&super::address_key(a), now),
            None => Ok(()),
        }
    }
}

struct Buckets<K> {
    rate: f64,
    burst: f64,
    capacity: usize,
    table: Mutex<Table<K>>,
}

struct Table<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How often a full table that a sweep could not shrink is swept again.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl<K: Eq + Hash + Clone> Buckets<K> {
    fn new(rate: WriteRate, capacity: usize) -> Self {
        Buckets {
            rate: f64::from(rate.per_sec),
            burst: f64::from(rate.burst.max(1)),
            capacity: capacity.max(1),
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.rate).min(self.burst)
    }

    fn take(&self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.rate == 0.0 {
            return Ok(());
        }
        let mut t = self.table.lock();
        if !t.buckets.contains_key(key) && t.buckets.len() >= self.capacity {
            let due = t
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_EVERY);
            if due {
                t.last_sweep = Some(now);
                t.buckets.retain(|_, b| self.level(b, now) < self.burst);
            }
            if t.buckets.len() >= self.capacity {
                return Err(SWEEP_EVERY);
            }
        }
        let burst = self.burst;
        let bucket = t.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let tokens = self.level(bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    const OFF: WriteRate = WriteRate {
        per_sec: 0,
        burst: 1,
    };

    #[test]
    fn a_burst_then_the_rate_and_a_wait_that_says_when() {
        let limiter = WriteLimiter::new(
            WriteRate {
                per_sec: 2,
                burst: 3,
            },
            OFF,
            10,
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take(&u("alice"), None, t0), Ok(()));
        }
        let wait = limiter.take(&u("alice"), None, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        // Others are not affected; half a second later one more passes.
        assert_eq!(limiter.take(&u("bob"), None, t0), Ok(()));
        let later = t0 + Duration::from_millis(500);
        assert_eq!(limiter.take(&u("alice"), None, later), Ok(()));
        assert!(limiter.take(&u("alice"), None, later).is_err());
    }

    #[test]
    fn one_address_is_limited_across_users() {
        let limiter = WriteLimiter::new(
            OFF,
            WriteRate {
                per_sec: 1,
                burst: 2,
            },
            10,
        );
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(limiter.take(&u("alice"), Some(a), t0), Ok(()));
        assert_eq!(limiter.take(&u("bob"), Some(a), t0), Ok(()));
        assert!(limiter.take(&u("carol"), Some(a), t0).is_err());
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(limiter.take(&u("carol"), Some(other), t0), Ok(()));
    }

    #[test]
    fn a_full_table_forgets_idle_callers_and_refuses_new_ones_while_all_are_active() {
        let limiter = WriteLimiter::new(
            WriteRate {
                per_sec: 1,
                burst: 2,
            },
            OFF,
            2,
        );
        let t0 = Instant::now();
        limiter.take(&u("alice"), None, t0).unwrap();
        limiter.take(&u("bob"), None, t0).unwrap();
        // Both buckets are below full: carol waits for room.
        assert_eq!(limiter.take(&u("carol"), None, t0), Err(SWEEP_EVERY));
        // A sweep within the second is not repeated.
        let soon = t0 + Duration::from_millis(100);
        assert!(limiter.take(&u("carol"), None, soon).is_err());
        // Once alice and bob have refilled they are forgotten: carol fits.
        let later = t0 + Duration::from_secs(2);
        assert_eq!(limiter.take(&u("carol"), None, later), Ok(()));
        assert_eq!(limiter.users.table.lock().buckets.len(), 1);
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limiter = WriteLimiter::new(OFF, OFF, 1);
        let t0 = Instant::now();
        for i in 0..1000 {
            let a = IpAddr::from([10, 0, (i / 256) as u8, (i % 256) as u8]);
            assert_eq!(limiter.take(&u("alice"), Some(a), t0), Ok(()));
        }
    }
}
