//! Failed logins, counted per client address and per account in fixed
//! windows. Once either count reaches its limit, logins from that address
//! (or to that account) are answered 429 `rate_limited` with the time left
//! in the window, before any password is checked, so guessing costs the
//! attacker time and the server no hashing. A successful login clears its
//! account's count (not its address's).
//!
//! Bounded: at most `capacity` keys. When the table is full, keys whose
//! window has ended are dropped first, then the key with the oldest window;
//! an attacker who floods it with fresh addresses can thus shorten other
//! keys' lock-outs, which the per-account limit still covers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Account(String),
}

#[derive(Debug)]
pub struct LoginThrottle {
    per_address: u32,
    per_account: u32,
    window: Duration,
    capacity: usize,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginThrottle {
    /// A limit of 0 turns that count off.
    pub fn new(per_address: u32, per_account: u32, window: Duration, capacity: usize) -> Self {
        LoginThrottle {
            per_address,
            per_account,
            window,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn keys(&self, address: Option<IpAddr>, account: Option<&str>) -> Vec<(Key, u32)> {
        let mut keys = Vec::with_capacity(2);
        if let (Some(a), limit @ 1..) = (address, self.per_address) {
            keys.push((Key::Address(a), limit));
        }
        if let (Some(name), limit @ 1..) = (account, self.per_account) {
            keys.push((Key::Account(name.to_string()), limit));
        }
        keys
    }

    /// How long this attempt must wait, or None when it may go ahead.
    pub fn retry_after(
        &self,
        address: Option<IpAddr>,
        account: Option<&str>,
        now: Instant,
    ) -> Option<Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.keys(address, account)
            .into_iter()
            .filter_map(|(key, limit)| {
                let e = entries.get(&key)?;
                let ends = e.window_start + self.window;
                (e.failures >= limit && ends > now).then(|| ends - now)
            })
            .max()
    }

    pub fn failed(&self, address: Option<IpAddr>, account: Option<&str>, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (key, _) in self.keys(address, account) {
            if !entries.contains_key(&key) && entries.len() >= self.capacity {
                self.make_room(&mut entries, now);
            }
            let e = entries.entry(key).or_insert(Entry {
                window_start: now,
                failures: 0,
            });
            if now.saturating_duration_since(e.window_start) >= self.window {
                *e = Entry {
                    window_start: now,
                    failures: 0,
                };
            }
            e.failures = e.failures.saturating_add(1);
        }
    }

    pub fn succeeded(&self, account: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&Key::Account(account.to_string()));
    }

    fn make_room(&self, entries: &mut HashMap<Key, Entry>, now: Instant) {
        entries.retain(|_, e| now.saturating_duration_since(e.window_start) < self.window);
        if entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.window_start)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                entries.remove(&k);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)));
    const B: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2)));

    #[test]
    fn an_account_is_locked_for_the_rest_of_its_window() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(100, 3, Duration::from_secs(60), 1000);
        for _ in 0..3 {
            assert_eq!(t.retry_after(A, Some("alice"), t0), None);
            t.failed(A, Some("alice"), t0);
        }
        let later = t0 + Duration::from_secs(20);
        // From another address too: the account is what is guessed at.
        assert_eq!(
            t.retry_after(B, Some("alice"), later),
            Some(Duration::from_secs(40))
        );
        assert_eq!(t.retry_after(A, Some("bob"), later), None);
        assert_eq!(
            t.retry_after(B, Some("alice"), t0 + Duration::from_secs(60)),
            None
        );
    }

    #[test]
    fn an_address_is_locked_across_accounts_and_success_clears_only_the_account() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(4, 100, Duration::from_secs(60), 1000);
        for name in ["a1", "a2", "a3", "a4"] {
            t.failed(A, Some(name), t0);
        }
        assert!(t.retry_after(A, Some("someone"), t0).is_some());
        assert_eq!(t.retry_after(B, Some("someone"), t0), None);
        t.succeeded("a1");
        assert!(
            t.retry_after(A, Some("a1"), t0).is_some(),
            "the address stays locked"
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let t = LoginThrottle::new(5, 5, Duration::from_secs(60), 10);
        for i in 0..100 {
            t.failed(
                None,
                Some(&format!("user{i}")),
                t0 + Duration::from_millis(i),
            );
        }
        assert_eq!(t.len(), 10);
        // The newest keys were kept.
        t.failed(None, Some("user99"), t0 + Duration::from_secs(1));
        assert_eq!(t.len(), 10);
    }
}
