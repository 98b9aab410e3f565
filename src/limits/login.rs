//! Password guessing, slowed without locking the owner out.
//!
//! Failures are counted per (account, client address) pair and per client
//! address. Past its free count, each further failure of a key doubles the
//! wait before that key may try again, from `first_delay` up to `window`;
//! logins are answered 429 `rate_limited` during the wait, whatever the
//! password, and nothing is hashed. So a guesser at `bob` from one address
//! slows only `bob` from that address: `bob` himself, from anywhere else,
//! logs in at once (an account-wide count would hand every stranger a way
//! to lock him out). An address guessing at many accounts slows itself.
//!
//! Attempts count when they begin, before the password is checked, for
//! the pair and the address alike, so a burst of concurrent guesses (at one
//! account, or sprayed over many) cannot all reach the hashing. A
//! successful login gives its attempt back (and clears its pair), as does
//! an attempt the server could not check; so what an address holds is its
//! wrong passwords plus its logins in flight. Behind one address (a NAT),
//! more than `per_address` people logging in at the very same moment make
//! the last wait `first_delay`: the price of bounding a sprayer.
//!
//! Not bounded: guesses at one account spread over many addresses (each
//! pair has its free count). Slowing those without letting strangers lock
//! the owner out needs a per-account count that spares addresses the owner
//! logged in from before; not done yet.
//!
//! A key's count is forgotten once it has been quiet for `window` after its
//! wait ended (so waiting out the longest wait does not start it afresh with
//! its free failures). Pairs are
//! kept for every well-formed name, existing or not, so the answers do not
//! tell which names exist. IPv6 clients are counted per /64, the block one
//! subscriber usually holds.
//!
//! Bounded: at most `capacity` addresses and `capacity` pairs, in two
//! tables, so a flood of fresh addresses cannot push out the pairs under
//! attack. When a table is full, forgotten keys are dropped first, then the
//! oldest eighth by last failure.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

#[derive(Debug, Clone, Copy)]
struct Entry {
    last: Instant,
    failures: u32,
}

/// How a count turns into waits.
#[derive(Debug, Clone, Copy)]
struct Rule {
    free: u32,
    first_delay: Duration,
    window: Duration,
}

impl Rule {
    /// The wait after `failures`: none within the free count, then
    /// `first_delay` doubling with each failure, at most `window`.
    fn delay(&self, failures: u32) -> Option<Duration> {
        if self.free == 0 || failures < self.free {
            return None;
        }
        let doublings = (failures - self.free).min(31);
        Some(
            self.first_delay
                .saturating_mul(1u32 << doublings)
                .min(self.window),
        )
    }
}

#[derive(Debug)]
struct Table<K> {
    rule: Rule,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(rule: Rule) -> Self {
        Table {
            rule,
            entries: HashMap::new(),
        }
    }

    /// Whether `e` has been quiet a window past the end of its wait.
    fn forgotten(rule: &Rule, e: &Entry, now: Instant) -> bool {
        let wait = rule.delay(e.failures).unwrap_or_default();
        now.saturating_duration_since(e.last) >= wait + rule.window
    }

    /// Drops the keys that are forgotten.
    fn forget(&mut self, now: Instant) {
        let rule = self.rule;
        self.entries.retain(|_, e| !Self::forgotten(&rule, e, now));
    }

    /// Time left to wait for `key`, if any.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let e = self.entries.get(key)?;
        let until = e.last + self.rule.delay(e.failures)?;
        (until > now).then(|| until - now)
    }

    fn count(&mut self, key: K, capacity: usize, now: Instant) {
        if self.rule.free == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= capacity {
            self.forget(now);
            self.drop_oldest(capacity);
        }
        let fresh = Entry {
            last: now,
            failures: 0,
        };
        let rule = self.rule;
        let e = self.entries.entry(key).or_insert(fresh);
        if Self::forgotten(&rule, e, now) {
            *e = fresh;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
    }

    fn uncount(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.failures = e.failures.saturating_sub(1);
        }
    }

    /// Still full after forgetting: the oldest eighth goes at once, so a
    /// flood of fresh keys pays for this O(n) pass once per `capacity / 8`
    /// new keys, not on every one.
    fn drop_oldest(&mut self, capacity: usize) {
        if self.entries.len() < capacity {
            return;
        }
        let keep = capacity - capacity.div_ceil(8);
        let mut by_age: Vec<(Instant, K)> = self
            .entries
            .iter()
            .map(|(k, e)| (e.last, k.clone()))
            .collect();
        let drop = by_age.len() - keep;
        by_age.select_nth_unstable_by_key(drop - 1, |(last, _)| *last);
        for (_, k) in by_age.into_iter().take(drop) {
            self.entries.remove(&k);
        }
    }
}

type Pair = (String, IpAddr);

#[derive(Debug)]
struct Tables {
    addresses: Table<IpAddr>,
    pairs: Table<Pair>,
}

/// What `LoginThrottle::new` is given (`limits.login_*`).
#[derive(Debug, Clone, Copy)]
pub struct LoginRules {
    /// Wrong passwords from one address before it waits; 0: not counted.
    pub per_address: u32,
    /// Attempts at one account from one address before that pair waits.
    pub per_account_address: u32,
    pub first_delay: Duration,
    /// The longest wait, and how long a count is remembered once its
    /// wait has ended.
    pub window: Duration,
    /// Keys per table.
    pub capacity: usize,
}

#[derive(Debug)]
pub struct LoginThrottle {
    capacity: usize,
    tables: Mutex<Tables>,
}

/// The key of a client address: IPv4 as is, IPv6 by its /64 (the block
/// one subscriber usually holds).
pub fn address_key(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(_) => a,
        // An IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`) is
        // that IPv4 address: its /64 would be every IPv4 client at once.
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            v6.to_ipv4_mapped().map_or(a, IpAddr::V4)
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

/// The attempt `LoginThrottle::begin` let through, to be ended by one of
/// `succeeded`, `failed` or `abandoned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    address: Option<IpAddr>,
    pair: Option<Pair>,
}

impl LoginThrottle {
    pub fn new(rules: LoginRules) -> Self {
        let rule = |free| Rule {
            free,
            first_delay: rules.first_delay.min(rules.window),
            window: rules.window,
        };
        LoginThrottle {
            capacity: rules.capacity.max(1),
            tables: Mutex::new(Tables {
                addresses: Table::new(rule(rules.per_address)),
                pairs: Table::new(rule(rules.per_account_address)),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // The tables stay consistent at every step: a panic elsewhere while
        // holding the lock leaves nothing half-written.
        self.tables.lock()
    }

    /// Counts an attempt at `account` from `address` that is about to check
    /// a password, or, when the address or the pair must wait, says how long
    /// (and counts nothing). An attempt without a known address counts only
    /// against its account, as the address `0.0.0.0`.
    pub fn begin(
        &self,
        address: Option<IpAddr>,
        account: Option<&str>,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let mut t = self.lock();
        let address = address.map(address_key);
        let pair = account.map(|n| {
            let from = address.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
            (n.to_string(), from)
        });
        let wait = [
            address.and_then(|a| t.addresses.wait(&a, now)),
            pair.as_ref().and_then(|p| t.pairs.wait(p, now)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if let Some(p) = &pair {
            t.pairs.count(p.clone(), self.capacity, now);
        }
        if let Some(a) = address {
            t.addresses.count(a, self.capacity, now);
        }
        Ok(Attempt { address, pair })
    }

    /// The attempt had the right password: its pair starts afresh, and its
    /// address has it back.
    pub fn succeeded(&self, attempt: &Attempt) {
        let mut t = self.lock();
        if let Some(p) = &attempt.pair {
            t.pairs.entries.remove(p);
        }
        if let Some(a) = &attempt.address {
            t.addresses.uncount(a);
        }
    }

    /// The attempt had a wrong password: it stays counted where it began.
    pub fn failed(&self, _attempt: &Attempt, _now: Instant) {}

    /// The attempt ended without its password being checked (a server
    /// error): it does not count.
    pub fn abandoned(&self, attempt: &Attempt) {
        let mut t = self.lock();
        if let Some(p) = &attempt.pair {
            t.pairs.uncount(p);
        }
        if let Some(a) = &attempt.address {
            t.addresses.uncount(a);
        }
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let t = self.lock();
        (t.addresses.entries.len(), t.pairs.entries.len())
    }
}

#[cfg(test)]
mod tests;
