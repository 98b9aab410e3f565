//! Whose trace a trace id is. SPEC lets any request carry its own traceId,
//! and the server echoes it; but trace ids are not secret (every member who
//! receives a message sees its traceId), so a caller who reuses someone
//! else's id would have its hops recorded in that trace: an operator
//! following a user's message would find a stranger's requests in it.
//!
//! So a trace id belongs to the caller it was first used by, and is honoured
//! only for that caller's requests; anyone else presenting it gets a fresh
//! id of their own (their answers carry that one), with no error: a
//! client's correlation id is advice, not a request that can fail.
//!
//! - Ids the server makes for a caller's request carry their owner, keyed
//!   with a secret derived from `auth.token_secret` (which every node of a
//!   cluster shares): 8 random bytes, then 4 bytes that mark the id as made
//!   here, then 4 bytes that name its owner. Checking one is two HMACs and
//!   no table, on any node.
//! - Ids a client chose are claimed in a bounded table, first caller wins.
//!   Bounded: at most `CLAIMS` ids. A claim is kept at least `CLAIM_KEPT`;
//!   when the table is full, the oldest claim goes only if it is older than
//!   that, else the new id is not claimed and its caller gets a fresh id
//!   (no correlation, no harm). So a flood of fresh ids cannot push out a
//!   claim to take its id over: it only stops new ids being honoured for a
//!   while. The table is this node's: in a cluster, a client id claimed on
//!   one node can be claimed by someone else on another.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::TraceId;

/// Client-chosen ids remembered with their owner.
pub const CLAIMS: usize = 65_536;
/// How long a claim is kept at least, full table or not.
pub const CLAIM_KEPT: Duration = Duration::from_secs(600);

/// A caller as the trace ids know it: a keyed digest of its name, so the
/// table holds no user names and an id's owner bytes cannot be forged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller([u8; 8]);

#[derive(Debug, Default)]
struct Claims {
    owners: HashMap<TraceId, Caller>,
    /// Claims in the order made, with when.
    order: VecDeque<(TraceId, Instant)>,
}

pub struct TraceOrigins {
    key: Hmac<Sha256>,
    claims: Mutex<Claims>,
}

impl std::fmt::Debug for TraceOrigins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceOrigins")
    }
}

impl TraceOrigins {
    /// Keyed from the token secret, under a label of its own: the trace
    /// tags can never be mistaken for, or help forge, a token signature.
    pub fn new(token_secret: &[u8]) -> Self {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(token_secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        derive.update(b"parley trace origins v1");
        let key = derive.finalize().into_bytes();
        TraceOrigins {
            key: <Hmac<Sha256> as Mac>::new_from_slice(&key)
                .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length")),
            claims: Mutex::new(Claims::default()),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = self.key.clone();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// The caller named `who`: a user name, or `addr:<ip>` before login.
    pub fn caller(&self, who: &str) -> Caller {
        let d = self.mac(&[b"caller:", who.as_bytes()]);
        let mut c = [0u8; 8];
        c.copy_from_slice(&d[..8]);
        Caller(c)
    }

    /// The two tags of random part `r` made for `owner`.
    fn tags(&self, r: &[u8], owner: Caller) -> ([u8; 4], [u8; 4]) {
        let made = self.mac(&[b"made:", r]);
        let owned = self.mac(&[b"owner:", r, &owner.0]);
        let mut a = [0u8; 4];
        let mut b = [0u8; 4];
        a.copy_from_slice(&made[..4]);
        b.copy_from_slice(&owned[..4]);
        (a, b)
    }

    /// A fresh id for a request of `owner`'s.
    pub fn made_for(&self, owner: Caller) -> TraceId {
        loop {
            let mut bytes = [0u8; 16];
            rand::thread_rng().fill_bytes(&mut bytes[..8]);
            let (made, owned) = self.tags(&bytes[..8], owner);
            bytes[8..12].copy_from_slice(&made);
            bytes[12..].copy_from_slice(&owned);
            if let Some(id) = TraceId::from_bytes(bytes) {
                return id;
            }
        }
    }

    /// The trace id to use for a request of `caller`'s that carried
    /// `given` (None: it carried none): `given` when it is the caller's, or
    /// unclaimed (it is claimed now), else a fresh one. The bool says
    /// whether `given` was honoured.
    pub fn admit(&self, given: Option<TraceId>, caller: Caller) -> (TraceId, bool) {
        self.admit_as(given, caller, true)
    }

    /// As `admit`, but an unclaimed client id is not claimed (it gets a
    /// fresh id): for requests refused before they are handled (over the
    /// rate limit), which must not let a flood fill the claims.
    pub fn admit_unclaimed(&self, given: Option<TraceId>, caller: Caller) -> (TraceId, bool) {
        self.admit_as(given, caller, false)
    }

    fn admit_as(&self, given: Option<TraceId>, caller: Caller, claim: bool) -> (TraceId, bool) {
        let Some(id) = given else {
            return (self.made_for(caller), false);
        };
        let bytes = id.bytes();
        let (made, owned) = self.tags(&bytes[..8], caller);
        if bytes[8..12] == made {
            // Made here: its owner bytes say whose it is.
            return if bytes[12..] == owned {
                (id, true)
            } else {
                (self.made_for(caller), false)
            };
        }
        let mine = if claim {
            self.claim(id, caller, Instant::now())
        } else {
            self.claimed_by(id, caller)
        };
        if mine {
            (id, true)
        } else {
            (self.made_for(caller), false)
        }
    }

    fn claimed_by(&self, id: TraceId, caller: Caller) -> bool {
        let c = self.claims.lock();
        c.owners.get(&id) == Some(&caller)
    }

    /// Whether `id` is `caller`'s now (claimed by it before, or just now).
    fn claim(&self, id: TraceId, caller: Caller, now: Instant) -> bool {
        let mut c = self.claims.lock();
        if let Some(owner) = c.owners.get(&id) {
            return *owner == caller;
        }
        if c.owners.len() >= CLAIMS {
            match c.order.front() {
                Some(&(old, at)) if now.saturating_duration_since(at) >= CLAIM_KEPT => {
                    c.order.pop_front();
                    c.owners.remove(&old);
                }
                // Full of recent claims: this id is not claimed.
                _ => return false,
            }
        }
        c.owners.insert(id, caller);
        c.order.push_back((id, now));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn id(s: &str) -> Option<TraceId> {
        TraceId::parse(s)
    }

    #[test]
    fn a_client_id_is_its_first_caller_s() {
        let o = TraceOrigins::new(SECRET);
        let (alice, bob) = (o.caller("alice"), o.caller("bob"));
        let chosen = id("7a3f0e1d2c3b4a5968778695a4b3c2d1");
        assert_eq!(o.admit(chosen, alice), (chosen.unwrap(), true));
        assert_eq!(o.admit(chosen, alice), (chosen.unwrap(), true));
        let (other, honoured) = o.admit(chosen, bob);
        assert!(!honoured);
        assert_ne!(Some(other), chosen);
        // Bob's fresh id is his: he may use it again, Alice may not.
        assert_eq!(o.admit(Some(other), bob), (other, true));
        assert!(!o.admit(Some(other), alice).1);
    }

    #[test]
    fn a_server_made_id_is_its_owner_s_on_every_node_sharing_the_secret() {
        let here = TraceOrigins::new(SECRET);
        let there = TraceOrigins::new(SECRET);
        let alice = here.caller("alice");
        let made = here.made_for(alice);
        assert_eq!(there.admit(Some(made), there.caller("alice")), (made, true));
        // Bob saw it on a message of Alice's: not his to use.
        assert!(!there.admit(Some(made), there.caller("bob")).1);
        // A node with another secret treats it as a client's choice.
        let elsewhere = TraceOrigins::new(b"another secret, 32 bytes or more!!");
        assert!(elsewhere.admit(Some(made), elsewhere.caller("bob")).1);
    }

    #[test]
    fn a_flood_of_claims_cannot_push_out_a_recent_one() {
        let o = TraceOrigins::new(SECRET);
        let (alice, bob) = (o.caller("alice"), o.caller("bob"));
        let t0 = Instant::now();
        let first = id("00000000000000000000000000000001").unwrap();
        assert!(o.claim(first, alice, t0));
        for n in 2..=(CLAIMS as u128 + 10) {
            let t = id(&format!("{n:032x}")).unwrap();
            o.claim(t, bob, t0 + Duration::from_secs(1));
        }
        let c = o.claims.lock();
        assert_eq!((c.owners.len(), c.order.len()), (CLAIMS, CLAIMS));
        drop(c);
        // Bob's flood did not free alice's id, and his last ids went unclaimed.
        assert!(!o.claim(first, bob, t0 + Duration::from_secs(2)));
        let late = id(&format!("{:032x}", CLAIMS as u128 + 10)).unwrap();
        assert!(
            !o.claim(late, alice, t0 + Duration::from_secs(2)),
            "full of recent claims"
        );
        // Once old enough, the oldest claims make room, oldest first.
        let later = t0 + CLAIM_KEPT + Duration::from_secs(1);
        let fresh = id("ffffffffffffffffffffffffffffffff").unwrap();
        assert!(o.claim(fresh, bob, later));
        assert!(o.claim(first, bob, later), "alice's, forgotten, went first");
    }
}
