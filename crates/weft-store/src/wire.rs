//! Reading OTLP `Span` messages straight from their protobuf bytes, without
//! decoding them into `prost` structs.
//!
//! Sealing turns every stored span into a Parquet row. Decoding each span into
//! owned `prost` structs first (a `String` per name, key and value, a `Vec` per
//! list) and dropping them after was measured at a third of the sealer's CPU
//! (see `docs/benchmarks.md`, "With the store"), so the sealer reads the bytes
//! in place instead: [`parse_span`] checks a span completely (structure, UTF-8,
//! ID lengths) and returns borrowed views of its fields, with the nested lists
//! (attributes, events, links) kept in a [`Scratch`] reused across spans.
//!
//! The semantics follow `prost` decoding of the same bytes: unknown fields are
//! skipped, a scalar field that occurs twice keeps its last value, a field with
//! the wrong wire type is an error. A property test checks the views against
//! `prost` on arbitrary spans.

use std::ops::Range;

use crate::summary::{SpanFacts, STATUS_ERROR};

/// The wire form of one protobuf field.
#[derive(Debug, Clone, PartialEq)]
pub enum Wire {
    /// A varint, decoded.
    Varint(u64),
    /// A 64-bit fixed value.
    Fixed64(u64),
    /// A 32-bit fixed value.
    Fixed32(u32),
    /// A length-delimited field: where its bytes lie in the buffer.
    Len(Range<usize>),
}

/// Reads a varint at `*at` from `b`, advancing `at`.
pub fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        // The tenth byte holds bit 63 only; more would overflow 64 bits, which
        // prost (rightly) calls an invalid varint.
        if shift == 63 && byte > 1 {
            return None;
        }
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

/// Reads the next field of a message that spans `b[..end]`, from `*at`:
/// its field number and value. `None` if the bytes are not a valid field
/// (truncated, field number 0, groups — which OTLP never uses).
pub fn next_field(b: &[u8], at: &mut usize, end: usize) -> Option<(u64, Wire)> {
    let b = b.get(..end)?;
    let key = read_varint(b, at)?;
    let (field, wire) = (key >> 3, key & 7);
    // Field numbers run from 1 to 2^29 - 1, as protobuf (and prost) define them.
    if field == 0 || field >= 1 << 29 {
        return None;
    }
    let w = match wire {
        0 => Wire::Varint(read_varint(b, at)?),
        1 => {
            let v: [u8; 8] = b.get(*at..*at + 8)?.try_into().ok()?;
            *at += 8;
            Wire::Fixed64(u64::from_le_bytes(v))
        }
        5 => {
            let v: [u8; 4] = b.get(*at..*at + 4)?.try_into().ok()?;
            *at += 4;
            Wire::Fixed32(u32::from_le_bytes(v))
        }
        2 => {
            let len = usize::try_from(read_varint(b, at)?).ok()?;
            let stop = at.checked_add(len).filter(|s| *s <= end)?;
            let r = *at..stop;
            *at = stop;
            Wire::Len(r)
        }
        _ => return None,
    };
    Some((field, w))
}

/// Iterates over the fields of the message `b[r]`; yields `None` once if the
/// bytes are malformed, then stops.
fn fields(b: &[u8], r: Range<usize>) -> impl Iterator<Item = Option<(u64, Wire)>> + '_ {
    let mut at = r.start;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= r.end {
            return None;
        }
        let f = next_field(b, &mut at, r.end);
        failed = f.is_none();
        Some(f)
    })
}

/// Why a span's bytes could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("malformed span: {0}")]
pub struct WireError(pub &'static str);

/// An attribute value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// No value set.
    Empty,
    /// A string.
    Str(&'a str),
    /// An integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// Bytes, an array, a key-value list (or a string-table index): the encoded
    /// `AnyValue` message as sent.
    Other(&'a [u8]),
}

/// An attribute, borrowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KvRef<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its value.
    pub value: ValueRef<'a>,
}

/// A span event, borrowed; its attributes are `Scratch::kvs[attributes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRef<'a> {
    /// Time, Unix nanoseconds.
    pub time: u64,
    /// Name.
    pub name: &'a str,
    /// Where its attributes are in the scratch.
    pub attributes: Range<usize>,
    /// Attributes dropped by the sender.
    pub dropped_attributes: u32,
}

/// A span link, borrowed; its attributes are `Scratch::kvs[attributes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkRef<'a> {
    /// Linked trace (16 bytes, or empty when the sender left it out).
    pub trace_id: &'a [u8],
    /// Linked span (8 bytes, or empty).
    pub span_id: &'a [u8],
    /// W3C tracestate of the link.
    pub trace_state: &'a str,
    /// Where its attributes are in the scratch.
    pub attributes: Range<usize>,
    /// Attributes dropped by the sender.
    pub dropped_attributes: u32,
    /// W3C flags.
    pub flags: u32,
}

/// The nested lists of the spans parsed so far, kept together so that parsing
/// allocates nothing once the vectors have grown.
#[derive(Debug, Default)]
pub struct Scratch<'a> {
    /// Attributes of spans, events and links.
    pub kvs: Vec<KvRef<'a>>,
    /// Events.
    pub events: Vec<EventRef<'a>>,
    /// Links.
    pub links: Vec<LinkRef<'a>>,
}

/// Lengths of a [`Scratch`]'s lists at some moment, to go back to.
#[derive(Debug, Clone, Copy)]
pub struct Marks(usize, usize, usize);

impl Scratch<'_> {
    /// Empties it, keeping the allocations.
    pub fn clear(&mut self) {
        self.kvs.clear();
        self.events.clear();
        self.links.clear();
    }

    /// Where its lists end now.
    pub fn marks(&self) -> Marks {
        Marks(self.kvs.len(), self.events.len(), self.links.len())
    }

    /// Forgets what was added since `m` (a span read but not kept).
    pub fn truncate(&mut self, m: Marks) {
        self.kvs.truncate(m.0);
        self.events.truncate(m.1);
        self.links.truncate(m.2);
    }
}

/// A span, borrowed from its encoded bytes; the lists are in a [`Scratch`].
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRef<'a> {
    /// Trace ID (16 bytes).
    pub trace_id: [u8; 16],
    /// Span ID (8 bytes).
    pub span_id: [u8; 8],
    /// Parent span ID, `None` for a root.
    pub parent_span_id: Option<[u8; 8]>,
    /// W3C tracestate.
    pub trace_state: &'a str,
    /// W3C flags.
    pub flags: u32,
    /// Name.
    pub name: &'a str,
    /// OTLP span kind.
    pub kind: i32,
    /// Start, Unix nanoseconds.
    pub start: u64,
    /// End, Unix nanoseconds.
    pub end: u64,
    /// Where its attributes are in the scratch.
    pub attributes: Range<usize>,
    /// Attributes dropped by the sender.
    pub dropped_attributes: u32,
    /// Where its events are in the scratch.
    pub events: Range<usize>,
    /// Events dropped by the sender.
    pub dropped_events: u32,
    /// Where its links are in the scratch.
    pub links: Range<usize>,
    /// Links dropped by the sender.
    pub dropped_links: u32,
    /// Status code (0 unset, 1 ok, 2 error).
    pub status_code: i32,
    /// Status message.
    pub status_message: &'a str,
}

fn utf8(b: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(b).map_err(|_| WireError("a string is not valid UTF-8"))
}

const BAD: WireError = WireError("truncated or invalid protobuf field");

fn wrong(what: &'static str) -> WireError {
    WireError(what)
}

/// Parses the `AnyValue` message `b[r]`.
fn parse_any(b: &[u8], r: Range<usize>) -> Result<ValueRef<'_>, WireError> {
    let mut v = ValueRef::Empty;
    let whole = &b[r.clone()];
    for f in fields(b, r) {
        v = match f.ok_or(BAD)? {
            (1, Wire::Len(s)) => ValueRef::Str(utf8(&b[s])?),
            (2, Wire::Varint(x)) => ValueRef::Bool(x != 0),
            (3, Wire::Varint(x)) => ValueRef::Int(x as i64),
            (4, Wire::Fixed64(x)) => ValueRef::Double(f64::from_bits(x)),
            (5..=7, Wire::Len(_)) | (8, Wire::Varint(_)) => ValueRef::Other(whole),
            (1..=8, _) => return Err(wrong("an attribute value has the wrong wire type")),
            _ => v,
        };
    }
    if let ValueRef::Other(bytes) = v {
        // Arrays and maps nest further values: let the full decoder vouch for
        // them (rare, and readers decode this column with it anyway).
        <opentelemetry_proto::tonic::common::v1::AnyValue as prost::Message>::decode(bytes)
            .map_err(|_| wrong("an array or map attribute value does not decode"))?;
    }
    Ok(v)
}

/// Parses the `KeyValue` message `b[r]` into `kvs`.
fn parse_kv<'a>(b: &'a [u8], r: Range<usize>, kvs: &mut Vec<KvRef<'a>>) -> Result<(), WireError> {
    let mut kv = KvRef { key: "", value: ValueRef::Empty };
    for f in fields(b, r) {
        match f.ok_or(BAD)? {
            (1, Wire::Len(s)) => kv.key = utf8(&b[s])?,
            (2, Wire::Len(s)) => kv.value = parse_any(b, s)?,
            (3, Wire::Varint(_)) => {}
            (1..=3, _) => return Err(wrong("an attribute has a field of the wrong wire type")),
            _ => {}
        }
    }
    kvs.push(kv);
    Ok(())
}

fn id<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], WireError> {
    b.try_into().map_err(|_| WireError(what))
}

fn varint_u32(w: Wire, what: &'static str) -> Result<u32, WireError> {
    match w {
        Wire::Varint(x) => Ok(x as u32),
        _ => Err(WireError(what)),
    }
}

/// Parses an encoded OTLP `Span`, appending its attributes, events and links
/// to `scratch`. On error the scratch is left as it was. A span must have a
/// 16-byte trace ID and an 8-byte span ID; a parent ID is 8 bytes or absent.
pub fn parse_span<'a>(b: &'a [u8], scratch: &mut Scratch<'a>) -> Result<SpanRef<'a>, WireError> {
    let marks = scratch.marks();
    let r = parse_span_inner(b, scratch, marks);
    if r.is_err() {
        scratch.truncate(marks);
    }
    r
}

impl SpanRef<'_> {
    /// What a trace summary needs of it.
    pub fn facts<'s>(&'s self, service: &'s str) -> SpanFacts<'s> {
        SpanFacts {
            service,
            name: self.name,
            span_id: self.span_id,
            parent: self.parent_span_id,
            start: self.start,
            end: self.end,
            error: self.status_code == STATUS_ERROR,
        }
    }
}

fn parse_span_inner<'a>(b: &'a [u8], scratch: &mut Scratch<'a>, marks: Marks) -> Result<SpanRef<'a>, WireError> {
    let (mut trace_id, mut span_id, mut parent) = (None, None, None);
    let mut s = SpanRef {
        trace_id: [0; 16],
        span_id: [0; 8],
        parent_span_id: None,
        trace_state: "",
        flags: 0,
        name: "",
        kind: 0,
        start: 0,
        end: 0,
        attributes: 0..0,
        dropped_attributes: 0,
        events: 0..0,
        dropped_events: 0,
        links: 0..0,
        dropped_links: 0,
        status_code: 0,
        status_message: "",
    };
    // The span's own attributes go to the scratch as they come (one range);
    // events and links, which add attributes of their own, are read in further
    // passes over the top-level fields, so that every list stays contiguous
    // without collecting positions in a vector per span.
    let (mut has_events, mut has_links) = (false, false);
    for f in fields(b, 0..b.len()) {
        match f.ok_or(BAD)? {
            (1, Wire::Len(r)) => trace_id = Some(id::<16>(&b[r], "the trace ID is not 16 bytes")?),
            (2, Wire::Len(r)) => span_id = Some(id::<8>(&b[r], "the span ID is not 8 bytes")?),
            (3, Wire::Len(r)) => s.trace_state = utf8(&b[r])?,
            (4, Wire::Len(r)) => {
                parent = if r.is_empty() { None } else { Some(id::<8>(&b[r], "the parent span ID is not 8 bytes")?) }
            }
            (5, Wire::Len(r)) => s.name = utf8(&b[r])?,
            (6, w) => s.kind = varint_u32(w, "the kind is not a varint")? as i32,
            (7, Wire::Fixed64(x)) => s.start = x,
            (8, Wire::Fixed64(x)) => s.end = x,
            (9, Wire::Len(r)) => parse_kv(b, r, &mut scratch.kvs)?,
            (10, w) => s.dropped_attributes = varint_u32(w, "a dropped count is not a varint")?,
            (11, Wire::Len(_)) => has_events = true,
            (12, w) => s.dropped_events = varint_u32(w, "a dropped count is not a varint")?,
            (13, Wire::Len(_)) => has_links = true,
            (14, w) => s.dropped_links = varint_u32(w, "a dropped count is not a varint")?,
            (15, Wire::Len(r)) => {
                for f in fields(b, r) {
                    match f.ok_or(BAD)? {
                        (2, Wire::Len(m)) => s.status_message = utf8(&b[m])?,
                        (3, w) => s.status_code = varint_u32(w, "the status code is not a varint")? as i32,
                        (2, _) => return Err(wrong("the status has a field of the wrong wire type")),
                        _ => {}
                    }
                }
            }
            (16, Wire::Fixed32(x)) => s.flags = x,
            (1..=16, _) => return Err(wrong("a span field has the wrong wire type")),
            _ => {}
        }
    }
    s.attributes = marks.0..scratch.kvs.len();
    if has_events {
        for f in fields(b, 0..b.len()) {
            if let Some((11, Wire::Len(r))) = f {
                let e = parse_event(b, r, &mut scratch.kvs)?;
                scratch.events.push(e);
            }
        }
    }
    if has_links {
        for f in fields(b, 0..b.len()) {
            if let Some((13, Wire::Len(r))) = f {
                let l = parse_link(b, r, &mut scratch.kvs)?;
                scratch.links.push(l);
            }
        }
    }
    s.events = marks.1..scratch.events.len();
    s.links = marks.2..scratch.links.len();
    s.trace_id = trace_id.ok_or(WireError("the trace ID is missing"))?;
    s.span_id = span_id.ok_or(WireError("the span ID is missing"))?;
    s.parent_span_id = parent;
    Ok(s)
}

fn parse_event<'a>(b: &'a [u8], r: Range<usize>, kvs: &mut Vec<KvRef<'a>>) -> Result<EventRef<'a>, WireError> {
    let mut e = EventRef { time: 0, name: "", attributes: 0..0, dropped_attributes: 0 };
    let first = kvs.len();
    for f in fields(b, r) {
        match f.ok_or(BAD)? {
            (1, Wire::Fixed64(x)) => e.time = x,
            (2, Wire::Len(n)) => e.name = utf8(&b[n])?,
            (3, Wire::Len(kv)) => parse_kv(b, kv, kvs)?,
            (4, w) => e.dropped_attributes = varint_u32(w, "a dropped count is not a varint")?,
            (1..=4, _) => return Err(wrong("an event field has the wrong wire type")),
            _ => {}
        }
    }
    e.attributes = first..kvs.len();
    Ok(e)
}

fn parse_link<'a>(b: &'a [u8], r: Range<usize>, kvs: &mut Vec<KvRef<'a>>) -> Result<LinkRef<'a>, WireError> {
    let mut l =
        LinkRef { trace_id: &[], span_id: &[], trace_state: "", attributes: 0..0, dropped_attributes: 0, flags: 0 };
    let first = kvs.len();
    for f in fields(b, r) {
        match f.ok_or(BAD)? {
            (1, Wire::Len(t)) => l.trace_id = &b[t],
            (2, Wire::Len(t)) => l.span_id = &b[t],
            (3, Wire::Len(t)) => l.trace_state = utf8(&b[t])?,
            (4, Wire::Len(kv)) => parse_kv(b, kv, kvs)?,
            (5, w) => l.dropped_attributes = varint_u32(w, "a dropped count is not a varint")?,
            (6, Wire::Fixed32(x)) => l.flags = x,
            (1..=6, _) => return Err(wrong("a link field has the wrong wire type")),
            _ => {}
        }
    }
    l.attributes = first..kvs.len();
    Ok(l)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use proptest::prelude::*;
    use prost::Message;

    use super::*;
    use crate::columns::tests::rich_span;

    fn kvs(scratch: &Scratch<'_>, r: &Range<usize>) -> Vec<KeyValue> {
        scratch.kvs[r.clone()]
            .iter()
            .map(|kv| KeyValue {
                key: kv.key.to_owned(),
                value: match kv.value {
                    ValueRef::Empty => None,
                    ValueRef::Str(s) => Some(Any { value: Some(AnyValue::StringValue(s.to_owned())) }),
                    ValueRef::Int(i) => Some(Any { value: Some(AnyValue::IntValue(i)) }),
                    ValueRef::Double(d) => Some(Any { value: Some(AnyValue::DoubleValue(d)) }),
                    ValueRef::Bool(b) => Some(Any { value: Some(AnyValue::BoolValue(b)) }),
                    ValueRef::Other(o) => Some(Any::decode(o).unwrap()),
                },
                ..Default::default()
            })
            .collect()
    }

    /// The span the views describe, rebuilt as a `prost` struct.
    fn rebuild(s: &SpanRef<'_>, scratch: &Scratch<'_>) -> Span {
        Span {
            trace_id: s.trace_id.to_vec(),
            span_id: s.span_id.to_vec(),
            trace_state: s.trace_state.to_owned(),
            parent_span_id: s.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
            flags: s.flags,
            name: s.name.to_owned(),
            kind: s.kind,
            start_time_unix_nano: s.start,
            end_time_unix_nano: s.end,
            attributes: kvs(scratch, &s.attributes),
            dropped_attributes_count: s.dropped_attributes,
            events: scratch.events[s.events.clone()]
                .iter()
                .map(|e| Event {
                    time_unix_nano: e.time,
                    name: e.name.to_owned(),
                    attributes: kvs(scratch, &e.attributes),
                    dropped_attributes_count: e.dropped_attributes,
                })
                .collect(),
            dropped_events_count: s.dropped_events,
            links: scratch.links[s.links.clone()]
                .iter()
                .map(|l| Link {
                    trace_id: l.trace_id.to_vec(),
                    span_id: l.span_id.to_vec(),
                    trace_state: l.trace_state.to_owned(),
                    attributes: kvs(scratch, &l.attributes),
                    dropped_attributes_count: l.dropped_attributes,
                    flags: l.flags,
                })
                .collect(),
            dropped_links_count: s.dropped_links,
            status: (s.status_code != 0 || !s.status_message.is_empty())
                .then(|| Status { code: s.status_code, message: s.status_message.to_owned() }),
        }
    }

    #[test]
    fn a_rich_span_reads_as_prost_decodes_it() {
        let span = rich_span(1, 2).span;
        let bytes = span.encode_to_vec();
        let mut scratch = Scratch::default();
        let s = parse_span(&bytes, &mut scratch).unwrap();
        assert_eq!(rebuild(&s, &scratch), span);
        // A second span after it in the same scratch has its own ranges.
        let mut other = rich_span(3, 4).span;
        other.events.clear();
        other.attributes.truncate(2);
        let bytes2 = other.encode_to_vec();
        let s2 = parse_span(&bytes2, &mut scratch).unwrap();
        assert_eq!(rebuild(&s2, &scratch), other);
        assert_eq!(rebuild(&s, &scratch), span);
    }

    #[test]
    fn malformed_spans_are_errors_and_leave_the_scratch_alone() {
        let bytes = rich_span(1, 2).span.encode_to_vec();
        let mut scratch = Scratch::default();
        for cut in 1..bytes.len() {
            let before = scratch.marks();
            if parse_span(&bytes[..cut], &mut scratch).is_ok() {
                // A cut at a field boundary is a valid (smaller) span.
                continue;
            }
            assert_eq!((scratch.kvs.len(), scratch.events.len()), (before.0, before.1));
        }
        let mut no_ids = rich_span(1, 2).span;
        no_ids.span_id.clear();
        let fresh = || Scratch::default();
        assert_eq!(parse_span(&no_ids.encode_to_vec(), &mut fresh()).unwrap_err().0, "the span ID is missing");
        no_ids.trace_id = vec![1; 15];
        assert!(parse_span(&no_ids.encode_to_vec(), &mut fresh()).is_err());
        // A varint running past 64 bits (found by fuzzing: prost refuses it).
        let mut long = vec![0x50];
        long.extend([0xaf; 9]);
        long.push(0x50);
        assert!(parse_span(&long, &mut fresh()).is_err());
        // Start time sent as a varint: the wrong wire type.
        assert!(parse_span(&[0x38, 0x01], &mut fresh()).is_err());
        let mut bad_utf8 = rich_span(1, 2).span;
        bad_utf8.name.clear();
        let mut b = bad_utf8.encode_to_vec();
        b.extend([0x2a, 0x02, 0xff, 0xfe]); // name = invalid UTF-8
        assert_eq!(parse_span(&b, &mut fresh()).unwrap_err().0, "a string is not valid UTF-8");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Protobuf concatenation is merging: reading two encoded spans back to
        /// back must give what `prost` makes of them (last scalar wins, lists
        /// concatenate, the status merges field by field).
        #[test]
        fn concatenated_spans_read_as_prost_merges_them(
            a_name in ".{0,8}", b_name in ".{0,8}", b_parent in any::<bool>(), b_status in 0i32..3,
            b_msg in ".{0,4}", start in any::<u64>(), flags in any::<u32>(), drop_events in any::<bool>(),
        ) {
            let mut a = rich_span(1, 2).span;
            a.name = a_name;
            let mut b = rich_span(3, 4).span;
            b.name = b_name;
            if !b_parent { b.parent_span_id.clear(); }
            b.status = Some(Status { code: b_status, message: b_msg });
            b.start_time_unix_nano = start;
            b.flags = flags;
            if drop_events { b.events.clear(); }
            let mut bytes = a.encode_to_vec();
            bytes.extend(b.encode_to_vec());
            let want = Span::decode(&bytes[..]).unwrap();
            let mut scratch = Scratch::default();
            let s = parse_span(&bytes, &mut scratch).unwrap();
            prop_assert_eq!(rebuild(&s, &scratch), want);
        }

        /// Whatever the bytes, reading never panics, and what it accepts
        /// `prost` accepts too, with the same content.
        #[test]
        fn arbitrary_bytes_never_panic_and_agree_with_prost(
            prefix in proptest::collection::vec(any::<u8>(), 0..64), noise in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = rich_span(5, 6).span.encode_to_vec();
            let at = prefix.len() % bytes.len();
            bytes.splice(at..at, noise);
            let mut scratch = Scratch::default();
            if let Ok(s) = parse_span(&bytes, &mut scratch) {
                let want = Span::decode(&bytes[..]);
                prop_assert!(want.is_ok());
                prop_assert_eq!(rebuild(&s, &scratch), want.unwrap());
            }
            let _ = parse_span(&prefix, &mut Scratch::default());
        }
    }
}
