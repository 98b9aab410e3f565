//! The trace recorder: recent traces, hop by hop, for `GET /admin/traces/{traceId}`.
//! Every hop names the component and actor, this node, the event, when it
//! started and how long it took. Bounded: at most `MAX_TRACES` traces (the
//! oldest is forgotten first) of at most `MAX_HOPS` hops each (later hops of
//! a long trace are counted, not kept).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;

use std::borrow::Cow;

use crate::domain::{ConversationId, PaymentId, SessionId, TraceId};

pub const MAX_TRACES: usize = 20_000;
pub const MAX_HOPS: usize = 256;

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

struct Recorder {
    node: OnceLock<String>,
    traces: Mutex<(HashMap<TraceId, Trace>, VecDeque<TraceId>)>,
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| Recorder {
        node: OnceLock::new(),
        traces: Mutex::new((HashMap::new(), VecDeque::new())),
    })
}

/// Names this node in every hop (set once at start-up).
pub fn set_node(node: &str) {
    let _ = recorder().node.set(node.to_string());
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Records one hop that ended now and took `took`.
pub fn hop(
    trace: TraceId,
    component: &'static str,
    actor: ActorRef,
    event: impl Into<Cow<'static, str>>,
    took: Duration,
) {
    let r = recorder();
    let hop = Recorded {
        component,
        actor,
        event: event.into(),
        start_us: now_us() - took.as_micros() as i64,
        duration_us: took.as_micros() as u64,
    };
    let mut guard = r.traces.lock().unwrap_or_else(|p| p.into_inner());
    let (traces, order) = &mut *guard;
    let entry = match traces.get_mut(&trace) {
        Some(t) => t,
        None => {
            if order.len() >= MAX_TRACES {
                if let Some(old) = order.pop_front() {
                    traces.remove(&old);
                }
            }
            order.push_back(trace);
            traces.entry(trace).or_default()
        }
    };
    if entry.hops.len() < MAX_HOPS {
        entry.hops.push(hop);
    } else {
        entry.dropped += 1;
    }
}

/// The recorded hops of a trace, in the order they were recorded, and how
/// many more were not kept.
pub fn get(trace: TraceId) -> Option<(Vec<Hop>, u64)> {
    let r = recorder();
    let (recorded, dropped) = {
        let guard = r.traces.lock().unwrap_or_else(|p| p.into_inner());
        let t = guard.0.get(&trace)?;
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
    }
}
