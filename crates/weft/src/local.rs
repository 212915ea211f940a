//! Thread-local state: the current local parent, the ID generator and this
//! thread's buffer writer. One `thread_local!` with constant initialisation, so
//! reaching it is a few instructions and needs no lazy-init check beyond the
//! destructor registration std does once.
//!
//! None of the accessors call user code while they hold a reference into the
//! state, so the `UnsafeCell`s are never aliased mutably.

use std::cell::{Cell, UnsafeCell};

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

impl ParentCtx {
    /// Whether children of this parent are unsampled without asking the sampler:
    /// the trace is not sampled and the tracer follows local parents.
    #[inline(always)]
    pub(crate) fn follows_unsampled(&self) -> bool {
        !self.flags.is_sampled() && self.tracer.follows_local
    }
}

pub(crate) struct LocalState {
    current: UnsafeCell<Option<ParentCtx>>,
    /// The ID generator's state: 0 until the thread first registers with a
    /// tracer, which seeds it (see `next_u64`).
    rng: Cell<u64>,
    writer: UnsafeCell<Option<ThreadWriter>>,
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
    pending: UnsafeCell<Vec<(SpanId, Event)>>,
}

/// Most events held for spans on one thread; more are refused (and the caller
/// told), so a span that ends elsewhere cannot make the list grow without bound.
const MAX_PENDING_EVENTS: usize = 1024;

thread_local! {
    static LOCAL: LocalState = const {
        LocalState {
            current: UnsafeCell::new(None),
            rng: Cell::new(0),
            writer: UnsafeCell::new(None),
            writer_tracer: Cell::new(std::ptr::null()),
            counters: Cell::new(std::ptr::null()),
            pending: UnsafeCell::new(Vec::new()),
        }
    };
}

/// Runs `f` with this thread's state; `None` during thread teardown, after the
/// state was destroyed.
#[inline]
pub(crate) fn with<R>(f: impl FnOnce(&LocalState) -> R) -> Option<R> {
    LOCAL.try_with(f).ok()
}

/// This thread's state, or `None` during thread teardown after it was destroyed.
///
/// Returning a reference instead of running a closure lets the hot path build a
/// 400-byte span directly in its caller's frame instead of moving it out of a
/// closure. The reference must only be used during the current call, never
/// stored: it is sound because a thread's state is destroyed only by that thread
/// itself, between (never during) the calls that use it.
#[inline(always)]
pub(crate) fn get<'a>() -> Option<&'a LocalState> {
    // SAFETY: see above; the pointer is valid until this thread destroys its
    // state, which cannot happen while the caller is running on it.
    LOCAL.try_with(|l| l as *const LocalState).ok().map(|p| unsafe { &*p })
}

impl LocalState {
    /// A clone of the current local parent.
    #[inline]
    pub(crate) fn current(&self) -> Option<ParentCtx> {
        // SAFETY: no other reference into `current` is live (see module doc).
        unsafe { (*self.current.get()).clone() }
    }

    /// Runs `f` on the current local parent without cloning it.
    #[inline]
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(Option<&ParentCtx>) -> R) -> R {
        // SAFETY: as above; `f` is crate code that does not touch `current`.
        unsafe { f((*self.current.get()).as_ref()) }
    }

    /// The current local parent, borrowed. The caller must not replace the current
    /// parent while it holds the reference.
    #[inline(always)]
    pub(crate) fn current_ref(&self) -> Option<&ParentCtx> {
        // SAFETY: as above, under the caller's promise.
        unsafe { (*self.current.get()).as_ref() }
    }

    /// Replaces the current local parent, returning the previous one.
    #[inline]
    pub(crate) fn replace_current(&self, new: Option<ParentCtx>) -> Option<ParentCtx> {
        // SAFETY: as above.
        unsafe { std::mem::replace(&mut *self.current.get(), new) }
    }

    /// Makes `ctx` the current local parent, dropping the previous one.
    #[inline(always)]
    pub(crate) fn set_current(&self, ctx: ParentCtx) {
        // SAFETY: as above.
        unsafe { *self.current.get() = Some(ctx) }
    }

    /// Leaves this thread without a current local parent.
    #[inline(always)]
    pub(crate) fn clear_current(&self) {
        // SAFETY: as above.
        unsafe { *self.current.get() = None }
    }

    /// Gives the current local parent the span ID `id`, returning its previous
    /// one (an entered child, whose context is its parent's but for the span ID).
    /// The caller has checked that there is a current parent.
    #[inline(always)]
    pub(crate) fn swap_current_span_id(&self, id: SpanId) -> SpanId {
        // SAFETY: as above.
        match unsafe { &mut *self.current.get() } {
            Some(c) => std::mem::replace(&mut c.span_id, id),
            None => SpanId::INVALID,
        }
    }

    /// Puts back span ID `prev` if the current parent is still the span `id`.
    #[inline(always)]
    pub(crate) fn restore_current_span_id(&self, id: SpanId, prev: SpanId) {
        // SAFETY: as above.
        if let Some(c) = unsafe { &mut *self.current.get() } {
            if c.span_id == id {
                c.span_id = prev;
            }
        }
    }

    /// Holds an event for span `span`; false if the per-thread limit is reached.
    pub(crate) fn push_pending(&self, span: SpanId, event: Event) -> bool {
        // SAFETY: no other reference into `pending` is live (see module doc).
        let p = unsafe { &mut *self.pending.get() };
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
        unsafe { !(*self.pending.get()).is_empty() }
    }

    /// Takes the events held for `span`, in order.
    pub(crate) fn take_pending(&self, span: SpanId) -> Vec<Event> {
        // SAFETY: as above.
        let p = unsafe { &mut *self.pending.get() };
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
    /// new tracer was installed since).
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn writer(&self, tracer: &'static TracerShared) -> &mut ThreadWriter {
        if !std::ptr::eq(self.writer_tracer.get(), tracer) {
            return self.register_writer(tracer);
        }
        // SAFETY: the returned reference is used by crate code only, briefly, and no
        // other reference into `writer` is live meanwhile.
        match unsafe { &mut *self.writer.get() } {
            Some(w) => w,
            // `writer_tracer` is non-null only while the slot holds a writer.
            None => self.register_writer(tracer),
        }
    }

    /// This thread's counters for `tracer` (registering it as [`Self::writer`]
    /// does): the unsampled path's only thread-local write.
    #[inline(always)]
    pub(crate) fn counters(&self, tracer: &'static TracerShared) -> &ThreadCounters {
        if !std::ptr::eq(self.writer_tracer.get(), tracer) {
            return self.register_writer(tracer).counters();
        }
        // SAFETY: `counters` points into the buffer the registered writer holds
        // an `Arc` of, and is replaced together with it.
        unsafe { &*self.counters.get() }
    }

    /// Registers this thread with `tracer` (first span, or a new tracer since).
    #[cold]
    #[inline(never)]
    #[allow(clippy::mut_from_ref)]
    fn register_writer(&self, tracer: &'static TracerShared) -> &mut ThreadWriter {
        // SAFETY: as in `writer`.
        let slot = unsafe { &mut *self.writer.get() };
        let w = slot.insert(ThreadWriter::register(tracer));
        if self.rng.get() == 0 {
            self.rng.set(seed());
        }
        self.writer_tracer.set(tracer);
        self.counters.set(w.counters());
        w
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
