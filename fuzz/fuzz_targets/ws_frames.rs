//! The WebSocket frame guard (`parley::limits::FrameGuard`), which follows
//! frame headers in a client's raw bytes to refuse an oversized frame or
//! message before its payload: on any bytes, cut into chunks anywhere, it
//! must not panic, and where it refuses must not depend on the chunking
//! (the same bytes arrive in whatever pieces TCP makes of them).

#![no_main]

use libfuzzer_sys::fuzz_target;
use parley::limits::first_refusal;

/// A small limit, so that short inputs reach it.
const MAX_BYTES: usize = 300;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let whole = first_refusal([bytes], MAX_BYTES);
    let at = usize::from(cut).min(bytes.len());
    let (a, b) = bytes.split_at(at);
    assert_eq!(whole, first_refusal([a, b], MAX_BYTES), "cut at {at}");
    let bytewise = first_refusal(bytes.chunks(1), MAX_BYTES);
    assert_eq!(whole, bytewise);
    if let Some(end) = whole {
        assert!(end <= bytes.len() as u64);
    }
});
