//! OTLP/JSON written straight from a block's Arrow rows.
//!
//! A full export read through [`crate::columns::from_batch`] first built a
//! `Span` per row — a `String` per attribute key and value, a `Vec` per list —
//! only to write it out and free it: a third of the server's time. This
//! writer reads the Arrow columns in place and writes exactly the bytes the
//! `FullSpan` writer ([`super::resource_spans`]) writes for the same rows
//! (property-tested), so callers may use either.

use opentelemetry_proto::tonic::common::v1::AnyValue;
use prost::Message;

use super::{any_value, double, hex_string, int, quoted_int, string, Fields};
use crate::columns::{opt, Kvs, SpanCols};
use crate::StoreError;
use arrow_array::{Array, RecordBatch};

/// A row: (batch, row in it).
type RowAt = (usize, usize);

/// Writes the spans in `batches` (full-schema span rows, in order) as an OTLP
/// `resourceSpans` array, grouped by resource and scope as
/// [`super::resource_spans`] groups them.
pub fn resource_spans_of_rows(out: &mut Vec<u8>, batches: &[RecordBatch]) -> Result<(), StoreError> {
    let cols = batches.iter().map(SpanCols::of).collect::<Result<Vec<_>, _>>()?;
    // Each group: its first row and its rows.
    let mut groups: Vec<(RowAt, Vec<RowAt>)> = Vec::new();
    for (b, c) in cols.iter().enumerate() {
        for r in 0..c.len() {
            match groups.iter_mut().find(|((gb, gr), _)| cols[*gb].same_origin(*gr, c, r)) {
                Some((_, rows)) => rows.push((b, r)),
                None => groups.push(((b, r), vec![(b, r)])),
            }
        }
    }
    out.push(b'[');
    for (gi, ((b, r), rows)) in groups.iter().enumerate() {
        if gi > 0 {
            out.push(b',');
        }
        let c = &cols[*b];
        out.extend_from_slice(b"{\"resource\":{");
        if !c.resource.range(*r).is_empty() {
            out.extend_from_slice(b"\"attributes\":");
            key_values(out, &c.resource, *r)?;
        }
        out.extend_from_slice(b"},\"scopeSpans\":[{\"scope\":{");
        let mut f = Fields::new(out);
        if let Some(name) = opt(c.scope_name, *r).filter(|n| !n.is_empty()) {
            f.key(b"name");
            string(f.out, name);
        }
        if let Some(version) = opt(c.scope_version, *r).filter(|v| !v.is_empty()) {
            f.key(b"version");
            string(f.out, version);
        }
        if !c.scope_attrs.range(*r).is_empty() {
            f.key(b"attributes");
            key_values(f.out, &c.scope_attrs, *r)?;
        }
        out.extend_from_slice(b"},\"spans\":[");
        for (i, (b, r)) in rows.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            span_fields(out, &cols[*b], *r)?;
            out.push(b'}');
        }
        out.extend_from_slice(b"]}]}");
    }
    out.push(b']');
    Ok(())
}

/// The fields of row `i`'s `Span` object (as [`super::span_fields`]).
fn span_fields(out: &mut Vec<u8>, c: &SpanCols<'_>, i: usize) -> Result<(), StoreError> {
    out.extend_from_slice(b"\"traceId\":");
    hex_string(out, c.trace_id.value(i));
    out.extend_from_slice(b",\"spanId\":");
    hex_string(out, c.span_id.value(i));
    let mut f = Fields { out, first: false };
    if let Some(state) = opt(c.trace_state, i).filter(|s| !s.is_empty()) {
        f.key(b"traceState");
        string(f.out, state);
    }
    if c.parent.is_valid(i) && c.parent.value_length() > 0 {
        f.key(b"parentSpanId");
        hex_string(f.out, c.parent.value(i));
    }
    let flags = c.flags.value(i);
    if flags != 0 {
        f.key(b"flags");
        int(f.out, flags);
    }
    f.key(b"name");
    string(f.out, c.name.value(i));
    let kind = c.kind.value(i);
    if kind != 0 {
        f.key(b"kind");
        int(f.out, kind);
    }
    f.key(b"startTimeUnixNano");
    quoted_int(f.out, c.start.value(i) as u64);
    f.key(b"endTimeUnixNano");
    quoted_int(f.out, c.end(i));
    if !c.attributes.range(i).is_empty() {
        f.key(b"attributes");
        key_values(f.out, &c.attributes, i)?;
    }
    if c.dropped[0].value(i) != 0 {
        f.key(b"droppedAttributesCount");
        int(f.out, c.dropped[0].value(i));
    }
    let events = c.event_offsets[i] as usize..c.event_offsets[i + 1] as usize;
    if !events.is_empty() {
        f.key(b"events");
        f.out.push(b'[');
        for (n, e) in events.enumerate() {
            if n > 0 {
                f.out.push(b',');
            }
            f.out.extend_from_slice(b"{\"timeUnixNano\":");
            quoted_int(f.out, c.ev_time.value(e) as u64);
            f.out.extend_from_slice(b",\"name\":");
            string(f.out, c.ev_name.value(e));
            if !c.ev_attrs.range(e).is_empty() {
                f.out.extend_from_slice(b",\"attributes\":");
                key_values(f.out, &c.ev_attrs, e)?;
            }
            if c.ev_dropped.value(e) != 0 {
                f.out.extend_from_slice(b",\"droppedAttributesCount\":");
                int(f.out, c.ev_dropped.value(e));
            }
            f.out.push(b'}');
        }
        f.out.push(b']');
    }
    if c.dropped[1].value(i) != 0 {
        f.key(b"droppedEventsCount");
        int(f.out, c.dropped[1].value(i));
    }
    let links = c.link_offsets[i] as usize..c.link_offsets[i + 1] as usize;
    if !links.is_empty() {
        f.key(b"links");
        f.out.push(b'[');
        for (n, l) in links.enumerate() {
            if n > 0 {
                f.out.push(b',');
            }
            f.out.extend_from_slice(b"{\"traceId\":");
            hex_string(f.out, c.ln_trace.value(l));
            f.out.extend_from_slice(b",\"spanId\":");
            hex_string(f.out, c.ln_span.value(l));
            if let Some(state) = opt(c.ln_state, l).filter(|s| !s.is_empty()) {
                f.out.extend_from_slice(b",\"traceState\":");
                string(f.out, state);
            }
            if !c.ln_attrs.range(l).is_empty() {
                f.out.extend_from_slice(b",\"attributes\":");
                key_values(f.out, &c.ln_attrs, l)?;
            }
            if c.ln_dropped.value(l) != 0 {
                f.out.extend_from_slice(b",\"droppedAttributesCount\":");
                int(f.out, c.ln_dropped.value(l));
            }
            if c.ln_flags.value(l) != 0 {
                f.out.extend_from_slice(b",\"flags\":");
                int(f.out, c.ln_flags.value(l));
            }
            f.out.push(b'}');
        }
        f.out.push(b']');
    }
    if c.dropped[2].value(i) != 0 {
        f.key(b"droppedLinksCount");
        int(f.out, c.dropped[2].value(i));
    }
    let code = c.status_code.value(i);
    let message = opt(c.status_message, i).unwrap_or("");
    if code != 0 || !message.is_empty() {
        f.key(b"status");
        f.out.push(b'{');
        let mut g = Fields::new(f.out);
        if !message.is_empty() {
            g.key(b"message");
            string(g.out, message);
        }
        if code != 0 {
            g.key(b"code");
            int(g.out, code);
        }
        f.out.push(b'}');
    }
    Ok(())
}

/// Writes the key-value list at `row` (as [`super::key_values`]).
fn key_values(out: &mut Vec<u8>, kvs: &Kvs<'_>, row: usize) -> Result<(), StoreError> {
    out.push(b'[');
    for (n, i) in kvs.range(row).enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        string(out, kvs.key.value(i));
        out.extend_from_slice(b",\"value\":");
        if kvs.string.is_valid(i) {
            out.extend_from_slice(b"{\"stringValue\":");
            string(out, kvs.string.value(i));
            out.push(b'}');
        } else if kvs.int.is_valid(i) {
            out.extend_from_slice(b"{\"intValue\":");
            quoted_int(out, kvs.int.value(i));
            out.push(b'}');
        } else if kvs.double.is_valid(i) {
            out.extend_from_slice(b"{\"doubleValue\":");
            double(out, kvs.double.value(i));
            out.push(b'}');
        } else if kvs.boolean.is_valid(i) {
            out.extend_from_slice(if kvs.boolean.value(i) {
                b"{\"boolValue\":true}"
            } else {
                b"{\"boolValue\":false}"
            });
        } else if kvs.other.is_valid(i) {
            // Arrays, maps and bytes are stored as an encoded AnyValue.
            let v = AnyValue::decode(kvs.other.value(i))
                .map_err(|e| StoreError::Format(format!("attribute value: {e}")))?;
            any_value(out, Some(&v));
        } else {
            out.extend_from_slice(b"{}");
        }
        out.push(b'}');
    }
    out.push(b']');
    Ok(())
}
