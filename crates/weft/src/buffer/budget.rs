//! The byte budget that bounds all buffered span memory of one tracer.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;

use super::chunk::{Slots, MAX_CHUNK, SLOT_BYTES, SMALL_CHUNK};

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
    /// Slot arrays of freed chunks, one pool per chunk size (16, 32, … 256
    /// slots), reused by later chunks. Every chunk's array comes from here and
    /// returns here, and arrays outstanding (live or pooled) never exceed the
    /// limit in bytes (see [`Budget::take_slots`]). So chunk memory stays within
    /// the limit whichever threads allocate and free it — with the allocator's
    /// per-thread arenas it did not (measured +43 MB RSS for a 32 MB budget) —
    /// and a busy thread never pays page faults for fresh chunk memory (measured:
    /// ~10 % of span cost). Pooled arrays hold no spans and are not charged.
    /// Lock-free queues, so a preempted thread never holds up the others (there
    /// can be many more threads than cores).
    pools: [ArrayQueue<Slots>; SIZE_CLASSES],
    /// Bytes of slot arrays outstanding, live or pooled.
    arrays: AtomicUsize,
    /// The largest chunk for this limit: up to [`MAX_CHUNK`], and at most 1/256
    /// of the limit, so that the adaptive stage's last 10 % holds 25 or more
    /// (one per thread with a trace still being recorded).
    big_chunk: usize,
}

/// Chunk sizes are powers of two from [`SMALL_CHUNK`] to [`MAX_CHUNK`].
const SIZE_CLASSES: usize = (MAX_CHUNK / SMALL_CHUNK).trailing_zeros() as usize + 1;

/// The pool index of a chunk size.
fn class_of(slots: usize) -> usize {
    (slots / SMALL_CHUNK).trailing_zeros() as usize
}

/// The largest power of two not above `n` (`n` ≥ 1).
fn prev_power_of_two(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").field("used", &self.used()).field("limit", &self.limit).finish()
    }
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        let big_chunk = prev_power_of_two((limit / 256 / SLOT_BYTES).clamp(SMALL_CHUNK, MAX_CHUNK));
        Budget {
            used: CachePadded(AtomicUsize::new(0)),
            peak: CachePadded(AtomicUsize::new(0)),
            limit,
            pools: std::array::from_fn(|c| ArrayQueue::new(limit / ((SMALL_CHUNK << c) * SLOT_BYTES) + 1)),
            arrays: AtomicUsize::new(0),
            big_chunk,
        }
    }

    /// The size of a busy thread's next chunk when `threads` threads are
    /// writing: the largest for this limit, smaller when many threads each hold
    /// a chunk, so that all of them together hold at most an eighth of the limit
    /// and the collector's lag, not the number of threads, is what fills it.
    #[inline]
    pub(crate) fn chunk_for(&self, threads: usize) -> usize {
        let fair = self.limit / 8 / threads.max(1) / SLOT_BYTES;
        prev_power_of_two(fair.clamp(SMALL_CHUNK, self.big_chunk))
    }

    /// A slot array for a chunk of about `cap` slots (a power of two from
    /// [`SMALL_CHUNK`] to [`MAX_CHUNK`]): a pooled one of that size, else a new
    /// one if arrays stay within the limit, else a pooled one of another size,
    /// else none (memory is full). Arrays outstanding never exceed the limit, so
    /// no array is ever freed to the allocator on the way — freed memory its
    /// per-thread arenas would keep, which was measured: +34 MB RSS for a 32 MB
    /// budget when chunk sizes changed under pressure. Called once per chunk.
    pub(crate) fn take_slots(&self, cap: usize) -> Option<Slots> {
        let class = class_of(cap);
        if let Some(slots) = self.pools[class].pop() {
            return Some(slots);
        }
        let bytes = cap * SLOT_BYTES;
        let mut arrays = self.arrays.load(Ordering::Relaxed);
        while arrays + bytes <= self.limit {
            match self.arrays.compare_exchange_weak(arrays, arrays + bytes, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some((0..cap).map(|_| UnsafeCell::new(MaybeUninit::uninit())).collect()),
                Err(now) => arrays = now,
            }
        }
        // At the limit: reuse an idle array of another size, nearest first.
        let mut others: Vec<usize> = (0..SIZE_CLASSES).filter(|&c| c != class).collect();
        others.sort_by_key(|&c| c.abs_diff(class));
        others.into_iter().find_map(|c| self.pools[c].pop())
    }

    /// Returns a slot array for reuse.
    pub(crate) fn give_slots(&self, slots: Slots) {
        let class = class_of(slots.len());
        if let Err(slots) = self.pools[class].push(slots) {
            // Cannot happen (each pool holds all arrays of its size the limit
            // allows); if it did, freeing keeps the books right.
            self.arrays.fetch_sub(slots.len() * SLOT_BYTES, Ordering::Relaxed);
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
