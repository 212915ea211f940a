//! Thread-local state: the current local parent, the ID generator and this
//! thread's buffer writer.
//!
//! The state itself has no destructor, so reaching it is an address computed
//! from the thread pointer: a `thread_local!` with one must check on every
//! access whether it was registered, is alive or was destroyed (three
//! instructions, five times per unsampled request; without them callgrind
//! counts 225 instead of 250 instructions per unsampled request, and the wall
//! time per span fell ~15 % in interleaved runs). What the state
//! owns (the writer, the current parent's trace state, held events) is freed at
//! thread exit by a separate guard, [`Teardown`], registered the first time the
//! state takes ownership of anything; after it ran, the state is empty and
//! refuses a new writer, so spans begun later in that thread's exit (in other
//! thread-locals' destructors) are no-ops, as they were before.
//!
//! None of the accessors call user code while they hold a reference into the
//! state, so the `UnsafeCell`s are never aliased mutably.

use std::cell::{Cell, UnsafeCell};
use std::mem::ManuallyDrop;

use crate::buffer::thread_buffer::{ThreadCounters, ThreadWriter};
use crate::context::TraceState;
use crate::ids::{SpanId, TraceFlags, TraceId};
use crate::record::Event;
use crate::tracer::TracerShared;

/// The current local parent: what a new child span on this thread attaches to.
#[derive(Clone)]
pub(crate) struct ParentCtx {
    pub tracer: &'static TracerShared,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub flags: TraceFlags,
    pub trace_state: TraceState,
    /// Why the trace is not sampled (a `DropReason` index), when it is not.
    pub reason: u8,
}

/// A thread's state. Its owned fields are `ManuallyDrop` so that it has no
/// destructor (see the module doc); [`LocalState::tear_down`] frees them.
pub(crate) struct LocalState {
    current: UnsafeCell<ManuallyDrop<Option<ParentCtx>>>,
    /// The ID generator's state: 0 until the thread first registers with a
    /// tracer, which seeds it (see `next_u64`).
    rng: Cell<u64>,
    writer: UnsafeCell<ManuallyDrop<Option<ThreadWriter>>>,
    /// The tracer `writer` belongs to (null without one). Kept beside it so that
    /// the hot path's "is this thread registered with this tracer?" is one
    /// comparison: on the `Option<ThreadWriter>` it was a niche test and a
    /// pointer test, a tenth of an unsampled span.
    writer_tracer: Cell<*const TracerShared>,
    /// `writer`'s counters (valid while `writer_tracer` is non-null): counting an
    /// unsampled span is then one increment behind one load.
    counters: Cell<*const ThreadCounters>,
    /// Events added to the current span from outside it (`add_event_to_current`,
    /// the `log` bridge), held until that span ends on this thread or its future
    /// is next polled here.
    pending: UnsafeCell<ManuallyDrop<Vec<(SpanId, Event)>>>,
    /// Whether this thread's [`Teardown`] guard is registered.
    guarded: Cell<bool>,
    /// Set when the guard has run (the thread is exiting).
    torn_down: Cell<bool>,
}

// The point of the layout above: no destructor, so no per-access state check.
const _: () = assert!(!std::mem::needs_drop::<LocalState>());

/// Frees what this thread's [`LocalState`] owns when the thread exits.
struct Teardown;

impl Drop for Teardown {
    fn drop(&mut self) {
        get().tear_down();
    }
}

/// Most events held for spans on one thread; more are refused (and the caller
/// told), so a span that ends elsewhere cannot make the list grow without bound.
const MAX_PENDING_EVENTS: usize = 1024;

thread_local! {
    static LOCAL: LocalState = const {
        LocalState {
            current: UnsafeCell::new(ManuallyDrop::new(None)),
            rng: Cell::new(0),
            writer: UnsafeCell::new(ManuallyDrop::new(None)),
            writer_tracer: Cell::new(std::ptr::null()),
            counters: Cell::new(std::ptr::null()),
            pending: UnsafeCell::new(ManuallyDrop::new(Vec::new())),
            guarded: Cell::new(false),
            torn_down: Cell::new(false),
        }
    };
    static TEARDOWN: Teardown = const { Teardown };
}

/// This thread's state.
///
/// Returning a reference instead of running a closure lets the hot path build a
/// 400-byte span directly in its caller's frame instead of moving it out of a
/// closure. The reference must only be used on this thread and never stored. The
/// state lives as long as the thread (it has no destructor; see the module doc),
/// so this never fails, during thread exit included.
#[inline(always)]
pub(crate) fn get<'a>() -> &'a LocalState {
    // SAFETY: a thread-local without a destructor stays valid until the thread
    // is gone, which cannot happen while the caller is running on it.
    LOCAL.with(|l| unsafe { &*(l as *const LocalState) })
}

impl LocalState {
    /// A clone of the current local parent.
    #[inline]
    pub(crate) fn current(&self) -> Option<ParentCtx> {
        // SAFETY: no other reference into `current` is live (see module doc).
        unsafe { (**self.current.get()).clone() }
    }

    /// Runs `f` on the current local parent without cloning it.
    #[inline]
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(Option<&ParentCtx>) -> R) -> R {
        // SAFETY: as above; `f` is crate code that does not touch `current`.
        unsafe { f((**self.current.get()).as_ref()) }
    }

    /// The current local parent, borrowed. The caller must not replace the current
    /// parent while it holds the reference.
    #[inline(always)]
    pub(crate) fn current_ref(&self) -> Option<&ParentCtx> {
        // SAFETY: as above, under the caller's promise.
        unsafe { (**self.current.get()).as_ref() }
    }

    /// Replaces the current local parent, returning the previous one. During
    /// thread exit, once the state was torn down, nothing is stored (and `None`
    /// returned): nothing would free it.
    #[inline]
    pub(crate) fn replace_current(&self, new: Option<ParentCtx>) -> Option<ParentCtx> {
        if new.is_some() && !self.guard() {
            return None;
        }
        // SAFETY: as above.
        unsafe { std::mem::replace(&mut **self.current.get(), new) }
    }

    /// Makes `ctx` the current local parent, dropping the previous one. Only
    /// after this thread registered a writer (so its teardown guard is set).
    #[inline(always)]
    pub(crate) fn set_current(&self, ctx: ParentCtx) {
        debug_assert!(self.guarded.get(), "set_current before the thread registered");
        // SAFETY: as above.
        unsafe { **self.current.get() = Some(ctx) }
    }

    /// Leaves this thread without a current local parent.
    #[inline(always)]
    pub(crate) fn clear_current(&self) {
        // SAFETY: as above.
        unsafe { **self.current.get() = None }
    }

    /// Gives the current local parent the span ID `id`, returning its previous
    /// one (an entered child, whose context is its parent's but for the span ID).
    /// The caller has checked that there is a current parent.
    #[inline(always)]
    pub(crate) fn swap_current_span_id(&self, id: SpanId) -> SpanId {
        // SAFETY: as above.
        match unsafe { &mut **self.current.get() } {
            Some(c) => std::mem::replace(&mut c.span_id, id),
            None => SpanId::INVALID,
        }
    }

    /// Puts back span ID `prev` if the current parent is still the span `id`.
    #[inline(always)]
    pub(crate) fn restore_current_span_id(&self, id: SpanId, prev: SpanId) {
        // SAFETY: as above.
        if let Some(c) = unsafe { &mut **self.current.get() } {
            if c.span_id == id {
                c.span_id = prev;
            }
        }
    }

    /// Holds an event for span `span`; false if the per-thread limit is reached
    /// (or the thread is exiting).
    pub(crate) fn push_pending(&self, span: SpanId, event: Event) -> bool {
        if !self.guard() {
            return false;
        }
        // SAFETY: no other reference into `pending` is live (see module doc).
        let p = unsafe { &mut **self.pending.get() };
        if p.len() >= MAX_PENDING_EVENTS {
            return false;
        }
        p.push((span, event));
        true
    }

    /// Whether any event is held (one load; checked when a span ends).
    #[inline(always)]
    pub(crate) fn has_pending(&self) -> bool {
        // SAFETY: as above.
        unsafe { !(**self.pending.get()).is_empty() }
    }

    /// Takes the events held for `span`, in order.
    pub(crate) fn take_pending(&self, span: SpanId) -> Vec<Event> {
        // SAFETY: as above.
        let p = unsafe { &mut **self.pending.get() };
        let mut mine = Vec::new();
        p.retain_mut(|(s, e)| {
            if *s == span {
                mine.push(std::mem::replace(e, Event::empty()));
                false
            } else {
                true
            }
        });
        mine
    }

    /// The next pseudo-random number (wyrand): a few cycles, no shared state.
    ///
    /// The generator is seeded when the thread registers with a tracer, which
    /// every span start does (through [`Self::counters`] or [`Self::writer`])
    /// before it draws an ID: checking for an unseeded state on every draw
    /// instead cost two instructions per draw.
    #[inline(always)]
    pub(crate) fn next_u64(&self) -> u64 {
        debug_assert!(!self.writer_tracer.get().is_null(), "an ID drawn before this thread registered with a tracer");
        let s = self.rng.get().wrapping_add(WY_INCREMENT);
        self.rng.set(s);
        wymix(s)
    }

    /// A new, valid span ID.
    #[inline]
    pub(crate) fn new_span_id(&self) -> SpanId {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return SpanId::from_u64(v);
            }
        }
    }

    /// A new, valid, random trace ID: two draws, made with one read and one
    /// write of the state so that their multiplications run side by side.
    /// (One draw's 128-bit product split in two is not enough: its high half's
    /// top bits are biased and its low half's lowest bit is always 0.)
    #[inline]
    pub(crate) fn new_trace_id(&self) -> TraceId {
        loop {
            debug_assert!(!self.writer_tracer.get().is_null(), "an ID drawn before this thread registered");
            let s1 = self.rng.get().wrapping_add(WY_INCREMENT);
            let s2 = s1.wrapping_add(WY_INCREMENT);
            self.rng.set(s2);
            let (hi, lo) = (wymix(s1), wymix(s2));
            // Tested as two halves: a `u128` comparison compiled to a dozen SSE
            // instructions.
            if hi | lo != 0 {
                return TraceId::from_u128(u128::from(hi) << 64 | u128::from(lo));
            }
        }
    }

    /// This thread's writer for `tracer`, registering one on first use (or when a
    /// new tracer was installed since); `None` once the thread is exiting and its
    /// state was torn down.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn writer(&self, tracer: &'static TracerShared) -> Option<&mut ThreadWriter> {
        if !std::ptr::eq(self.writer_tracer.get(), tracer) {
            return self.register_writer(tracer);
        }
        // SAFETY: the returned reference is used by crate code only, briefly, and no
        // other reference into `writer` is live meanwhile.
        match unsafe { &mut **self.writer.get() } {
            Some(w) => Some(w),
            // `writer_tracer` is non-null only while the slot holds a writer.
            None => self.register_writer(tracer),
        }
    }

    /// Hands the records this thread's writer claimed for the exporter's direct
    /// submitter (see `ThreadWriter::grow`) to it. The writer is borrowed only
    /// to take them: the exporter runs with no reference into this state, so
    /// spans it records are written as any others.
    #[cold]
    #[inline(never)]
    pub(crate) fn hand_off(&self, tracer: &'static TracerShared) {
        let range = match self.writer(tracer) {
            Some(w) => w.take_handoff(),
            None => None,
        };
        if let Some(range) = range {
            tracer.submit_directly(range);
        }
    }

    /// This thread's counters for `tracer` (registering it as [`Self::writer`]
    /// does): the unsampled path's only thread-local write. `None` as for
    /// [`Self::writer`].
    #[inline(always)]
    pub(crate) fn counters(&self, tracer: &'static TracerShared) -> Option<&ThreadCounters> {
        if !std::ptr::eq(self.writer_tracer.get(), tracer) {
            return self.register_writer(tracer).map(|w| w.counters());
        }
        // SAFETY: `counters` points into the buffer the registered writer holds
        // an `Arc` of, and is replaced together with it.
        Some(unsafe { &*self.counters.get() })
    }

    /// Registers this thread with `tracer` (first span, or a new tracer since);
    /// `None` during thread exit, once the state was torn down.
    #[cold]
    #[inline(never)]
    #[allow(clippy::mut_from_ref)]
    fn register_writer(&self, tracer: &'static TracerShared) -> Option<&mut ThreadWriter> {
        if !self.guard() {
            return None;
        }
        // SAFETY: as in `writer`.
        let slot = unsafe { &mut **self.writer.get() };
        let w = slot.insert(ThreadWriter::register(tracer));
        if self.rng.get() == 0 {
            self.rng.set(seed());
        }
        self.writer_tracer.set(tracer);
        self.counters.set(w.counters());
        Some(w)
    }

    /// Makes sure the [`Teardown`] guard will free what the state owns at thread
    /// exit; false if the thread is exiting and the guard already ran (or cannot
    /// be registered any more).
    #[inline(always)]
    fn guard(&self) -> bool {
        if self.guarded.get() {
            !self.torn_down.get()
        } else {
            self.register_guard()
        }
    }

    #[cold]
    fn register_guard(&self) -> bool {
        // Touching the guard registers its destructor.
        if TEARDOWN.try_with(|_| ()).is_err() {
            return false;
        }
        self.guarded.set(true);
        true
    }

    /// Frees what the state owns (thread exit) and leaves it refusing new
    /// writers. Each part is taken out before it is dropped, so code run by those
    /// drops finds an empty state, never a freed one.
    fn tear_down(&self) {
        self.torn_down.set(true);
        self.writer_tracer.set(std::ptr::null());
        self.counters.set(std::ptr::null());
        // SAFETY: no other reference into the state is live (see module doc).
        let (writer, current, pending) = unsafe {
            ((**self.writer.get()).take(), (**self.current.get()).take(), std::mem::take(&mut **self.pending.get()))
        };
        drop(writer);
        drop(current);
        drop(pending);
    }
}

/// wyrand's state increment.
const WY_INCREMENT: u64 = 0xa076_1d64_78bd_642f;

/// wyrand's output function: the state multiplied by itself with its bits mixed,
/// the 128-bit product's halves folded together.
#[inline(always)]
fn wymix(s: u64) -> u64 {
    let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
    (t >> 64) as u64 ^ t as u64
}

#[cold]
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is keyed from the OS once per process and varied per instance, so
    // each thread gets an independent seed without a syscall per thread.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64));
    h.write_usize(&h as *const _ as usize);
    h.finish() | 1
}
