//! Turning an OTLP request body into checked spans: decompression (bounded),
//! protobuf or JSON decoding, per-span ID validation and attribute limits.
//!
//! The fast path, [`scan`], walks a protobuf request without decoding it (with
//! the store's in-place span reader, so what it keeps the store can read) and,
//! when every span can be kept exactly as sent, returns where the spans lie so
//! they are kept as slices of the request buffer; anything it cannot vouch for
//! goes through the full decoder ([`decode`] + [`check`]), which reaches the same
//! verdict (a property test compares them).
//!
//! Undecodable bodies are an error for the whole request (400 /
//! INVALID_ARGUMENT with the decoder's message). Spans with invalid IDs are
//! removed one by one and reported back through OTLP `partial_success`.

use std::io::Read;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use weft_store::wire::{next_field, parse_span, Scratch, ValueRef, Wire};

/// How a body is encoded.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Protobuf (OTLP/gRPC, `application/x-protobuf`).
    Protobuf,
    /// OTLP/JSON (`application/json`).
    Json,
}

/// How a body is compressed (`Content-Encoding` / `grpc-encoding`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Sent as is.
    None,
    /// gzip (RFC 1952).
    Gzip,
    /// zstd (RFC 8878).
    Zstd,
}

impl Compression {
    /// Parses a header value; `None` for one the server does not offer.
    pub fn from_header(value: Option<&[u8]>) -> Option<Self> {
        match value {
            None | Some(b"identity") | Some(b"") => Some(Self::None),
            Some(b"gzip") => Some(Self::Gzip),
            Some(b"zstd") => Some(Self::Zstd),
            Some(_) => None,
        }
    }

    /// The header token.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "identity",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }
}

/// Why a body could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The compressed body does not decompress.
    #[error("body is not valid {codec}: {why}")]
    Decompress {
        /// gzip or zstd.
        codec: &'static str,
        /// The decompressor's message.
        why: String,
    },
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

/// Decompresses a body, refusing output beyond `max` bytes (a zip bomb stops
/// at the limit instead of filling memory).
pub fn decompress(body: &[u8], codec: Compression, max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let bad = |e: std::io::Error| DecodeError::Decompress { codec: codec.name(), why: e.to_string() };
    match codec {
        Compression::None => out.extend_from_slice(&body[..body.len().min(max + 1)]),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(body).take(max as u64 + 1).read_to_end(&mut out).map_err(bad)?;
        }
        Compression::Zstd => {
            // The streaming decoder, not `decode_all`: it stops reading at `max`
            // whatever the frame header claims about the content size.
            zstd::stream::read::Decoder::new(body)
                .map_err(bad)?
                .take(max as u64 + 1)
                .read_to_end(&mut out)
                .map_err(bad)?;
        }
    }
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

/// A protobuf request read without decoding it: where each resource and span
/// lies in the body, so spans can be kept as slices of the request buffer.
#[derive(Debug, Default, PartialEq)]
pub struct Scanned {
    /// Each `ResourceSpans.resource` (decoded: they are few).
    pub resources: Vec<opentelemetry_proto::tonic::resource::v1::Resource>,
    /// Each `ScopeSpans`: its resource's index and its scope (decoded).
    pub scopes: Vec<(usize, opentelemetry_proto::tonic::common::v1::InstrumentationScope)>,
    /// Each span: its scope's index, its encoded `Span` message, its trace ID.
    pub spans: Vec<(usize, std::ops::Range<usize>, [u8; 16])>,
}

/// Whether `r` is a span the fast path can keep exactly as sent, and the
/// store can read back: it reads as the store reads it ([`parse_span`], so
/// anything accepted here is storable), its IDs are valid (not zero), and its
/// attributes and those of its events and links are within the limits, with
/// scalar values only (arrays and maps go to the full decoder, which applies
/// the limits inside them). Returns its trace ID.
fn simple_span<'a>(
    b: &'a [u8],
    r: std::ops::Range<usize>,
    limits: Limits,
    scratch: &mut Scratch<'a>,
) -> Option<[u8; 16]> {
    scratch.clear();
    let s = parse_span(&b[r], scratch).ok()?;
    if s.trace_id == [0; 16] || s.span_id == [0; 8] || s.parent_span_id == Some([0; 8]) {
        return None;
    }
    let too_many = |n: usize| n > limits.max_attributes;
    if too_many(s.attributes.len())
        || scratch.events.iter().any(|e| too_many(e.attributes.len()))
        || scratch.links.iter().any(|l| too_many(l.attributes.len()))
    {
        return None;
    }
    let fits = |kv: &weft_store::wire::KvRef<'_>| match kv.value {
        ValueRef::Str(v) => v.len() <= limits.max_value_bytes,
        ValueRef::Other(_) => false,
        _ => true,
    };
    scratch.kvs.iter().all(fits).then_some(s.trace_id)
}

/// Whether decoded attributes need nothing cut (count and string lengths).
fn within_limits(attrs: &[KeyValue], limits: Limits) -> bool {
    attrs.len() <= limits.max_attributes
        && attrs.iter().all(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(AnyValue::StringValue(s)) => s.len() <= limits.max_value_bytes,
            _ => true,
        })
}

/// Reads a protobuf `ExportTraceServiceRequest` without decoding it, when every
/// span in it can be kept exactly as sent (see `simple_span`); `None` sends the
/// request down the full decoder, which also reports what is wrong with it.
/// Resources are checked by decoding them (they are few and small).
pub fn scan(b: &[u8], limits: Limits) -> Option<Scanned> {
    let mut out = Scanned::default();
    let mut scratch = Scratch::default();
    let mut at = 0;
    while at < b.len() {
        let (1, Wire::Len(rs)) = next_field(b, &mut at, b.len())? else { return None };
        let res_index = out.resources.len();
        out.resources.push(Default::default());
        let mut r = rs.start;
        while r < rs.end {
            match next_field(b, &mut r, rs.end)? {
                (1, Wire::Len(res)) => {
                    let resource = opentelemetry_proto::tonic::resource::v1::Resource::decode(&b[res]).ok()?;
                    if !within_limits(&resource.attributes, limits) {
                        return None;
                    }
                    out.resources[res_index] = resource;
                }
                (2, Wire::Len(ss)) => {
                    let scope_index = out.scopes.len();
                    out.scopes.push((res_index, Default::default()));
                    let mut k = ss.start;
                    while k < ss.end {
                        match next_field(b, &mut k, ss.end)? {
                            (1, Wire::Len(scope)) => {
                                let scope =
                                    opentelemetry_proto::tonic::common::v1::InstrumentationScope::decode(&b[scope])
                                        .ok()?;
                                if !within_limits(&scope.attributes, limits) {
                                    return None;
                                }
                                out.scopes[scope_index].1 = scope;
                            }
                            (2, Wire::Len(span)) => {
                                let trace = simple_span(b, span.clone(), limits, &mut scratch)?;
                                out.spans.push((scope_index, span, trace));
                            }
                            (3, Wire::Len(url)) => {
                                std::str::from_utf8(&b[url]).ok()?;
                            }
                            _ => return None,
                        }
                    }
                }
                (3, Wire::Len(url)) => {
                    std::str::from_utf8(&b[url]).ok()?;
                }
                _ => return None,
            }
        }
    }
    Some(out)
}

/// Removes spans with invalid IDs and applies the limits.
pub fn check(mut request: ExportTraceServiceRequest, limits: Limits) -> Checked {
    let mut c = Checked::default();
    for rs in &mut request.resource_spans {
        if let Some(r) = rs.resource.as_mut() {
            limit_attrs(&mut r.attributes, &mut r.dropped_attributes_count, limits, &mut c);
        }
        for ss in &mut rs.scope_spans {
            if let Some(sc) = ss.scope.as_mut() {
                limit_attrs(&mut sc.attributes, &mut sc.dropped_attributes_count, limits, &mut c);
            }
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
    fn the_scanner_takes_plain_requests_and_leaves_the_rest() {
        let mut good = span(vec![1; 16], vec![2; 8], vec![]);
        good.attributes.push(KeyValue {
            key: "k".into(),
            value: Some(Any { value: Some(AnyValue::IntValue(3)) }),
            ..Default::default()
        });
        let bytes = req(vec![good.clone(), good.clone()]).encode_to_vec();
        let sc = scan(&bytes, Limits { max_attributes: 128, max_value_bytes: 4096 }).expect("plain spans are scanned");
        assert_eq!(sc.spans.len(), 2);
        assert_eq!(Span::decode(&bytes[sc.spans[0].1.clone()]).unwrap(), good);
        // Invalid IDs, long values, too many event attributes, arrays, a field
        // of the wrong wire type: the full decoder's job.
        let bad = req(vec![span(vec![0; 16], vec![2; 8], vec![])]).encode_to_vec();
        assert!(scan(&bad, LIMITS).is_none());
        let mut long = good.clone();
        long.attributes[0].value = Some(Any { value: Some(AnyValue::StringValue("x".repeat(10))) });
        assert!(scan(&req(vec![long]).encode_to_vec(), LIMITS).is_none());
        let mut ev = good.clone();
        ev.events.push(Default::default());
        assert_eq!(scan(&req(vec![ev.clone()]).encode_to_vec(), LIMITS).map(|s| s.spans.len()), Some(1));
        ev.events[0].attributes = vec![good.attributes[0].clone(); 3];
        assert!(scan(&req(vec![ev]).encode_to_vec(), LIMITS).is_none());
        let mut arr = good.clone();
        arr.attributes[0].value = Some(Any {
            value: Some(AnyValue::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue { values: vec![] })),
        });
        assert!(scan(&req(vec![arr]).encode_to_vec(), LIMITS).is_none());
        // kind (field 6) sent as fixed32: prost refuses it, so must the scanner.
        let mut wrong = span(vec![1; 16], vec![2; 8], vec![]).encode_to_vec();
        wrong.extend([0x35, 1, 0, 0, 0]);
        let mut body = vec![0x0a];
        let scope_spans = [vec![0x12, wrong.len() as u8], wrong].concat();
        let rs = [vec![0x12, scope_spans.len() as u8], scope_spans].concat();
        body.push(rs.len() as u8);
        body.extend(rs);
        assert!(ExportTraceServiceRequest::decode(&body[..]).is_err());
        assert!(scan(&body, LIMITS).is_none());
        assert!(scan(b"\xff\xff", LIMITS).is_none());
        assert_eq!(scan(b"", LIMITS), Some(Scanned::default()));
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
        assert!(matches!(
            decompress(b"not gzip", Compression::Gzip, 100),
            Err(DecodeError::Decompress { codec: "gzip", .. })
        ));
        assert!(matches!(
            decompress(b"not zstd", Compression::Zstd, 100),
            Err(DecodeError::Decompress { codec: "zstd", .. })
        ));
        let zb = zstd::encode_all(&vec![0u8; 1 << 20][..], 3).unwrap();
        assert_eq!(decompress(&zb, Compression::Zstd, 100), Err(DecodeError::TooLarge(100)));
        assert_eq!(decompress(&zb, Compression::Zstd, 1 << 20).map(|v| v.len()), Ok(1 << 20));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &vec![0u8; 10_000]).unwrap();
        let z = enc.finish().unwrap();
        assert_eq!(
            decompress(&z, Compression::Gzip, 100),
            Err(DecodeError::TooLarge(100)),
            "a zip bomb stops at the limit"
        );
        assert_eq!(decompress(&z, Compression::Gzip, 10_000).map(|v| v.len()), Ok(10_000));
    }

    #[test]
    fn json_with_hex_ids_decodes() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"x","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
        let r = decode(body, Encoding::Json).unwrap();
        let s = &r.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(s.kind, 2);
    }

    fn arb_value() -> impl Strategy<Value = Option<Any>> {
        prop_oneof![
            "[a-zé]{0,8}".prop_map(|s| Some(Any { value: Some(AnyValue::StringValue(s)) })),
            any::<i64>().prop_map(|i| Some(Any { value: Some(AnyValue::IntValue(i)) })),
            any::<bool>().prop_map(|b| Some(Any { value: Some(AnyValue::BoolValue(b)) })),
            (-1e6f64..1e6).prop_map(|f| Some(Any { value: Some(AnyValue::DoubleValue(f)) })),
            Just(Some(Any {
                value: Some(AnyValue::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![Any { value: Some(AnyValue::IntValue(1)) }]
                }))
            })),
            Just(None),
        ]
    }

    fn arb_span() -> impl Strategy<Value = Span> {
        (
            prop_oneof![Just(vec![0u8; 16]), Just(vec![7u8; 16]), Just(vec![9u8; 15]), Just(vec![3u8; 16])],
            prop_oneof![Just(vec![0u8; 8]), Just(vec![1u8; 8]), Just(vec![2u8; 8])],
            prop_oneof![Just(vec![]), Just(vec![5u8; 8]), Just(vec![0u8; 8])],
            "[a-z]{0,6}",
            proptest::collection::vec(("[a-z.]{1,6}", arb_value()), 0..5),
            any::<bool>(),
            0i32..6,
            any::<u64>(),
        )
            .prop_map(|(trace_id, span_id, parent_span_id, name, attrs, event, kind, t)| Span {
                trace_id,
                span_id,
                parent_span_id,
                name,
                kind,
                start_time_unix_nano: t,
                end_time_unix_nano: t / 2,
                attributes: attrs
                    .into_iter()
                    .map(|(key, value)| KeyValue { key, value, ..Default::default() })
                    .collect(),
                events: if event { vec![Default::default()] } else { vec![] },
                ..Default::default()
            })
    }

    proptest! {
        /// Whenever the scanner takes a request, it sees exactly what the full
        /// decoder and the checks see: the same spans, byte for byte, all valid
        /// and within the limits.
        #[test]
        fn scanning_agrees_with_decoding(spans in proptest::collection::vec(arb_span(), 0..6), with_resource in any::<bool>()) {
            let mut r = req(spans);
            if with_resource {
                r.resource_spans[0].resource = Some(opentelemetry_proto::tonic::resource::v1::Resource {
                    attributes: vec![KeyValue { key: "service.name".into(), value: Some(Any { value: Some(AnyValue::StringValue("s".into())) }), ..Default::default() }],
                    ..Default::default()
                });
            }
            let bytes = r.encode_to_vec();
            let limits = Limits { max_attributes: 3, max_value_bytes: 6 };
            let checked = check(decode(&bytes, Encoding::Protobuf).unwrap(), limits);
            if let Some(sc) = scan(&bytes, limits) {
                prop_assert!(!checked.modified, "the scanner took a request the checks would change");
                let decoded: Vec<Span> = checked.request.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| s.spans.clone()).collect();
                prop_assert_eq!(sc.spans.len(), decoded.len());
                for ((_, range, trace), d) in sc.spans.iter().zip(&decoded) {
                    prop_assert_eq!(&Span::decode(&bytes[range.clone()]).unwrap(), d);
                    prop_assert_eq!(&trace[..], &d.trace_id[..]);
                }
            }
        }

        #[test]
        fn decoding_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = scan(&data, LIMITS);
            let _ = decode(&data, Encoding::Protobuf).map(|r| check(r, LIMITS));
            let _ = decode(&data, Encoding::Json).map(|r| check(r, LIMITS));
            let _ = decompress(&data, Compression::Gzip, 4096);
            let _ = decompress(&data, Compression::Zstd, 4096);
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
