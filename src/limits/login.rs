//! Failed logins, counted per client address and per account in fixed
//! windows. Once a count reaches its limit, logins from that address (or to
//! that account) are answered 429 `rate_limited` with the time left in the
//! window, whatever the password, and nothing is hashed.
//!
//! An account's attempts count when they begin, before the password is
//! checked, so a burst of concurrent guesses at one account cannot all
//! reach the hashing; a successful login clears the account's count, and an
//! attempt the server could not check is taken back. An address counts only
//! wrong passwords, once checked: many people behind one address may log in
//! at the same moment, and their attempts in flight must not lock them out.
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

    /// Counts an attempt at `account` that is about to check a password,
    /// or, when the address or the account is locked, says how long to wait
    /// (and counts nothing).
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
        if let Some(n) = account {
            t.accounts.count(n, self.window, self.capacity, now);
        }
        Ok(())
    }

    /// The attempt begun for `account` had the right password.
    pub fn succeeded(&self, account: &str) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.accounts.entries.remove(account);
    }

    /// The attempt begun from `address` had a wrong password.
    pub fn failed(&self, address: Option<IpAddr>, now: Instant) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = address.map(address_key) {
            t.addresses.count(a, self.window, self.capacity, now);
        }
    }

    /// The attempt begun for `account` ended without its password being
    /// checked (a server error): it does not count.
    pub fn abandoned(&self, account: Option<&str>) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
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
    fn account_attempts_in_flight_count_and_success_or_a_server_error_gives_them_back() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(100, 2, Duration::from_secs(60), 1000);
        assert_eq!(t.begin(A, Some("alice"), t0), Ok(()));
        assert_eq!(t.begin(A, Some("alice"), t0), Ok(()));
        // Two begun, none finished: the third waits.
        assert!(t.begin(A, Some("alice"), t0).is_err());
        t.abandoned(Some("alice"));
        assert_eq!(t.begin(A, Some("alice"), t0), Ok(()));
        t.succeeded("alice");
        assert_eq!(t.begin(A, Some("alice"), t0), Ok(()));
    }

    #[test]
    fn an_address_counts_wrong_passwords_not_logins_in_flight() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(3, 100, Duration::from_secs(60), 1000);
        // Many people behind one address logging in at once.
        for i in 0..50 {
            assert_eq!(t.begin(A, Some(&format!("u{i}")), t0), Ok(()));
        }
        for _ in 0..3 {
            t.failed(A, t0);
        }
        assert!(t.begin(A, Some("someone"), t0).is_err());
        assert_eq!(t.begin(B, Some("someone"), t0), Ok(()));
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
        t.failed(net(1), t0);
        t.failed(net(2), t0);
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
            t.failed(a, t0 + Duration::from_millis(u64::from(i) + 1));
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
