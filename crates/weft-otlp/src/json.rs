//! OTLP/JSON encoding, straight from weft's span records.
//!
//! Writes the `ExportTraceServiceRequest` JSON mapping that OTLP/HTTP receivers
//! take with `Content-Type: application/json`: lowerCamelCase field names, trace
//! and span IDs as hex (OTLP's deviation from proto3 JSON), enums as integers,
//! 64-bit integers as strings, fields at their default value left out. Strings
//! are escaped by `serde_json`. Tests decode the output with the
//! `opentelemetry-proto` serde types and compare every field.

use std::fmt::Write as _;

use weft::otlp_encode::SCOPE_NAME;
use weft::{Array, Event, KeyValue, Link, Resource, SpanRecord, Status, TraceState, Value};

/// `Span.flags`: the is-remote bit below is meaningful.
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// `Span.flags`: the parent (or linked span) is remote.
const FLAG_IS_REMOTE: u32 = 0x200;

/// Encodes one `ExportTraceServiceRequest` as OTLP/JSON.
pub fn encode_export_request_json<'a>(resource: &Resource, spans: impl Iterator<Item = &'a SpanRecord>) -> Vec<u8> {
    let mut out = String::with_capacity(4096);
    out.push_str(r#"{"resourceSpans":[{"resource":{"attributes":"#);
    put_attrs(resource.attributes(), &mut out);
    out.push_str(r#"},"scopeSpans":[{"scope":{"name":"#);
    put_str(SCOPE_NAME, &mut out);
    out.push_str(r#","version":"#);
    put_str(env!("CARGO_PKG_VERSION"), &mut out);
    out.push_str(r#"},"spans":["#);
    for (i, s) in spans.enumerate() {
        if i > 0 {
            out.push(',');
        }
        put_span(s, &mut out);
    }
    out.push_str("]}]}]}");
    out.into_bytes()
}

fn put_str(s: &str, out: &mut String) {
    // serde_json writes a quoted, escaped JSON string; writing into a String
    // cannot fail.
    if let Ok(q) = serde_json::to_string(s) {
        out.push_str(&q);
    }
}

fn trace_state(ts: &TraceState) -> String {
    if ts.is_empty() {
        String::new()
    } else {
        ts.header_value()
    }
}

fn put_span(s: &SpanRecord, out: &mut String) {
    let _ = write!(out, r#"{{"traceId":"{}","spanId":"{}""#, s.trace_id, s.span_id);
    let ts = trace_state(&s.trace_state);
    if !ts.is_empty() {
        out.push_str(r#","traceState":"#);
        put_str(&ts, out);
    }
    if s.parent_span_id.is_valid() {
        let _ = write!(out, r#","parentSpanId":"{}""#, s.parent_span_id);
    }
    let remote = if s.parent_is_remote { FLAG_IS_REMOTE } else { 0 };
    let _ = write!(out, r#","flags":{}"#, u32::from(s.flags.to_u8()) | FLAG_HAS_IS_REMOTE | remote);
    out.push_str(r#","name":"#);
    put_str(&s.name, out);
    let _ = write!(
        out,
        r#","kind":{},"startTimeUnixNano":"{}","endTimeUnixNano":"{}""#,
        s.kind as u8, s.start_unix_nanos, s.end_unix_nanos
    );
    if !s.attributes.is_empty() {
        out.push_str(r#","attributes":"#);
        put_attrs(&s.attributes, out);
    }
    if s.dropped_attributes_count > 0 {
        let _ = write!(out, r#","droppedAttributesCount":{}"#, s.dropped_attributes_count);
    }
    if !s.events().is_empty() {
        out.push_str(r#","events":["#);
        for (i, e) in s.events().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            put_event(e, out);
        }
        out.push(']');
    }
    if let Some(x) = s.extras.as_ref() {
        if x.dropped_events_count > 0 {
            let _ = write!(out, r#","droppedEventsCount":{}"#, x.dropped_events_count);
        }
        if x.dropped_links_count > 0 {
            let _ = write!(out, r#","droppedLinksCount":{}"#, x.dropped_links_count);
        }
    }
    if !s.links().is_empty() {
        out.push_str(r#","links":["#);
        for (i, l) in s.links().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            put_link(l, out);
        }
        out.push(']');
    }
    match &s.status {
        Status::Unset => {}
        Status::Ok => out.push_str(r#","status":{"code":1}"#),
        Status::Error { message } => {
            out.push_str(r#","status":{"#);
            if !message.is_empty() {
                out.push_str(r#""message":"#);
                put_str(message, out);
                out.push(',');
            }
            out.push_str(r#""code":2}"#);
        }
    }
    out.push('}');
}

fn put_event(e: &Event, out: &mut String) {
    let _ = write!(out, r#"{{"timeUnixNano":"{}","name":"#, e.time_unix_nanos);
    put_str(&e.name, out);
    if !e.attributes.is_empty() {
        out.push_str(r#","attributes":"#);
        put_attrs(&e.attributes, out);
    }
    if e.dropped_attributes_count > 0 {
        let _ = write!(out, r#","droppedAttributesCount":{}"#, e.dropped_attributes_count);
    }
    out.push('}');
}

fn put_link(l: &Link, out: &mut String) {
    let _ = write!(out, r#"{{"traceId":"{}","spanId":"{}""#, l.context.trace_id(), l.context.span_id());
    let ts = trace_state(l.context.trace_state());
    if !ts.is_empty() {
        out.push_str(r#","traceState":"#);
        put_str(&ts, out);
    }
    if !l.attributes.is_empty() {
        out.push_str(r#","attributes":"#);
        put_attrs(&l.attributes, out);
    }
    if l.dropped_attributes_count > 0 {
        let _ = write!(out, r#","droppedAttributesCount":{}"#, l.dropped_attributes_count);
    }
    let remote = if l.context.is_remote() { FLAG_IS_REMOTE } else { 0 };
    let _ = write!(out, r#","flags":{}}}"#, u32::from(l.context.flags().to_u8()) | FLAG_HAS_IS_REMOTE | remote);
}

fn put_attrs(attrs: &[KeyValue], out: &mut String) {
    out.push('[');
    for (i, kv) in attrs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"key":"#);
        put_str(&kv.key, out);
        out.push_str(r#","value":"#);
        put_value(&kv.value, out);
        out.push('}');
    }
    out.push(']');
}

fn put_f64(f: f64, out: &mut String) {
    // proto3 JSON spells the non-finite doubles as strings.
    if f.is_nan() {
        out.push_str(r#""NaN""#);
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { r#""Infinity""# } else { r#""-Infinity""# });
    } else {
        let _ = write!(out, "{f:?}");
    }
}

fn put_value(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(r#"{"stringValue":"#);
            put_str(s, out);
            out.push('}');
        }
        Value::Bool(b) => {
            let _ = write!(out, r#"{{"boolValue":{b}}}"#);
        }
        Value::I64(i) => {
            let _ = write!(out, r#"{{"intValue":"{i}"}}"#);
        }
        Value::F64(f) => {
            out.push_str(r#"{"doubleValue":"#);
            put_f64(*f, out);
            out.push('}');
        }
        Value::Array(a) => {
            out.push_str(r#"{"arrayValue":{"values":["#);
            match a {
                Array::Bool(v) => put_list(v.iter().map(|b| Value::Bool(*b)), out),
                Array::I64(v) => put_list(v.iter().map(|i| Value::I64(*i)), out),
                Array::F64(v) => put_list(v.iter().map(|f| Value::F64(*f)), out),
                Array::String(v) => put_list(v.iter().map(|s| Value::String(s.clone())), out),
            }
            out.push_str("]}}");
        }
    }
}

fn put_list(values: impl Iterator<Item = Value>, out: &mut String) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        put_value(&v, out);
    }
}
