//! Who is connected: users to their session handles. Sharded read-write maps
//! so conversation actors on every thread can fan out without a message hop.
//! Each session inserts itself before its `hello` and removes itself when it
//! stops; presence is derived from this map (see the directory).

use parking_lot::RwLock;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::domain::{SessionId, Username};

use super::session::SessionHandle;

const SHARDS: usize = 32;

type Shard = RwLock<HashMap<Username, Vec<SessionHandle>>>;

#[derive(Clone)]
pub struct SessionRegistry {
    shards: Arc<Vec<Shard>>,
    /// Sessions in all shards, kept with them so the connection cap costs
    /// one load per upgrade, not a walk of every shard.
    count: Arc<AtomicUsize>,
}

impl Default for SessionRegistry {
    fn default() -> Self {
        SessionRegistry {
            shards: Arc::new((0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect()),
            count: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl SessionRegistry {
    fn shard(&self, user: &Username) -> &Shard {
        let mut h = DefaultHasher::new();
        user.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Calls `f` with each connected session of `user`.
    pub fn for_each_session(&self, user: &Username, mut f: impl FnMut(&SessionHandle)) {
        let shard = self.shard(user).read();
        if let Some(list) = shard.get(user) {
            list.iter().for_each(&mut f);
        }
    }

    pub fn is_online(&self, user: &Username) -> bool {
        self.session_count(user) > 0
    }

    pub fn session_count(&self, user: &Username) -> usize {
        let shard = self.shard(user).read();
        shard.get(user).map_or(0, Vec::len)
    }

    /// Every session handle (admin views, shutdown).
    pub fn all_sessions(&self) -> Vec<SessionHandle> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.read();
            for list in shard.values() {
                out.extend(list.iter().cloned());
            }
        }
        out
    }

    pub fn total(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Adds (or replaces) a session; returns how many the user now has and
    /// whether this session is new there.
    pub fn insert(&self, handle: SessionHandle) -> (usize, bool) {
        let mut shard = self.shard(&handle.username).write();
        let list = shard.entry(handle.username.clone()).or_default();
        // Idempotent per session: a restarted session may register again.
        let new = match list.iter_mut().find(|h| h.id == handle.id) {
            Some(slot) => {
                *slot = handle;
                false
            }
            None => {
                list.push(handle);
                // Under the shard's lock, so count and maps agree when quiet.
                self.count.fetch_add(1, Ordering::Relaxed);
                true
            }
        };
        (list.len(), new)
    }

    /// Removes a session; returns how many the user still has (None: it was not there).
    pub fn remove(&self, user: &Username, id: SessionId) -> Option<usize> {
        let mut shard = self.shard(user).write();
        let list = shard.get_mut(user)?;
        let before = list.len();
        list.retain(|h| h.id != id);
        if list.len() == before {
            return None;
        }
        self.count.fetch_sub(before - list.len(), Ordering::Relaxed);
        let left = list.len();
        if left == 0 {
            shard.remove(user);
        }
        Some(left)
    }
}
