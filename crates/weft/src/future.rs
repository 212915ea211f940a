//! Futures instrumentation: a span that follows a task across `.await` points and
//! threads. Each poll makes the span the local parent for the duration of that
//! poll, so spans started inside the future — on whatever worker thread polls it —
//! become its children; the span ends when the future completes or is dropped.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::span::Span;

pin_project_lite::pin_project! {
    /// A future running inside a span. Created by [`FutureExt::in_span`].
    pub struct InSpan<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = poll_in_span(this.span, || this.inner.poll(cx));
        if out.is_ready() {
            // End the span as soon as the work is done, not when the wrapper drops.
            this.span.take();
        }
        out
    }
}

/// Runs one poll with `span` as the local parent, then moves into the span any
/// events added for it during the poll (`add_event_to_current`), since the span
/// may end on another thread. Every future that carries a span polls through
/// this, so none of them can forget a step.
pub(crate) fn poll_in_span<R>(span: &mut Option<Span>, poll: impl FnOnce() -> R) -> R {
    let guard = span.as_ref().map(Span::set_local_parent);
    let out = poll();
    drop(guard);
    if let Some(span) = span.as_mut() {
        span.absorb_pending_events();
    }
    out
}

/// Adds [`FutureExt::in_span`] to every future.
pub trait FutureExt: Future + Sized {
    /// Runs this future inside `span`: spans started while it is polled are the
    /// span's children, and the span ends when the future completes.
    fn in_span(self, span: Span) -> InSpan<Self> {
        InSpan { inner: self, span: Some(span) }
    }
}

impl<F: Future> FutureExt for F {}
