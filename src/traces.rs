//! The trace recorder: recent traces, hop by hop, for `GET /admin/traces/{traceId}`.
//! Every hop names the component and actor, this node, the event, when it
//! started and how long it took. Bounded: at most `MAX_TRACES` traces (the
//! oldest is forgotten first) of at most `MAX_HOPS` hops each (later hops of
//! a long trace are counted, not kept), and at most `MAX_RECORDED_HOPS` hops
//! in all (a few MiB; beyond it the oldest traces are forgotten too), so the
//! recorder reaches its full size within minutes of sampled traffic rather
//! than hours, and memory stays flat from then on. Traces whose id a client
//! gave are always recorded; others are sampled
//! (`telemetry.trace_sample_percent`), which keeps the cost low under load
//! and lets recorded traces live longer.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use std::borrow::Cow;

use crate::domain::{ConversationId, PaymentId, SessionId, TraceId};

pub const MAX_TRACES: usize = 20_000;
pub const MAX_HOPS: usize = 256;
/// Hops kept over all traces (about 120 bytes each with their text).
pub const MAX_RECORDED_HOPS: usize = 32_768;

/// Which actor a hop happened in; formatted only when read.
#[derive(Debug, Clone, Copy)]
pub enum ActorRef {
    Session(SessionId),
    Conversation(ConversationId),
    Payment(PaymentId),
    Named(&'static str),
}

impl std::fmt::Display for ActorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ActorRef::Session(id) => write!(f, "session:{id}"),
            ActorRef::Conversation(id) => write!(f, "conversation:{id}"),
            ActorRef::Payment(id) => write!(f, "payment:{id}"),
            ActorRef::Named(n) => f.write_str(n),
        }
    }
}

/// A hop as recorded (cheap: no formatting on the hot path).
#[derive(Debug, Clone)]
struct Recorded {
    component: &'static str,
    actor: ActorRef,
    event: Cow<'static, str>,
    /// Unix microseconds.
    start_us: i64,
    duration_us: u64,
}

/// A hop as operators see it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hop {
    pub component: &'static str,
    pub actor: String,
    pub node: String,
    pub event: String,
    pub start: String,
    pub duration_us: u64,
}

#[derive(Default)]
struct Trace {
    hops: Vec<Recorded>,
    dropped: u64,
}

const SHARDS: usize = 32;

/// One shard: traces by id and their arrival order (for eviction).
#[derive(Default)]
struct Shard {
    traces: HashMap<TraceId, Trace>,
    order: VecDeque<TraceId>,
    /// Hops kept in this shard's traces.
    hops: usize,
}

impl Shard {
    fn entry(&mut self, trace: TraceId) -> &mut Trace {
        if !self.traces.contains_key(&trace) {
            if self.order.len() >= MAX_TRACES / SHARDS {
                self.evict_oldest();
            }
            self.order.push_back(trace);
        }
        self.traces.entry(trace).or_default()
    }

    fn evict_oldest(&mut self) {
        if let Some(old) = self.order.pop_front() {
            if let Some(t) = self.traces.remove(&old) {
                self.hops -= t.hops.len();
            }
        }
    }

    /// Forgets the oldest traces while the shard holds more than its share
    /// of hops; `keep` (the trace just written) stays.
    fn trim(&mut self, keep: TraceId) {
        while self.hops > MAX_RECORDED_HOPS / SHARDS && self.order.front() != Some(&keep) {
            self.evict_oldest();
        }
    }
}

struct Recorder {
    node: OnceLock<String>,
    /// Traces whose id hashes below this (out of 10,000) are recorded
    /// without being asked for.
    sample_below: std::sync::atomic::AtomicU64,
    shards: Vec<Mutex<Shard>>,
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| Recorder {
        node: OnceLock::new(),
        sample_below: std::sync::atomic::AtomicU64::new(10_000),
        shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
    })
}

fn spread(trace: TraceId) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&trace, &mut h);
    std::hash::Hasher::finish(&h)
}

fn shard(trace: TraceId) -> std::sync::MutexGuard<'static, Shard> {
    shard_of(spread(trace))
}

fn shard_of(spread: u64) -> std::sync::MutexGuard<'static, Shard> {
    recorder().shards[(spread % SHARDS as u64) as usize]
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Names this node in every hop and sets the share of traces recorded
/// without being asked for (`telemetry.trace_sample_percent`).
pub fn configure(node: &str, sample_percent: f64) {
    let r = recorder();
    let _ = r.node.set(node.to_string());
    let below = (sample_percent.clamp(0.0, 100.0) * 100.0).round() as u64;
    r.sample_below
        .store(below, std::sync::atomic::Ordering::Relaxed);
}

/// Records this trace whatever the sampling: the client gave its id (a
/// frame's `traceId` or a `traceparent` header), so someone means to look.
pub fn want(trace: TraceId) {
    shard(trace).entry(trace);
}

/// True when hops of this trace are being recorded here (asked for, or
/// already sampled), so other nodes should record their part too.
pub fn recorded(trace: TraceId) -> bool {
    shard(trace).traces.contains_key(&trace)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Records one hop that ended now and took `took`, if the trace is recorded
/// (asked for, or sampled).
pub fn hop(
    trace: TraceId,
    component: &'static str,
    actor: ActorRef,
    event: impl Into<Cow<'static, str>>,
    took: Duration,
) {
    // One hash per hop: its low bits pick the shard, its high bits the sample.
    let spread = spread(trace);
    let sampled = (spread >> 32) % 10_000
        < recorder()
            .sample_below
            .load(std::sync::atomic::Ordering::Relaxed);
    let mut shard = shard_of(spread);
    let entry = if sampled {
        shard.entry(trace)
    } else {
        match shard.traces.get_mut(&trace) {
            Some(t) => t,
            None => return,
        }
    };
    if entry.hops.len() >= MAX_HOPS {
        entry.dropped += 1;
        return;
    }
    entry.hops.push(Recorded {
        component,
        actor,
        event: event.into(),
        start_us: now_us() - took.as_micros() as i64,
        duration_us: took.as_micros() as u64,
    });
    shard.hops += 1;
    shard.trim(trace);
}

/// The recorded hops of a trace, in the order they were recorded, and how
/// many more were not kept.
pub fn get(trace: TraceId) -> Option<(Vec<Hop>, u64)> {
    let r = recorder();
    let (recorded, dropped) = {
        let guard = shard(trace);
        let t = guard.traces.get(&trace)?;
        (t.hops.clone(), t.dropped)
    };
    let node = r.node.get().cloned().unwrap_or_default();
    let hops = recorded
        .into_iter()
        .map(|h| Hop {
            component: h.component,
            actor: h.actor.to_string(),
            node: node.clone(),
            event: h.event.into_owned(),
            start: rfc3339_us(h.start_us),
            duration_us: h.duration_us,
        })
        .collect();
    Some((hops, dropped))
}

/// `2026-11-26T14:13:20.123456Z`: hops are microseconds apart.
fn rfc3339_us(us: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_micros(us)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_bounds() {
        let t = TraceId::random();
        want(t);
        hop(
            t,
            "session",
            ActorRef::Named("s"),
            "received send",
            Duration::from_micros(5),
        );
        hop(
            t,
            "store",
            ActorRef::Named("store_writer"),
            "committed",
            Duration::from_millis(1),
        );
        let (hops, dropped) = get(t).unwrap();
        assert_eq!(hops.len(), 2);
        assert_eq!(dropped, 0);
        assert_eq!(hops[1].duration_us, 1000);
        for _ in 0..MAX_HOPS {
            hop(t, "session", ActorRef::Named("s"), "x", Duration::ZERO);
        }
        let (hops, dropped) = get(t).unwrap();
        assert_eq!((hops.len(), dropped), (MAX_HOPS, 2));
        assert!(get(TraceId::random()).is_none());
        configure("n", 0.0);
        let unasked = TraceId::random();
        hop(
            unasked,
            "session",
            ActorRef::Named("s"),
            "x",
            Duration::ZERO,
        );
        assert!(get(unasked).is_none(), "not sampled, not asked for");
        configure("n", 100.0);
    }

    #[test]
    fn a_shard_keeps_its_share_of_hops_dropping_the_oldest_traces() {
        let mut shard = Shard::default();
        let per_trace = 100;
        let budget = MAX_RECORDED_HOPS / SHARDS;
        let ids: Vec<TraceId> = (0..50).map(|_| TraceId::random()).collect();
        for &t in &ids {
            let hop = Recorded {
                component: "session",
                actor: ActorRef::Named("s"),
                event: Cow::Owned("delivered".to_string()),
                start_us: 0,
                duration_us: 0,
            };
            shard
                .entry(t)
                .hops
                .extend(std::iter::repeat_n(hop, per_trace));
            shard.hops += per_trace;
            shard.trim(t);
            assert!(shard.hops <= budget, "{} hops kept", shard.hops);
            let counted: usize = shard.traces.values().map(|t| t.hops.len()).sum();
            assert_eq!(counted, shard.hops);
        }
        // The newest traces are the ones kept.
        let kept = budget / per_trace;
        assert_eq!(shard.order.len(), kept);
        assert!(ids[ids.len() - kept..]
            .iter()
            .all(|t| shard.traces.contains_key(t)));
        assert!(!shard.traces.contains_key(&ids[0]));
    }
}
