//! One thread's side of the buffer: its counters, its chunk chain (written by
//! `ThreadWriter`, read by the collector's `ThreadCursor`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::budget::current_home;
use super::chunk::{Chunk, ChunkRange, SMALL_CHUNK};
use crate::record::SpanRecord;
use crate::sampler::DropReason;
use crate::tracer::TracerShared;

/// Heap bytes (owned strings, spilled attributes, events) a writer may hold before
/// charging them to the budget, so the shared counter is not written per span.
const HEAP_CHARGE_STEP: usize = 16 * 1024;

/// How many records ahead of the one being written a thread prefetches its slot.
///
/// Chunk slots come back from the pool cold: a thread's chunks circulate through
/// the collector with megabytes in flight, far more than a core's L2, so every
/// record is copied into lines that are in L3 at best. Without a prefetch the
/// copy's stores wait for those lines, and on these shared VMs, whose L3 other
/// tenants use too, that wait made the nested workload two to three times
/// slower in some runs than in others. Asking for the lines two records ahead
/// (an exclusive prefetch, as for a write) took the median of interleaved
/// 1-thread nested runs from ~100 to ~83 ns per span; one record ahead, or all
/// seven lines of a slot, gave ~91. Runs already fast stayed as fast.
const PREFETCH_AHEAD: usize = 2;

/// Cache lines prefetched per slot: 320 bytes, a record's header and its first
/// three inline attributes (a record uses 144 bytes plus 56 per inline
/// attribute). Lines past a record's end would be fetched for nothing; 3 or 4
/// lines measured no faster for the nested workload (session 14).
const PREFETCH_LINES: usize = 5;

/// Prefetches slot `i` of the `cap` slots at `slots` for writing, if there is
/// one.
#[inline(always)]
fn prefetch_slot(slots: *mut SpanRecord, cap: usize, i: usize) {
    if i >= cap {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};
        // SAFETY: `i` is below the capacity, so the slot's address is in bounds
        // (only the address is taken; nothing is read or written); a prefetch
        // never faults, even on addresses past the slot.
        unsafe {
            let p = slots.add(i) as *const i8;
            for line in 0..PREFETCH_LINES {
                _mm_prefetch::<_MM_HINT_ET0>(p.wrapping_add(line * 64));
            }
        }
    }
}

/// A counter written by one thread only: a relaxed load and store instead of a
/// locked read-modify-write, so counting costs what a plain increment does.
#[derive(Debug, Default)]
pub(crate) struct OwnedCounter(AtomicU64);

impl OwnedCounter {
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-thread counters, summed by `stats()`.
#[derive(Debug, Default)]
pub(crate) struct ThreadCounters {
    /// Recording spans started. (Those ended are not counted apart: each is
    /// recorded or dropped for memory, and `stats` adds those two.)
    pub started: OwnedCounter,
    /// Spans not recorded because their trace was sampled out, counted once when
    /// they start: [`crate::Stats`] adds them to started, ended and sampled out.
    /// Counting their end as well would cost every unsampled span a second
    /// thread-local access, a third of its budget, to count a span that records
    /// nothing and cannot be lost.
    pub sampled_out_spans: OwnedCounter,
    /// Root decisions that dropped a trace, by sampler.
    pub sampled_out_traces: [OwnedCounter; DropReason::COUNT],
    /// Records written to this thread's chunks.
    pub recorded: OwnedCounter,
    /// Ended spans dropped because no chunk could be allocated under the budget.
    pub dropped_memory: OwnedCounter,
}

/// What the owning thread and the collector share for one thread.
pub(crate) struct ThreadBuffer {
    pub counters: ThreadCounters,
    /// The first chunk, until the collector picks it up.
    first: Mutex<Option<Arc<Chunk>>>,
    /// Cleared (Release) by the writer's drop, after its last write.
    alive: AtomicBool,
}

impl ThreadBuffer {
    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }
}

/// The owning thread's handle: appends records to its chunk chain.
pub(crate) struct ThreadWriter {
    pub tracer: &'static TracerShared,
    pub buffer: Arc<ThreadBuffer>,
    chunk: Option<Arc<Chunk>>,
    len: usize,
    /// The current chunk's slot array, its capacity and its published
    /// length, set with it in `grow` (null, 0 and null before the first):
    /// valid while `chunk` holds it. Ending a span reads these instead of
    /// going through the `Option` and the `Arc` three times (callgrind: ~7
    /// instructions per span).
    slots: *mut SpanRecord,
    cap: usize,
    published: *const AtomicUsize,
    uncharged_heap: usize,
    /// Whether buffered memory was above the adaptive high-water mark when last
    /// looked at (each new chunk, and each new trace while it was).
    pub pressure: bool,
    /// New traces shed by the adaptive stage since this thread last yielded to
    /// a starved collector.
    pub shed_streak: u32,
    /// Records of this thread's last sealed chunk, claimed in `grow` for the
    /// exporter's direct submitter; handed over once the span that filled
    /// the chunk has ended (`LocalState::hand_off`), outside any borrow of
    /// this writer.
    handoff: Option<ChunkRange>,
}

impl ThreadWriter {
    /// Creates a writer and registers its buffer with the tracer's collector.
    pub(crate) fn register(tracer: &'static TracerShared) -> ThreadWriter {
        let buffer = Arc::new(ThreadBuffer {
            counters: ThreadCounters::default(),
            first: Mutex::new(None),
            alive: AtomicBool::new(true),
        });
        tracer.register(buffer.clone());
        ThreadWriter {
            tracer,
            buffer,
            chunk: None,
            len: 0,
            slots: std::ptr::null_mut(),
            cap: 0,
            published: std::ptr::null(),
            uncharged_heap: 0,
            pressure: false,
            shed_streak: 0,
            handoff: None,
        }
    }

    /// Whether `grow` claimed records to hand to the exporter directly. Only
    /// the first record of a chunk can follow a `grow`: the length, just
    /// written, spares the other 255 spans a load.
    #[inline(always)]
    pub(crate) fn has_handoff(&self) -> bool {
        self.len == 1 && self.handoff.is_some()
    }

    /// The records to hand to the exporter directly, if any.
    pub(crate) fn take_handoff(&mut self) -> Option<ChunkRange> {
        self.handoff.take()
    }

    #[inline]
    pub(crate) fn counters(&self) -> &ThreadCounters {
        &self.buffer.counters
    }

    /// A slot for the next record, or `None` (drop counted) if the memory budget
    /// has no room for a new chunk. The caller writes the slot completely, then
    /// calls [`ThreadWriter::commit`]; nothing else may touch the writer between.
    #[inline(always)]
    pub(crate) fn reserve(&mut self) -> Option<*mut SpanRecord> {
        // Without a chunk `cap` is 0: full.
        if self.len == self.cap && !self.grow() {
            self.counters().dropped_memory.add(1);
            return None;
        }
        // SAFETY: `len` is below the capacity (`grow` succeeded or the chunk
        // was not full), `slots` is the current chunk's array, which `chunk`
        // keeps alive, and slot `len` is not published yet.
        Some(unsafe { self.slots.add(self.len) })
    }

    /// Publishes the slot [`ThreadWriter::reserve`] returned, now fully written.
    /// `heap` is the heap memory the record owns.
    #[inline(always)]
    pub(crate) fn commit(&mut self, heap: usize, needs_drop: bool) {
        if needs_drop {
            if let Some(chunk) = &self.chunk {
                chunk.mark_needs_drop();
            }
        }
        self.len += 1;
        // SAFETY: `reserve` succeeded, so `published` is the current chunk's
        // length, which `chunk` keeps alive; we are its only writer and slot
        // `len - 1` was just written (the `Release` store publishes it).
        unsafe { (*self.published).store(self.len, Ordering::Release) };
        prefetch_slot(self.slots, self.cap, self.len + PREFETCH_AHEAD - 1);
        self.counters().recorded.add(1);
        if heap != 0 {
            self.uncharged_heap += heap;
            if self.uncharged_heap >= HEAP_CHARGE_STEP {
                self.settle_heap();
            }
        }
    }

    /// Charges accumulated heap bytes to the budget, on the current chunk's account.
    fn settle_heap(&mut self) {
        if self.uncharged_heap == 0 {
            return;
        }
        if let Some(c) = &self.chunk {
            self.tracer.budget.charge(self.uncharged_heap);
            c.add_charged(self.uncharged_heap);
        }
        self.uncharged_heap = 0;
    }

    /// Moves on to a new chunk. Cold: once per up to 256 spans.
    #[cold]
    fn grow(&mut self) -> bool {
        let budget = &self.tracer.budget;
        let want = if self.chunk.is_none() {
            SMALL_CHUNK
        } else {
            budget.chunk_for(self.tracer.writing_threads.load(Ordering::Relaxed))
        };
        // The array may be of another size than wanted when memory is short; the
        // chunk takes whatever size it got, and is charged for that.
        let home = current_home();
        let slots = budget.take_slots(want, home);
        let charged = slots.as_ref().is_some_and(|s| budget.try_charge(Chunk::bytes_for(s.len())));
        self.pressure = budget.used() > self.tracer.adaptive_high_bytes;
        let slots = match slots {
            Some(s) if charged => s,
            Some(s) => {
                budget.give_slots(s, home);
                return false;
            }
            None => return false,
        };
        self.settle_heap();
        let new = Chunk::with_slots(slots, &self.tracer.budget, home);
        // With more busy threads than cores, the collector may wait milliseconds
        // for a CPU while threads fill the buffer at gigabytes per second (at
        // 35 M spans/s, 2 ms fills the adaptive stage's high-water mark). When
        // the buffer is an eighth full and the collector has not run for 250 µs,
        // this thread does the collector's work for the chunk it just filled:
        // it claims its records and, once the span being ended is stored,
        // hands them to the exporter itself (`TracerShared::submit_directly`)
        // if the exporter takes batches from any thread. Otherwise it wakes the
        // collector (it may be parked past its nap) and gives up the rest of
        // its time slice — once per chunk of up to 256 spans. Both cost nothing
        // while the collector keeps up.
        let starved = self.tracer.budget.used() > self.tracer.budget.limit() / 8 && self.tracer.collector_is_starved();
        // Kept alive by `chunk`, set below.
        self.slots = new.slots_ptr();
        self.cap = new.capacity();
        self.published = new.published_cell();
        match self.chunk.replace(new.clone()) {
            Some(old) => {
                old.seal_with_next(new, home);
                if starved && self.tracer.direct.is_some() && self.handoff.is_none() && self.tracer.begin_handoff() {
                    self.handoff = old.claim(self.len);
                    if self.handoff.is_none() {
                        self.tracer.end_handoff();
                    }
                }
                // The owner's hold: the chunk is sealed and this thread never
                // touches its slots again.
                old.drop_hold();
            }
            None => {
                if let Ok(mut first) = self.buffer.first.lock() {
                    *first = Some(new);
                }
            }
        }
        self.len = 0;
        for i in 0..PREFETCH_AHEAD {
            prefetch_slot(self.slots, self.cap, i);
        }
        self.tracer.nudge_collector(Some(home));
        if starved && self.handoff.is_none() {
            self.tracer.yield_to_collector();
        }
        true
    }
}

impl Drop for ThreadWriter {
    fn drop(&mut self) {
        self.settle_heap();
        // Handed over at the end of the span that claimed them; should one be
        // left (a panic in between), the collector exports it.
        if let Some(r) = self.handoff.take() {
            self.tracer.hand_back(vec![r]);
            self.tracer.end_handoff();
        }
        if let Some(c) = &self.chunk {
            c.drop_hold();
        }
        self.buffer.alive.store(false, Ordering::Release);
        self.tracer.nudge_collector(None);
    }
}

/// The collector's read position in one thread's chain.
pub(crate) struct ThreadCursor {
    pub buffer: Arc<ThreadBuffer>,
    chunk: Option<Arc<Chunk>>,
    /// Records this cursor has handed to the collector.
    pub collected: u64,
    /// When a poll last found new records (set by the collector).
    pub last_busy: Option<std::time::Instant>,
}

impl ThreadCursor {
    pub(crate) fn new(buffer: Arc<ThreadBuffer>) -> Self {
        ThreadCursor { buffer, chunk: None, collected: 0, last_busy: None }
    }

    /// Appends every newly published record as ranges to `out`; returns how many.
    pub(crate) fn poll(&mut self, out: &mut impl Extend<ChunkRange>) -> usize {
        if self.chunk.is_none() {
            self.chunk = self.buffer.first.lock().ok().and_then(|mut f| f.take());
        }
        let mut n = 0;
        while let Some(chunk) = &self.chunk {
            let sealed = chunk.is_sealed();
            let len = chunk.published();
            // The owner may have claimed some already (see `ThreadWriter::grow`).
            if chunk.has_unclaimed(len) {
                if let Some(r) = chunk.claim(len) {
                    n += r.len();
                    out.extend(Some(r));
                }
            }
            if !sealed {
                break;
            }
            let next = chunk.take_next();
            self.chunk = next;
        }
        self.collected += n as u64;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget::Budget;
    use super::*;

    fn rec(i: u64) -> SpanRecord {
        let mut r = crate::testing::record("r");
        r.span_id = crate::SpanId::from_u64(i + 1);
        r
    }

    /// A budget for one test, large enough never to refuse.
    fn budget() -> &'static Budget {
        Box::leak(Box::new(Budget::new(1 << 30)))
    }

    /// A charged chunk of [`SMALL_CHUNK`] slots, as a writer opens one.
    fn open_chunk(budget: &'static Budget) -> Arc<Chunk> {
        assert!(budget.try_charge(Chunk::bytes_for(SMALL_CHUNK)));
        Chunk::with_slots(budget.take_slots(SMALL_CHUNK, 0).unwrap(), budget, 0)
    }

    /// A live thread's buffer whose chain starts at `first`.
    fn buffer_from(first: Arc<Chunk>) -> Arc<ThreadBuffer> {
        Arc::new(ThreadBuffer {
            counters: Default::default(),
            first: Mutex::new(Some(first)),
            alive: AtomicBool::new(true),
        })
    }

    #[test]
    fn cursor_reads_across_sealed_chunks_in_order() {
        let budget = budget();
        let new = move || open_chunk(budget);
        let a = new();
        let mut cur_chunk = a.clone();
        let first = a;
        let mut got = Vec::new();
        let mut ranges: Vec<ChunkRange> = Vec::new();
        let buffer = buffer_from(first);
        let mut cursor = ThreadCursor::new(buffer);
        let mut len = 0;
        for i in 0..(2 * SMALL_CHUNK as u64 + 7) {
            if len == cur_chunk.capacity() {
                let n = new();
                cur_chunk.seal_with_next(n.clone(), 0);
                cur_chunk = n;
                len = 0;
            }
            unsafe { cur_chunk.write(len, rec(i)) };
            len += 1;
            if i % 37 == 0 {
                cursor.poll(&mut ranges);
            }
        }
        cursor.poll(&mut ranges);
        for r in &ranges {
            got.extend(r.records().iter().map(|r| r.span_id.to_u64()));
        }
        let n = 2 * SMALL_CHUNK as u64 + 7;
        assert_eq!(got, (1..=n).collect::<Vec<_>>());
        assert_eq!(cursor.collected, n);
        drop(ranges);
        drop(cursor);
        drop(cur_chunk);
        assert_eq!(budget.used(), 0, "every chunk returned what it was charged");
    }

    /// One thread writes `n` records across many chunks — handing every
    /// other chunk over itself as it seals it, if `hand_over` (sometimes after
    /// the reader took part of it) — while another polls until the writer is
    /// gone. Returns the records each side took, checking each was fully
    /// written, and checks every chunk gave its bytes back.
    fn write_while_polling(n: u64, hand_over: bool) -> (Vec<u64>, Vec<u64>) {
        let budget = budget();
        let first = open_chunk(budget);
        let buffer = buffer_from(first.clone());
        let writer_buffer = buffer.clone();
        let check = |s: &SpanRecord| {
            let id = s.span_id.to_u64();
            assert_eq!(s.start_unix_nanos, (id - 1) ^ 0x5555, "records are fully written");
            id
        };
        let writer = std::thread::spawn(move || {
            let mut handed = Vec::new();
            let mut chunk = first;
            let mut len = 0;
            let mut sealed = 0u64;
            for i in 0..n {
                if len == chunk.capacity() {
                    let next = open_chunk(budget);
                    chunk.seal_with_next(next.clone(), 0);
                    sealed += 1;
                    if hand_over && sealed % 2 == 0 {
                        if let Some(r) = chunk.claim(len) {
                            handed.extend(r.records().iter().map(check));
                        }
                    }
                    chunk.drop_hold();
                    chunk = next;
                    len = 0;
                }
                let mut r = rec(i);
                r.start_unix_nanos = i ^ 0x5555;
                unsafe { chunk.write(len, r) };
                len += 1;
            }
            chunk.drop_hold();
            drop(chunk);
            writer_buffer.alive.store(false, Ordering::Release);
            handed
        });
        let mut cursor = ThreadCursor::new(buffer);
        let mut polled = Vec::new();
        loop {
            let dead = !cursor.buffer.is_alive();
            let mut ranges: Vec<ChunkRange> = Vec::new();
            cursor.poll(&mut ranges);
            for r in &ranges {
                polled.extend(r.records().iter().map(check));
            }
            if dead {
                break;
            }
        }
        let handed = writer.join().unwrap();
        drop(cursor);
        assert_eq!(budget.used(), 0, "every chunk returned what it was charged");
        (polled, handed)
    }

    /// Stress: one thread writes across many chunks while another polls; the
    /// reader must see every record exactly once, in order, fully written.
    #[test]
    fn a_concurrent_reader_sees_every_record_once_in_order() {
        let n: u64 = if cfg!(debug_assertions) { 200_000 } else { 2_000_000 };
        let (polled, handed) = write_while_polling(n, false);
        assert!(handed.is_empty());
        assert_eq!(polled, (1..=n).collect::<Vec<_>>(), "every record once, in order");
    }

    /// A chunk its owner sealed, claimed and handed over (the direct path of
    /// `ThreadWriter::grow`) gives its bytes back as soon as the hand-over is
    /// done — while the collector's cursor still sits on an earlier chunk that
    /// links to it — and the cursor then skips its records.
    #[test]
    fn a_chunk_its_owner_handed_over_is_released_before_the_cursor_reaches_it() {
        let budget = budget();
        let new = move || open_chunk(budget);
        let fill = |c: &Arc<Chunk>, from: u64| {
            for i in 0..SMALL_CHUNK {
                unsafe { c.write(i, rec(from + i as u64)) };
            }
        };
        let (a, b, c) = (new(), new(), new());
        let buffer = buffer_from(a.clone());
        let mut cursor = ThreadCursor::new(buffer);
        fill(&a, 0);
        a.seal_with_next(b.clone(), 0);
        a.drop_hold();
        fill(&b, SMALL_CHUNK as u64);
        b.seal_with_next(c.clone(), 0);
        let handed = b.claim(SMALL_CHUNK).expect("the owner claims its sealed chunk");
        assert!(b.claim(SMALL_CHUNK).is_none(), "each record is claimed once");
        b.drop_hold();
        drop(b);
        let before = budget.used();
        assert_eq!(handed.records().len(), SMALL_CHUNK);
        drop(handed);
        assert_eq!(budget.used(), before - Chunk::bytes_for(SMALL_CHUNK), "released on the hand-over, not later");
        let mut ranges: Vec<ChunkRange> = Vec::new();
        assert_eq!(cursor.poll(&mut ranges), SMALL_CHUNK, "the cursor takes only the chunk not handed over");
        let ids: Vec<u64> = ranges.iter().flat_map(|r| r.records().iter().map(|r| r.span_id.to_u64())).collect();
        assert_eq!(ids, (1..=SMALL_CHUNK as u64).collect::<Vec<_>>());
        drop(ranges);
        drop(cursor);
        drop(c);
        assert_eq!(budget.used(), 0, "every chunk returned what it was charged");
    }

    /// Stress: the writer hands every other chunk over itself as it seals it
    /// while the reader polls; every record is taken exactly once, by one
    /// side or the other, and each side sees its records in order.
    #[test]
    fn an_owner_handing_chunks_over_and_a_concurrent_reader_take_every_record_once() {
        let n: u64 = if cfg!(debug_assertions) { 200_000 } else { 2_000_000 };
        let (polled, handed) = write_while_polling(n, true);
        assert!(polled.windows(2).all(|w| w[0] < w[1]), "the reader's records are in order");
        assert!(handed.windows(2).all(|w| w[0] < w[1]), "the owner's records are in order");
        assert!(!handed.is_empty() && !polled.is_empty());
        let mut all = [polled, handed].concat();
        all.sort_unstable();
        assert_eq!(all, (1..=n).collect::<Vec<_>>(), "every record exactly once");
    }
}
