//! `SpanRecord`: a finished span as the exporter receives it.
//!
//! The record is shaped after the OTLP `Span` message so an exporter can encode it
//! field by field with no intermediate span type: IDs as integers, times as Unix
//! nanoseconds, attributes as typed key-values. Up to four attributes live inline
//! (no heap allocation for the common span); events and links, which most spans do
//! not have, live behind one optional box so they cost a pointer when absent.

use crate::clock::{Anchor, Clock};
use crate::context::{SpanContext, TraceState};
use crate::ids::{SpanId, TraceFlags, TraceId};
use crate::value::{KeyValue, Str};

pub use crate::attributes::Attributes;

/// The role of a span in a trace (OTLP `SpanKind`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SpanKind {
    /// An internal operation.
    #[default]
    Internal = 1,
    /// Handling of a synchronous remote request.
    Server = 2,
    /// A synchronous remote request.
    Client = 3,
    /// Sending a message.
    Producer = 4,
    /// Receiving a message.
    Consumer = 5,
}

/// The status of a span.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Not set (the default).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a description.
    Error {
        /// What went wrong.
        message: Str,
    },
}

impl Status {
    /// An error status with a message.
    pub fn error(message: impl Into<Str>) -> Self {
        Status::Error { message: message.into() }
    }
    /// The OTLP status code (0 unset, 1 ok, 2 error).
    pub fn code(&self) -> u8 {
        match self {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error { .. } => 2,
        }
    }
}

/// A timestamped event on a span.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event name.
    pub name: Str,
    /// When it happened, Unix nanoseconds.
    pub time_unix_nanos: u64,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by the per-event limit.
    pub dropped_attributes_count: u32,
}

impl Event {
    /// An event with no name, time or attributes (a placeholder).
    pub(crate) fn empty() -> Event {
        Event { name: Str::Borrowed(""), time_unix_nanos: 0, attributes: Vec::new(), dropped_attributes_count: 0 }
    }
}

/// A link from a span to another span (in this or another trace).
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The linked span.
    pub context: SpanContext,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
    /// Attributes dropped by the per-link limit.
    pub dropped_attributes_count: u32,
}

impl Link {
    /// A link with attributes.
    pub fn new(context: SpanContext, attributes: Vec<KeyValue>) -> Self {
        Link { context, attributes, dropped_attributes_count: 0 }
    }
}

/// Events and links: rare, so boxed away from the record.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanExtras {
    /// Events in the order they were added.
    pub events: Vec<Event>,
    /// Links in the order they were added.
    pub links: Vec<Link>,
    /// Events dropped by the event count limit.
    pub dropped_events_count: u32,
    /// Links dropped by the link count limit.
    pub dropped_links_count: u32,
}

/// A finished span.
///
/// `repr(C)`: the times and the flag saying whether they are still clock
/// ticks share the record's first cache line (when it starts on a line), and
/// the attributes come last, so the bytes in use are a prefix of the
/// struct (see [`SpanRecord::copy_used_to`]).
#[derive(Clone, Debug, PartialEq)]
#[repr(C)]
pub struct SpanRecord {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// This span's ID.
    pub span_id: SpanId,
    /// The parent's span ID; [`SpanId::INVALID`] for a root span.
    pub parent_span_id: SpanId,
    /// Start, Unix nanoseconds.
    pub start_unix_nanos: u64,
    /// End, Unix nanoseconds.
    pub end_unix_nanos: u64,
    /// Which of the two times are still clock ticks ([`RAW_START`],
    /// [`RAW_END`]): a thread ending a span stores its tick readings, and its
    /// batch converts them with [`SpanRecord::settle_times`] before an exporter
    /// reads any record (see `SpanBatch`). Next to the times, so that the
    /// conversion touches one cache line of the record; in what was a byte of
    /// padding, so the record does not grow.
    pub(crate) raw_times: u8,
    /// W3C flags (sampled, random).
    pub flags: TraceFlags,
    /// Whether the parent came from another process.
    pub parent_is_remote: bool,
    /// The kind.
    pub kind: SpanKind,
    /// Attributes dropped by the count limit.
    pub dropped_attributes_count: u32,
    /// The trace state, carrying the sampling threshold the trace was kept with.
    pub trace_state: TraceState,
    /// The span name.
    pub name: Str,
    /// Status.
    pub status: Status,
    /// Events and links, if any.
    pub extras: Option<Box<SpanExtras>>,
    /// Attributes (last: see the type's documentation).
    pub attributes: Attributes,
}

/// [`SpanRecord::raw_times`]: the start time is a tick reading.
pub(crate) const RAW_START: u8 = 1;
/// [`SpanRecord::raw_times`]: the end time is a tick reading.
pub(crate) const RAW_END: u8 = 2;

impl SpanRecord {
    /// A record for a span just started at tick `start_ticks`: no attributes,
    /// events or status yet, its end filled in when it ends.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn started(
        trace_id: TraceId,
        span_id: SpanId,
        parent_span_id: SpanId,
        flags: TraceFlags,
        parent_is_remote: bool,
        trace_state: TraceState,
        name: Str,
        start_ticks: u64,
    ) -> SpanRecord {
        SpanRecord {
            trace_id,
            span_id,
            parent_span_id,
            flags,
            parent_is_remote,
            kind: SpanKind::Internal,
            trace_state,
            name,
            start_unix_nanos: start_ticks,
            end_unix_nanos: 0,
            raw_times: RAW_START,
            attributes: Attributes::new(),
            dropped_attributes_count: 0,
            status: Status::Unset,
            extras: None,
        }
    }

    /// Copies the bytes of this record in use — everything but the unused
    /// inline attribute slots at its end — to `dst`.
    ///
    /// Fixed-size copies, unrolled: the header in one, then each attribute in
    /// use. A `memcpy` of the length in use cost ~38 instructions per span,
    /// mostly its dispatch on the length.
    ///
    /// # Safety
    /// `dst` is valid for writing a whole record and does not overlap `self`;
    /// afterwards the bytes at `dst` own what `self` owned (the caller must not
    /// drop or use `self` as a record again).
    #[inline(always)]
    pub(crate) unsafe fn copy_used_to(&self, dst: *mut SpanRecord) {
        const HEAD: usize = std::mem::offset_of!(SpanRecord, attributes) + Attributes::HEADER_BYTES;
        const KV: usize = std::mem::size_of::<KeyValue>();
        const _: () = assert!(crate::attributes::INLINE_ATTRIBUTES == 4, "the copy below is unrolled for four");
        let src = self as *const SpanRecord as *const u8;
        let dst = dst as *mut u8;
        let n = self.attributes.inline_len();
        // SAFETY: in bounds of both records (the header, then `n` of the
        // inline slots, which follow it: see `Attributes`); by the caller's
        // promise `dst` is writable and disjoint.
        unsafe {
            // In two halves: LLVM calls `memcpy` for a fixed copy of more than
            // eight 16-byte stores.
            const FIRST: usize = HEAD / 2;
            std::ptr::copy_nonoverlapping(src as *const [u8; FIRST], dst as *mut [u8; FIRST], 1);
            std::ptr::copy_nonoverlapping(
                src.add(FIRST) as *const [u8; HEAD - FIRST],
                dst.add(FIRST) as *mut [u8; HEAD - FIRST],
                1,
            );
            let (src, dst) = (src.add(HEAD) as *const [u8; KV], dst.add(HEAD) as *mut [u8; KV]);
            // Unrolled by hand: a loop here becomes a `memcpy` call again.
            if n > 0 {
                std::ptr::copy_nonoverlapping(src, dst, 1);
                if n > 1 {
                    std::ptr::copy_nonoverlapping(src.add(1), dst.add(1), 1);
                    if n > 2 {
                        std::ptr::copy_nonoverlapping(src.add(2), dst.add(2), 1);
                        if n > 3 {
                            std::ptr::copy_nonoverlapping(src.add(3), dst.add(3), 1);
                        }
                    }
                }
            }
        }
    }

    /// Converts the times still in clock ticks to Unix nanoseconds. A batch
    /// calls this for each of its records before an exporter reads them:
    /// keeping the 128-bit multiplies and the anchor's sequence-lock read off
    /// the thread that ended the span took ~25 instructions from each span
    /// (callgrind).
    #[inline]
    pub(crate) fn settle_times(&mut self, anchor: Anchor) {
        if self.raw_times & RAW_START != 0 {
            self.start_unix_nanos = Clock::convert(anchor, self.start_unix_nanos);
        }
        if self.raw_times & RAW_END != 0 {
            self.end_unix_nanos = Clock::convert(anchor, self.end_unix_nanos);
        }
        self.raw_times = 0;
    }

    /// This span's context (as a child would see its parent).
    pub fn context(&self) -> SpanContext {
        SpanContext::new(self.trace_id, self.span_id, self.flags, false, self.trace_state.clone())
    }
    /// The span's events (empty if none).
    pub fn events(&self) -> &[Event] {
        self.extras.as_deref().map_or(&[], |e| &e.events)
    }
    /// The span's links (empty if none).
    pub fn links(&self) -> &[Link] {
        self.extras.as_deref().map_or(&[], |e| &e.links)
    }
    /// The value of an attribute, by key.
    pub fn attribute(&self, key: &str) -> Option<&crate::value::Value> {
        self.attributes.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }
    /// Duration in nanoseconds (0 if the clock went backwards).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::KeyValue;

    #[test]
    fn copying_the_bytes_in_use_gives_an_equal_record() {
        // 0 to 4 inline attributes, then spilled ones (the header's vector
        // holds them), with owned strings so that ownership moves too.
        for n in 0..7 {
            let mut rec = SpanRecord::started(
                TraceId::from_u128(7),
                SpanId::from_u64(8),
                SpanId::from_u64(9),
                TraceFlags::SAMPLED,
                true,
                TraceState::EMPTY,
                Str::Owned(format!("span {n}")),
                0,
            );
            rec.start_unix_nanos = 1;
            rec.end_unix_nanos = 2;
            rec.status = Status::error("failed");
            for i in 0..n {
                rec.attributes.push(KeyValue::new(format!("k{i}"), format!("v{i}")));
            }
            let expected = rec.clone();
            let src = std::mem::ManuallyDrop::new(rec);
            let mut dst = std::mem::MaybeUninit::<SpanRecord>::uninit();
            // SAFETY: `dst` is a whole, disjoint record; `src` is never dropped
            // or used again (its heap data now belongs to `dst`).
            let copy = unsafe {
                src.copy_used_to(dst.as_mut_ptr());
                dst.assume_init()
            };
            assert_eq!(copy, expected, "{n} attributes");
        }
    }

    #[test]
    fn settling_converts_only_the_times_still_in_ticks() {
        // 2 ns per tick from tick 100 at Unix time 1 000 000.
        let anchor = (100, 1_000_000, 2u64 << 32);
        let started = |start_ticks| {
            SpanRecord::started(
                TraceId::from_u128(1),
                SpanId::from_u64(1),
                SpanId::INVALID,
                TraceFlags::SAMPLED,
                false,
                TraceState::EMPTY,
                Str::Borrowed("s"),
                start_ticks,
            )
        };
        let mut both = started(150);
        both.end_unix_nanos = 400;
        both.raw_times |= RAW_END;
        both.settle_times(anchor);
        assert_eq!((both.start_unix_nanos, both.end_unix_nanos, both.raw_times), (1_000_100, 1_000_600, 0));
        both.settle_times(anchor);
        assert_eq!((both.start_unix_nanos, both.end_unix_nanos), (1_000_100, 1_000_600), "settled once only");
        let mut given_end = started(150);
        given_end.end_unix_nanos = 7;
        given_end.settle_times(anchor);
        assert_eq!((given_end.start_unix_nanos, given_end.end_unix_nanos), (1_000_100, 7));
    }

    #[test]
    fn record_size_is_known() {
        // The hot path moves records by value: keep an eye on their size.
        let n = std::mem::size_of::<super::SpanRecord>();
        assert!(n <= 368, "SpanRecord grew to {n} bytes");
        println!("SpanRecord: {n} bytes");
    }
}
