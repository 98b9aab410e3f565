//! When each user's last session closed (one process; a cluster keeps
//! these in Redis beside presence). Held in memory only: a restart forgets
//! them, and those users are then just "offline" until they come and go
//! again.

use std::collections::{BTreeSet, HashMap};

use crate::domain::Username;

/// The most recent `capacity` users' last-seen times. When full, the user
/// gone longest is forgotten (their presence says "offline" without a time).
pub struct LastSeen {
    at: HashMap<Username, i64>,
    /// The same entries by time, oldest first: what to forget next.
    by_time: BTreeSet<(i64, Username)>,
    capacity: usize,
}

impl LastSeen {
    pub fn new(capacity: usize) -> Self {
        LastSeen {
            at: HashMap::new(),
            by_time: BTreeSet::new(),
            capacity,
        }
    }

    pub fn get(&self, user: &Username) -> Option<i64> {
        self.at.get(user).copied()
    }

    /// `user` was last seen at `ms`.
    pub fn record(&mut self, user: Username, ms: i64) {
        if let Some(old) = self.at.insert(user.clone(), ms) {
            self.by_time.remove(&(old, user.clone()));
        }
        self.by_time.insert((ms, user));
        while self.at.len() > self.capacity {
            let Some((_, gone)) = self.by_time.pop_first() else {
                break;
            };
            self.at.remove(&gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    #[test]
    fn keeps_the_most_recent_and_forgets_the_longest_gone() {
        let mut seen = LastSeen::new(2);
        seen.record(u("alice"), 10);
        seen.record(u("bob"), 20);
        seen.record(u("alice"), 30);
        seen.record(u("carol"), 40);
        assert_eq!(seen.get(&u("bob")), None);
        assert_eq!(seen.get(&u("alice")), Some(30));
        assert_eq!(seen.get(&u("carol")), Some(40));
        assert_eq!(seen.by_time.len(), 2);
    }
}
