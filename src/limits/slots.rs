//! The node's connection cap, exact: a WebSocket upgrade takes a slot before
//! the 101 and its connection holds it until its socket's reader ends, so
//! a burst of upgrades cannot pass the cap together (counting the sessions
//! the registry has would miss those still starting). The slot goes back
//! when its guard is dropped, on every path out: the upgrade refused, the
//! session ended, a panic unwinding the reader.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct ConnectionSlots {
    taken: Arc<AtomicUsize>,
    cap: usize,
}

/// One connection's place; dropping it frees the place.
pub struct Slot(Arc<AtomicUsize>);

impl ConnectionSlots {
    pub fn new(cap: usize) -> Self {
        ConnectionSlots {
            taken: Arc::new(AtomicUsize::new(0)),
            cap,
        }
    }

    /// A place, or None when all `cap` are taken.
    pub fn take(&self) -> Option<Slot> {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.cap).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.taken.clone()))
    }

    pub fn taken(&self) -> usize {
        self.taken.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_cap_and_freed_on_drop() {
        let slots = ConnectionSlots::new(2);
        let a = slots.take().expect("first");
        let b = slots.take().expect("second");
        assert!(slots.take().is_none());
        drop(a);
        let c = slots.take().expect("a freed place");
        assert_eq!(slots.taken(), 2);
        drop((b, c));
        assert_eq!(slots.taken(), 0);
    }

    #[test]
    fn concurrent_takers_never_pass_it() {
        let slots = Arc::new(ConnectionSlots::new(50));
        let held: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let slots = slots.clone();
                    s.spawn(move || (0..100).filter_map(|_| slots.take()).collect::<Vec<_>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        assert_eq!(held.len(), 50);
        assert_eq!(slots.taken(), 50);
    }
}
