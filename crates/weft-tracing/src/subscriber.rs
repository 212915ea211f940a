//! [`WeftSubscriber`]: a complete `tracing` subscriber that records straight into
//! weft, for programs where weft is the only consumer of `tracing` data.
//!
//! [`crate::WeftLayer`] composes with other layers (a `fmt` layer, filters) but
//! sits on `tracing-subscriber`'s registry, which keeps its own record of every
//! span — a slab entry, a type-keyed extensions map, a boxed copy of the weft
//! span — and about half of the layer's cost per span is that registry
//! (measured, `docs/benchmarks.md`). This subscriber keeps only what weft needs:
//! each `tracing` span's weft span, in place, in a lock-free pool slot, with a
//! reference count; the spans entered on a thread in a thread-local stack. Same
//! mapping as the layer: fields → attributes, events → span events, an entered
//! span is weft's local parent, `follows_from` → a link.

use std::cell::RefCell;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use sharded_slab::{Clear, Pool};
use tracing_core::span::{Attributes, Current, Id, Record};
use tracing_core::{Event, Metadata, Subscriber};
use weft::{LocalParentGuard, Span};

use crate::{record_event, start_span, ParentChoice, Sink};

/// A `tracing` subscriber that records spans and events as weft spans, with no
/// registry in between. Install it with `tracing::subscriber::set_global_default`.
///
/// ```
/// let spans = weft::InMemoryExporter::new();
/// let tracer = weft::builder().exporter(spans.clone()).log_at_shutdown(false).install().unwrap();
/// tracing::subscriber::with_default(weft_tracing::WeftSubscriber::new(), || {
///     let request = tracing::info_span!("request", user = "ada");
///     let _entered = request.enter();
///     tracing::info!(rows = 3, "loaded");
/// });
/// tracer.shutdown(std::time::Duration::from_secs(5)).unwrap();
/// assert_eq!(spans.spans()[0].name, "request");
/// assert_eq!(spans.spans()[0].events()[0].name, "loaded");
/// ```
#[derive(Debug)]
pub struct WeftSubscriber {
    spans: Pool<Slot>,
    location: bool,
}

/// One live `tracing` span.
#[derive(Default)]
struct Slot {
    /// `None` only while the slot is free.
    span: Mutex<Option<Span>>,
    meta: Option<&'static Metadata<'static>>,
    /// `tracing` handles to this span (`clone_span` / `try_close`).
    refs: AtomicUsize,
}

impl Clear for Slot {
    fn clear(&mut self) {
        // The span was ended by `try_close`; this drops its (ended) value.
        if let Ok(s) = self.span.get_mut() {
            *s = None;
        }
        self.meta = None;
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("refs", &self.refs).finish_non_exhaustive()
    }
}

thread_local! {
    /// Spans entered on this thread, innermost last, each holding weft's local
    /// parent while entered.
    static ENTERED: RefCell<Vec<(Id, LocalParentGuard)>> = const { RefCell::new(Vec::new()) };
}

fn key(id: &Id) -> usize {
    (id.into_u64() - 1) as usize
}

fn top() -> Option<Id> {
    ENTERED.try_with(|e| e.borrow().last().map(|(id, _)| id.clone())).ok().flatten()
}

impl Default for WeftSubscriber {
    fn default() -> Self {
        Self::new()
    }
}

impl WeftSubscriber {
    /// A subscriber recording code location attributes (`code.filepath`,
    /// `code.lineno`), as the layer and `tracing-opentelemetry` do by default.
    pub fn new() -> Self {
        WeftSubscriber { spans: Pool::new(), location: true }
    }

    /// Whether to record `code.filepath` and `code.lineno` on every span.
    pub fn with_location(mut self, on: bool) -> Self {
        self.location = on;
        self
    }

    /// Runs `f` on the weft span of `id`, if it is live.
    fn with_span<R>(&self, id: &Id, f: impl FnOnce(&mut Span) -> R) -> Option<R> {
        let slot = self.spans.get(key(id))?;
        let mut guard = slot.span.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_mut().map(f)
    }

    /// The span an event or a new span belongs to: its explicit parent, or for a
    /// contextual one the span entered last on this thread.
    fn parent_of(explicit: Option<&Id>, contextual: bool) -> Option<Id> {
        match explicit {
            Some(id) => Some(id.clone()),
            None if contextual => top(),
            None => None,
        }
    }
}

impl Subscriber for WeftSubscriber {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let meta = attrs.metadata();
        let parent = match Self::parent_of(attrs.parent(), attrs.is_contextual()) {
            // The span entered last is weft's local parent already: weft's fast
            // start path.
            Some(p) if Some(&p) == top().as_ref() => ParentChoice::Current,
            Some(p) => self.with_span(&p, |s| s.context()).map_or(ParentChoice::Current, ParentChoice::Explicit),
            None if attrs.is_root() => ParentChoice::Root,
            None => ParentChoice::Current,
        };
        // Built straight into the pool slot: a span is a few hundred bytes, and
        // every move of it was measured as a copy.
        let location = self.location;
        let mut parent = Some(parent);
        let created = self.spans.create_with(|slot| {
            if let (Ok(s), Some(p)) = (slot.span.get_mut(), parent.take()) {
                *s = Some(start_span(p, attrs, location));
            }
            slot.meta = Some(meta);
            slot.refs.store(1, Ordering::Relaxed);
        });
        if let Some(p) = parent {
            // The pool is full and the closure did not run: the span still starts
            // and ends here, so it is counted and exported like any other.
            drop(start_span(p, attrs, location));
        }
        match created {
            Some(k) => Id::from_non_zero_u64(NonZeroU64::MIN.saturating_add(k as u64)),
            // The pool is full (more live spans than sharded-slab's limit): the
            // handle refers to nothing.
            None => Id::from_u64(u64::MAX),
        }
    }

    fn record(&self, id: &Id, values: &Record<'_>) {
        self.with_span(id, |span| {
            if span.is_recording() {
                values.record(&mut Sink::Span(span));
            }
        });
    }

    fn record_follows_from(&self, id: &Id, follows: &Id) {
        let Some(ctx) = self.with_span(follows, |s| s.context()) else { return };
        self.with_span(id, |span| span.add_link(ctx, Vec::new()));
    }

    fn event(&self, event: &Event<'_>) {
        let Some(parent) = Self::parent_of(event.parent(), event.is_contextual()) else { return };
        self.with_span(&parent, |span| record_event(span, event));
    }

    fn enter(&self, id: &Id) {
        if let Some(guard) = self.with_span(id, |span| span.set_local_parent()) {
            let _ = ENTERED.try_with(|e| e.borrow_mut().push((id.clone(), guard)));
        }
    }

    fn exit(&self, id: &Id) {
        let _ = ENTERED.try_with(|e| {
            let mut e = e.borrow_mut();
            // Usually the last one; exits out of order are tolerated.
            if let Some(pos) = e.iter().rposition(|(i, _)| i == id) {
                let (_, guard) = e.remove(pos);
                drop(guard);
            }
        });
    }

    fn clone_span(&self, id: &Id) -> Id {
        if let Some(slot) = self.spans.get(key(id)) {
            slot.refs.fetch_add(1, Ordering::Relaxed);
        }
        id.clone()
    }

    fn try_close(&self, id: Id) -> bool {
        let Some(slot) = self.spans.get(key(&id)) else { return false };
        if slot.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        if let Some(span) = slot.span.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            span.end_now();
        }
        drop(slot);
        self.spans.clear(key(&id));
        true
    }

    fn current_span(&self) -> Current {
        match top().and_then(|id| self.spans.get(key(&id)).and_then(|s| s.meta).map(|m| (id, m))) {
            Some((id, meta)) => Current::new(id, meta),
            None => Current::none(),
        }
    }
}
