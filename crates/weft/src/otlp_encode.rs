//! OTLP protobuf encoding, straight from [`SpanRecord`]s.
//!
//! Writes an `ExportTraceServiceRequest` (the body of OTLP/HTTP `POST /v1/traces`
//! and of the gRPC `TraceService/Export` call) field by field from weft's records,
//! with `prost`'s wire-format primitives: no intermediate message structs, no
//! copies of strings. Nested messages are length-prefixed, so every message's
//! size is computed first (`*_len`) and then written (`put_*`), as prost's own
//! generated code does. Tests decode the bytes with the independent
//! `opentelemetry-proto` types and compare every field.

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

use crate::context::TraceState;
use crate::record::{Event, Link, SpanRecord, Status};
use crate::resource::Resource;
use crate::value::{Array, KeyValue, Value};

/// The instrumentation scope weft's spans are reported under.
pub const SCOPE_NAME: &str = "weft";

/// `Span.flags` bit: the `is_remote` bit below is meaningful.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags` bit: the parent is remote.
const FLAG_IS_REMOTE: u32 = 0x200;

/// Encodes one `ExportTraceServiceRequest` holding `spans` under `resource`.
pub fn encode_export_request<'a>(resource: &Resource, spans: impl Iterator<Item = &'a SpanRecord>) -> Vec<u8> {
    // Each span's trace state text and encoded size, computed once: both the
    // enclosing messages' length prefixes and the span's own need them.
    let spans: Vec<(&SpanRecord, String, usize)> = spans
        .map(|s| {
            let ts = trace_state_str(&s.trace_state);
            let len = span_len(s, &ts);
            (s, ts, len)
        })
        .collect();
    let scope = str_len(1, SCOPE_NAME) + str_len(2, env!("CARGO_PKG_VERSION"));
    let scope_spans = delimited_len(1, scope) + spans.iter().map(|(_, _, len)| delimited_len(2, *len)).sum::<usize>();
    let res = attrs_len(1, resource.attributes());
    let rs_len = delimited_len(1, res) + delimited_len(2, scope_spans);
    let mut buf = Vec::with_capacity(delimited_len(1, rs_len));
    put_message(1, rs_len, &mut buf);
    put_message(1, res, &mut buf);
    put_attrs(1, resource.attributes(), &mut buf);
    put_message(2, scope_spans, &mut buf);
    put_message(1, scope, &mut buf);
    put_str(1, SCOPE_NAME, &mut buf);
    put_str(2, env!("CARGO_PKG_VERSION"), &mut buf);
    for (s, ts, len) in &spans {
        put_message(2, *len, &mut buf);
        put_span(s, ts, &mut buf);
    }
    buf
}

// ---- sizes -------------------------------------------------------------------

fn delimited_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn str_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        delimited_len(tag, s.len())
    }
}

fn varint_field_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
}

fn fixed64_len(tag: u32) -> usize {
    key_len(tag) + 8
}

fn span_len(s: &SpanRecord, ts: &str) -> usize {
    delimited_len(1, 16)
        + delimited_len(2, 8)
        + str_len(3, ts)
        + if s.parent_span_id.is_valid() { delimited_len(4, 8) } else { 0 }
        + str_len(5, &s.name)
        + varint_field_len(6, s.kind as u64)
        + fixed64_len(7)
        + fixed64_len(8)
        + attrs_len(9, &s.attributes)
        + varint_field_len(10, u64::from(s.dropped_attributes_count))
        + s.events().iter().map(|e| delimited_len(11, event_len(e))).sum::<usize>()
        + varint_field_len(12, s.extras.as_ref().map_or(0, |x| u64::from(x.dropped_events_count)))
        + s.links().iter().map(|l| delimited_len(13, link_len(l))).sum::<usize>()
        + varint_field_len(14, s.extras.as_ref().map_or(0, |x| u64::from(x.dropped_links_count)))
        + status_field_len(&s.status)
        + key_len(16)
        + 4
}

fn status_field_len(st: &Status) -> usize {
    let len = status_len(st);
    if len == 0 {
        0
    } else {
        delimited_len(15, len)
    }
}

fn status_len(st: &Status) -> usize {
    match st {
        Status::Unset => 0,
        Status::Ok => varint_field_len(3, 1),
        Status::Error { message } => str_len(2, message) + varint_field_len(3, 2),
    }
}

fn event_len(e: &Event) -> usize {
    fixed64_len(1)
        + str_len(2, &e.name)
        + attrs_len(3, &e.attributes)
        + varint_field_len(4, u64::from(e.dropped_attributes_count))
}

fn link_len(l: &Link) -> usize {
    let ts = trace_state_str(l.context.trace_state());
    delimited_len(1, 16)
        + delimited_len(2, 8)
        + str_len(3, &ts)
        + attrs_len(4, &l.attributes)
        + varint_field_len(5, u64::from(l.dropped_attributes_count))
        + key_len(6)
        + 4
}

fn attrs_len(tag: u32, attrs: &[KeyValue]) -> usize {
    attrs.iter().map(|kv| delimited_len(tag, kv_len(kv))).sum()
}

fn kv_len(kv: &KeyValue) -> usize {
    str_len(1, &kv.key) + delimited_len(2, any_len(&kv.value))
}

fn any_len(v: &Value) -> usize {
    match v {
        // Empty strings are still written: the oneof must say "string".
        Value::String(s) => delimited_len(1, s.len()),
        Value::Bool(_) => key_len(2) + 1,
        Value::I64(i) => key_len(3) + encoded_len_varint(*i as u64),
        Value::F64(_) => fixed64_len(4),
        Value::Array(a) => delimited_len(5, array_len(a)),
    }
}

fn array_len(a: &Array) -> usize {
    match a {
        Array::Bool(v) => v.len() * delimited_len(1, key_len(2) + 1),
        Array::I64(v) => v.iter().map(|i| delimited_len(1, key_len(3) + encoded_len_varint(*i as u64))).sum(),
        Array::F64(v) => v.len() * delimited_len(1, fixed64_len(4)),
        Array::String(v) => v.iter().map(|s| delimited_len(1, delimited_len(1, s.len()))).sum(),
    }
}

// ---- writing -----------------------------------------------------------------

fn put_message(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn put_bytes(tag: u32, b: &[u8], buf: &mut Vec<u8>) {
    put_message(tag, b.len(), buf);
    buf.extend_from_slice(b);
}

fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
    if !s.is_empty() {
        put_bytes(tag, s.as_bytes(), buf);
    }
}

fn put_varint(tag: u32, v: u64, buf: &mut Vec<u8>) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

fn put_fixed64(tag: u32, v: u64, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_fixed32(tag: u32, v: u32, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::ThirtyTwoBit, buf);
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_span(s: &SpanRecord, ts: &str, buf: &mut Vec<u8>) {
    put_bytes(1, &s.trace_id.to_bytes(), buf);
    put_bytes(2, &s.span_id.to_bytes(), buf);
    put_str(3, ts, buf);
    if s.parent_span_id.is_valid() {
        put_bytes(4, &s.parent_span_id.to_bytes(), buf);
    }
    put_str(5, &s.name, buf);
    put_varint(6, s.kind as u64, buf);
    put_fixed64(7, s.start_unix_nanos, buf);
    put_fixed64(8, s.end_unix_nanos, buf);
    put_attrs(9, &s.attributes, buf);
    put_varint(10, u64::from(s.dropped_attributes_count), buf);
    for e in s.events() {
        put_message(11, event_len(e), buf);
        put_fixed64(1, e.time_unix_nanos, buf);
        put_str(2, &e.name, buf);
        put_attrs(3, &e.attributes, buf);
        put_varint(4, u64::from(e.dropped_attributes_count), buf);
    }
    put_varint(12, s.extras.as_ref().map_or(0, |x| u64::from(x.dropped_events_count)), buf);
    for l in s.links() {
        put_message(13, link_len(l), buf);
        put_bytes(1, &l.context.trace_id().to_bytes(), buf);
        put_bytes(2, &l.context.span_id().to_bytes(), buf);
        put_str(3, &trace_state_str(l.context.trace_state()), buf);
        put_attrs(4, &l.attributes, buf);
        put_varint(5, u64::from(l.dropped_attributes_count), buf);
        let remote = if l.context.is_remote() { FLAG_IS_REMOTE } else { 0 };
        put_fixed32(6, u32::from(l.context.flags().to_u8()) | FLAG_HAS_IS_REMOTE | remote, buf);
    }
    put_varint(14, s.extras.as_ref().map_or(0, |x| u64::from(x.dropped_links_count)), buf);
    let st = status_len(&s.status);
    if st != 0 {
        put_message(15, st, buf);
        if let Status::Error { message } = &s.status {
            put_str(2, message, buf);
        }
        put_varint(3, u64::from(s.status.code()), buf);
    }
    let remote = if s.parent_is_remote { FLAG_IS_REMOTE } else { 0 };
    put_fixed32(16, u32::from(s.flags.to_u8()) | FLAG_HAS_IS_REMOTE | remote, buf);
}

fn put_attrs(tag: u32, attrs: &[KeyValue], buf: &mut Vec<u8>) {
    for kv in attrs {
        put_message(tag, kv_len(kv), buf);
        put_str(1, &kv.key, buf);
        put_message(2, any_len(&kv.value), buf);
        put_any(&kv.value, buf);
    }
}

fn put_any(v: &Value, buf: &mut Vec<u8>) {
    match v {
        Value::String(s) => put_bytes(1, s.as_bytes(), buf),
        Value::Bool(b) => {
            encode_key(2, WireType::Varint, buf);
            encode_varint(u64::from(*b), buf);
        }
        Value::I64(i) => {
            encode_key(3, WireType::Varint, buf);
            encode_varint(*i as u64, buf);
        }
        Value::F64(f) => put_fixed64(4, f.to_bits(), buf),
        Value::Array(a) => {
            put_message(5, array_len(a), buf);
            match a {
                Array::Bool(v) => v.iter().for_each(|b| {
                    put_message(1, key_len(2) + 1, buf);
                    put_any(&Value::Bool(*b), buf);
                }),
                Array::I64(v) => v.iter().for_each(|i| {
                    put_message(1, key_len(3) + encoded_len_varint(*i as u64), buf);
                    put_any(&Value::I64(*i), buf);
                }),
                Array::F64(v) => v.iter().for_each(|f| {
                    put_message(1, fixed64_len(4), buf);
                    put_any(&Value::F64(*f), buf);
                }),
                Array::String(v) => v.iter().for_each(|s| {
                    put_message(1, delimited_len(1, s.len()), buf);
                    put_bytes(1, s.as_bytes(), buf);
                }),
            }
        }
    }
}

fn trace_state_str(ts: &TraceState) -> String {
    if ts.is_empty() {
        String::new()
    } else {
        ts.header_value()
    }
}
