//! Refuses an oversized WebSocket frame or message from its header, before
//! its payload is buffered.
//!
//! actix-ws reads every byte the socket has into its buffer and actix-http
//! compares a frame's length with the limit only once the whole frame has
//! arrived, so a header claiming 2^62 bytes followed by a stream of bytes
//! grows the server's memory for as long as the client sends. [`FrameGuard`]
//! sits between the connection and actix-ws: it passes the bytes through
//! unchanged and follows the frame boundaries (2 to 14 header bytes, then
//! `length` payload bytes to skip), so it sees each declared length as soon
//! as the header is in. A frame, or the sum of a fragmented message's
//! frames, over `max_bytes`, or a message in more than [`MAX_FRAGMENTS`]
//! fragments (empty continuation frames cost memory too), ends the stream
//! with an error and marks the [`Refusal`], which the session reads as
//! "close with 1009".
//!
//! Written here rather than taken from a crate: only the lengths matter, it
//! must work across chunk boundaries without buffering a payload, and the
//! WebSocket crates' parsers want the whole frame.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Fragments one message may arrive in. actix-ws keeps every fragment until
/// the last; 70,000 bytes in 10 KB fragments is 7.
pub const MAX_FRAGMENTS: u32 = 1024;

/// Set once the guard has refused the stream: the read error that follows
/// means "too large" (1009), not a broken connection.
#[derive(Clone, Default)]
pub struct Refusal(Arc<AtomicBool>);

impl Refusal {
    pub fn refused(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn refuse(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Where the guard is in the client's byte stream.
#[derive(Default)]
struct Framing {
    /// The header read so far (at most 2 + 8 + 4 bytes).
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to pass.
    skip: u64,
    /// The data message being received: bytes and fragments so far.
    message: u64,
    fragments: u32,
}

/// A frame over a limit: its header's bytes in the chunk that completed it
/// (`start` is 0 when the header began in an earlier chunk).
#[derive(Debug, PartialEq, Eq)]
struct Refused {
    start: usize,
    end: usize,
}

impl Framing {
    /// Follows `chunk`; `Err` when a frame whose header ends in it is over
    /// a limit.
    fn follow(&mut self, chunk: &[u8], max_bytes: u64) -> Result<(), Refused> {
        let mut i = 0;
        while i < chunk.len() {
            if self.skip > 0 {
                let take = self.skip.min((chunk.len() - i) as u64);
                self.skip -= take;
                i += take as usize;
                continue;
            }
            self.header[self.have] = chunk[i];
            self.have += 1;
            i += 1;
            if self.have < header_len(&self.header[..self.have]) {
                continue;
            }
            let (fin, opcode, length) = parse(&self.header[..self.have]);
            let refused = Refused {
                // A header begun in an earlier chunk starts before this one.
                start: i.saturating_sub(self.have),
                end: i,
            };
            self.have = 0;
            self.skip = length;
            if length > max_bytes {
                return Err(refused);
            }
            // Control frames (8 and up) may come between the fragments of a
            // message and are not part of it.
            if opcode < 8 {
                if opcode != 0 {
                    self.message = 0;
                    self.fragments = 0;
                }
                self.message = self.message.saturating_add(length);
                self.fragments += 1;
                if self.message > max_bytes || self.fragments > MAX_FRAGMENTS {
                    return Err(refused);
                }
                if fin {
                    self.message = 0;
                    self.fragments = 0;
                }
            }
        }
        Ok(())
    }
}

/// The header's full length, once its first two bytes are known (until
/// then, 2): the extended length takes 0, 2 or 8 bytes, the mask 4.
fn header_len(head: &[u8]) -> usize {
    let [_, second, ..] = head else {
        return 2;
    };
    let extended = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & 0x80 != 0 { 4 } else { 0 };
    2 + extended + mask
}

/// FIN, opcode and payload length of a complete header.
fn parse(head: &[u8]) -> (bool, u8, u64) {
    let fin = head[0] & 0x80 != 0;
    let opcode = head[0] & 0x0f;
    let length = match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&head[2..10]);
            u64::from_be_bytes(be)
        }
        short => u64::from(short),
    };
    (fin, opcode, length)
}

/// Where a client's bytes, arriving as `chunks`, would be refused: the
/// offset just past the header of the first frame over a limit (the fuzz
/// target `ws_frames` checks that the chunking never changes it).
pub fn first_refusal<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    max_bytes: usize,
) -> Option<u64> {
    let mut framing = Framing::default();
    let mut offset = 0u64;
    for chunk in chunks {
        if let Err(r) = framing.follow(chunk, max_bytes as u64) {
            return Some(offset + r.end as u64);
        }
        offset += chunk.len() as u64;
    }
    None
}

/// The client's byte stream, cut off at the first frame over a limit.
pub struct FrameGuard<S> {
    inner: S,
    max_bytes: u64,
    framing: Framing,
    refusal: Refusal,
    /// The error still to return after the bytes before the refused frame.
    failed: bool,
    done: bool,
}

impl<S> FrameGuard<S> {
    pub fn new(inner: S, max_bytes: usize, refusal: Refusal) -> Self {
        FrameGuard {
            inner,
            max_bytes: max_bytes as u64,
            framing: Framing::default(),
            refusal,
            failed: false,
            done: false,
        }
    }
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if this.failed {
            this.done = true;
            return Poll::Ready(Some(Err(PayloadError::Overflow)));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(mut chunk))) => match this.framing.follow(&chunk, this.max_bytes) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(refused) => {
                    this.refusal.refuse();
                    // The frames before the refused one still go through;
                    // the refused header does not.
                    let before = chunk.split_to(refused.start.min(chunk.len()));
                    if before.is_empty() {
                        this.done = true;
                        Poll::Ready(Some(Err(PayloadError::Overflow)))
                    } else {
                        this.failed = true;
                        Poll::Ready(Some(Ok(before)))
                    }
                }
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header for `length` bytes.
    fn header(fin: bool, opcode: u8, length: u64) -> Vec<u8> {
        let mut h = vec![if fin { 0x80 } else { 0 } | opcode];
        if length < 126 {
            h.push(0x80 | length as u8);
        } else if length <= u64::from(u16::MAX) {
            h.push(0x80 | 126);
            h.extend_from_slice(&(length as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&length.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    fn frame(fin: bool, opcode: u8, length: usize) -> Vec<u8> {
        let mut f = header(fin, opcode, length as u64);
        f.extend(std::iter::repeat_n(b'x', length));
        f
    }

    /// Feeds `bytes` in chunks of `step`; where a refusal came: the offset
    /// of the byte after the refused header, and of what goes through.
    fn follow(bytes: &[u8], step: usize, max: u64) -> Result<(), (usize, usize)> {
        let mut framing = Framing::default();
        let mut offset = 0;
        for chunk in bytes.chunks(step) {
            framing
                .follow(chunk, max)
                .map_err(|r| (offset + r.end, offset + r.start))?;
            offset += chunk.len();
        }
        Ok(())
    }

    #[test]
    fn frames_within_the_limit_pass_whatever_the_chunking() {
        let mut bytes = frame(true, 1, 100);
        bytes.extend(frame(true, 1, 65_536));
        bytes.extend(frame(false, 1, 30_000));
        bytes.extend(frame(true, 9, 4)); // a ping between fragments
        bytes.extend(frame(true, 0, 35_536));
        for step in [1, 2, 3, 7, 14, 1000, bytes.len()] {
            assert_eq!(follow(&bytes, step, 65_536), Ok(()), "step {step}");
        }
    }

    #[test]
    fn a_huge_declared_length_is_refused_at_its_header() {
        let mut bytes = frame(true, 1, 10);
        let start = bytes.len();
        bytes.extend(header(true, 2, 1 << 62));
        for step in [1, 5, 64] {
            let (end, _) = follow(&bytes, step, 65_536).unwrap_err();
            assert_eq!(end, start + 14, "step {step}");
        }
        // Within one chunk, the frames before it go through and it does not
        // (over several, the header's first bytes have gone on already: an
        // incomplete header, which actix-ws waits on until the error).
        assert_eq!(follow(&bytes, 64, 65_536), Err((start + 14, start)));
    }

    #[test]
    fn a_fragmented_message_over_the_limit_is_refused_at_the_fragment_that_passes_it() {
        let mut bytes = Vec::new();
        for i in 0..7 {
            bytes.extend(frame(i == 6, if i == 0 { 1 } else { 0 }, 10_000));
        }
        let (end, _) = follow(&bytes, 4096, 65_536).unwrap_err();
        // The seventh fragment (60,000 + 10,000 > 65,536) is the one refused.
        assert_eq!(end, 6 * (10_000 + 8) + 8);
    }

    #[test]
    fn too_many_empty_fragments_are_refused() {
        let mut bytes = frame(false, 1, 0);
        for _ in 0..MAX_FRAGMENTS {
            bytes.extend(frame(false, 0, 0));
        }
        assert!(follow(&bytes, 100, 65_536).is_err());
        // The same count over separate messages is fine.
        let mut separate = Vec::new();
        for _ in 0..=MAX_FRAGMENTS {
            separate.extend(frame(true, 1, 0));
        }
        assert_eq!(follow(&separate, 100, 65_536), Ok(()));
    }
}
