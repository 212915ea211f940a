//! # weft-tracing — `tracing` spans and events as weft spans
//!
//! [`WeftLayer`] is a `tracing_subscriber::Layer`: every `tracing` span becomes a
//! weft span (its fields become attributes, its parent the enclosing `tracing`
//! span or the current weft local parent), and every event inside a span
//! becomes a span event. Crates already instrumented with `tracing` (tower-http,
//! sqlx, …) then flow into weft with its accounting and bounded memory.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let spans = weft::InMemoryExporter::new();
//! let tracer = weft::builder().exporter(spans.clone()).log_at_shutdown(false).install().unwrap();
//! let subscriber = tracing_subscriber::registry().with(weft_tracing::WeftLayer::new());
//! tracing::subscriber::with_default(subscriber, || {
//!     let request = tracing::info_span!("request", user = "ada");
//!     let _entered = request.enter();
//!     tracing::info!(rows = 3, "loaded");
//! });
//! tracer.shutdown(std::time::Duration::from_secs(5)).unwrap();
//! assert_eq!(spans.spans()[0].events()[0].name, "loaded");
//! ```
//!
//! While a `tracing` span is entered, its weft span is also weft's local parent,
//! so spans made with weft's own API inside it nest under it.

#![deny(missing_docs)]

use std::cell::RefCell;
use std::fmt;

use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use weft::{KeyValue, LocalParentGuard, Span, Value};

mod subscriber;
pub use subscriber::WeftSubscriber;

/// The layer. Add it to a `tracing_subscriber::registry()`.
#[derive(Debug, Clone, Copy)]
pub struct WeftLayer {
    location: bool,
}

impl Default for WeftLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl WeftLayer {
    /// A layer recording into the installed weft tracer.
    pub fn new() -> Self {
        WeftLayer { location: true }
    }

    /// Whether each span records `code.filepath` and `code.lineno` of its
    /// callsite (default true, as tracing-opentelemetry does). `code.namespace`
    /// (the target) is always recorded.
    pub fn with_location(mut self, on: bool) -> Self {
        self.location = on;
        self
    }
}

/// The weft span of a `tracing` span, kept in the registry's extensions.
struct WeftSpan(Span);

thread_local! {
    /// Local-parent guards of the `tracing` spans entered on this thread, in order.
    static ENTERED: RefCell<Vec<(Id, LocalParentGuard)>> = const { RefCell::new(Vec::new()) };
}

/// Where visited `tracing` fields go: straight onto a span as attributes, or
/// into an event's attribute list (with its `message` apart).
pub(crate) enum Sink<'a> {
    Span(&'a mut Span),
    Event(&'a mut Vec<KeyValue>, &'a mut String),
}

impl Sink<'_> {
    fn put(&mut self, key: &'static str, value: Value) {
        match self {
            Sink::Span(s) => s.set_attribute(key, value),
            Sink::Event(v, _) => v.push(KeyValue::new(key, value)),
        }
    }
    fn message(&mut self, f: &Field) -> Option<&mut String> {
        match self {
            Sink::Event(_, m) if f.name() == "message" => Some(&mut **m),
            _ => None,
        }
    }
}

impl Visit for Sink<'_> {
    fn record_i64(&mut self, f: &Field, v: i64) {
        self.put(f.name(), Value::I64(v));
    }
    fn record_u64(&mut self, f: &Field, v: u64) {
        self.put(f.name(), Value::from(v));
    }
    fn record_bool(&mut self, f: &Field, v: bool) {
        self.put(f.name(), Value::Bool(v));
    }
    fn record_f64(&mut self, f: &Field, v: f64) {
        self.put(f.name(), Value::F64(v));
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        if let Some(m) = self.message(f) {
            *m = v.to_owned();
            return;
        }
        self.put(f.name(), Value::from(v.to_owned()));
    }
    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        if let Some(m) = self.message(f) {
            *m = format!("{v:?}");
            return;
        }
        self.put(f.name(), Value::from(format!("{v:?}")));
    }
}

fn level_value(l: &Level) -> Value {
    Value::from(l.as_str())
}

/// Where a new weft span hangs.
pub(crate) enum ParentChoice {
    /// Under weft's current local parent (a root if there is none).
    Current,
    /// A new trace.
    Root,
    /// Under this span.
    Explicit(weft::SpanContext),
}

/// Starts the weft span of a new `tracing` span: its fields and (with
/// `location`) its code location become attributes. The common case — the parent
/// is the current local parent — takes weft's fast start path (`Span::child`),
/// which copies the record far less than the general builder.
pub(crate) fn start_span(parent: ParentChoice, attrs: &Attributes<'_>, location: bool) -> Span {
    let meta = attrs.metadata();
    let mut span = match parent {
        ParentChoice::Current => Span::child(meta.name()),
        ParentChoice::Root => Span::root(meta.name()),
        ParentChoice::Explicit(ctx) => Span::child_of(&ctx, meta.name()),
    };
    if span.is_recording() {
        attrs.record(&mut Sink::Span(&mut span));
        span.set_attribute("code.namespace", meta.target());
        if location {
            if let Some(file) = meta.file() {
                span.set_attribute("code.filepath", file);
            }
            if let Some(line) = meta.line() {
                span.set_attribute("code.lineno", i64::from(line));
            }
        }
    }
    span
}

/// Records a `tracing` event as an event on `span`: the message is its name, the
/// fields, level and target its attributes; an ERROR event sets the error status.
pub(crate) fn record_event(span: &mut Span, event: &Event<'_>) {
    if !span.is_recording() {
        return;
    }
    let mut fields = Vec::new();
    let mut message = String::new();
    event.record(&mut Sink::Event(&mut fields, &mut message));
    let meta = event.metadata();
    fields.push(KeyValue::new("level", level_value(meta.level())));
    fields.push(KeyValue::new("target", meta.target()));
    let name = if message.is_empty() { meta.name().to_owned() } else { message };
    if *meta.level() == Level::ERROR {
        span.set_status(weft::Status::error(name.clone()));
    }
    span.add_event(name, fields);
}

impl<S> Layer<S> for WeftLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else { return };
        let mut parent = ParentChoice::Current;
        // The parent: the enclosing tracing span's weft span if it has one;
        // otherwise the builder's default, weft's current local parent. When the
        // enclosing span is the one entered last on this thread, it already is
        // weft's local parent, and the builder's default takes weft's fast path
        // without looking the parent up in the registry. (A contextual span's
        // parent is the registry's current span, which is the last one entered.)
        let top = ENTERED.try_with(|e| e.borrow().last().map(|(id, _)| id.clone())).ok().flatten();
        let parent_is_current = match attrs.parent() {
            Some(explicit) => top.as_ref() == Some(explicit),
            None => attrs.is_contextual() && top.is_some(),
        };
        if !parent_is_current {
            if let Some(enclosing) = span_ref.parent() {
                if let Some(p) = enclosing.extensions().get::<WeftSpan>() {
                    parent = ParentChoice::Explicit(p.0.context());
                }
            } else if attrs.is_root() {
                parent = ParentChoice::Root;
            }
        }
        let span = start_span(parent, attrs, self.location);
        span_ref.extensions_mut().insert(WeftSpan(span));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else { return };
        let mut ext = span_ref.extensions_mut();
        if let Some(WeftSpan(span)) = ext.get_mut::<WeftSpan>() {
            if span.is_recording() {
                values.record(&mut Sink::Span(span));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.event_span(event) else { return };
        let mut ext = span_ref.extensions_mut();
        let Some(WeftSpan(span)) = ext.get_mut::<WeftSpan>() else { return };
        if !span.is_recording() {
            return;
        }
        record_event(span, event);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(id) else { return };
        let ext = span_ref.extensions();
        if let Some(WeftSpan(span)) = ext.get::<WeftSpan>() {
            let guard = span.set_local_parent();
            let _ = ENTERED.try_with(|e| e.borrow_mut().push((id.clone(), guard)));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        let _ = ENTERED.try_with(|e| {
            let mut e = e.borrow_mut();
            // Usually the last one; exits out of order are tolerated.
            if let Some(pos) = e.iter().rposition(|(i, _)| i == id) {
                let (_, guard) = e.remove(pos);
                drop(guard);
            }
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span_ref) = ctx.span(&id) else { return };
        // Ended where it lies: moving the record out of the extensions first
        // would copy it once more.
        let mut ext = span_ref.extensions_mut();
        if let Some(WeftSpan(span)) = ext.get_mut::<WeftSpan>() {
            span.end_now();
        }
    }
}
