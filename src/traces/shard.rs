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

/// Limits of one shard (its share of the recorder's).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub traces: usize,
    pub kept_hops: usize,
    pub hops_per_trace: usize,
    pub recent_bytes: usize,
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

#[derive(Default)]
pub(super) struct Shard {
    kept: HashMap<TraceId, Kept>,
    /// Kept traces in the order they were kept (for eviction).
    order: VecDeque<TraceId>,
    /// Hops held by the kept traces.
    kept_hops: usize,
    /// Hops of traces not kept, oldest first. The deque's buffer may hold up
    /// to twice the slots in use (it grows by doubling); `recent_bytes`
    /// counts the slots in use.
    recent: VecDeque<(TraceId, Recorded)>,
    recent_bytes: usize,
}

impl Shard {
    pub fn is_kept(&self, trace: TraceId) -> bool {
        self.kept.contains_key(&trace)
    }

    /// Keeps `trace` from now on, with the hops of it the ring still holds
    /// (they are copied: the ring's copies age out on their own). A trace
    /// kept already keeps its first reason.
    pub fn keep(&mut self, trace: TraceId, why: Keep, bounds: &Bounds) {
        if self.kept.contains_key(&trace) {
            return;
        }
        if self.order.len() >= bounds.traces {
            self.evict_oldest();
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
        self.kept_hops += kept.hops.len();
        self.order.push_back(trace);
        self.kept.insert(trace, kept);
        self.trim(trace, bounds);
    }

    /// Records a hop: into its trace if kept, else into the ring.
    pub fn record(&mut self, trace: TraceId, hop: Recorded, bounds: &Bounds) {
        if let Some(kept) = self.kept.get_mut(&trace) {
            // Later hops of a long trace are counted, not kept.
            if kept.hops.len() >= bounds.hops_per_trace {
                kept.dropped += 1;
                return;
            }
            kept.hops.push(hop);
            self.kept_hops += 1;
            self.trim(trace, bounds);
            return;
        }
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
        if let Some(kept) = self.kept.get(&trace) {
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

    fn evict_oldest(&mut self) {
        if let Some(old) = self.order.pop_front() {
            if let Some(t) = self.kept.remove(&old) {
                self.kept_hops -= t.hops.len();
            }
        }
    }

    /// Forgets the oldest kept traces while the shard holds more than its
    /// share of kept hops; `keep` (the trace just written) stays.
    fn trim(&mut self, keep: TraceId, bounds: &Bounds) {
        while self.kept_hops > bounds.kept_hops && self.order.front() != Some(&keep) {
            self.evict_oldest();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        traces: 100,
        kept_hops: 1_000,
        hops_per_trace: 50,
        recent_bytes: 64 * 1024,
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
            shard.keep(t, Keep::Asked, &BOUNDS);
            for _ in 0..per_trace {
                shard.record(t, hop("delivered"), &BOUNDS);
            }
            assert!(
                shard.kept_hops <= BOUNDS.kept_hops,
                "{} hops kept",
                shard.kept_hops
            );
            let counted: usize = shard.kept.values().map(|t| t.hops.len()).sum();
            assert_eq!(counted, shard.kept_hops);
        }
        // The newest traces are the ones kept.
        let kept = BOUNDS.kept_hops / per_trace;
        assert_eq!(shard.order.len(), kept);
        assert!(ids[ids.len() - kept..].iter().all(|&t| shard.is_kept(t)));
        assert!(!shard.is_kept(ids[0]));
        // And at most `traces` of them, however small.
        let mut shard = Shard::default();
        let ids: Vec<TraceId> = (0..BOUNDS.traces + 5).map(|_| TraceId::random()).collect();
        for &t in &ids {
            shard.keep(t, Keep::Asked, &BOUNDS);
        }
        assert_eq!(shard.order.len(), BOUNDS.traces);
        assert!(!shard.is_kept(ids[4]) && shard.is_kept(ids[5]));
    }
}
