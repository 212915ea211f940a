//! # weft — the tracing SDK
//!
//! weft records spans in tens of nanoseconds, never takes a lock or writes a
//! shared cache line on the common path, bounds its memory in bytes, and never
//! loses a span silently: every span that ends is exported, sampled out, or
//! dropped for a counted reason ([`Stats`]).
//!
//! ## Using it
//!
//! ```
//! use std::time::Duration;
//! use weft::{Span, SpanKind, Status};
//!
//! let spans = weft::InMemoryExporter::new();
//! let tracer = weft::builder()
//!     .service_name("checkout")
//!     .exporter(spans.clone())
//!     .log_at_shutdown(false)
//!     .install()
//!     .expect("no other tracer installed");
//!
//! {
//!     // A new trace: a server span, made the local parent of this thread.
//!     let mut request = Span::builder("POST /pay").kind(SpanKind::Server).enter();
//!     request.set_attribute("http.request.method", "POST");
//!     {
//!         let mut db = Span::child("db.query"); // child of "POST /pay"
//!         db.set_attribute("db.rows", 3);
//!     }
//!     request.set_status(Status::Ok);
//! }
//!
//! let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
//! assert_eq!(stats.exported, 2);
//! assert!(stats.is_balanced());
//! assert_eq!(spans.spans()[0].name, "db.query");
//! ```
//!
//! Async code uses [`FutureExt::in_span`] or the [`trace`] attribute; the span
//! then follows the task across `.await` points and worker threads.
//!
//! ## How a span travels
//!
//! 1. [`Span::child`] / [`Span::enter`] read the thread-local parent
//!    ([`local`](crate::span::LocalParentGuard)), take a span ID from a
//!    thread-local generator and read the TSC.
//! 2. Dropping the span writes its [`SpanRecord`] into the thread's current chunk
//!    and publishes it with one store (`buffer`).
//! 3. The collector thread picks up published records from every thread and
//!    hands them, in place, to the [`SpanExporter`] in [`SpanBatch`]es.
//! 4. All buffer memory is charged to one byte budget. Above its high-water mark
//!    the adaptive stage ([`sampler::adaptive`]) sheds *new* traces whole, so
//!    memory stays bounded and every kept trace is complete.
//!
//! A thread's buffered spans are delivered after the thread exits, and
//! [`Tracer::force_flush`] / [`Tracer::shutdown`] wait until every finished span
//! has reached the exporter.

#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]

mod attributes;
mod buffer;
mod clock;
mod collector;
mod context;
pub mod env;
mod error;
mod export;
mod future;
pub mod http_layer;
mod ids;
mod local;
pub mod log_bridge;
pub mod otlp_encode;
pub mod propagation;
mod record;
mod resource;
pub mod sampler;
mod span;
mod stats;
#[cfg(test)]
mod testing;
mod thread_priority;
mod tracer;
mod value;

pub use attributes::INLINE_ATTRIBUTES;
pub use context::{SpanContext, TraceState};
pub use env::EnvConfig;
pub use error::{InitError, ParseError};
pub use export::{
    ConsoleExporter, DirectSubmit, ExportError, ExportResult, InMemoryExporter, Settlement, SpanBatch, SpanExporter,
};
pub use future::{FutureExt, InSpan};
pub use ids::{SpanId, TraceFlags, TraceId};
pub use record::{Attributes, Event, Link, SpanExtras, SpanKind, SpanRecord, Status};
pub use resource::Resource;
pub use span::{
    add_event_to_current, current_context, current_is_recording, EnteredSpan, LocalParentGuard, Span, SpanBuilder,
};
pub use stats::{Dropped, SampledOutTraces, Stats};
pub use tracer::{stats, FlushError, SpanLimits, Tracer, TracerBuilder, DEFAULT_MEMORY_LIMIT};
pub use value::{Array, Key, KeyValue, Str, Value};
/// Instruments a function with a span: `#[weft::trace]`,
/// `#[weft::trace(name = "custom")]`, `#[weft::trace(record(arg1, arg2))]`.
/// Works on `async fn` too: the span then follows the future.
pub use weft_macros::trace;

/// A builder for the tracer; finish with [`TracerBuilder::install`].
pub fn builder() -> TracerBuilder {
    TracerBuilder::default()
}

#[doc(hidden)]
pub mod __private {
    //! Used by the `#[trace]` macro's expansion; not a public API.
    pub use crate::future::FutureExt;

    /// Formats a recorded argument.
    pub fn debug_value<T: std::fmt::Debug + ?Sized>(v: &T) -> crate::Value {
        crate::Value::String(format!("{v:?}").into())
    }
}
