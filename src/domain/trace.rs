//! W3C Trace Context identifiers. Every request gets a trace id (its own, or one
//! made here) and every frame sent because of it carries that id.

use std::fmt;

use rand::RngCore;

/// 16 bytes, shown as 32 lowercase hex characters; never all zero (W3C).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId([u8; 16]);

impl TraceId {
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        loop {
            rand::thread_rng().fill_bytes(&mut bytes);
            if bytes != [0u8; 16] {
                return TraceId(bytes);
            }
        }
    }

    /// These bytes, unless all zero.
    pub fn from_bytes(bytes: [u8; 16]) -> Option<Self> {
        (bytes != [0u8; 16]).then_some(TraceId(bytes))
    }

    pub fn bytes(&self) -> [u8; 16] {
        self.0
    }

    /// Exactly 32 lowercase hex characters, not all zero.
    pub fn parse(s: &str) -> Option<Self> {
        let raw = s.as_bytes();
        if raw.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, pair) in raw.chunks_exact(2).enumerate() {
            bytes[i] = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
        }
        (bytes != [0u8; 16]).then_some(TraceId(bytes))
    }

    /// The trace id of a `traceparent` header (`00-<trace>-<span>-<flags>`).
    pub fn from_traceparent(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let trace = parts.next()?;
        let span = parts.next()?;
        let flags = parts.next()?;
        let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| hex_val(b).is_some());
        let well_formed = hex(version, 2)
            && version != "ff"
            && hex(span, 16)
            && span != "0000000000000000"
            && hex(flags, 2)
            // Version 00 has exactly four fields; later versions may add more.
            && (version != "00" || parts.next().is_none());
        if !well_formed {
            return None;
        }
        Self::parse(trace)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of 32 bytes: this runs for every frame sent.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            buf[2 * i] = HEX[usize::from(b >> 4)];
            buf[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for TraceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What travels with every actor message: the trace and the span that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The span id of the sender's hop, when known (W3C parent-id).
    pub parent_span: Option<u64>,
}

impl TraceContext {
    pub fn new(trace_id: TraceId) -> Self {
        TraceContext {
            trace_id,
            parent_span: None,
        }
    }

    pub fn random() -> Self {
        Self::new(TraceId::random())
    }

    /// A `traceparent` header for an outbound call made on behalf of this
    /// trace (a fresh, non-zero parent id for the call).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{:016x}-01", self.trace_id, rand::random::<u64>() | 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(TraceId::parse(s).map(|t| t.to_string()).as_deref(), Some(s));
        assert!(TraceId::parse("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
        assert!(TraceId::parse(&"0".repeat(32)).is_none());
        assert!(TraceId::parse("abc").is_none());
    }

    #[test]
    fn traceparent() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            TraceId::from_traceparent(h)
                .map(|t| t.to_string())
                .as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(TraceId::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736").is_none());
        assert!(TraceId::from_traceparent(
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        )
        .is_none());
    }

    #[test]
    fn random_is_valid() {
        let t = TraceId::random();
        assert!(TraceId::parse(&t.to_string()).is_some());
    }
}
