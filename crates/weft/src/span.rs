//! `Span`: starting, annotating and ending spans — the hot path.
//!
//! A recording span carries its [`SpanRecord`] inline (no allocation for a static
//! name and up to four attributes). Starting a child of the current local parent
//! with the default parent-based sampler reads the thread-local parent, draws a
//! span ID from a thread-local generator and reads the TSC: no lock, no atomic
//! read-modify-write, no shared write. Ending reads the TSC again and moves the
//! record into the thread's chunk with one published store; its batch turns
//! both readings into Unix time when an exporter reads it.

use std::marker::PhantomData;
use std::mem::{size_of, ManuallyDrop, MaybeUninit};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::attributes::InlineSlot;
use crate::context::{SpanContext, TraceState};
use crate::ids::{SpanId, TraceFlags, TraceId};
use crate::local::{self, LocalState, ParentCtx};
use crate::record::{Attributes, Event, Link, SpanExtras, SpanKind, SpanRecord, Status, RAW_END, RAW_START};
use crate::sampler::threshold::Threshold;
use crate::sampler::{DropReason, SamplingDecision, SamplingParams};
use crate::tracer::{self, TracerShared};
use crate::value::{Key, KeyValue, Str, Value};

/// A span: a timed operation in a trace. Ends when dropped, or by [`Span::end`].
///
/// ```
/// let tracer = weft::builder().exporter(weft::InMemoryExporter::new()).log_at_shutdown(false).install().unwrap();
/// {
///     let _request = weft::Span::enter("request"); // a new trace, now the local parent
///     let mut db = weft::Span::child("db.query");   // its child
///     if db.is_recording() {
///         db.set_attribute("db.rows", 42);
///     }
/// }
/// let stats = tracer.shutdown(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(stats.exported, 2);
/// ```
#[must_use = "a span ends when dropped; bind it to a variable (`let _span = …`) to time a scope"]
pub struct Span {
    /// `Recording` until the span ends; then its record belongs to a chunk and
    /// the span is `NonRecording` (ended with [`Span::end_now`], keeping its
    /// context) or `Noop` — so nothing can touch a record that moved.
    inner: Inner,
}

// The recording variant is large on purpose: the record lives inline so that a
// span costs no allocation. Boxing it (what the lint suggests) would allocate per span.
#[allow(clippy::large_enum_variant)]
// An explicit one-byte tag: without it the variant is encoded in a niche of the
// record, and every test of it (each drop, `set_attribute`, `is_recording`) took
// a handful of arithmetic instructions to decode (callgrind: −12 instructions
// per unsampled request, −26 per sampled one).
#[repr(u8)]
enum Inner {
    Recording(Recording),
    NonRecording(NonRecording),
    Noop,
}

// Ending a span overwrites its `Inner` without running a destructor on the
// record that moved out; every owned part is released by hand.
const _: () = assert!(!std::mem::needs_drop::<Inner>());

struct Recording {
    tracer: &'static TracerShared,
    /// Whether anything owned was added (owned strings, arrays, spilled
    /// attributes, events, links): only then is the record's heap measured and
    /// its destructor run. Static names and scalar attributes keep it false.
    owns_heap: bool,
    /// Moved into a chunk (or dropped, or orphaned) exactly once, when the span
    /// ends; never dropped by the span itself.
    rec: ManuallyDrop<SpanRecord>,
}

struct NonRecording {
    tracer: &'static TracerShared,
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    /// Released by [`NonRecording::release`] from the span's drop, so that
    /// `Span` has no drop glue besides its drop and that inlines.
    trace_state: ManuallyDrop<TraceState>,
    reason: u8,
}

impl NonRecording {
    /// Drops the trace state (a test, and out of line only when it holds
    /// foreign members).
    ///
    /// # Safety
    /// Called once, when the span is dropped or released.
    #[inline(always)]
    unsafe fn release(&mut self) {
        if self.trace_state.owns_shared() {
            // SAFETY: by the caller's promise.
            unsafe { release_trace_state(&mut self.trace_state) }
        }
    }
}

/// Drops a trace state that holds foreign members.
///
/// # Safety
/// As [`NonRecording::release`].
#[cold]
#[inline(never)]
unsafe fn release_trace_state(ts: &mut ManuallyDrop<TraceState>) {
    // SAFETY: by the caller's promise.
    unsafe { ManuallyDrop::drop(ts) }
}

/// Where a new span's parent comes from.
enum Parent {
    /// The current local parent, or a new trace if there is none.
    Local,
    /// Always a new trace.
    Root,
    /// This context (local or remote).
    Explicit(SpanContext),
}

/// Options for a span, set with [`SpanBuilder`]. Kept apart from the name so the
/// fast paths can use defaults without building it.
#[derive(Default)]
struct Options {
    kind: SpanKind,
    attributes: Attributes,
    links: Vec<Link>,
    start_time: Option<u64>,
}

impl Span {
    /// A span that records nothing and belongs to no trace.
    pub const fn noop() -> Span {
        Span { inner: Inner::Noop }
    }

    /// A span of an unsampled trace.
    #[inline(always)]
    fn non_recording(n: NonRecording) -> Span {
        Span { inner: Inner::NonRecording(n) }
    }

    /// A child of this thread's current local parent, or the root of a new trace
    /// if there is none.
    #[inline(always)]
    pub fn child(name: impl Into<Str>) -> Span {
        let l = local::get();
        match fast_start(l) {
            Fast::Start(st) => st.into_span(name.into()),
            Fast::UnsampledChild(p) => unsampled_child(l, p).unwrap_or(Span::noop()),
            Fast::UnsampledRoot(t) => unsampled_root_ids(l, t).map_or(Span::noop(), |ids| unsampled_root(t, ids)),
            Fast::Slow => start_sampled(l, Parent::Local, name.into(), Options::default()),
            Fast::Noop => Span::noop(),
        }
    }

    /// The root of a new trace, whatever the current local parent.
    #[inline]
    pub fn root(name: impl Into<Str>) -> Span {
        start_sampled(local::get(), Parent::Root, name.into(), Options::default())
    }

    /// A child of `parent`, which may be remote (extracted from a request) or local.
    pub fn child_of(parent: &SpanContext, name: impl Into<Str>) -> Span {
        start_sampled(local::get(), Parent::Explicit(parent.clone()), name.into(), Options::default())
    }

    /// [`Span::child`], made the current local parent until the returned guard drops;
    /// then the span ends.
    #[inline(always)]
    pub fn enter(name: impl Into<Str>) -> EnteredSpan {
        let l = local::get();
        match fast_start(l) {
            Fast::UnsampledChild(p) => {
                let Some(span) = unsampled_child(l, p) else { return EnteredSpan::inactive() };
                let prev = l.swap_current_span_id(span.span_id());
                EnteredSpan::guard(span, Restore::SpanId, prev)
            }
            Fast::UnsampledRoot(t) => unsampled_root_entered(l, t),
            // The span is built in place in the returned guard: moving a 400-byte
            // span through helper functions cost more than the rest of `enter`.
            Fast::Start(st) => {
                // A child of the current parent differs from it only in span ID:
                // swap that alone instead of the whole 64-byte context.
                // Otherwise it is a new trace, begun because there was no parent.
                let (restore, prev) = match st.child {
                    true => (Restore::SpanId, l.swap_current_span_id(st.span_id)),
                    false => {
                        l.set_current(st.parent_ctx());
                        (Restore::Clear, SpanId::INVALID)
                    }
                };
                EnteredSpan::guard(st.into_span(name.into()), restore, prev)
            }
            Fast::Slow => EnteredSpan::enter_in(l, start_sampled(l, Parent::Local, name.into(), Options::default())),
            Fast::Noop => EnteredSpan::inactive(),
        }
    }

    /// A builder for a span with a kind, attributes known at start (visible to the
    /// sampler), links, an explicit parent or start time.
    pub fn builder(name: impl Into<Str>) -> SpanBuilder {
        SpanBuilder { name: name.into(), parent: Parent::Local, opts: Options::default() }
    }

    /// Makes this span the current local parent until the guard drops.
    pub fn set_local_parent(&self) -> LocalParentGuard {
        match self.parent_ctx() {
            Some(ctx) => {
                let prev = local::get().replace_current(Some(ctx));
                LocalParentGuard { prev, active: true, _not_send: PhantomData }
            }
            None => LocalParentGuard { prev: None, active: false, _not_send: PhantomData },
        }
    }

    /// Runs `f` with this span as the current local parent.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.set_local_parent();
        f()
    }

    /// Whether this span records (its trace was sampled). Skip expensive attribute
    /// work when it does not.
    #[inline]
    pub fn is_recording(&self) -> bool {
        matches!(self.inner, Inner::Recording(_))
    }

    /// This span's context, for propagation and links.
    pub fn context(&self) -> SpanContext {
        match &self.inner {
            Inner::Recording(r) => {
                SpanContext::new(r.rec.trace_id, r.rec.span_id, r.rec.flags, false, r.rec.trace_state.clone())
            }
            Inner::NonRecording(n) => {
                SpanContext::new(n.trace_id, n.span_id, n.flags, false, TraceState::clone(&n.trace_state))
            }
            Inner::Noop => SpanContext::invalid(),
        }
    }

    /// Sets an attribute (replacing one with the same key). No-op unless recording.
    // Always inlined so that the check costs an unsampled span one comparison
    // instead of a call.
    #[inline(always)]
    pub fn set_attribute(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        if let Inner::Recording(r) = &mut self.inner {
            r.set_attribute(key.into(), value);
        }
    }

    /// Sets an attribute whose value is computed only if the span records.
    #[inline]
    pub fn with_attribute<V: Into<Value>>(&mut self, key: impl Into<Key>, value: impl FnOnce() -> V) {
        if let Inner::Recording(r) = &mut self.inner {
            r.set_attribute(key.into(), value());
        }
    }

    /// Adds an event now.
    pub fn add_event(&mut self, name: impl Into<Str>, attributes: Vec<KeyValue>) {
        if let Inner::Recording(r) = &mut self.inner {
            let t = r.tracer.clock.to_unix(r.tracer.clock.ticks());
            r.add_event(name.into(), t, attributes);
        }
    }

    /// Adds an event at a given time.
    pub fn add_event_at(&mut self, name: impl Into<Str>, time: SystemTime, attributes: Vec<KeyValue>) {
        if let Inner::Recording(r) = &mut self.inner {
            r.add_event(name.into(), unix_nanos(time), attributes);
        }
    }

    /// Adds a link to another span.
    pub fn add_link(&mut self, context: SpanContext, attributes: Vec<KeyValue>) {
        if let Inner::Recording(r) = &mut self.inner {
            r.add_link(Link::new(context, attributes));
        }
    }

    /// Sets the status. An `Ok` status is final; `Unset` never overrides.
    pub fn set_status(&mut self, status: Status) {
        if let Inner::Recording(r) = &mut self.inner {
            match (&r.rec.status, &status) {
                (Status::Ok, _) | (_, Status::Unset) => {}
                _ => {
                    r.owns_heap |= matches!(status, Status::Error { message: Str::Owned(_) });
                    r.rec.status = status
                }
            }
        }
    }

    /// Renames the span.
    pub fn update_name(&mut self, name: impl Into<Str>) {
        if let Inner::Recording(r) = &mut self.inner {
            let name = name.into();
            r.owns_heap |= matches!(name, Str::Owned(_));
            r.rec.name = name;
        }
    }

    /// Ends the span now (same as dropping it).
    pub fn end(mut self) {
        self.finish(None);
    }

    /// Ends the span now without moving it: the ended value stays in place and
    /// later calls, and its drop, do nothing. For owners that keep spans inside
    /// other structures (the `tracing` bridge keeps them in the registry's
    /// per-span extensions) and would otherwise move the whole record out first.
    ///
    /// The ended span no longer records (its attribute, event and status calls
    /// do nothing) but keeps its context for propagation and links.
    pub fn end_now(&mut self) {
        if let Inner::Recording(r) = &self.inner {
            let kept = NonRecording {
                tracer: r.tracer,
                trace_id: r.rec.trace_id,
                span_id: r.rec.span_id,
                flags: r.rec.flags,
                // Cloned before the record moves to a chunk.
                trace_state: ManuallyDrop::new(r.rec.trace_state.clone()),
                reason: 0,
            };
            self.finish_recording(local::get(), None);
            self.inner = Inner::NonRecording(kept);
        }
    }

    /// Ends the span at the given time.
    pub fn end_at(mut self, time: SystemTime) {
        self.finish(Some(unix_nanos(time)));
    }

    /// Moves events added for this span from outside it on this thread
    /// ([`add_event_to_current`]) into it. Called by futures after each poll, as
    /// their span may end on another thread.
    pub(crate) fn absorb_pending_events(&mut self) {
        if let Inner::Recording(r) = &mut self.inner {
            let l = local::get();
            if l.has_pending() {
                r.absorb_pending(l);
            }
        }
    }

    /// This span's ID (invalid for a no-op span).
    #[inline(always)]
    fn span_id(&self) -> SpanId {
        match &self.inner {
            Inner::Recording(r) => r.rec.span_id,
            Inner::NonRecording(n) => n.span_id,
            Inner::Noop => SpanId::INVALID,
        }
    }

    fn parent_ctx(&self) -> Option<ParentCtx> {
        match &self.inner {
            Inner::Recording(r) => Some(ParentCtx {
                tracer: r.tracer,
                trace_id: r.rec.trace_id,
                span_id: r.rec.span_id,
                flags: r.rec.flags,
                trace_state: r.rec.trace_state.clone(),
                reason: 0,
            }),
            Inner::NonRecording(n) => Some(ParentCtx {
                tracer: n.tracer,
                trace_id: n.trace_id,
                span_id: n.span_id,
                flags: n.flags,
                trace_state: TraceState::clone(&n.trace_state),
                reason: n.reason,
            }),
            Inner::Noop => None,
        }
    }

    /// Ends the span if it records (an unsampled span was counted when it
    /// started and has nothing to do).
    #[inline]
    fn finish(&mut self, end: Option<u64>) {
        if let Inner::Recording(_) = self.inner {
            self.finish_recording(local::get(), end);
        }
    }

    /// Ends the span (if it has not ended) and drops what it still owns: `Span`'s
    /// drop, and the guard's for the span it holds in `ManuallyDrop`.
    ///
    /// # Safety
    /// The span must not be used or dropped afterwards.
    #[inline(always)]
    unsafe fn end_and_release(&mut self, l: &LocalState) {
        match &mut self.inner {
            // Once ended, a recording span owns nothing outside its record,
            // which has moved to a chunk: ending it is the last step (a tail
            // call from the guard's drop, with nothing to test afterwards).
            Inner::Recording(_) => self.finish_recording(l, None),
            // SAFETY: dropped once, by the caller's promise.
            Inner::NonRecording(n) => unsafe { n.release() },
            Inner::Noop => {}
        }
    }

    /// Ends a recording span: timestamps, then the record into the thread's
    /// chunk. The work is out of line so that ending an unsampled span —
    /// inlined at every call site — does not pay its 400-byte stack frame.
    /// The span is `Noop` afterwards.
    ///
    /// Two builds of the same body, chosen per call by the CPU's features
    /// (std caches the answer: one load and a branch): with AVX the record
    /// is copied into its slot in 32-byte moves, 10 instead of 18 load/store
    /// pairs for a span with two attributes. Measured against the 16-byte
    /// build, interleaved: see docs/benchmarks.md, session 15.
    #[inline(always)]
    fn finish_recording(&mut self, l: &LocalState, end: Option<u64>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX, checked just above.
            return unsafe { self.finish_recording_avx(l, end) };
        }
        self.finish_recording_baseline(l, end)
    }

    /// [`Span::finish_recording`] for any x86-64 (16-byte moves) or other CPU.
    #[inline(never)]
    fn finish_recording_baseline(&mut self, l: &LocalState, end: Option<u64>) {
        self.finish_recording_body(l, end)
    }

    /// [`Span::finish_recording`] compiled for AVX (32-byte moves).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx")]
    #[inline(never)]
    fn finish_recording_avx(&mut self, l: &LocalState, end: Option<u64>) {
        self.finish_recording_body(l, end)
    }

    /// The body of [`Span::finish_recording`], inlined into each build.
    #[inline(always)]
    fn finish_recording_body(&mut self, l: &LocalState, end: Option<u64>) {
        // Whether filling a chunk left records for the exporter's direct
        // submitter (see `ThreadWriter::grow`), handed over once the record
        // is stored and the writer no longer borrowed.
        let mut hand_off = false;
        let tracer = match &mut self.inner {
            Inner::Recording(r) => {
                let tracer = r.tracer;
                if l.has_pending() {
                    r.absorb_pending(l);
                }
                // A tick reading, like the start's: the batch converts both
                // to Unix time when an exporter reads it (`SpanBatch`).
                let now = tracer.clock.ticks();
                let end_time = end.unwrap_or(now);
                let raw_times = r.rec.raw_times | if end.is_none() { RAW_END } else { 0 };
                let heap = if r.owns_heap { heap_bytes(&r.rec) } else { 0 };
                // Records owning nothing (static strings, inline attributes) need
                // no destructor: the chunk then frees them without visiting each.
                let needs_drop = r.owns_heap || r.rec.trace_state.owns_shared();
                match l.writer(tracer) {
                    Some(w) => {
                        // Counted as ended by `commit` (recorded) or
                        // `reserve` (dropped for memory).
                        match w.reserve() {
                            Some(slot) => {
                                // SAFETY: the record is copied into the reserved slot
                                // exactly once, straight into the chunk,
                                // and, being `ManuallyDrop` and replaced just below,
                                // never dropped or used by the span again: ownership
                                // moves.
                                // The end goes into the slot after the copy, not into
                                // the record before it: stored there just before,
                                // the copy's wide loads of those bytes could not be
                                // forwarded from the narrow stores and waited for
                                // them to reach the cache (cpu-clock samples put
                                // two fifths of the end's time on that load's use).
                                unsafe {
                                    r.rec.copy_used_to(slot);
                                    std::ptr::addr_of_mut!((*slot).end_unix_nanos).write(end_time);
                                    std::ptr::addr_of_mut!((*slot).raw_times).write(raw_times);
                                }
                                // Nothing from the copy above to the end of this
                                // function may panic: the span still reads as
                                // `Recording` until its last line, and an unwind
                                // would end (and free) the moved record again.
                                w.commit(heap, needs_drop);
                                hand_off = w.has_handoff();
                            }
                            // No room: the drop was counted; free the record here.
                            // SAFETY: dropped once; the record is replaced below.
                            None => unsafe { r.free_record() },
                        }
                    }
                    // The thread is exiting and its writer is gone (the span
                    // ends in another thread-local's destructor).
                    None => {
                        r.rec.end_unix_nanos = end_time;
                        r.rec.raw_times = raw_times;
                        // SAFETY: the record is replaced below.
                        unsafe { r.orphan_record() }
                    }
                }
                tracer
            }
            Inner::NonRecording(_) | Inner::Noop => return,
        };
        // The record has moved (or been freed): the span stops being `Recording`
        // so that nothing reaches it again. (`Inner` has no drop glue: this
        // assignment frees nothing.)
        self.inner = Inner::Noop;
        if hand_off {
            l.hand_off(tracer);
        }
    }
}

impl Drop for Span {
    // Only a recording span has work to do when it ends (an unsampled one was
    // counted when it started): one test, small enough to inline at every drop.
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: the span is being dropped: never used again.
        unsafe { self.end_and_release(local::get()) }
    }
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ctx = self.context();
        f.debug_struct("Span")
            .field("trace_id", &ctx.trace_id())
            .field("span_id", &ctx.span_id())
            .field("recording", &self.is_recording())
            .finish()
    }
}

impl Recording {
    #[inline(always)]
    fn set_attribute<V: Into<Value>>(&mut self, key: Key, value: V) {
        let limits = &self.tracer.limits;
        // Without a value length limit (the default) the value is stored as
        // given: the inline slots, when they suffice, take it directly.
        // (Truncating here made the value a local to mutate, copied through
        // the stack on every call.) The value is converted where it is
        // written, and the key kept apart until then: see
        // `Attributes::inline_slot`.
        if limits.max_attribute_value_len.is_none() {
            match self.rec.attributes.inline_slot(&key, limits.max_attributes) {
                InlineSlot::Append(i) => {
                    let kv = KeyValue { key, value: value.into() };
                    // Known at compile time for static keys and scalar values.
                    self.owns_heap |= owns_heap(&kv.key, &kv.value);
                    self.rec.attributes.append_inline(i, kv);
                }
                InlineSlot::Replace(i) => {
                    let value = value.into();
                    self.owns_heap |= owns_heap(&key, &value);
                    self.rec.attributes.replace_inline(i, value);
                }
                InlineSlot::None => self.set_attribute_general(KeyValue { key, value: value.into() }),
            }
        } else {
            self.set_attribute_general(KeyValue { key, value: value.into() })
        }
    }

    /// [`Recording::set_attribute`] with a value length limit, or past the
    /// inline slots: on the heap, or dropped at the count limit.
    #[inline(never)]
    fn set_attribute_general(&mut self, mut kv: KeyValue) {
        let limits = &self.tracer.limits;
        if let Some(max) = limits.max_attribute_value_len {
            kv.value.truncate(max);
        }
        // A spilled vector is heap memory whatever its attributes hold.
        self.owns_heap |=
            owns_heap(&kv.key, &kv.value) || self.rec.attributes.len() >= crate::attributes::INLINE_ATTRIBUTES;
        if let Some(a) = self.rec.attributes.iter_mut().find(|a| crate::attributes::same_key(&a.key, &kv.key)) {
            a.value = kv.value;
        } else if self.rec.attributes.len() < limits.max_attributes as usize {
            self.rec.attributes.push(kv);
        } else {
            self.rec.dropped_attributes_count += 1;
        }
    }

    fn add_event(&mut self, name: Str, time_unix_nanos: u64, attributes: Vec<KeyValue>) {
        let limits = self.tracer.limits;
        self.owns_heap = true;
        let extras = self.rec.extras.get_or_insert_with(Box::default);
        if extras.events.len() >= limits.max_events as usize {
            extras.dropped_events_count += 1;
            return;
        }
        let (attributes, dropped) =
            limit_attrs(attributes, limits.max_attributes_per_event, limits.max_attribute_value_len);
        extras.events.push(Event { name, time_unix_nanos, attributes, dropped_attributes_count: dropped });
    }

    fn add_link(&mut self, mut link: Link) {
        let limits = self.tracer.limits;
        self.owns_heap = true;
        let extras = self.rec.extras.get_or_insert_with(Box::default);
        if extras.links.len() >= limits.max_links as usize {
            extras.dropped_links_count += 1;
            return;
        }
        let (attributes, dropped) = limit_attrs(
            std::mem::take(&mut link.attributes),
            limits.max_attributes_per_link,
            limits.max_attribute_value_len,
        );
        link.attributes = attributes;
        link.dropped_attributes_count += dropped;
        extras.links.push(link);
    }
}

/// Whether a key or value owns heap memory (an owned key or string, an array).
#[inline(always)]
fn owns_heap(key: &Key, value: &Value) -> bool {
    matches!(key, Str::Owned(_)) || matches!(value, Value::String(Str::Owned(_)) | Value::Array(_))
}

fn limit_attrs(mut attrs: Vec<KeyValue>, max: u32, max_len: Option<usize>) -> (Vec<KeyValue>, u32) {
    let dropped = attrs.len().saturating_sub(max as usize) as u32;
    attrs.truncate(max as usize);
    if let Some(l) = max_len {
        for kv in &mut attrs {
            kv.value.truncate(l);
        }
    }
    (attrs, dropped)
}

/// Heap memory a record owns beyond its inline size, for the memory budget.
#[inline(never)]
fn heap_bytes(rec: &SpanRecord) -> usize {
    let mut n = 0;
    if let Str::Owned(s) = &rec.name {
        n += s.capacity();
    }
    if rec.attributes.spilled() {
        n += size_of::<Vec<KeyValue>>() + rec.attributes.heap_capacity() * size_of::<KeyValue>();
    }
    for kv in &rec.attributes {
        n += kv.heap_bytes();
    }
    if let Status::Error { message: Str::Owned(m) } = &rec.status {
        n += m.capacity();
    }
    if let Some(x) = &rec.extras {
        n +=
            size_of::<SpanExtras>() + x.events.capacity() * size_of::<Event>() + x.links.capacity() * size_of::<Link>();
        for e in &x.events {
            n += e.attributes.capacity() * size_of::<KeyValue>()
                + e.attributes.iter().map(KeyValue::heap_bytes).sum::<usize>();
        }
        for l in &x.links {
            n += l.attributes.capacity() * size_of::<KeyValue>()
                + l.attributes.iter().map(KeyValue::heap_bytes).sum::<usize>();
        }
    }
    n
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The small part of a new sampled span — IDs, flags, trace state — decided
/// without the sampler by [`fast_start`], before the record is built in place by
/// [`Start::into_span`]; everything else goes through [`start_sampled`].
struct Start {
    /// Whether the span is a child of the current local parent (same tracer,
    /// trace, flags and trace state: only the span ID differs).
    child: bool,
    tracer: &'static TracerShared,
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: SpanId,
    flags: TraceFlags,
    trace_state: TraceState,
}

/// What the fast path found.
///
/// The spans of unsampled traces take paths of their own, built straight from
/// their parent's fields: building a `Start` first and copying it through the
/// stack stalled on store forwarding for a third of their time.
enum Fast<'a> {
    /// A sampled span decided without the sampler.
    Start(Start),
    /// A child of this current local parent, unsampled, under a sampler that
    /// follows local parents.
    UnsampledChild(&'a ParentCtx),
    /// A new trace under a sampler that drops every root (`AlwaysOff`, or
    /// `ParentBased(AlwaysOff)`).
    UnsampledRoot(&'static TracerShared),
    /// Needs [`start_sampled`].
    Slow,
    /// No tracer: a no-op span.
    Noop,
}

/// The common cases, none of which calls the sampler: a child of a local
/// parent under a sampler that follows local parents (sampled or not), a new
/// root under a sampler that samples every root, or drops every root. One
/// look at the current parent decides among them (two, one for the unsampled
/// cases and one for the sampled, cost ~5 instructions per span).
#[inline(always)]
fn fast_start(l: &LocalState) -> Fast<'_> {
    match l.current_ref() {
        Some(p) if p.tracer.follows_local => {
            if !p.flags.is_sampled() {
                return Fast::UnsampledChild(p);
            }
            let Some(c) = l.counters(p.tracer) else { return Fast::Noop };
            c.started.add(1);
            Fast::Start(Start {
                child: true,
                tracer: p.tracer,
                trace_id: p.trace_id,
                span_id: l.new_span_id(),
                parent_span_id: p.span_id,
                flags: p.flags,
                trace_state: p.trace_state.clone(),
            })
        }
        Some(_) => Fast::Slow,
        None => match tracer::global() {
            Some(t) if t.roots_always_sampled => new_root_start(l, t),
            Some(t) if t.roots_never_sampled => Fast::UnsampledRoot(t),
            Some(_) => Fast::Slow,
            None => Fast::Noop,
        },
    }
}

/// A new trace under a sampler that samples every root (the default,
/// `ParentBased(AlwaysOn)`): the adaptive stage's check is one comparison while
/// memory is below its high-water mark.
#[inline(always)]
fn new_root_start(l: &LocalState, tracer: &'static TracerShared) -> Fast<'static> {
    let Some(w) = l.writer(tracer) else { return Fast::Noop };
    // The thread's cached view of memory pressure, refreshed once per chunk:
    // reading the shared budget counter here, on every new trace, cost a cache
    // miss per trace once several threads were charging it.
    if w.pressure {
        return Fast::Slow;
    }
    w.counters().started.add(1);
    Fast::Start(Start {
        child: false,
        tracer,
        trace_id: l.new_trace_id(),
        span_id: l.new_span_id(),
        parent_span_id: SpanId::INVALID,
        flags: TraceFlags::SAMPLED.with(TraceFlags::RANDOM),
        trace_state: TraceState::EMPTY.with_threshold(Some(Threshold::ALWAYS)),
    })
}

/// A child of `p` (see [`Fast::UnsampledChild`]): counted, and given a span ID for
/// propagation.
#[inline(always)]
fn unsampled_child(l: &LocalState, p: &ParentCtx) -> Option<Span> {
    l.counters(p.tracer)?.sampled_out_spans.add(1);
    Some(Span::non_recording(NonRecording {
        tracer: p.tracer,
        trace_id: p.trace_id,
        span_id: l.new_span_id(),
        flags: p.flags,
        trace_state: ManuallyDrop::new(p.trace_state.clone()),
        reason: p.reason,
    }))
}

/// A new unsampled trace (see [`Fast::UnsampledRoot`]): counted, and its IDs drawn
/// for propagation. `None` during thread exit (see [`LocalState::counters`]).
#[inline(always)]
fn unsampled_root_ids(l: &LocalState, tracer: &'static TracerShared) -> Option<(TraceId, SpanId)> {
    let c = l.counters(tracer)?;
    c.sampled_out_spans.add(1);
    c.sampled_out_traces[DropReason::AlwaysOff as usize].add(1);
    Some((l.new_trace_id(), l.new_span_id()))
}

/// The first span of a new unsampled trace with these IDs.
#[inline(always)]
fn unsampled_root(tracer: &'static TracerShared, (trace_id, span_id): (TraceId, SpanId)) -> Span {
    Span::non_recording(NonRecording {
        tracer,
        trace_id,
        span_id,
        flags: TraceFlags::RANDOM,
        trace_state: ManuallyDrop::new(TraceState::EMPTY),
        reason: DropReason::AlwaysOff as u8,
    })
}

/// [`unsampled_root`], entered. The current parent is set from the same values
/// as the span, not copied from it (that copy stalled on store forwarding).
#[inline(always)]
fn unsampled_root_entered(l: &LocalState, tracer: &'static TracerShared) -> EnteredSpan {
    let Some((trace_id, span_id)) = unsampled_root_ids(l, tracer) else { return EnteredSpan::inactive() };
    l.set_current(ParentCtx {
        tracer,
        trace_id,
        span_id,
        flags: TraceFlags::RANDOM,
        trace_state: TraceState::EMPTY,
        reason: DropReason::AlwaysOff as u8,
    });
    EnteredSpan::guard(unsampled_root(tracer, (trace_id, span_id)), Restore::Clear, SpanId::INVALID)
}

impl Start {
    #[inline(always)]
    fn parent_ctx(&self) -> ParentCtx {
        ParentCtx {
            tracer: self.tracer,
            trace_id: self.trace_id,
            span_id: self.span_id,
            flags: self.flags,
            trace_state: self.trace_state.clone(),
            reason: 0,
        }
    }

    /// Builds the (recording) span; the clock is read last, as late as possible.
    #[inline(always)]
    fn into_span(self, name: Str) -> Span {
        Span {
            inner: Inner::Recording(Recording {
                tracer: self.tracer,
                owns_heap: matches!(name, Str::Owned(_)),
                rec: ManuallyDrop::new(SpanRecord::started(
                    self.trace_id,
                    self.span_id,
                    self.parent_span_id,
                    self.flags,
                    false,
                    self.trace_state,
                    name,
                    self.tracer.clock.ticks(),
                )),
            }),
        }
    }
}

/// Starts a span from a builder.
fn start_built(l: &LocalState, parent: Parent, name: Str, opts: Options) -> Span {
    // A child of a parent it follows needs no sampler; a new root asks the
    // sampler (which sees the builder's attributes).
    if let Parent::Local = parent {
        if l.current_ref().is_some_and(|p| p.tracer.follows_local) {
            match fast_start(l) {
                Fast::UnsampledChild(p) => return unsampled_child(l, p).unwrap_or(Span::noop()),
                Fast::Start(st) => {
                    let mut span = st.into_span(name);
                    if let Inner::Recording(r) = &mut span.inner {
                        r.apply(opts);
                    }
                    return span;
                }
                _ => {}
            }
        }
    }
    start_sampled(l, parent, name, opts)
}

impl Recording {
    /// Takes the events held for this span on its thread (rare: kept out of
    /// `finish_recording`, whose frame and saved registers every span pays).
    #[cold]
    #[inline(never)]
    fn absorb_pending(&mut self, l: &LocalState) {
        for e in l.take_pending(self.rec.span_id) {
            self.add_event(e.name, e.time_unix_nanos, e.attributes);
        }
    }

    /// Frees the record (no room for it; the drop was counted).
    ///
    /// # Safety
    /// Once; the record is never used again.
    #[cold]
    #[inline(never)]
    unsafe fn free_record(&mut self) {
        // SAFETY: by the caller's promise.
        unsafe { ManuallyDrop::drop(&mut self.rec) }
    }

    /// Hands the record to the collector directly (the thread's state is gone:
    /// it is exiting).
    ///
    /// # Safety
    /// Once; the record is never used again.
    #[cold]
    #[inline(never)]
    unsafe fn orphan_record(&mut self) {
        // SAFETY: by the caller's promise.
        let rec = unsafe { ManuallyDrop::take(&mut self.rec) };
        self.tracer.push_orphan(rec);
    }

    #[inline]
    fn apply(&mut self, o: Options) {
        self.rec.kind = o.kind;
        if o.attributes.is_empty() && o.links.is_empty() && o.start_time.is_none() {
            return;
        }
        for kv in o.attributes {
            self.set_attribute(kv.key, kv.value);
        }
        for link in o.links {
            self.add_link(link);
        }
        if let Some(t) = o.start_time {
            self.rec.start_unix_nanos = t;
            self.rec.raw_times &= !RAW_START;
        }
    }
}

/// New traces a thread sheds under memory pressure between two yields to a
/// starved collector: about one chunk's worth of spans.
const SHED_YIELD_EVERY: u32 = 64;

/// Starts a span with a sampling decision: roots, explicit parents, and local
/// children under samplers that do not simply follow the parent.
fn start_sampled(l: &LocalState, parent: Parent, name: Str, opts: Options) -> Span {
    // Resolve the parent context and the tracer.
    let (tracer, parent_ctx, reason_if_unsampled): (&'static TracerShared, Option<SpanContext>, u8) = match parent {
        Parent::Local => match l.current() {
            Some(p) => {
                let ctx = SpanContext::new(p.trace_id, p.span_id, p.flags, false, p.trace_state.clone());
                (p.tracer, Some(ctx), p.reason)
            }
            None => match tracer::global() {
                Some(t) => (t, None, 0),
                None => return Span::noop(),
            },
        },
        Parent::Root => match tracer::global() {
            Some(t) => (t, None, 0),
            None => return Span::noop(),
        },
        Parent::Explicit(ctx) => {
            // An explicit local parent keeps its tracer if it is the current one.
            let t = match l.with_current(|c| c.map(|p| p.tracer)) {
                Some(t) if !ctx.is_remote() => Some(t),
                _ => tracer::global(),
            };
            match t {
                Some(t) => (t, ctx.is_valid().then_some(ctx), DropReason::Parent as u8),
                None => return Span::noop(),
            }
        }
    };
    // Registers the thread (seeding its ID generator) before the first draw.
    // The writer itself is taken only after the sampler has run: a user's
    // sampler may start spans of its own, which use the writer too.
    // (`None`: the thread is exiting and its state is gone; nothing is recorded.)
    if l.counters(tracer).is_none() {
        return Span::noop();
    }
    let is_local_root = parent_ctx.as_ref().is_none_or(|c| c.is_remote());
    let trace_id = parent_ctx.as_ref().map_or_else(|| l.new_trace_id(), |c| c.trace_id());
    let randomness = parent_ctx.as_ref().map_or(trace_id.randomness(), |c| c.randomness());
    let decision = match &parent_ctx {
        Some(c) if !c.is_remote() && tracer.follows_local => {
            if c.is_sampled() {
                SamplingDecision::Sample(c.trace_state().threshold())
            } else {
                SamplingDecision::Drop(DropReason::from_index(reason_if_unsampled))
            }
        }
        _ => tracer.sampler.should_sample(&SamplingParams {
            parent: parent_ctx.as_ref(),
            trace_id,
            randomness,
            name: &name,
            kind: opts.kind,
            attributes: &opts.attributes,
            links: &opts.links,
        }),
    };
    let Some(w) = l.writer(tracer) else { return Span::noop() };
    // The adaptive stage sheds whole new traces under memory pressure; spans of
    // traces already kept are never shed here.
    let decision = match decision {
        SamplingDecision::Sample(th) if is_local_root => match tracer.adaptive {
            Some(a) => {
                let (mut used, limit) = (tracer.budget.used(), tracer.budget.limit());
                // Memory this high while the collector has not run for 250 µs:
                // it may be waiting for a CPU (more busy threads than cores).
                // Threads yield to it once per chunk they fill; a thread that
                // sheds fills no chunks, so without this a burst of threads
                // could shed for as long as it lasted. It yields here as often
                // as a thread writing would (once per ~64 traces), so a slow
                // exporter costs shedding threads no more than writing ones.
                if used > tracer.adaptive_high_bytes {
                    w.shed_streak += 1;
                    if w.shed_streak >= SHED_YIELD_EVERY && tracer.collector_is_starved() {
                        w.shed_streak = 0;
                        tracer.yield_to_collector();
                        used = tracer.budget.used();
                    }
                }
                w.pressure = used > tracer.adaptive_high_bytes;
                if (used as f64) <= a.high_water * limit as f64 {
                    SamplingDecision::Sample(th)
                } else {
                    let t = a.threshold(used, limit);
                    if t.keeps(randomness) {
                        SamplingDecision::Sample(th.map(|x| x.max(t)))
                    } else {
                        SamplingDecision::Drop(DropReason::Adaptive)
                    }
                }
            }
            None => SamplingDecision::Sample(th),
        },
        d => d,
    };
    let span_id = l.new_span_id();
    let base_state = parent_ctx.as_ref().map_or(TraceState::EMPTY, |c| c.trace_state().clone());
    let random_flag = parent_ctx.as_ref().map_or(TraceFlags::RANDOM, |c| TraceFlags::new(c.flags().to_u8() & 0x02));
    match decision {
        SamplingDecision::Drop(reason) => {
            let c = w.counters();
            c.sampled_out_spans.add(1);
            if is_local_root {
                c.sampled_out_traces[reason as usize].add(1);
            }
            Span {
                inner: Inner::NonRecording(NonRecording {
                    tracer,
                    trace_id,
                    span_id,
                    flags: random_flag,
                    trace_state: ManuallyDrop::new(base_state),
                    reason: reason as u8,
                }),
            }
        }
        SamplingDecision::Sample(th) => {
            w.counters().started.add(1);
            let mut r = Recording {
                tracer,
                owns_heap: matches!(name, Str::Owned(_)),
                rec: ManuallyDrop::new(SpanRecord::started(
                    trace_id,
                    span_id,
                    parent_ctx.as_ref().map_or(SpanId::INVALID, |c| c.span_id()),
                    random_flag.with(TraceFlags::SAMPLED),
                    parent_ctx.as_ref().is_some_and(|c| c.is_remote()),
                    base_state.with_threshold(th.filter(|t| *t != Threshold::NEVER)),
                    name,
                    tracer.clock.ticks(),
                )),
            };
            r.apply(opts);
            Span { inner: Inner::Recording(r) }
        }
    }
}

/// Builds a span with options. See [`Span::builder`].
pub struct SpanBuilder {
    name: Str,
    parent: Parent,
    opts: Options,
}

impl SpanBuilder {
    /// The span kind (default internal).
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.opts.kind = kind;
        self
    }
    /// An attribute, visible to the sampler.
    pub fn attribute(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Self {
        self.opts.attributes.push(KeyValue::new(key, value));
        self
    }
    /// A link, visible to the sampler.
    pub fn link(mut self, context: SpanContext, attributes: Vec<KeyValue>) -> Self {
        self.opts.links.push(Link::new(context, attributes));
        self
    }
    /// Start a new trace regardless of the current local parent.
    pub fn root(mut self) -> Self {
        self.parent = Parent::Root;
        self
    }
    /// Use this parent (local or remote) instead of the current local parent.
    pub fn parent(mut self, ctx: &SpanContext) -> Self {
        self.parent = Parent::Explicit(ctx.clone());
        self
    }
    /// An explicit start time instead of now.
    pub fn start_time(mut self, t: SystemTime) -> Self {
        self.opts.start_time = Some(unix_nanos(t));
        self
    }
    /// Starts the span.
    pub fn start(self) -> Span {
        let SpanBuilder { name, parent, opts } = self;
        start_built(local::get(), parent, name, opts)
    }
    /// Starts the span and makes it the current local parent.
    pub fn enter(self) -> EnteredSpan {
        let SpanBuilder { name, parent, opts } = self;
        let l = local::get();
        EnteredSpan::enter_in(l, start_built(l, parent, name, opts))
    }
}

/// Restores the previous local parent when dropped. Not `Send`: it belongs to the
/// thread whose local parent it changed.
#[must_use = "the local parent is restored when the guard drops"]
pub struct LocalParentGuard {
    prev: Option<ParentCtx>,
    active: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for LocalParentGuard {
    fn drop(&mut self) {
        if self.active {
            let prev = self.prev.take();
            local::get().replace_current(prev);
        }
    }
}

impl std::fmt::Debug for LocalParentGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalParentGuard").finish_non_exhaustive()
    }
}

/// A span that is the current local parent; restores the previous parent and ends
/// the span when dropped. Derefs to [`Span`].
#[must_use = "the span ends when the guard drops; bind it (`let _s = …`)"]
pub struct EnteredSpan {
    /// Ended and released by the guard's drop itself ([`Span::end_and_release`]),
    /// never by `Span`'s own drop: that second pass over an ended span was an
    /// out-of-line call costing a fifth of an unsampled span.
    span: ManuallyDrop<Span>,
    /// What to put back. The previous parent's parts live in the two fields
    /// below, not in an enum: an enum big enough for a whole context was built
    /// on the stack and copied into the guard (64 bytes) at every `enter`.
    restore: Restore,
    /// With [`Restore::SpanId`]: the previous parent's span ID.
    prev_span_id: SpanId,
    /// With [`Restore::Parent`] only: the previous parent, moved out (and so
    /// dropped) by the guard's drop. Left uninitialised otherwise, which costs
    /// the common guards nothing.
    prev_parent: MaybeUninit<ParentCtx>,
    _not_send: PhantomData<*const ()>,
}

/// What an [`EnteredSpan`] puts back when it ends.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Restore {
    /// Nothing: the span did not become the current parent (no tracer).
    Nothing,
    /// No parent: there was none before the span.
    Clear,
    /// The whole previous parent, `prev_parent` (a span started through the
    /// sampler, whose context may differ from its parent's in any field,
    /// entered where another context was current).
    Parent,
    /// The previous parent's span ID, `prev_span_id`: the span was a child of
    /// the current parent, whose context it copied except for its own span ID.
    SpanId,
}

impl EnteredSpan {
    /// A guard for `span` that puts back `restore` (with `prev_span_id` for
    /// [`Restore::SpanId`]; not for [`Restore::Parent`]: see [`EnteredSpan::enter_in`]).
    #[inline(always)]
    fn guard(span: Span, restore: Restore, prev_span_id: SpanId) -> EnteredSpan {
        debug_assert!(restore != Restore::Parent);
        EnteredSpan {
            span: ManuallyDrop::new(span),
            restore,
            prev_span_id,
            prev_parent: MaybeUninit::uninit(),
            _not_send: PhantomData,
        }
    }

    fn inactive() -> EnteredSpan {
        EnteredSpan::guard(Span::noop(), Restore::Nothing, SpanId::INVALID)
    }

    #[inline(always)]
    fn enter_in(l: &LocalState, span: Span) -> EnteredSpan {
        match span.parent_ctx() {
            Some(ctx) => match l.replace_current(Some(ctx)) {
                Some(prev) => EnteredSpan {
                    span: ManuallyDrop::new(span),
                    restore: Restore::Parent,
                    prev_span_id: SpanId::INVALID,
                    prev_parent: MaybeUninit::new(prev),
                    _not_send: PhantomData,
                },
                None => EnteredSpan::guard(span, Restore::Clear, SpanId::INVALID),
            },
            None => EnteredSpan::guard(span, Restore::Nothing, SpanId::INVALID),
        }
    }
}

impl std::ops::Deref for EnteredSpan {
    type Target = Span;
    fn deref(&self) -> &Span {
        &self.span
    }
}
impl std::ops::DerefMut for EnteredSpan {
    fn deref_mut(&mut self) -> &mut Span {
        &mut self.span
    }
}

impl Drop for EnteredSpan {
    // Inline, the unsampled guards whose trace state owns nothing shared: they
    // put the parent (or the parent's span ID) back and have nothing to record
    // or release. Everything else is one call. Testing the trace state first,
    // instead of releasing it afterwards, left a body small enough for the
    // guard's drop glue to inline at its call sites; it had been an
    // out-of-line call of ~24 instructions per guard (callgrind, per request:
    // unsampled 225 -> 218, nested 1153 -> 1147).
    #[inline(always)]
    fn drop(&mut self) {
        if let Inner::NonRecording(n) = &self.span.inner {
            if !n.trace_state.owns_shared() {
                // Two tests, not a `match`: over four variants that became a
                // jump table, five instructions and an indirect jump per guard.
                if self.restore == Restore::SpanId {
                    return local::get().restore_current_span_id(n.span_id, self.prev_span_id);
                }
                if self.restore == Restore::Clear {
                    return local::get().clear_current();
                }
            }
        }
        self.drop_general();
    }
}

impl EnteredSpan {
    /// Puts back the whole previous parent if the guard holds one
    /// ([`Restore::Parent`]; [`Restore::Nothing`] has nothing to put back).
    #[cold]
    #[inline(never)]
    fn restore_parent(&mut self, l: &LocalState) {
        if self.restore == Restore::Parent {
            // SAFETY: initialised with `Restore::Parent` (see `enter_in`) and
            // moved out once: only the guard's drop comes here.
            let prev = unsafe { self.prev_parent.assume_init_read() };
            l.replace_current(Some(prev));
        }
    }

    /// Restores the previous parent and ends the span, whatever they are.
    #[inline(never)]
    fn drop_general(&mut self) {
        // One thread-local access for both: restore the parent, then end the span.
        let l = local::get();
        // Two tests and a cold call, not a `match`: over four variants LLVM
        // builds a jump table, whose indirect jump cost more than its five
        // instructions (see the unsampled guard's drop above).
        if self.restore == Restore::SpanId {
            // Only while this span is still the current parent: guards
            // dropped out of order must not graft this ID onto another
            // span's context.
            l.restore_current_span_id(self.span.span_id(), self.prev_span_id);
        } else if self.restore == Restore::Clear {
            // Assigned in place: swapping whole contexts through the stack
            // cost more than the rest of an unsampled span's end.
            l.clear_current();
        } else {
            self.restore_parent(l);
        }
        // SAFETY: called only from the guard's drop, which never touches its
        // span again.
        unsafe { self.span.end_and_release(l) }
    }
}

impl std::fmt::Debug for EnteredSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.span.fmt(f)
    }
}

/// The context of this thread's current local parent, if any — for injecting
/// into outgoing requests.
pub fn current_context() -> Option<SpanContext> {
    local::get()
        .with_current(|c| c.map(|p| SpanContext::new(p.trace_id, p.span_id, p.flags, false, p.trace_state.clone())))
}

impl std::fmt::Debug for SpanBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBuilder").field("name", &self.name).field("kind", &self.opts.kind).finish_non_exhaustive()
    }
}

/// Adds an event to this thread's current local parent span, from code that has
/// no handle on it (a logging bridge, a library). The event is held on this
/// thread and joins the span when the span ends here, or after its future's
/// next poll. Returns false if there is no recording current span, or if this
/// thread already holds the most events it may (1024) for spans still open.
pub fn add_event_to_current(name: impl Into<Str>, attributes: Vec<KeyValue>) -> bool {
    let l = local::get();
    let Some((tracer, span_id)) = l.current_ref().filter(|p| p.flags.is_sampled()).map(|p| (p.tracer, p.span_id))
    else {
        return false;
    };
    let time_unix_nanos = tracer.clock.to_unix(tracer.clock.ticks());
    l.push_pending(span_id, Event { name: name.into(), time_unix_nanos, attributes, dropped_attributes_count: 0 })
}

/// Whether this thread's current local parent records (so that work to build an
/// event for it, like formatting a log line, is worth doing).
pub fn current_is_recording() -> bool {
    local::get().current_ref().is_some_and(|p| p.flags.is_sampled())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::InMemoryExporter;
    use std::time::Duration;

    /// The attributes `make` below sets, by count.
    fn attributes(n: usize) -> Vec<KeyValue> {
        // Static, owned and numeric keys and values, so that owned memory
        // moves with the record too.
        (0..n)
            .map(|i| match i % 3 {
                0 => KeyValue::new(format!("k.static.{i}"), i as i64),
                1 => KeyValue::new(format!("k.owned.{i}"), format!("value {i}")),
                _ => KeyValue::new(format!("k.flag.{i}"), true),
            })
            .collect()
    }

    /// Both builds of [`Span::finish_recording`] record the same spans, from
    /// none to a spilled set of attributes. On a CPU with AVX every other test
    /// takes the AVX build, so the baseline build is called here by name.
    #[test]
    fn both_builds_of_the_end_record_the_same_span() {
        let exporter = InMemoryExporter::new();
        let tracer = crate::builder().exporter(exporter.clone()).log_at_shutdown(false).install().unwrap();
        let make = |n: usize| {
            let mut s = Span::root("end");
            for kv in attributes(n) {
                s.set_attribute(kv.key, kv.value);
            }
            s.set_status(Status::error("failed"));
            s
        };
        let mut ended = Vec::new();
        for n in 0..7 {
            let mut s = make(n);
            s.finish_recording_baseline(local::get(), None);
            ended.push(n);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx") {
                let mut s = make(n);
                // SAFETY: the CPU has AVX, checked just above.
                unsafe { s.finish_recording_avx(local::get(), None) };
                ended.push(n);
            }
        }
        tracer.shutdown(Duration::from_secs(5)).unwrap();
        let spans = exporter.spans();
        assert_eq!(spans.len(), ended.len());
        for (r, n) in spans.iter().zip(ended) {
            assert_eq!(r.attributes.to_vec(), attributes(n), "{n} attributes");
            assert_eq!((r.name.as_ref(), &r.status), ("end", &Status::error("failed")));
            assert!(r.start_unix_nanos > 0 && r.start_unix_nanos <= r.end_unix_nanos, "{r:?}");
        }
    }
}
