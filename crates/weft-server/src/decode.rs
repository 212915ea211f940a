//! Turning an OTLP request body into checked spans: decompression (bounded),
//! protobuf or JSON decoding, per-span ID validation and attribute limits.
//!
//! Undecodable bodies are an error for the whole request (400 /
//! INVALID_ARGUMENT with the decoder's message). Spans with invalid IDs are
//! removed one by one and reported back through OTLP `partial_success`.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;

/// How a body is encoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Protobuf (OTLP/gRPC, `application/x-protobuf`).
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

/// Why a body could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The compressed body does not decompress.
    #[error("body is not valid gzip: {0}")]
    Gzip(String),
    /// Decompressed, the body is larger than allowed.
    #[error("decompressed body is larger than {0} bytes")]
    TooLarge(usize),
    /// Not a valid `ExportTraceServiceRequest`.
    #[error("body is not a valid OTLP ExportTraceServiceRequest ({encoding}): {why}")]
    Invalid {
        /// protobuf or JSON.
        encoding: &'static str,
        /// The decoder's message.
        why: String,
    },
}

/// Limits applied to each span.
#[derive(Copy, Clone, Debug)]
pub struct Limits {
    /// Most attributes per span, event and link.
    pub max_attributes: usize,
    /// Longest string value in bytes.
    pub max_value_bytes: usize,
}

/// A checked request and what checking it did.
#[derive(Debug, Default)]
pub struct Checked {
    /// The spans that passed, in their resource and scope.
    pub request: ExportTraceServiceRequest,
    /// Spans kept.
    pub spans: u64,
    /// Spans removed for invalid IDs.
    pub rejected: u64,
    /// Why (first problem seen), for `partial_success.error_message`.
    pub reject_message: String,
    /// Attributes dropped by the count limit.
    pub attributes_dropped: u64,
    /// String values cut to the length limit.
    pub values_truncated: u64,
    /// Whether anything was removed or changed (the original bytes no longer match).
    pub modified: bool,
}

/// Decompresses a gzip body, refusing output beyond `max` bytes.
pub fn gunzip(body: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let mut dec = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > max {
        return Err(DecodeError::TooLarge(max));
    }
    Ok(out)
}

/// Decodes a (decompressed) body.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<ExportTraceServiceRequest, DecodeError> {
    match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| DecodeError::Invalid { encoding: "protobuf", why: e.to_string() }),
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|e| DecodeError::Invalid { encoding: "JSON", why: e.to_string() })
        }
    }
}

fn id_problem(id: &[u8], len: usize, what: &str, optional: bool) -> Option<String> {
    if optional && id.is_empty() {
        return None;
    }
    if id.len() != len {
        return Some(format!("{what} must be {len} bytes, got {}", id.len()));
    }
    if id.iter().all(|b| *b == 0) {
        return Some(format!("{what} is all zeros"));
    }
    None
}

fn limit_attrs(attrs: &mut Vec<KeyValue>, dropped: &mut u32, limits: Limits, c: &mut Checked) {
    if attrs.len() > limits.max_attributes {
        let n = attrs.len() - limits.max_attributes;
        attrs.truncate(limits.max_attributes);
        *dropped = dropped.saturating_add(n as u32);
        c.attributes_dropped += n as u64;
        c.modified = true;
    }
    for kv in attrs.iter_mut() {
        if let Some(AnyValue::StringValue(s)) = kv.value.as_mut().and_then(|v| v.value.as_mut()) {
            if s.len() > limits.max_value_bytes {
                let mut cut = limits.max_value_bytes;
                while !s.is_char_boundary(cut) {
                    cut -= 1;
                }
                s.truncate(cut);
                c.values_truncated += 1;
                c.modified = true;
            }
        }
    }
}

/// Removes spans with invalid IDs and applies the limits.
pub fn check(mut request: ExportTraceServiceRequest, limits: Limits) -> Checked {
    let mut c = Checked::default();
    for rs in &mut request.resource_spans {
        if let Some(r) = rs.resource.as_mut() {
            limit_attrs(&mut r.attributes, &mut r.dropped_attributes_count, limits, &mut c);
        }
        for ss in &mut rs.scope_spans {
            let before = ss.spans.len();
            ss.spans.retain(|s| {
                let problem = id_problem(&s.trace_id, 16, "trace_id", false)
                    .or_else(|| id_problem(&s.span_id, 8, "span_id", false))
                    .or_else(|| id_problem(&s.parent_span_id, 8, "parent_span_id", true));
                match problem {
                    Some(p) => {
                        if c.reject_message.is_empty() {
                            c.reject_message = format!("span {:?}: {p}", s.name);
                        }
                        false
                    }
                    None => true,
                }
            });
            let removed = (before - ss.spans.len()) as u64;
            if removed > 0 {
                c.rejected += removed;
                c.modified = true;
            }
            for s in &mut ss.spans {
                limit_attrs(&mut s.attributes, &mut s.dropped_attributes_count, limits, &mut c);
                for e in &mut s.events {
                    limit_attrs(&mut e.attributes, &mut e.dropped_attributes_count, limits, &mut c);
                }
                for l in &mut s.links {
                    limit_attrs(&mut l.attributes, &mut l.dropped_attributes_count, limits, &mut c);
                }
            }
            c.spans += ss.spans.len() as u64;
        }
    }
    if c.rejected > 0 {
        c.reject_message = format!("{} spans rejected; first: {}", c.rejected, c.reject_message);
    }
    c.request = request;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue as Any;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;

    const LIMITS: Limits = Limits { max_attributes: 2, max_value_bytes: 5 };

    fn span(trace: Vec<u8>, id: Vec<u8>, parent: Vec<u8>) -> Span {
        Span { trace_id: trace, span_id: id, parent_span_id: parent, name: "s".into(), ..Default::default() }
    }

    fn req(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn invalid_ids_are_rejected_one_by_one() {
        let good = span(vec![1; 16], vec![2; 8], vec![]);
        let r = req(vec![
            good.clone(),
            span(vec![0; 16], vec![2; 8], vec![]),
            span(vec![1; 15], vec![2; 8], vec![]),
            span(vec![1; 16], vec![0; 8], vec![]),
            span(vec![1; 16], vec![2; 8], vec![3; 7]),
            span(vec![1; 16], vec![2; 8], vec![3; 8]),
        ]);
        let c = check(r, Limits { max_attributes: 128, max_value_bytes: 4096 });
        assert_eq!((c.spans, c.rejected), (2, 4));
        assert!(c.modified);
        assert!(c.reject_message.contains("4 spans rejected"), "{}", c.reject_message);
        assert!(c.reject_message.contains("trace_id is all zeros"), "{}", c.reject_message);
    }

    #[test]
    fn limits_are_applied_and_counted() {
        let mut s = span(vec![1; 16], vec![2; 8], vec![]);
        for (k, v) in [("a", "ééééé"), ("b", "x"), ("c", "y")] {
            s.attributes.push(KeyValue {
                key: k.into(),
                value: Some(Any { value: Some(AnyValue::StringValue(v.into())) }),
                ..Default::default()
            });
        }
        let c = check(req(vec![s]), LIMITS);
        let s = &c.request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.attributes.len(), 2);
        assert_eq!(s.dropped_attributes_count, 1);
        assert_eq!(
            s.attributes[0].value.as_ref().unwrap().value,
            Some(AnyValue::StringValue("éé".into())),
            "cut at a char boundary"
        );
        assert_eq!((c.attributes_dropped, c.values_truncated), (1, 1));
    }

    #[test]
    fn malformed_bodies_are_clear_errors() {
        assert!(matches!(
            decode(b"\xff\xff\xff", Encoding::Protobuf),
            Err(DecodeError::Invalid { encoding: "protobuf", .. })
        ));
        let e = decode(b"{\"resourceSpans\": 3}", Encoding::Json).unwrap_err();
        assert!(e.to_string().contains("JSON"), "{e}");
        assert!(matches!(gunzip(b"not gzip", 100), Err(DecodeError::Gzip(_))));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &vec![0u8; 10_000]).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(gunzip(&z, 100), Err(DecodeError::TooLarge(100)), "a zip bomb stops at the limit");
        assert_eq!(gunzip(&z, 10_000).map(|v| v.len()), Ok(10_000));
    }

    #[test]
    fn json_with_hex_ids_decodes() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let r = decode(body, Encoding::Json).unwrap();
        let s = &r.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(s.kind, 2);
    }

    proptest! {
        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&data, Encoding::Protobuf).map(|r| check(r, LIMITS));
            let _ = decode(&data, Encoding::Json).map(|r| check(r, LIMITS));
            let _ = gunzip(&data, 4096);
        }

        #[test]
        fn valid_requests_survive_check_unchanged(n in 0usize..20, seed in any::<u8>()) {
            let spans: Vec<Span> = (0..n).map(|i| span(vec![seed | 1; 16], vec![(i as u8) | 1; 8], vec![])).collect();
            let r = req(spans);
            let bytes = r.encode_to_vec();
            let c = check(decode(&bytes, Encoding::Protobuf).unwrap(), Limits { max_attributes: 128, max_value_bytes: 4096 });
            prop_assert_eq!(c.spans, n as u64);
            prop_assert!(!c.modified);
            prop_assert_eq!(c.request.encode_to_vec(), bytes);
        }
    }
}
