//! `Chunk`: a fixed-capacity array of span records with one writer and one reader.
//!
//! The owning thread writes slot `len` and then publishes `len + 1` with a
//! `Release` store; readers load `len` with `Acquire` and may read every slot below
//! it, which the writer never touches again. When full, the writer links a new
//! chunk through `next` and sets `sealed`, so a reader that sees `sealed` knows
//! `len` is final and where to continue.
//!
//! Published records leave the chunk as [`ChunkRange`]s, each *claimed* once
//! ([`Chunk::claim`]): usually by the collector's cursor, and by the owner
//! itself when it hands a sealed chunk straight to the exporter while the
//! collector waits for a CPU (see `ThreadWriter::grow`). The slot array is
//! released — its bytes to the budget, the array to the pool, its records to
//! be dropped there or later (`Budget::recycle`) — as soon as the chunk is
//! sealed, every record is claimed and no range is left (its *holds* reach
//! zero), not when the last `Arc` to the chunk goes: a sealed chunk stays
//! linked from its predecessor until the collector's cursor passes it, and a
//! chunk exported by its owner must not stay charged that long.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use super::budget::Budget;
use super::claims::{Claim, Claims};
use crate::clock::Anchor;
use crate::record::SpanRecord;

/// Bytes one slot costs.
pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<SpanRecord>();
/// Slots in a thread's first chunk: a thread that ends a few spans holds 6 KB.
pub(crate) const SMALL_CHUNK: usize = 16;
/// The most slots in a later chunk. Handling a chunk (budget charge, pool pop,
/// allocation of its header, a wake-up check) costs about a microsecond; at 64
/// slots that was measured as 20 % slower spans on 4 threads and a 3.5 µs p99
/// (256: 441 ns). Smaller budgets and many threads get smaller chunks (see
/// `Budget::chunk_for`).
pub(crate) const MAX_CHUNK: usize = 256;

/// A chunk's slot array.
pub(crate) type Slots = Box<[UnsafeCell<MaybeUninit<SpanRecord>>]>;

pub(crate) struct Chunk {
    /// Published records; written only by the owner.
    len: AtomicUsize,
    /// Set (after `next`) when the owner has moved on to the next chunk.
    sealed: AtomicBool,
    /// The next chunk: an `Arc<Chunk>` turned into a raw pointer, owned by this link.
    next: AtomicPtr<Chunk>,
    /// Bytes charged to the budget on behalf of this chunk and its records' heap data.
    charged: AtomicUsize,
    budget: &'static Budget,
    /// Whether any record owns heap data. Set by the owner before publishing such
    /// a record; when false, dropping the chunk skips visiting its records.
    needs_drop: AtomicBool,
    /// Built from orphan records, not from a pooled array.
    orphan: bool,
    /// The CPU that last wrote the slots, as the owner last saw it (when it
    /// opened or sealed the chunk): the array goes back to that CPU's stack
    /// in the pool (see `Budget::recent`).
    home: AtomicUsize,
    /// Who may still touch the slots, and who releases them (see
    /// [`Chunk::claim`]).
    claims: Claims,
    /// The slot array's length (constant; `slots` is emptied when released).
    cap: usize,
    /// Taken (left empty) when released; touched only by holders before that
    /// and by the one releasing party.
    slots: UnsafeCell<Slots>,
}

// SAFETY: slots are written only by the single owner before being published with a
// Release store of `len`, and only read (never written) below `len` afterwards,
// by holders of a range; the array is taken out only by the one party that
// finds no hold left (`released`). `SpanRecord` is `Send + Sync`.
unsafe impl Send for Chunk {}
unsafe impl Sync for Chunk {}

impl Chunk {
    /// Bytes a chunk of `cap` slots is charged.
    pub(crate) fn bytes_for(cap: usize) -> usize {
        cap * SLOT_BYTES + std::mem::size_of::<Chunk>()
    }

    /// A chunk over a slot array from the pool, whose bytes
    /// ([`Chunk::bytes_for`] its length) the caller has charged.
    /// `home` is the owner's CPU ([`super::budget::current_home`]).
    pub(crate) fn with_slots(slots: Slots, budget: &'static Budget, home: usize) -> Arc<Chunk> {
        let cap = slots.len();
        Arc::new(Chunk {
            len: AtomicUsize::new(0),
            sealed: AtomicBool::new(false),
            next: AtomicPtr::new(ptr::null_mut()),
            charged: AtomicUsize::new(Self::bytes_for(cap)),
            budget,
            needs_drop: AtomicBool::new(false),
            orphan: false,
            home: AtomicUsize::new(home),
            claims: Claims::new(1), // the owner's hold, until it seals
            cap,
            slots: UnsafeCell::new(slots),
        })
    }

    /// A sealed chunk holding `records`, already charged `charged` bytes. For the
    /// rare paths that do not go through a thread's own chain.
    pub(crate) fn from_records(records: Vec<SpanRecord>, charged: usize, budget: &'static Budget) -> Arc<Chunk> {
        let n = records.len();
        let slots = records.into_iter().map(|r| UnsafeCell::new(MaybeUninit::new(r))).collect();
        Arc::new(Chunk {
            len: AtomicUsize::new(n),
            sealed: AtomicBool::new(true),
            next: AtomicPtr::new(ptr::null_mut()),
            charged: AtomicUsize::new(charged),
            budget,
            needs_drop: AtomicBool::new(true),
            orphan: true,
            home: AtomicUsize::new(0),
            claims: Claims::new(0), // no owner
            cap: n,
            slots: UnsafeCell::new(slots),
        })
    }

    pub(crate) fn capacity(&self) -> usize {
        self.cap
    }

    /// The slot array. Only for holders (the owner before sealing, a range's
    /// holder), which keep it from being released.
    #[inline(always)]
    fn slots(&self) -> &[UnsafeCell<MaybeUninit<SpanRecord>>] {
        // SAFETY: the field itself is replaced only by the releasing party,
        // when no hold is left; the caller holds one.
        unsafe { &*self.slots.get() }
    }

    /// Claims the published records from where the last claim ended up to
    /// `end` (a value [`Chunk::published`] returned, or the final length once
    /// sealed): a range over them, or `None` if they were claimed already.
    /// Each record is claimed exactly once, by whichever of the collector's
    /// cursor and the owner gets there first.
    pub(crate) fn claim(self: &Arc<Chunk>, end: usize) -> Option<ChunkRange> {
        match self.claims.claim(end, || self.sealed_len()) {
            // The claim's hold is the range's.
            Claim::Records { start } => Some(ChunkRange { chunk: self.clone(), start: start as u32, end: end as u32 }),
            Claim::Nothing { release } => {
                if release {
                    self.release();
                }
                None
            }
        }
    }

    /// Whether published records up to `end` wait to be claimed (a read, no
    /// write: the collector checks every thread's chunk each round).
    #[inline]
    pub(crate) fn has_unclaimed(&self, end: usize) -> bool {
        self.claims.has_unclaimed(end)
    }

    /// Gives up one hold; the last, on a sealed and fully claimed chunk,
    /// releases the slots.
    pub(crate) fn drop_hold(&self) {
        if self.claims.drop_hold(|| self.sealed_len()) {
            self.release();
        }
    }

    /// The final length, if the owner has sealed the chunk.
    fn sealed_len(&self) -> Option<usize> {
        self.is_sealed().then(|| self.len.load(Ordering::Acquire))
    }

    /// Writes slot `i` and publishes `i + 1` records.
    ///
    /// # Safety
    /// Only the owner may call this, with `i` equal to the current length and below
    /// the capacity, and never after sealing.
    #[cfg(test)]
    pub(crate) unsafe fn write(&self, i: usize, rec: SpanRecord) {
        self.mark_needs_drop();
        debug_assert!(i < self.cap);
        (*self.slots().get_unchecked(i).get()).write(rec);
        self.len.store(i + 1, Ordering::Release);
    }

    /// The first slot, for the owner to write slots in place: slot `i` is
    /// `i` records further, and may be written while `i` is below the
    /// capacity and not yet published.
    #[inline(always)]
    pub(crate) fn slots_ptr(&self) -> *mut SpanRecord {
        // `UnsafeCell<MaybeUninit<T>>` has the layout of `T`.
        UnsafeCell::raw_get(self.slots().as_ptr()) as *mut SpanRecord
    }

    /// The published length, for the owner to publish `len` records with a
    /// `Release` store once the slots below `len` are fully written.
    #[inline(always)]
    pub(crate) fn published_cell(&self) -> *const AtomicUsize {
        &self.len
    }

    /// Notes that a record about to be published owns heap data. Owner only.
    #[inline(always)]
    pub(crate) fn mark_needs_drop(&self) {
        self.needs_drop.store(true, Ordering::Relaxed);
    }

    /// Adds heap bytes the owner charged to the budget for records in this chunk.
    /// Owner only (a load and a store: the owner is the only writer).
    pub(crate) fn add_charged(&self, n: usize) {
        self.charged.store(self.charged.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Links `next` and seals this chunk, noting `home` as the CPU that wrote
    /// its last slots. Owner only, once; the owner's hold stays until it
    /// calls [`Chunk::drop_hold`].
    pub(crate) fn seal_with_next(&self, next: Arc<Chunk>, home: usize) {
        self.home.store(home, Ordering::Relaxed);
        self.next.store(Arc::into_raw(next) as *mut Chunk, Ordering::Relaxed);
        self.sealed.store(true, Ordering::Release);
    }

    /// The published length.
    #[inline]
    pub(crate) fn published(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether the owner has moved on; if so, `published()` read after this is final.
    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// Takes the link to the next chunk (reader side, after seeing `is_sealed`).
    pub(crate) fn take_next(&self) -> Option<Arc<Chunk>> {
        let p = self.next.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: a non-null `next` came from `Arc::into_raw` and is taken only once.
        (!p.is_null()).then(|| unsafe { Arc::from_raw(p) })
    }

    /// Records `start..end`.
    ///
    /// # Safety
    /// `end` must not exceed a value previously returned by `published()`, and
    /// the caller must hold the slots (a range over them).
    pub(crate) unsafe fn records(&self, start: usize, end: usize) -> &[SpanRecord] {
        let s = &self.slots()[start..end];
        std::slice::from_raw_parts(s.as_ptr() as *const SpanRecord, s.len())
    }

    /// Releases the slots: returns the array's bytes to the budget and the
    /// array to the pool (records needing a destructor are dropped there or
    /// later: see `Budget::recycle`). Called once (`Claims` decides): by the
    /// party that found the chunk sealed, fully claimed and without holds, or
    /// by the drop of a chunk whose slots were never released.
    fn release(&self) {
        // SAFETY: no hold is left and none can touch the slots again (every
        // record is claimed and the owner has sealed, or the chunk is being
        // dropped); `Claims` lets one party get here, once.
        let mut slots = std::mem::take(unsafe { &mut *self.slots.get() });
        let len = if self.needs_drop.load(Ordering::Acquire) { self.len.load(Ordering::Acquire) } else { 0 };
        let charged = self.charged.load(Ordering::Acquire);
        // Arrays of thread chains return to the pool; those built from orphan
        // records (any length) were never counted there.
        if slots.len().is_power_of_two() && (SMALL_CHUNK..=MAX_CHUNK).contains(&slots.len()) && !self.orphan {
            // The records' heap data stays charged until they are dropped, which
            // the budget may defer to a producing thread (see `Budget::stale`).
            let heap = charged.saturating_sub(Self::bytes_for(slots.len()));
            let home = self.home.load(Ordering::Relaxed);
            self.budget.release(charged - heap);
            if len == 0 {
                self.budget.release(heap);
                self.budget.give_slots(slots, home);
            } else {
                self.budget.recycle(slots, len, heap, home);
            }
        } else {
            for slot in &mut slots[..len] {
                // SAFETY: slots below `len` were initialised and are dropped once, here.
                unsafe { slot.get_mut().assume_init_drop() };
            }
            self.budget.release(charged);
        }
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if self.claims.release_on_drop() {
            self.release();
        }
        // Unlink the rest of the chain iteratively so a long unread chain cannot
        // overflow the stack through recursive drops.
        let mut next = self.take_next();
        while let Some(arc) = next {
            match Arc::try_unwrap(arc) {
                Ok(chunk) => {
                    next = chunk.take_next();
                    drop(chunk);
                }
                Err(_) => break,
            }
        }
    }
}

/// A range of claimed, published records in one chunk ([`Chunk::claim`]);
/// keeps the chunk alive and holds its slots.
pub(crate) struct ChunkRange {
    chunk: Arc<Chunk>,
    start: u32,
    end: u32,
}

impl Drop for ChunkRange {
    fn drop(&mut self) {
        self.chunk.drop_hold();
    }
}

impl ChunkRange {
    pub(crate) fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    pub(crate) fn records(&self) -> &[SpanRecord] {
        // SAFETY: the range's records were published before they were
        // claimed, and its hold keeps the slots from being released.
        unsafe { self.chunk.records(self.start as usize, self.end as usize) }
    }
    /// Converts the range's tick readings to Unix time.
    ///
    /// # Safety
    /// No reference to these records may exist, and none may be taken, until
    /// this returns: the caller holds the only range over them.
    pub(crate) unsafe fn settle_times(&self, anchor: Anchor) {
        for slot in &self.chunk.slots()[self.start as usize..self.end as usize] {
            // SAFETY: below the published length (claimed after publishing), so
            // initialised and never written by the owner again; by the
            // caller's promise nothing else refers to it.
            unsafe { (*slot.get()).assume_init_mut().settle_times(anchor) };
        }
    }

    /// Splits off the first `n` records into their own range.
    pub(crate) fn split_front(&mut self, n: usize) -> ChunkRange {
        let mid = self.start + n as u32;
        // The front's own hold (this range's keeps the count above zero).
        self.chunk.claims.add_hold();
        let front = ChunkRange { chunk: self.chunk.clone(), start: self.start, end: mid };
        self.start = mid;
        front
    }
}
