//! Jaeger's v1 JSON trace model (`/api/traces…` answers), built from stored
//! OTLP spans the way Jaeger's own OTLP translation builds it, so that Jaeger
//! UI and Grafana's Jaeger data source show weft's traces as they would show
//! Jaeger's:
//!
//! - IDs in lowercase hex; a trace ID whose high 64 bits are zero in 16 digits;
//! - times and durations in microseconds;
//! - the parent as a `CHILD_OF` reference, links as `FOLLOWS_FROM`;
//! - kind, status and scope as the tags `span.kind`, `otel.status_code`,
//!   `otel.status_description`, `error=true`, `otel.scope.name`,
//!   `otel.scope.version`, `w3c.tracestate`;
//! - events as logs, the event's name as the field `event`;
//! - one process per distinct resource: `serviceName` from `service.name`, the
//!   other resource attributes as its tags;
//! - values typed `string`, `bool`, `int64`, `float64` or `binary` (base64);
//!   arrays and maps as JSON text, as Jaeger writes them.

use std::collections::BTreeMap;

use base64::Engine;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, AnyValue, KeyValue};
use serde::Serialize;
use weft_store::summary::hex;
use weft_store::FullSpan;

/// A Jaeger trace.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// Hex trace ID.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Its spans, by start time.
    pub spans: Vec<JSpan>,
    /// Processes by key (`p1`, `p2`, …).
    pub processes: BTreeMap<String, Process>,
    /// Always `null` (Jaeger fills it for clock skew adjustments it made).
    pub warnings: Option<Vec<String>>,
}

/// A Jaeger span.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JSpan {
    /// Hex trace ID.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Hex span ID.
    #[serde(rename = "spanID")]
    pub span_id: String,
    /// Trace flags (1: sampled).
    pub flags: u32,
    /// The span's name.
    pub operation_name: String,
    /// Parent and links.
    pub references: Vec<Reference>,
    /// Start, µs since the epoch.
    pub start_time: u64,
    /// µs.
    pub duration: u64,
    /// Attributes and the tags Jaeger derives from OTLP fields.
    pub tags: Vec<Kv>,
    /// Events.
    pub logs: Vec<Log>,
    /// Key into the trace's `processes`.
    #[serde(rename = "processID")]
    pub process_id: String,
    /// Always `null`.
    pub warnings: Option<Vec<String>>,
}

/// A reference to another span.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    /// `CHILD_OF` or `FOLLOWS_FROM`.
    pub ref_type: &'static str,
    /// Hex trace ID.
    #[serde(rename = "traceID")]
    pub trace_id: String,
    /// Hex span ID.
    #[serde(rename = "spanID")]
    pub span_id: String,
}

/// A process: a service and its resource attributes.
#[derive(Debug, Serialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    /// `service.name`.
    pub service_name: String,
    /// The other resource attributes.
    pub tags: Vec<Kv>,
}

/// A log (an OTLP event).
#[derive(Debug, Serialize)]
pub struct Log {
    /// µs since the epoch.
    pub timestamp: u64,
    /// Its attributes and `event` (its name).
    pub fields: Vec<Kv>,
}

/// A typed key-value.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Kv {
    /// Key.
    pub key: String,
    /// `string`, `bool`, `int64`, `float64` or `binary`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The value.
    pub value: serde_json::Value,
}

fn kv(key: &str, value: Option<&AnyValue>) -> Kv {
    let (kind, value) = match value.and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => ("string", serde_json::Value::from(s.as_str())),
        Some(Value::BoolValue(b)) => ("bool", serde_json::Value::from(*b)),
        // JSON numbers past 2^53 lose digits in JavaScript: Jaeger's UI reads
        // them as text.
        Some(Value::IntValue(i)) if i.unsigned_abs() > (1 << 53) => ("int64", serde_json::Value::from(i.to_string())),
        Some(Value::IntValue(i)) => ("int64", serde_json::Value::from(*i)),
        Some(Value::DoubleValue(d)) => match serde_json::Number::from_f64(*d) {
            Some(n) => ("float64", serde_json::Value::Number(n)),
            None => ("string", serde_json::Value::from(d.to_string())),
        },
        Some(Value::BytesValue(b)) => {
            ("binary", serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(b)))
        }
        Some(v @ (Value::ArrayValue(_) | Value::KvlistValue(_))) => {
            ("string", serde_json::Value::from(any_json(v).to_string()))
        }
        // An index into a string table that traces do not have: kept as the
        // number it is.
        Some(Value::StringValueStrindex(i)) => ("int64", serde_json::Value::from(*i)),
        None => ("string", serde_json::Value::from("")),
    };
    Kv { key: key.to_owned(), kind, value }
}

/// An array or map value as plain JSON (Jaeger's text form of them).
fn any_json(v: &Value) -> serde_json::Value {
    match v {
        Value::StringValue(s) => s.as_str().into(),
        Value::BoolValue(b) => (*b).into(),
        Value::IntValue(i) => (*i).into(),
        Value::DoubleValue(d) => serde_json::Number::from_f64(*d).map_or(serde_json::Value::Null, Into::into),
        Value::BytesValue(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        Value::StringValueStrindex(i) => (*i).into(),
        Value::ArrayValue(a) => {
            a.values.iter().map(|x| x.value.as_ref().map_or(serde_json::Value::Null, any_json)).collect()
        }
        Value::KvlistValue(l) => l
            .values
            .iter()
            .map(|x| {
                (
                    x.key.clone(),
                    x.value.as_ref().and_then(|v| v.value.as_ref()).map_or(serde_json::Value::Null, any_json),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

fn kvs(list: &[KeyValue]) -> Vec<Kv> {
    list.iter().map(|k| kv(&k.key, k.value.as_ref())).collect()
}

fn text(key: &str, value: &str) -> Kv {
    Kv { key: key.to_owned(), kind: "string", value: value.into() }
}

/// A trace ID as Jaeger writes it: 16 digits when the high half is zero.
pub fn trace_id_hex(id: &[u8]) -> String {
    if id.len() == 16 && id[..8].iter().all(|b| *b == 0) {
        hex(&id[8..])
    } else {
        hex(id)
    }
}

/// The Jaeger name of an OTLP span kind (`None` for unspecified).
pub fn kind_name(kind: i32) -> Option<&'static str> {
    match kind {
        1 => Some("internal"),
        2 => Some("server"),
        3 => Some("client"),
        4 => Some("producer"),
        5 => Some("consumer"),
        _ => None,
    }
}

/// Builds a Jaeger trace from the spans of one trace.
pub fn trace(trace_id: &[u8; 16], spans: &[FullSpan]) -> Trace {
    let mut processes: Vec<Process> = Vec::new();
    let mut keys: Vec<(*const weft_store::Origin, String)> = Vec::new();
    let mut out = Vec::with_capacity(spans.len());
    for fs in spans {
        // Spans of one request share their origin: look it up by pointer
        // first, by content only for a new one.
        let origin_ptr = std::sync::Arc::as_ptr(&fs.origin);
        let process_id = match keys.iter().find(|(p, _)| *p == origin_ptr) {
            Some((_, k)) => k.clone(),
            None => {
                let p = Process {
                    service_name: fs.origin.service.to_string(),
                    tags: kvs(&fs
                        .origin
                        .resource
                        .iter()
                        .filter(|k| k.key != "service.name")
                        .cloned()
                        .collect::<Vec<_>>()),
                };
                let k = match processes.iter().position(|q| *q == p) {
                    Some(i) => format!("p{}", i + 1),
                    None => {
                        processes.push(p);
                        format!("p{}", processes.len())
                    }
                };
                keys.push((origin_ptr, k.clone()));
                k
            }
        };
        out.push(span(fs, process_id));
    }
    out.sort_by_key(|s| s.start_time);
    Trace {
        trace_id: trace_id_hex(trace_id),
        spans: out,
        processes: processes.into_iter().enumerate().map(|(i, p)| (format!("p{}", i + 1), p)).collect(),
        warnings: None,
    }
}

fn span(fs: &FullSpan, process_id: String) -> JSpan {
    let s = &fs.span;
    let trace_id = trace_id_hex(&s.trace_id);
    let mut references = Vec::with_capacity(1 + s.links.len());
    if !s.parent_span_id.is_empty() {
        references.push(Reference {
            ref_type: "CHILD_OF",
            trace_id: trace_id.clone(),
            span_id: hex(&s.parent_span_id),
        });
    }
    for l in &s.links {
        references.push(Reference {
            ref_type: "FOLLOWS_FROM",
            trace_id: trace_id_hex(&l.trace_id),
            span_id: hex(&l.span_id),
        });
    }
    let mut tags = kvs(&s.attributes);
    if let Some(k) = kind_name(s.kind) {
        tags.push(text("span.kind", k));
    }
    if let Some(st) = &s.status {
        match st.code {
            1 => tags.push(text("otel.status_code", "OK")),
            2 => {
                tags.push(text("otel.status_code", "ERROR"));
                tags.push(Kv { key: "error".into(), kind: "bool", value: true.into() });
            }
            _ => {}
        }
        if !st.message.is_empty() {
            tags.push(text("otel.status_description", &st.message));
        }
    }
    let scope = &fs.origin.scope;
    if !scope.name.is_empty() {
        tags.push(text("otel.scope.name", &scope.name));
    }
    if !scope.version.is_empty() {
        tags.push(text("otel.scope.version", &scope.version));
    }
    if !s.trace_state.is_empty() {
        tags.push(text("w3c.tracestate", &s.trace_state));
    }
    let logs = s
        .events
        .iter()
        .map(|e| {
            let mut fields = kvs(&e.attributes);
            fields.push(text("event", &e.name));
            Log { timestamp: e.time_unix_nano / 1_000, fields }
        })
        .collect();
    let start = s.start_time_unix_nano / 1_000;
    JSpan {
        trace_id,
        span_id: hex(&s.span_id),
        flags: if s.flags & 0xff == 0 { 1 } else { s.flags & 0xff },
        operation_name: s.name.clone(),
        references,
        start_time: start,
        duration: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1_000,
        tags,
        logs,
        process_id,
        warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::{span, Span, Status};
    use std::sync::Arc;
    use weft_store::Origin;

    fn attr(k: &str, v: Value) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }

    #[test]
    fn spans_translate_as_jaeger_translates_otlp() {
        let origin = Arc::new(Origin::new(
            vec![
                attr("service.name", Value::StringValue("shop".into())),
                attr("host", Value::StringValue("h1".into())),
            ],
            InstrumentationScope { name: "lib".into(), version: "1.2".into(), ..Default::default() },
        ));
        let mut tid = [0u8; 16];
        tid[15] = 7;
        let s = Span {
            trace_id: tid.to_vec(),
            span_id: vec![1; 8],
            parent_span_id: vec![2; 8],
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: 1_000_000_000_123_456,
            end_time_unix_nano: 1_000_000_002_123_456,
            attributes: vec![
                attr("n", Value::IntValue(1 << 60)),
                attr("small", Value::IntValue(5)),
                attr("f", Value::DoubleValue(1.5)),
                attr("b", Value::BytesValue(vec![0xff])),
                attr(
                    "xs",
                    Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                        values: vec![AnyValue { value: Some(Value::IntValue(1)) }],
                    }),
                ),
            ],
            events: vec![span::Event {
                time_unix_nano: 1_000_000_001_000_000,
                name: "retry".into(),
                attributes: vec![attr("attempt", Value::IntValue(2))],
                dropped_attributes_count: 0,
            }],
            links: vec![span::Link { trace_id: vec![9; 16], span_id: vec![3; 8], ..Default::default() }],
            status: Some(Status { code: 2, message: "boom".into() }),
            ..Default::default()
        };
        let t = trace(&tid, &[FullSpan { origin, span: s }]);
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["traceID"], "0000000000000007");
        let sp = &v["spans"][0];
        assert_eq!(sp["spanID"], "0101010101010101");
        assert_eq!(sp["operationName"], "GET /");
        assert_eq!(sp["startTime"], 1_000_000_000_123u64);
        assert_eq!(sp["duration"], 2_000u64);
        assert_eq!(sp["processID"], "p1");
        assert_eq!(
            sp["references"][0],
            serde_json::json!({"refType": "CHILD_OF", "traceID": "0000000000000007", "spanID": "0202020202020202"})
        );
        assert_eq!(sp["references"][1]["refType"], "FOLLOWS_FROM");
        assert_eq!(sp["references"][1]["traceID"], "09".repeat(16));
        let tags = sp["tags"].as_array().unwrap();
        let tag = |k: &str| tags.iter().find(|t| t["key"] == k).cloned().unwrap_or_else(|| panic!("no tag {k}"));
        assert_eq!(tag("n"), serde_json::json!({"key": "n", "type": "int64", "value": (1u64 << 60).to_string()}));
        assert_eq!(tag("small")["value"], 5);
        assert_eq!(tag("f"), serde_json::json!({"key": "f", "type": "float64", "value": 1.5}));
        assert_eq!(tag("b"), serde_json::json!({"key": "b", "type": "binary", "value": "/w=="}));
        assert_eq!(tag("xs"), serde_json::json!({"key": "xs", "type": "string", "value": "[1]"}));
        assert_eq!(tag("span.kind")["value"], "server");
        assert_eq!(tag("otel.status_code")["value"], "ERROR");
        assert_eq!(tag("error"), serde_json::json!({"key": "error", "type": "bool", "value": true}));
        assert_eq!(tag("otel.status_description")["value"], "boom");
        assert_eq!(tag("otel.scope.name")["value"], "lib");
        assert_eq!(sp["logs"][0]["timestamp"], 1_000_000_001_000u64);
        assert_eq!(sp["logs"][0]["fields"][1], serde_json::json!({"key": "event", "type": "string", "value": "retry"}));
        assert_eq!(v["processes"]["p1"]["serviceName"], "shop");
        assert_eq!(v["processes"]["p1"]["tags"], serde_json::json!([{"key": "host", "type": "string", "value": "h1"}]));
        assert!(v["warnings"].is_null() && sp["warnings"].is_null());
    }
}
