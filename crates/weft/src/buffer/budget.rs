//! The byte budget that bounds all buffered span memory of one tracer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::chunk::Slots;

/// Pads a value to its own cache line pair so writes to it do not slow readers of
/// neighbouring fields (x86 prefetches lines in pairs, hence 128).
#[repr(align(128))]
#[derive(Debug, Default)]
pub(crate) struct CachePadded<T>(pub T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// Bytes charged by live chunks and records, against a fixed limit.
///
/// Charged once per chunk (hundreds of spans), never per span, so the shared
/// counter is written rarely.
pub(crate) struct Budget {
    used: CachePadded<AtomicUsize>,
    peak: CachePadded<AtomicUsize>,
    limit: usize,
    /// Slot arrays of freed full-size chunks, reused by the next chunk. Without
    /// it, a busy thread's chunk memory goes back to the allocator, which trims
    /// it to the OS, and every new chunk pays page faults on first touch (measured:
    /// ~10 % of span cost). Pooled memory is not charged (it holds no spans); the
    /// pool is capped at 1/16 of the limit.
    pool: Mutex<Vec<Slots>>,
    pool_cap: usize,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("used", &self.used()).field("limit", &self.limit).finish()
    }
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        let pool_cap = (limit / 16 / super::chunk::Chunk::bytes_for(super::chunk::MAX_CHUNK)).clamp(1, 32);
        Budget {
            used: CachePadded(AtomicUsize::new(0)),
            peak: CachePadded(AtomicUsize::new(0)),
            limit,
            pool: Mutex::new(Vec::with_capacity(pool_cap)),
            pool_cap,
        }
    }

    /// A pooled full-size slot array, if one is free (never blocks).
    pub(crate) fn take_slots(&self) -> Option<Slots> {
        self.pool.try_lock().ok().and_then(|mut p| p.pop())
    }

    /// Offers a full-size slot array for reuse; frees it if the pool is full or busy.
    pub(crate) fn give_slots(&self, slots: Slots) {
        if let Ok(mut p) = self.pool.try_lock() {
            if p.len() < self.pool_cap {
                p.push(slots);
            }
        }
    }

    /// Charges `n` bytes if they fit under the limit.
    pub(crate) fn try_charge(&self, n: usize) -> bool {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before + n > self.limit {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return false;
        }
        self.peak.fetch_max(before + n, Ordering::Relaxed);
        true
    }

    /// Charges `n` bytes that are already allocated (heap data of a record that
    /// was accepted), even past the limit, so the books stay exact.
    pub(crate) fn charge(&self, n: usize) {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        self.peak.fetch_max(before + n, Ordering::Relaxed);
    }

    /// Returns `n` bytes.
    pub(crate) fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    #[inline]
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_charges_past_the_limit() {
        let b = Budget::new(100);
        assert!(b.try_charge(60));
        assert!(!b.try_charge(41));
        assert!(b.try_charge(40));
        assert_eq!(b.used(), 100);
        b.release(100);
        assert_eq!(b.used(), 0);
        assert_eq!(b.peak(), 100);
    }

    #[test]
    fn concurrent_charges_stay_under_the_limit() {
        let b = std::sync::Arc::new(Budget::new(10_000));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if b.try_charge(7) {
                            assert!(b.used() <= 10_000 + 7 * 4);
                            b.release(7);
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(b.used(), 0);
        assert!(b.peak() <= 10_000);
    }
}
