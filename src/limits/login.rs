//! Failed logins, counted per client address and per account in fixed
//! windows. Every attempt is counted when it starts, before its password is
//! checked, and a successful one is taken back: so attempts in flight count
//! too, and a burst of concurrent guesses cannot all reach the hashing.
//! Once a count reaches its limit, logins from that address (or to that
//! account) are answered 429 `rate_limited` with the time left in the
//! window, whatever the password, and nothing is hashed. A successful login
//! clears its account's count and takes its own attempt off the address.
//!
//! Accounts are counted for every well-formed name, existing or not, so the
//! answers do not tell which names exist. IPv6 clients are counted per /64,
//! the block one subscriber usually holds.
//!
//! Bounded: at most `capacity` addresses and `capacity` accounts, in two
//! tables, so a flood of fresh addresses cannot push out the accounts under
//! attack. When a table is full, keys whose window has ended are dropped
//! first, then the key with the oldest window.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    attempts: u32,
}

#[derive(Debug)]
struct Table<K> {
    limit: u32,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(limit: u32) -> Self {
        Table {
            limit,
            entries: HashMap::new(),
        }
    }

    /// Time left locked for `key`, if it is.
    fn locked(&self, key: &K, window: Duration, now: Instant) -> Option<Duration> {
        let e = self.entries.get(key)?;
        let ends = e.window_start + window;
        (self.limit > 0 && e.attempts >= self.limit && ends > now).then(|| ends - now)
    }

    fn count(&mut self, key: K, window: Duration, capacity: usize, now: Instant) {
        if self.limit == 0 {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= capacity {
            self.make_room(window, capacity, now);
        }
        let e = self.entries.entry(key).or_insert(Entry {
            window_start: now,
            attempts: 0,
        });
        if now.saturating_duration_since(e.window_start) >= window {
            *e = Entry {
                window_start: now,
                attempts: 0,
            };
        }
        e.attempts = e.attempts.saturating_add(1);
    }

    fn uncount(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.attempts = e.attempts.saturating_sub(1);
        }
    }

    fn make_room(&mut self, window: Duration, capacity: usize, now: Instant) {
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.window_start) < window);
        if self.entries.len() >= capacity {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.window_start)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

#[derive(Debug)]
struct Tables {
    addresses: Table<IpAddr>,
    accounts: Table<String>,
}

#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    capacity: usize,
    tables: Mutex<Tables>,
}

/// The key of a client address: IPv4 as is, IPv6 by its /64.
fn address_key(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V4(_) => a,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

impl LoginThrottle {
    /// A limit of 0 turns that count off.
    pub fn new(per_address: u32, per_account: u32, window: Duration, capacity: usize) -> Self {
        LoginThrottle {
            window,
            capacity: capacity.max(1),
            tables: Mutex::new(Tables {
                addresses: Table::new(per_address),
                accounts: Table::new(per_account),
            }),
        }
    }

    /// Counts an attempt that is about to check a password, or, when the
    /// address or the account is locked, says how long to wait (and counts
    /// nothing).
    pub fn begin(
        &self,
        address: Option<IpAddr>,
        account: Option<&str>,
        now: Instant,
    ) -> Result<(), Duration> {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let address = address.map(address_key);
        let account = account.map(str::to_string);
        let wait = [
            address.and_then(|a| t.addresses.locked(&a, self.window, now)),
            account
                .as_ref()
                .and_then(|n| t.accounts.locked(n, self.window, now)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if let Some(a) = address {
            t.addresses.count(a, self.window, self.capacity, now);
        }
        if let Some(n) = account {
            t.accounts.count(n, self.window, self.capacity, now);
        }
        Ok(())
    }

    /// The attempt begun for `address` and `account` had the right password.
    pub fn succeeded(&self, address: Option<IpAddr>, account: &str) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.accounts.entries.remove(account);
        if let Some(a) = address.map(address_key) {
            t.addresses.uncount(&a);
        }
    }

    /// The attempt begun for `address` and `account` ended without its
    /// password being checked (a server error): it does not count.
    pub fn abandoned(&self, address: Option<IpAddr>, account: Option<&str>) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = address.map(address_key) {
            t.addresses.uncount(&a);
        }
        if let Some(n) = account {
            t.accounts.uncount(&n.to_string());
        }
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        (t.addresses.entries.len(), t.accounts.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));

    #[test]
    fn an_account_is_locked_for_the_rest_of_its_window() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(100, 3, Duration::from_secs(60), 1000);
        for _ in 0..3 {
            assert_eq!(t.begin(A, Some("alice"), t0), Ok(()));
        }
        let later = t0 + Duration::from_secs(20);
        // From another address too: the account is what is guessed at.
        assert_eq!(
            t.begin(B, Some("alice"), later),
            Err(Duration::from_secs(40))
        );
        assert_eq!(t.begin(A, Some("bob"), later), Ok(()));
        assert_eq!(
            t.begin(B, Some("alice"), t0 + Duration::from_secs(60)),
            Ok(())
        );
    }

    #[test]
    fn attempts_in_flight_count_and_a_success_is_taken_back() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60), 1000);
        // Three begun at once (none finished): the fourth waits.
        for name in ["a1", "a2", "a3"] {
            assert_eq!(t.begin(A, Some(name), t0), Ok(()));
        }
        assert!(t.begin(A, Some("a4"), t0).is_err());
        assert_eq!(t.begin(B, Some("a4"), t0), Ok(()));
        // One of them had the right password: its attempt is given back.
        t.succeeded(A, "a1");
        assert_eq!(t.begin(A, Some("a1"), t0), Ok(()));
        assert!(t.begin(A, Some("a5"), t0).is_err());
        // An attempt the server could not check is given back too.
        t.abandoned(A, Some("a2"));
        assert_eq!(t.begin(A, Some("a6"), t0), Ok(()));
    }

    #[test]
    fn ipv6_is_counted_per_64() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(2, 100, Duration::from_secs(60), 1000);
        let net = |host: u16| {
            Some(IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 1, 2, 0, 0, 0, host,
            )))
        };
        assert_eq!(t.begin(net(1), None, t0), Ok(()));
        assert_eq!(t.begin(net(2), None, t0), Ok(()));
        assert!(t.begin(net(3), None, t0).is_err());
        let other = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1)));
        assert_eq!(t.begin(other, None, t0), Ok(()));
    }

    #[test]
    fn the_tables_are_bounded_and_addresses_do_not_push_out_accounts() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(5, 2, Duration::from_secs(60), 10);
        t.begin(None, Some("victim"), t0).ok();
        t.begin(None, Some("victim"), t0).ok();
        for i in 0..100u8 {
            let a = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)));
            t.begin(a, None, t0 + Duration::from_millis(u64::from(i) + 1))
                .ok();
        }
        assert_eq!(t.len(), (10, 1));
        assert!(t
            .begin(None, Some("victim"), t0 + Duration::from_secs(1))
            .is_err());
        for i in 0..100 {
            t.begin(None, Some(&format!("user{i}")), t0).ok();
        }
        assert_eq!(t.len(), (10, 10));
    }
}
