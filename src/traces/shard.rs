//! One shard of the trace recorder: the kept traces (bounded in traces and
//! hops, the oldest forgotten first) and a ring of recent hops of every
//! other trace (bounded in bytes, the oldest hop overwritten first).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use crate::domain::TraceId;

use super::{ActorRef, Keep};

/// A hop as recorded (cheap: no formatting on the hot path).
#[derive(Debug, Clone)]
pub(super) struct Recorded {
    pub component: &'static str,
    pub actor: ActorRef,
    pub event: Cow<'static, str>,
    /// Unix microseconds.
    pub start_us: i64,
    pub duration_us: u64,
}

impl Recorded {
    /// What this hop costs in the ring: its slot and the text it owns.
    fn bytes(&self) -> usize {
        let owned = match &self.event {
            Cow::Borrowed(_) => 0,
            Cow::Owned(s) => s.capacity(),
        };
        std::mem::size_of::<(TraceId, Recorded)>() + owned
    }
}

/// Limits of one kept set.
#[derive(Debug, Clone, Copy)]
pub(super) struct SetBounds {
    pub traces: usize,
    pub hops: usize,
}

/// Limits of one shard (its share of the recorder's).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// Traces the console links to (see [`Keep::is_linked`]).
    pub linked: SetBounds,
    /// Slow and sampled traces: their own budget, so an overload (when
    /// every delivery is slow) cannot push the linked ones out.
    pub other: SetBounds,
    pub hops_per_trace: usize,
    pub recent_bytes: usize,
    /// Slow traces newly kept: a burst of this many...
    pub slow_burst: u32,
    /// ...then one per this many microseconds.
    pub slow_every_us: i64,
}

struct Kept {
    hops: Vec<Recorded>,
    dropped: u64,
    why: Keep,
}

/// What a lookup found: the hops in the order they ended, how many were not
/// kept, and why the trace is kept (None: only its recent hops were found).
pub(super) struct Found {
    pub hops: Vec<Recorded>,
    pub dropped: u64,
    pub why: Option<Keep>,
}

/// Kept traces by id and the order they were kept in (for eviction).
#[derive(Default)]
struct KeptSet {
    traces: HashMap<TraceId, Kept>,
    order: VecDeque<TraceId>,
    /// Hops held by these traces.
    hops: usize,
}

impl KeptSet {
    /// Full of traces: the oldest is forgotten.
    fn insert(&mut self, trace: TraceId, kept: Kept, bounds: &SetBounds) {
        if self.order.len() >= bounds.traces {
            self.evict_oldest();
        }
        self.hops += kept.hops.len();
        self.order.push_back(trace);
        self.traces.insert(trace, kept);
        self.trim(trace, bounds);
    }

    /// Takes a trace out (rare: a slow trace that turns out to be linked).
    fn take(&mut self, trace: TraceId) -> Option<Kept> {
        let kept = self.traces.remove(&trace)?;
        self.order.retain(|t| *t != trace);
        self.hops -= kept.hops.len();
        Some(kept)
    }

    /// Adds a hop to its trace; the hop back when the trace is not here.
    fn push(
        &mut self,
        trace: TraceId,
        hop: Recorded,
        bounds: &SetBounds,
        per_trace: usize,
    ) -> Result<(), Recorded> {
        let Some(kept) = self.traces.get_mut(&trace) else {
            return Err(hop);
        };
        // Later hops of a long trace are counted, not kept.
        if kept.hops.len() >= per_trace {
            kept.dropped += 1;
            return Ok(());
        }
        kept.hops.push(hop);
        self.hops += 1;
        self.trim(trace, bounds);
        Ok(())
    }

    fn evict_oldest(&mut self) {
        if let Some(old) = self.order.pop_front() {
            if let Some(t) = self.traces.remove(&old) {
                self.hops -= t.hops.len();
            }
        }
    }

    /// Forgets the oldest traces while the set holds more than its hops;
    /// `keep` (the trace just written) stays.
    fn trim(&mut self, keep: TraceId, bounds: &SetBounds) {
        while self.hops > bounds.hops && self.order.front() != Some(&keep) {
            self.evict_oldest();
        }
    }
}

#[derive(Default)]
pub(super) struct Shard {
    linked: KeptSet,
    other: KeptSet,
    /// Hops of traces not kept, oldest first. The deque's buffer may hold up
    /// to twice the slots in use (it grows by doubling); `recent_bytes`
    /// counts the slots in use.
    recent: VecDeque<(TraceId, Recorded)>,
    recent_bytes: usize,
    /// Slow traces that may still be newly kept, as of `slow_at_us`.
    slow_tokens: u32,
    slow_at_us: i64,
}

impl Shard {
    pub fn is_kept(&self, trace: TraceId) -> bool {
        self.linked.traces.contains_key(&trace) || self.other.traces.contains_key(&trace)
    }

    /// Keeps `trace` from now on, with the hops of it the ring still holds
    /// (copied: the ring's copies age out on their own). A kept trace keeps
    /// its first reason, except that a slow or sampled one that turns out to
    /// be linked moves to the linked set with that reason.
    pub fn keep(&mut self, trace: TraceId, why: Keep, bounds: &Bounds) {
        if self.linked.traces.contains_key(&trace) {
            return;
        }
        if self.other.traces.contains_key(&trace) {
            if why.is_linked() {
                if let Some(mut kept) = self.other.take(trace) {
                    kept.why = why;
                    self.linked.insert(trace, kept, &bounds.linked);
                }
            }
            return;
        }
        let mut kept = Kept {
            hops: Vec::new(),
            dropped: 0,
            why,
        };
        for (t, hop) in &self.recent {
            if *t != trace {
                continue;
            }
            if kept.hops.len() < bounds.hops_per_trace {
                kept.hops.push(hop.clone());
            } else {
                kept.dropped += 1;
            }
        }
        if why.is_linked() {
            self.linked.insert(trace, kept, &bounds.linked);
        } else {
            self.other.insert(trace, kept, &bounds.other);
        }
    }

    /// Keeps a trace for a slow hop, unless the shard has newly kept its
    /// burst of slow traces lately (under overload every delivery is slow:
    /// keeping each would cost the most when there is least to spare).
    /// False when not kept for it. The tokens are counted first: under
    /// overload most slow hops find none, and then cost no lookup.
    pub fn keep_slow(&mut self, trace: TraceId, now_us: i64, bounds: &Bounds) -> bool {
        let earned = (now_us - self.slow_at_us) / bounds.slow_every_us.max(1);
        if earned > 0 {
            let tokens = i64::from(self.slow_tokens) + earned;
            self.slow_tokens = tokens.min(i64::from(bounds.slow_burst)) as u32;
            self.slow_at_us = now_us;
        }
        if self.slow_tokens == 0 {
            return false;
        }
        if self.is_kept(trace) {
            return true;
        }
        self.slow_tokens -= 1;
        self.keep(trace, Keep::Slow, bounds);
        true
    }

    /// Records a hop: into its trace if kept, else into the ring.
    pub fn record(&mut self, trace: TraceId, hop: Recorded, bounds: &Bounds) {
        let per_trace = bounds.hops_per_trace;
        let Err(hop) = self.linked.push(trace, hop, &bounds.linked, per_trace) else {
            return;
        };
        let Err(hop) = self.other.push(trace, hop, &bounds.other, per_trace) else {
            return;
        };
        let bytes = hop.bytes();
        if bytes > bounds.recent_bytes {
            // The ring is off (0 bytes) or smaller than one hop.
            return;
        }
        // Full: the oldest hops are overwritten.
        while self.recent_bytes + bytes > bounds.recent_bytes {
            match self.recent.pop_front() {
                Some((_, old)) => self.recent_bytes -= old.bytes(),
                None => break,
            }
        }
        self.recent_bytes += bytes;
        self.recent.push_back((trace, hop));
    }

    /// The kept trace, else its hops still in the ring (a scan of this
    /// shard's ring: lookups are rare, admin-only).
    pub fn find(&self, trace: TraceId, bounds: &Bounds) -> Option<Found> {
        if let Some(kept) = self
            .linked
            .traces
            .get(&trace)
            .or_else(|| self.other.traces.get(&trace))
        {
            return Some(Found {
                hops: kept.hops.clone(),
                dropped: kept.dropped,
                why: Some(kept.why),
            });
        }
        let mut found = Found {
            hops: Vec::new(),
            dropped: 0,
            why: None,
        };
        for (t, hop) in &self.recent {
            if *t != trace {
                continue;
            }
            if found.hops.len() < bounds.hops_per_trace {
                found.hops.push(hop.clone());
            } else {
                found.dropped += 1;
            }
        }
        (!found.hops.is_empty()).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        linked: SetBounds {
            traces: 100,
            hops: 1_000,
        },
        other: SetBounds {
            traces: 10,
            hops: 100,
        },
        hops_per_trace: 50,
        recent_bytes: 64 * 1024,
        slow_burst: 3,
        slow_every_us: 1_000_000,
    };

    fn hop(event: &str) -> Recorded {
        Recorded {
            component: "session",
            actor: ActorRef::Named("s"),
            event: Cow::Owned(event.to_string()),
            start_us: 0,
            duration_us: 0,
        }
    }

    fn events(found: &Found) -> Vec<&str> {
        found.hops.iter().map(|h| h.event.as_ref()).collect()
    }

    #[test]
    fn a_promoted_trace_keeps_the_hops_it_had_and_every_later_one() {
        let mut shard = Shard::default();
        let (t, other) = (TraceId::random(), TraceId::random());
        shard.record(t, hop("received send"), &BOUNDS);
        shard.record(other, hop("unrelated"), &BOUNDS);
        shard.record(t, hop("committed"), &BOUNDS);
        let recent = shard.find(t, &BOUNDS).expect("in the ring");
        assert_eq!(recent.why, None);
        assert_eq!(events(&recent), ["received send", "committed"]);

        shard.keep(t, Keep::Error, &BOUNDS);
        shard.record(t, hop("delivered"), &BOUNDS);
        // Flood the ring: the kept trace no longer needs it.
        for _ in 0..10_000 {
            shard.record(other, hop("unrelated"), &BOUNDS);
        }
        let kept = shard.find(t, &BOUNDS).expect("kept");
        assert_eq!(kept.why, Some(Keep::Error));
        assert_eq!(events(&kept), ["received send", "committed", "delivered"]);
        // A later reason does not replace the first.
        shard.keep(t, Keep::Slow, &BOUNDS);
        assert_eq!(
            shard.find(t, &BOUNDS).map(|f| f.why),
            Some(Some(Keep::Error))
        );
    }

    #[test]
    fn promotion_takes_at_most_a_trace_s_share_of_hops() {
        let mut shard = Shard::default();
        let t = TraceId::random();
        for i in 0..BOUNDS.hops_per_trace + 7 {
            shard.record(t, hop(&format!("hop {i}")), &BOUNDS);
        }
        shard.keep(t, Keep::Payment, &BOUNDS);
        let kept = shard.find(t, &BOUNDS).unwrap();
        assert_eq!((kept.hops.len(), kept.dropped), (BOUNDS.hops_per_trace, 7));
        assert_eq!(kept.hops[0].event, "hop 0");
    }

    #[test]
    fn the_ring_holds_its_bytes_counting_each_hop_s_text() {
        let mut shard = Shard::default();
        let slot = std::mem::size_of::<(TraceId, Recorded)>();
        let mut total = 0;
        for i in 0..5_000 {
            // Texts of varied length: the bound is in bytes, not hops.
            let h = hop(&"x".repeat(i % 300));
            assert!(h.bytes() >= slot + i % 300);
            total += h.bytes();
            shard.record(TraceId::random(), h, &BOUNDS);
            assert!(shard.recent_bytes <= BOUNDS.recent_bytes);
            let counted: usize = shard.recent.iter().map(|(_, h)| h.bytes()).sum();
            assert_eq!(counted, shard.recent_bytes);
        }
        assert!(total > 2 * BOUNDS.recent_bytes, "the ring did fill");
        // Nearly full: less than one of the largest hops short of its bound.
        assert!(shard.recent_bytes > BOUNDS.recent_bytes - slot - 300);
        // A borrowed text owns nothing.
        let fixed = Recorded {
            event: Cow::Borrowed("delivered"),
            ..hop("")
        };
        assert_eq!(fixed.bytes(), slot);
        // No ring at all.
        let off = Bounds {
            recent_bytes: 0,
            ..BOUNDS
        };
        let mut shard = Shard::default();
        let t = TraceId::random();
        shard.record(t, hop("x"), &off);
        assert!(shard.find(t, &off).is_none());
    }

    #[test]
    fn the_ring_forgets_its_oldest_hops_first() {
        let mut shard = Shard::default();
        let ids: Vec<TraceId> = (0..2_000).map(|_| TraceId::random()).collect();
        for &t in &ids {
            shard.record(t, hop("delivered"), &BOUNDS);
        }
        let held = shard.recent.len();
        assert!(held < ids.len(), "the ring is smaller than the traffic");
        assert!(ids[..ids.len() - held]
            .iter()
            .all(|&t| shard.find(t, &BOUNDS).is_none()));
        assert!(ids[ids.len() - held..]
            .iter()
            .all(|&t| shard.find(t, &BOUNDS).is_some()));
    }

    #[test]
    fn kept_traces_keep_their_share_of_hops_dropping_the_oldest_traces() {
        let mut shard = Shard::default();
        let per_trace = 40;
        let ids: Vec<TraceId> = (0..60).map(|_| TraceId::random()).collect();
        for &t in &ids {
            shard.keep(t, Keep::Payment, &BOUNDS);
            for _ in 0..per_trace {
                shard.record(t, hop("delivered"), &BOUNDS);
            }
            let set = &shard.linked;
            assert!(set.hops <= BOUNDS.linked.hops, "{} hops kept", set.hops);
            let counted: usize = set.traces.values().map(|t| t.hops.len()).sum();
            assert_eq!(counted, set.hops);
        }
        // The newest traces are the ones kept.
        let kept = BOUNDS.linked.hops / per_trace;
        assert_eq!(shard.linked.order.len(), kept);
        assert!(ids[ids.len() - kept..].iter().all(|&t| shard.is_kept(t)));
        assert!(!shard.is_kept(ids[0]));
        // And at most `traces` of them, however small.
        let mut shard = Shard::default();
        let ids: Vec<TraceId> = (0..BOUNDS.linked.traces + 5)
            .map(|_| TraceId::random())
            .collect();
        for &t in &ids {
            shard.keep(t, Keep::Payment, &BOUNDS);
        }
        assert_eq!(shard.linked.order.len(), BOUNDS.linked.traces);
        assert!(!shard.is_kept(ids[4]) && shard.is_kept(ids[5]));
    }

    #[test]
    fn what_clients_or_load_make_at_will_cannot_push_out_the_linked_ones() {
        let mut shard = Shard::default();
        let payment = TraceId::random();
        shard.keep(payment, Keep::Payment, &BOUNDS);
        shard.record(payment, hop("reserved"), &BOUNDS);
        // A flood of what clients or load make at will: their own ids,
        // refused requests, slow and sampled traces.
        for i in 0..1_000 {
            let t = TraceId::random();
            let why = [Keep::Sampled, Keep::Asked, Keep::Refused, Keep::Slow][i % 4];
            shard.keep(t, why, &BOUNDS);
            shard.record(t, hop("delivered"), &BOUNDS);
        }
        assert!(shard.other.order.len() <= BOUNDS.other.traces);
        let found = shard.find(payment, &BOUNDS).unwrap();
        assert_eq!(
            (found.why, events(&found)),
            (Some(Keep::Payment), vec!["reserved"])
        );
        // A sampled trace that turns out to have an error moves to the
        // linked set, with its hops, under its new reason.
        let t = TraceId::random();
        shard.keep(t, Keep::Sampled, &BOUNDS);
        shard.record(t, hop("received send"), &BOUNDS);
        shard.keep(t, Keep::Error, &BOUNDS);
        assert!(!shard.other.traces.contains_key(&t) && !shard.other.order.contains(&t));
        let found = shard.find(t, &BOUNDS).unwrap();
        assert_eq!(
            (found.why, events(&found)),
            (Some(Keep::Error), vec!["received send"])
        );
        let counted: usize = shard.other.traces.values().map(|t| t.hops.len()).sum();
        assert_eq!(counted, shard.other.hops);
    }

    #[test]
    fn slow_traces_are_kept_in_a_burst_then_one_a_second() {
        let mut shard = Shard::default();
        let t0 = 1_000_000_000;
        let slow: Vec<TraceId> = (0..5).map(|_| TraceId::random()).collect();
        let kept: Vec<bool> = slow
            .iter()
            .map(|&t| shard.keep_slow(t, t0, &BOUNDS))
            .collect();
        assert_eq!(kept, [true, true, true, false, false]);
        assert_eq!(shard.find(slow[0], &BOUNDS).unwrap().why, Some(Keep::Slow));
        assert!(!shard.keep_slow(slow[3], t0 + 999_999, &BOUNDS));
        // One token a second; a trace kept already spends none.
        assert!(shard.keep_slow(slow[0], t0 + 1_000_000, &BOUNDS));
        assert!(shard.keep_slow(slow[3], t0 + 1_000_000, &BOUNDS));
        assert!(!shard.keep_slow(slow[4], t0 + 1_500_000, &BOUNDS));
        // A quiet spell refills the burst, no more.
        let later: Vec<bool> = (0..5)
            .map(|_| shard.keep_slow(TraceId::random(), t0 + 60_000_000, &BOUNDS))
            .collect();
        assert_eq!(later, [true, true, true, false, false]);
    }
}
