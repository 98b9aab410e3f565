//! The trace recorder: traces hop by hop, for `GET /admin/traces/{traceId}`.
//! Every hop names the component and actor, this node, the event, when it
//! started and how long it took.
//!
//! What each shard holds (see `shard.rs`):
//! - linked traces, those an operator is sent to: a payment's, a server
//!   error's, a restart's last failure, one another node keeps. A
//!   trace is kept when such an event is seen, with the hops of it the ring
//!   still holds, and every later hop of it goes there too. Bounded: at most
//!   `MAX_TRACES` traces (the oldest kept is forgotten first) of at most
//!   `MAX_HOPS` hops each (later hops are counted, not kept), and at most
//!   `MAX_KEPT_HOPS` hops in all (beyond it the oldest are forgotten too).
//! - client-given ids, refused requests (4xx), slow traces (a hop over
//!   `telemetry.trace_keep_slow_ms`) and sampled ones
//!   (`telemetry.trace_sample_percent`), kept the same way in a set of their
//!   own (`MAX_OTHER_TRACES`, `MAX_OTHER_HOPS`), so neither a client's flood
//!   nor an overload (when every delivery is slow) can push the linked
//!   traces out; and at most a few slow traces a second are newly kept, so
//!   it costs little then either.
//! - recent hops of every other trace: a ring bounded in bytes
//!   (`telemetry.trace_recent_mib`, each hop counted with the text it owns);
//!   when full the oldest hop is overwritten, so any message of the last
//!   minutes (depending on traffic) can be looked up.
//!
//! Recording stays cheap: one shard lock per hop, no formatting.

mod origin;
mod shard;

pub use origin::{Caller, TraceOrigins};

use parking_lot::Mutex;
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Serialize;

use crate::domain::{ConversationId, PaymentId, SessionId, TraceId};

use shard::{Bounds, Recorded, SetBounds, Shard};

/// Linked traces kept (see [`Keep`]).
pub const MAX_TRACES: usize = 20_000;
pub const MAX_HOPS: usize = 256;
/// Hops kept over all linked traces (about 120 bytes each with their text).
pub const MAX_KEPT_HOPS: usize = 32_768;
/// Slow and sampled traces kept, beside the linked ones, and their hops.
pub const MAX_OTHER_TRACES: usize = 4_096;
pub const MAX_OTHER_HOPS: usize = 8_192;
/// Slow traces newly kept per shard: a burst of this many, then one a
/// second (32 shards: at most 32 a second in all, once the bursts are spent).
const SLOW_BURST: u32 = 4;
const SLOW_EVERY_US: i64 = 1_000_000;
/// The ring's size unless configured (`telemetry.trace_recent_mib`).
pub const DEFAULT_RECENT_BYTES: usize = 8 << 20;
/// Hops slower than this keep their trace unless configured
/// (`telemetry.trace_keep_slow_ms`; the `slow_delivery` alert's threshold).
pub const DEFAULT_KEEP_SLOW: Duration = Duration::from_millis(100);

const SHARDS: usize = 32;

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

/// Why a trace is kept (the first reason seen), as `GET /admin/traces` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The client gave the trace id (a frame's `traceId`, a `traceparent`).
    Asked,
    /// Within `telemetry.trace_sample_percent`.
    Sampled,
    /// A server-side failure answered to a client: an `internal` or
    /// `unavailable` error frame, an HTTP 5xx (see [`error_is_kept`]).
    Error,
    /// A client's request refused: an error frame of a 4xx code, an HTTP
    /// 4xx (see [`error_is_kept`]).
    Refused,
    /// A payment's saga.
    Payment,
    /// A supervised actor failed handling a message of this trace.
    Restart,
    /// A hop took longer than `telemetry.trace_keep_slow_ms`.
    Slow,
    /// The node that published a cluster event of this trace keeps it.
    Cluster,
}

impl Keep {
    /// Kept for a link the server made (the console's payment and
    /// last-failure links, a server error's traceId, another node's), in
    /// the linked set. What any client can make as often as it likes (its
    /// own trace ids, refused requests) and what load makes (slow and
    /// sampled traces) share the other set, so a flood of them cannot push
    /// out the traces the console links to.
    fn is_linked(self) -> bool {
        !matches!(
            self,
            Keep::Slow | Keep::Sampled | Keep::Asked | Keep::Refused
        )
    }
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

/// A trace as `GET /admin/traces/{traceId}` shows it.
pub struct Lookup {
    pub hops: Vec<Hop>,
    /// Hops of it seen but not kept (past `MAX_HOPS`).
    pub dropped: u64,
    /// Why it is kept; None: only its recent hops were found.
    pub kept: Option<Keep>,
}

struct Recorder {
    node: OnceLock<String>,
    /// Traces whose id hashes below this (out of 10,000) are kept outright.
    sample_below: AtomicU64,
    /// A hop slower than this (microseconds) keeps its trace; 0: never.
    slow_us: AtomicU64,
    /// Each shard's share of the ring.
    recent_bytes: AtomicUsize,
    shards: Vec<Mutex<Shard>>,
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| Recorder {
        node: OnceLock::new(),
        sample_below: AtomicU64::new(0),
        slow_us: AtomicU64::new(DEFAULT_KEEP_SLOW.as_micros() as u64),
        recent_bytes: AtomicUsize::new(DEFAULT_RECENT_BYTES / SHARDS),
        shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
    })
}

fn bounds() -> Bounds {
    Bounds {
        linked: SetBounds {
            traces: MAX_TRACES / SHARDS,
            hops: MAX_KEPT_HOPS / SHARDS,
        },
        other: SetBounds {
            traces: MAX_OTHER_TRACES / SHARDS,
            hops: MAX_OTHER_HOPS / SHARDS,
        },
        hops_per_trace: MAX_HOPS,
        recent_bytes: recorder().recent_bytes.load(Ordering::Relaxed),
        slow_burst: SLOW_BURST,
        slow_every_us: SLOW_EVERY_US,
    }
}

fn spread(trace: TraceId) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&trace, &mut h);
    std::hash::Hasher::finish(&h)
}

fn shard(trace: TraceId) -> parking_lot::MutexGuard<'static, Shard> {
    shard_of(spread(trace))
}

fn shard_of(spread: u64) -> parking_lot::MutexGuard<'static, Shard> {
    recorder().shards[(spread % SHARDS as u64) as usize].lock()
}

/// The recorder's settings (`[telemetry]`).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Share (0 to 100) of traces kept outright.
    pub sample_percent: f64,
    /// The ring of recent hops, in bytes over all shards (0: none).
    pub recent_bytes: usize,
    /// A hop slower than this keeps its trace (zero: never).
    pub keep_slow: Duration,
}

/// Names this node in every hop and applies the settings. The recorder is
/// one per process: the last call wins.
pub fn configure(node: &str, settings: Settings) {
    let r = recorder();
    let _ = r.node.set(node.to_string());
    r.sample_below
        .store(sample_below(settings.sample_percent), Ordering::Relaxed);
    r.slow_us
        .store(settings.keep_slow.as_micros() as u64, Ordering::Relaxed);
    r.recent_bytes
        .store(settings.recent_bytes / SHARDS, Ordering::Relaxed);
}

fn sample_below(percent: f64) -> u64 {
    (percent.clamp(0.0, 100.0) * 100.0).round() as u64
}

/// The sample draws on the hash's high bits (the low ones pick the shard).
fn sampled(spread: u64, below: u64) -> bool {
    (spread >> 32) % 10_000 < below
}

/// Keeps this trace from now on, with the hops of it still in the ring.
pub fn keep(trace: TraceId, why: Keep) {
    let bounds = bounds();
    shard(trace).keep(trace, why, &bounds);
}

/// Whether an error answered with this HTTP status (or an error frame whose
/// code has it) keeps its trace. 5xx always. 4xx too, since what a user was
/// told ("not found", "conflict", "insufficient funds") is what an operator
/// is asked about, except 401 and 429: those are answered in bulk to
/// clients being turned away (stale tokens, scanners, floods), cost the
/// client nothing, and would push the traces the console links to out of
/// the bounded kept store. Their hops stay in the ring like any other.
pub fn error_is_kept(status: u16) -> bool {
    status >= 400 && !matches!(status, 401 | 429)
}

/// An error went to a client under this trace: kept if [`error_is_kept`].
pub fn error(trace: TraceId, status: u16) {
    if error_is_kept(status) {
        keep(
            trace,
            if status >= 500 {
                Keep::Error
            } else {
                Keep::Refused
            },
        );
    }
}

/// True when this trace is kept here, so other nodes should keep their
/// part too (the cluster events' `rec`).
pub fn recorded(trace: TraceId) -> bool {
    shard(trace).is_kept(trace)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Records one hop that ended now and took `took`: into its trace if kept
/// (a hop slower than the threshold, or a sampled trace, keeps it), else
/// into the ring.
pub fn hop(
    trace: TraceId,
    component: &'static str,
    actor: ActorRef,
    event: impl Into<Cow<'static, str>>,
    took: Duration,
) {
    let r = recorder();
    let took_us = took.as_micros() as u64;
    let now = now_us();
    // One hash per hop: its low bits pick the shard, its high bits the sample.
    let spread = spread(trace);
    let slow_us = r.slow_us.load(Ordering::Relaxed);
    let slow = slow_us > 0 && took_us > slow_us;
    let sampled = sampled(spread, r.sample_below.load(Ordering::Relaxed));
    let hop = Recorded {
        component,
        actor,
        event: event.into(),
        start_us: now - took_us as i64,
        duration_us: took_us,
    };
    let bounds = bounds();
    let mut shard = shard_of(spread);
    if !(slow && shard.keep_slow(trace, now, &bounds)) && sampled {
        shard.keep(trace, Keep::Sampled, &bounds);
    }
    shard.record(trace, hop, &bounds);
}

/// The hops of a trace (kept, or else still in the ring), in the order
/// they ended.
pub fn get(trace: TraceId) -> Option<Lookup> {
    let bounds = bounds();
    let found = shard(trace).find(trace, &bounds)?;
    let node = recorder().node.get().cloned().unwrap_or_default();
    let hops = found
        .hops
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
    Some(Lookup {
        hops,
        dropped: found.dropped,
        kept: found.why,
    })
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

    fn events(trace: TraceId) -> Vec<String> {
        get(trace)
            .map(|l| l.hops.into_iter().map(|h| h.event).collect())
            .unwrap_or_default()
    }

    #[test]
    fn records_and_bounds() {
        let t = TraceId::random();
        keep(t, Keep::Asked);
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
        let found = get(t).unwrap();
        assert_eq!(found.hops.len(), 2);
        assert_eq!((found.dropped, found.kept), (0, Some(Keep::Asked)));
        assert_eq!(found.hops[1].duration_us, 1000);
        assert!(found.hops[1].start.ends_with('Z'));
        for _ in 0..MAX_HOPS {
            hop(t, "session", ActorRef::Named("s"), "x", Duration::ZERO);
        }
        let found = get(t).unwrap();
        assert_eq!((found.hops.len(), found.dropped), (MAX_HOPS, 2));
        assert!(get(TraceId::random()).is_none());
    }

    #[test]
    fn an_unkept_trace_is_found_among_recent_hops_until_it_is_kept() {
        let t = TraceId::random();
        hop(
            t,
            "session",
            ActorRef::Named("s"),
            "received pay",
            Duration::ZERO,
        );
        assert!(!recorded(t));
        let recent = get(t).expect("in the ring");
        assert_eq!(recent.kept, None);
        keep(t, Keep::Payment);
        assert!(recorded(t));
        hop(
            t,
            "payment",
            ActorRef::Named("p"),
            "reserved",
            Duration::ZERO,
        );
        assert_eq!(get(t).and_then(|l| l.kept), Some(Keep::Payment));
        assert_eq!(events(t), ["received pay", "reserved"]);
    }

    #[test]
    fn a_slow_hop_keeps_its_trace_with_the_hops_before_it() {
        let t = TraceId::random();
        hop(
            t,
            "session",
            ActorRef::Named("s"),
            "received send",
            Duration::ZERO,
        );
        hop(
            t,
            "conversation",
            ActorRef::Named("c"),
            "sequenced seq 1",
            Duration::from_millis(5),
        );
        assert_eq!(get(t).and_then(|l| l.kept), None, "fast enough");
        hop(
            t,
            "session",
            ActorRef::Named("s"),
            "delivered",
            DEFAULT_KEEP_SLOW + Duration::from_millis(1),
        );
        assert_eq!(get(t).and_then(|l| l.kept), Some(Keep::Slow));
        assert_eq!(events(t), ["received send", "sequenced seq 1", "delivered"]);
    }

    #[test]
    fn errors_keep_their_trace_except_401_and_429() {
        for (status, kept, why) in [
            (400, true, Some(Keep::Refused)),
            (404, true, Some(Keep::Refused)),
            (409, true, Some(Keep::Refused)),
            (500, true, Some(Keep::Error)),
            (503, true, Some(Keep::Error)),
            (401, false, None),
            (429, false, None),
            (200, false, None),
        ] {
            assert_eq!(error_is_kept(status), kept, "{status}");
            let t = TraceId::random();
            hop(
                t,
                "http",
                ActorRef::Named("http"),
                "answered",
                Duration::ZERO,
            );
            error(t, status);
            assert_eq!(recorded(t), kept, "{status}");
            assert_eq!(get(t).and_then(|l| l.kept), why, "{status}");
        }
    }

    #[test]
    fn sampling_draws_on_the_high_bits() {
        assert_eq!(sample_below(1.0), 100);
        assert_eq!(sample_below(250.0), 10_000);
        assert!(sampled(99 << 32, 100));
        assert!(!sampled(100 << 32, 100));
        assert!(!sampled(0, 0), "0 % keeps nothing outright");
        assert!(sampled(u64::MAX, 10_000), "100 % keeps everything");
    }
}
