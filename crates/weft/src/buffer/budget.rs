//! The byte budget that bounds all buffered span memory of one tracer.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

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
    ///
    /// Each size has stacks (`recent`) and a queue (`pools`). A stack hands
    /// out the array freed last, whose lines are most likely still in the
    /// caches; a queue cycled through every array ever allocated, which after a
    /// burst of buffering was megabytes past this VM's last-level cache, and
    /// each slot write then waited on memory. A stack is `try_lock`ed: a
    /// thread that finds it taken uses the lock-free queue instead, so a
    /// preempted thread does not hold up the others (there can be many more
    /// threads than cores) — except when every array is allocated, where
    /// waiting for the stack beats dropping a span (`pop_pooled_waiting`).
    ///
    /// There is a set of stacks per CPU (its *home*, see [`current_home`]): an
    /// array goes back to the stack of the CPU that last wrote it, and a
    /// thread takes from its own CPU's stack first, where the array's lines
    /// are still in this core's caches. With one shared stack, a thread on one
    /// core was handed arrays the other core had just written, and every slot
    /// it wrote first had to fetch the line from the other core.
    recent: Box<[HomeStacks]>,
    /// See `recent`.
    pools: [ArrayQueue<Slots>; SIZE_CLASSES],
    /// Bytes of slot arrays outstanding, live or pooled.
    arrays: AtomicUsize,
    /// Slot arrays of freed chunks whose records own heap data (strings, spilled
    /// attributes, events) not yet freed: the next thread to open a chunk drops
    /// one (see [`Budget::take_slots`]); a collector that saw no spans for a few
    /// rounds cleans what threads left behind. Their heap
    /// bytes stay charged until then. Freeing them where the chunk was freed —
    /// the collector, after the export — made the collector the bottleneck of
    /// the `tracing` bridge: 64 threads' allocations freed on one thread, which
    /// got 1/65 of the CPU, and the bridge shed half its traces with an instant
    /// exporter (measured: 43–48 % delivered; 99.7–100 % without the frees).
    /// The threads that allocated the data have the CPU, and free it in the
    /// same place they take their next array.
    stale: ArrayQueue<StaleSlots>,
    /// Whether freed chunks' records go to `stale` (while the collector runs)
    /// instead of being dropped at once.
    defer_drops: AtomicBool,
    /// The largest chunk for this limit: up to [`MAX_CHUNK`], and at most 1/256
    /// of the limit, so that the adaptive stage's last 10 % holds 25 or more
    /// (one per thread with a trace still being recorded).
    big_chunk: usize,
}

/// One CPU's stacks of freed arrays, one per chunk size, on lines of their
/// own (CPUs lock their own stacks at the same time).
type HomeStacks = CachePadded<[Mutex<Vec<Slots>>; SIZE_CLASSES]>;

/// Chunk sizes are powers of two from [`SMALL_CHUNK`] to [`MAX_CHUNK`].
const SIZE_CLASSES: usize = (MAX_CHUNK / SMALL_CHUNK).trailing_zeros() as usize + 1;

/// The most sets of per-CPU stacks; CPUs beyond share them (by CPU number
/// modulo the count).
const MAX_HOMES: usize = 64;

/// Sets of per-CPU stacks: one per CPU this process may run on, up to [`MAX_HOMES`].
fn homes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_HOMES)
}

/// The CPU this thread runs on now, as the index of its set of stacks (an
/// array's *home*). Read once per chunk (`sched_getcpu` is a vDSO call, tens
/// of nanoseconds), never per span; 0 where the platform does not tell.
pub(crate) fn current_home() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: no preconditions; returns -1 on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu >= 0 {
            return cpu as usize;
        }
    }
    0
}

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
        Self::with_homes(limit, homes())
    }

    /// A budget with `homes` sets of per-CPU stacks (tests choose the count).
    fn with_homes(limit: usize, homes: usize) -> Self {
        let big_chunk = prev_power_of_two((limit / 256 / SLOT_BYTES).clamp(SMALL_CHUNK, MAX_CHUNK));
        Budget {
            used: CachePadded(AtomicUsize::new(0)),
            peak: CachePadded(AtomicUsize::new(0)),
            limit,
            recent: (0..homes.max(1)).map(|_| CachePadded(std::array::from_fn(|_| Mutex::new(Vec::new())))).collect(),
            pools: std::array::from_fn(|c| ArrayQueue::new(limit / ((SMALL_CHUNK << c) * SLOT_BYTES) + 1)),
            arrays: AtomicUsize::new(0),
            stale: ArrayQueue::new(limit / (SMALL_CHUNK * SLOT_BYTES) + 1),
            defer_drops: AtomicBool::new(false),
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
    ///
    /// First it frees the records of one stale array, if any wait (see
    /// `stale`): one per chunk opened keeps pace with the chunks freed.
    ///
    /// `home` is the taking thread's CPU ([`current_home`]): its stack is
    /// tried first, then the other CPUs', then the queue.
    pub(crate) fn take_slots(&self, cap: usize, home: usize) -> Option<Slots> {
        let class = class_of(cap);
        let home = home % self.recent.len();
        if !self.stale.is_empty() {
            if let Some(s) = self.stale.pop() {
                let slots = s.clean(self);
                if class_of(slots.len()) == class {
                    return Some(slots);
                }
                self.give_slots(slots, home);
            }
        }
        if let Some(slots) = self.pop_pooled(class, home) {
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
        // At the limit. The stack may only have been held a moment ago: wait
        // for it here, where memory is full and the alternative is dropping the
        // span (its holder only pushes or pops). Then reuse an idle array of
        // another size, nearest first.
        if let Some(slots) = self.pop_pooled_waiting(class, home) {
            return Some(slots);
        }
        let mut others: Vec<usize> = (0..SIZE_CLASSES).filter(|&c| c != class).collect();
        others.sort_by_key(|&c| c.abs_diff(class));
        others.into_iter().find_map(|c| self.pop_pooled_waiting(c, home))
    }

    /// The homes in the order a thread on `home` tries them: its own first.
    fn homes_from(&self, home: usize) -> impl Iterator<Item = usize> {
        let n = self.recent.len();
        (0..n).map(move |i| (home + i) % n)
    }

    /// As [`Budget::pop_pooled`], waiting for each stack if it is held.
    fn pop_pooled_waiting(&self, class: usize, home: usize) -> Option<Slots> {
        self.homes_from(home)
            .find_map(|h| self.recent[h][class].lock().unwrap_or_else(|e| e.into_inner()).pop())
            .or_else(|| self.pools[class].pop())
    }

    /// A pooled array of size class `class`: the one freed last on this CPU
    /// if its stack is free and holds one, else the one freed last on
    /// another CPU, else the queue's oldest.
    fn pop_pooled(&self, class: usize, home: usize) -> Option<Slots> {
        for h in self.homes_from(home) {
            if let Ok(mut recent) = self.recent[h][class].try_lock() {
                if let Some(slots) = recent.pop() {
                    return Some(slots);
                }
            }
        }
        self.pools[class].pop()
    }

    /// Returns a slot array for reuse, to the stack of `home`, the CPU that
    /// last wrote it.
    pub(crate) fn give_slots(&self, slots: Slots, home: usize) {
        let class = class_of(slots.len());
        if let Ok(mut recent) = self.recent[home % self.recent.len()][class].try_lock() {
            return recent.push(slots);
        }
        if let Err(slots) = self.pools[class].push(slots) {
            // Cannot happen (each pool holds all arrays of its size the limit
            // allows); if it did, freeing keeps the books right.
            self.arrays.fetch_sub(slots.len() * SLOT_BYTES, Ordering::Relaxed);
        }
    }

    /// Takes the array of a freed chunk whose first `len` records are still
    /// to be dropped, their heap data still charged as `heap` bytes: defers
    /// the drop to a thread opening a chunk (or the idle collector) while the
    /// collector runs, else drops them now.
    pub(crate) fn recycle(&self, slots: Slots, len: usize, heap: usize, home: usize) {
        let stale = StaleSlots { slots, len, heap, home };
        if !self.defer_drops.load(Ordering::SeqCst) {
            return self.clean_and_pool(stale);
        }
        if let Err(stale) = self.stale.push(stale) {
            // Cannot happen (the queue holds every array the limit allows).
            self.clean_and_pool(stale);
        }
        // Deferring stopped meanwhile (shutdown): the collector's last clean-up
        // may have run before the push, so this thread cleans up after itself.
        // (SeqCst pairs with `stop_deferring`: one of the two sees the other.)
        if !self.defer_drops.load(Ordering::SeqCst) {
            self.clean_stale(usize::MAX);
        }
    }

    /// Frees the records of up to `max` stale arrays now. Returns how many.
    pub(crate) fn clean_stale(&self, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let Some(s) = self.stale.pop() else { break };
            self.clean_and_pool(s);
            n += 1;
        }
        n
    }

    /// Drops a stale array's records and returns the array to its pool.
    fn clean_and_pool(&self, stale: StaleSlots) {
        let home = stale.home;
        let slots = stale.clean(self);
        self.give_slots(slots, home);
    }

    /// Whether stale arrays wait to be cleaned.
    #[inline]
    pub(crate) fn has_stale(&self) -> bool {
        !self.stale.is_empty()
    }

    /// Defers the drop of freed chunks' records (the collector started).
    pub(crate) fn start_deferring(&self) {
        self.defer_drops.store(true, Ordering::SeqCst);
    }

    /// Stops deferring and frees every stale array (the collector stops).
    pub(crate) fn stop_deferring(&self) {
        self.defer_drops.store(false, Ordering::SeqCst);
        self.clean_stale(usize::MAX);
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

/// A pooled slot array whose first `len` records were published and not yet
/// dropped; their heap data is charged to the budget as `heap` bytes.
pub(crate) struct StaleSlots {
    slots: Slots,
    len: usize,
    heap: usize,
    /// The CPU that last wrote the array (see `Budget::recent`).
    home: usize,
}

impl StaleSlots {
    /// Drops the records, returns their heap bytes to `budget` and the array.
    fn clean(mut self, budget: &Budget) -> Slots {
        self.drop_records();
        budget.release(std::mem::take(&mut self.heap));
        std::mem::take(&mut self.slots)
    }

    fn drop_records(&mut self) {
        let len = std::mem::take(&mut self.len);
        for slot in &mut self.slots[..len] {
            // SAFETY: the first `len` slots hold initialised records no one else
            // reads any more (their chunk was freed); `len` is reset first, so
            // each is dropped once.
            unsafe { slot.get_mut().assume_init_drop() };
        }
    }
}

impl Drop for StaleSlots {
    /// Only when the budget itself goes away with arrays still queued: their
    /// records are dropped; there is nothing left to return bytes to.
    fn drop(&mut self) {
        self.drop_records();
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
    fn the_array_freed_last_is_handed_out_first() {
        let b = Budget::new(1 << 20);
        let arrays: Vec<Slots> = (0..3).map(|_| b.take_slots(SMALL_CHUNK, 0).unwrap()).collect();
        let addrs: Vec<*const u8> = arrays.iter().map(|s| s.as_ptr() as *const u8).collect();
        for s in arrays {
            b.give_slots(s, 0);
        }
        // Last in, first out: the warmest array first.
        let taken: Vec<Slots> = (0..3).map(|_| b.take_slots(SMALL_CHUNK, 0).unwrap()).collect();
        let got: Vec<*const u8> = taken.iter().map(|s| s.as_ptr() as *const u8).collect();
        assert_eq!(got, addrs.into_iter().rev().collect::<Vec<_>>());
    }

    #[test]
    fn an_array_goes_back_to_the_cpu_that_wrote_it_and_is_found_from_any() {
        let b = Budget::with_homes(1 << 20, 4);
        let a = b.take_slots(SMALL_CHUNK, 0).unwrap();
        let c = b.take_slots(SMALL_CHUNK, 0).unwrap();
        let (a_addr, c_addr) = (a.as_ptr() as usize, c.as_ptr() as usize);
        b.give_slots(a, 1);
        b.give_slots(c, 2);
        // Each CPU gets the array it wrote, though another was freed later.
        let on_1 = b.take_slots(SMALL_CHUNK, 1).unwrap();
        assert_eq!(on_1.as_ptr() as usize, a_addr);
        // A CPU with nothing of its own takes another CPU's array before a new
        // one; CPU numbers past the homes wrap around.
        let on_7 = b.take_slots(SMALL_CHUNK, 7).unwrap();
        assert_eq!(on_7.as_ptr() as usize, c_addr);
        assert_eq!(b.arrays.load(Ordering::Relaxed), 2 * SMALL_CHUNK * SLOT_BYTES, "no new array");
        b.give_slots(on_1, 5);
        b.give_slots(on_7, 3);
        // At the limit, arrays on other CPUs are waited for, not missed.
        let full = Budget::with_homes(SMALL_CHUNK * SLOT_BYTES, 3);
        let only = full.take_slots(SMALL_CHUNK, 2).unwrap();
        let addr = only.as_ptr() as usize;
        full.give_slots(only, 2);
        assert_eq!(full.take_slots(SMALL_CHUNK, 0).map(|s| s.as_ptr() as usize), Some(addr));
        assert!(full.take_slots(SMALL_CHUNK, 0).is_none(), "the limit holds");
    }

    #[test]
    fn a_taken_stack_falls_back_to_the_queue_and_loses_no_array() {
        let b = Budget::new(1 << 20);
        let first = b.take_slots(SMALL_CHUNK, 0).unwrap();
        let second = b.take_slots(SMALL_CHUNK, 0).unwrap();
        let (first_addr, second_addr) = (first.as_ptr() as usize, second.as_ptr() as usize);
        b.give_slots(first, 0);
        {
            // Another thread holds the stack: giving and taking go through the
            // lock-free queue instead, without waiting.
            let _held = b.recent[0][class_of(SMALL_CHUNK)].lock().unwrap();
            b.give_slots(second, 0);
            let got = b.take_slots(SMALL_CHUNK, 0).unwrap();
            assert_eq!(got.as_ptr() as usize, second_addr);
            b.give_slots(got, 0); // the stack is still held: back to the queue
        }
        let taken: Vec<Slots> = (0..2).map(|_| b.take_slots(SMALL_CHUNK, 0).unwrap()).collect();
        let mut got: Vec<usize> = taken.iter().map(|s| s.as_ptr() as usize).collect();
        got.sort_unstable();
        let mut want = vec![first_addr, second_addr];
        want.sort_unstable();
        assert_eq!(got, want, "both arrays come back, from the stack and the queue");
        // Arrays outstanding are still counted against the limit: no new one
        // was allocated for the takes above.
        assert_eq!(b.arrays.load(Ordering::Relaxed), 2 * SMALL_CHUNK * SLOT_BYTES);
    }

    #[test]
    fn at_the_limit_a_held_stack_is_waited_for_rather_than_no_room() {
        // Room for exactly one array, which sits in the stack while another
        // thread holds it: the take must wait and get it, not report full.
        let b: &'static Budget = Box::leak(Box::new(Budget::new(SMALL_CHUNK * SLOT_BYTES)));
        let only = b.take_slots(SMALL_CHUNK, 0).unwrap();
        let addr = only.as_ptr() as usize;
        b.give_slots(only, 0);
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let holder = std::thread::spawn(move || {
            let _held = b.recent[0][class_of(SMALL_CHUNK)].lock().unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
        });
        held_rx.recv().unwrap();
        let got = b.take_slots(SMALL_CHUNK, 0).expect("the pooled array, after waiting");
        assert_eq!(got.as_ptr() as usize, addr);
        holder.join().unwrap();
    }

    /// A chunk of `cap` slots holding `n` records that share `ts`'s heap part,
    /// charged `heap` bytes for it, freed.
    fn free_chunk_with_heap(budget: &'static Budget, cap: usize, n: usize, ts: &crate::TraceState, heap: usize) {
        use super::super::chunk::Chunk;
        assert!(budget.try_charge(Chunk::bytes_for(cap)));
        let chunk = Chunk::with_slots(budget.take_slots(cap, 0).unwrap(), budget, 0);
        for i in 0..n {
            let mut r = crate::testing::record("r");
            r.trace_state = ts.clone();
            // SAFETY: this test owns the chunk; `i` is its length.
            unsafe { chunk.write(i, r) };
        }
        budget.charge(heap);
        chunk.add_charged(heap);
        drop(chunk);
    }

    /// A budget that defers drops (as while a collector runs), and a trace
    /// state whose shared part shows, by its reference count, which records
    /// holding it were dropped.
    fn deferring() -> (&'static Budget, crate::TraceState) {
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(1 << 22)));
        budget.start_deferring();
        (budget, crate::TraceState::parse("vendor=x").unwrap())
    }

    #[test]
    fn freed_records_wait_charged_for_the_next_chunk_opened() {
        let (budget, ts) = deferring();
        free_chunk_with_heap(budget, SMALL_CHUNK, 3, &ts, 100);
        assert_eq!(ts.shared_refs(), 4, "the records are not dropped yet");
        assert_eq!(budget.used(), 100, "only their heap bytes stay charged");
        assert!(budget.has_stale());
        // The next chunk opened, of any size, drops them first.
        let slots = budget.take_slots(SMALL_CHUNK * 2, 0).unwrap();
        assert_eq!(slots.len(), SMALL_CHUNK * 2);
        assert_eq!(ts.shared_refs(), 1);
        assert_eq!(budget.used(), 0);
        assert!(!budget.has_stale());
        budget.give_slots(slots, 0);
        // The cleaned array went back to its pool and is reused as is.
        let arrays = budget.arrays.load(Ordering::Relaxed);
        let again = budget.take_slots(SMALL_CHUNK, 0).unwrap();
        assert_eq!(budget.arrays.load(Ordering::Relaxed), arrays, "no new array");
        budget.give_slots(again, 0);
    }

    #[test]
    fn stopping_drops_what_waits_and_later_frees_at_once() {
        let (budget, ts) = deferring();
        free_chunk_with_heap(budget, SMALL_CHUNK, 2, &ts, 10);
        free_chunk_with_heap(budget, SMALL_CHUNK * 4, 5, &ts, 20);
        // Opening the second chunk dropped the first one's records.
        assert_eq!((ts.shared_refs(), budget.used()), (6, 20));
        budget.stop_deferring();
        assert_eq!((ts.shared_refs(), budget.used()), (1, 0), "the collector's last clean-up");
        free_chunk_with_heap(budget, SMALL_CHUNK, 4, &ts, 7);
        assert_eq!((ts.shared_refs(), budget.used()), (1, 0), "not deferred once stopped");
        assert!(!budget.has_stale());
    }

    #[test]
    fn a_budget_dropped_with_stale_arrays_drops_their_records() {
        let ts = crate::TraceState::parse("vendor=x").unwrap();
        let raw = Box::into_raw(Box::new(Budget::new(1 << 22)));
        // SAFETY: `raw` is valid until it is freed below, after its last use.
        let budget: &'static Budget = unsafe { &*raw };
        budget.start_deferring();
        free_chunk_with_heap(budget, SMALL_CHUNK, 6, &ts, 1);
        assert_eq!(ts.shared_refs(), 7);
        // SAFETY: the chunk referring to it is gone; nothing else does.
        drop(unsafe { Box::from_raw(raw) });
        assert_eq!(ts.shared_refs(), 1);
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
