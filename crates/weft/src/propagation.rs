//! W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage, injected into
//! and extracted from any carrier of string headers.
//!
//! Extraction never fails loudly and never panics: a malformed `traceparent`
//! yields no context (the request starts a new trace), a malformed `tracestate`
//! is dropped while the `traceparent` is kept, and malformed baggage members are
//! skipped — what W3C asks of a receiver.
//!
//! ```
//! use std::collections::HashMap;
//! use weft::propagation::{TraceContext, Extractor};
//!
//! let mut headers = HashMap::new();
//! headers.insert("traceparent".to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string());
//! let remote = TraceContext::extract(&headers).expect("a valid traceparent");
//! assert!(remote.is_remote() && remote.is_sampled());
//! ```

use std::collections::HashMap;

use crate::context::{SpanContext, TraceState};
use crate::error::ParseError;
use crate::ids::{SpanId, TraceFlags, TraceId};

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE: &str = "tracestate";
/// The `baggage` header.
pub const BAGGAGE: &str = "baggage";

/// Somewhere to write headers (HTTP headers, message metadata, a map).
pub trait Injector {
    /// Sets a header, replacing any value it had.
    fn set(&mut self, key: &str, value: String);
}

/// Somewhere to read headers from. Keys are matched case-insensitively by the
/// carriers in this crate; several values for one key come back joined by `,`.
pub trait Extractor {
    /// The value of a header, if present.
    fn get(&self, key: &str) -> Option<String>;
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, key: &str, value: String) {
        self.insert(key.to_ascii_lowercase(), value);
    }
}

impl Extractor for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key)
            .or_else(|| self.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
            .cloned()
    }
}

impl Injector for http::HeaderMap {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.insert(name, value);
        }
    }
}

impl Extractor for http::HeaderMap {
    fn get(&self, key: &str) -> Option<String> {
        let values: Vec<&str> = self.get_all(key).iter().filter_map(|v| v.to_str().ok()).collect();
        (!values.is_empty()).then(|| values.join(","))
    }
}

/// The W3C Trace Context propagator.
#[derive(Copy, Clone, Debug, Default)]
pub struct TraceContext;

impl TraceContext {
    /// Writes `traceparent` (and `tracestate`, if not empty) for `ctx`. An invalid
    /// context writes nothing.
    pub fn inject(ctx: &SpanContext, carrier: &mut impl Injector) {
        if !ctx.is_valid() {
            return;
        }
        carrier.set(TRACEPARENT, format_traceparent(ctx.trace_id(), ctx.span_id(), ctx.flags()));
        let ts = ctx.trace_state().header_value();
        if !ts.is_empty() {
            carrier.set(TRACESTATE, ts);
        }
    }

    /// Writes the current local parent's context, if there is one.
    pub fn inject_current(carrier: &mut impl Injector) {
        if let Some(ctx) = crate::current_context() {
            Self::inject(&ctx, carrier);
        }
    }

    /// Reads a remote parent context; `None` if `traceparent` is absent or invalid.
    pub fn extract(carrier: &impl Extractor) -> Option<SpanContext> {
        let (trace_id, span_id, flags) = parse_traceparent(&carrier.get(TRACEPARENT)?).ok()?;
        // An invalid tracestate is dropped; the traceparent still stands.
        let trace_state = carrier.get(TRACESTATE).and_then(|h| TraceState::parse(&h).ok()).unwrap_or_default();
        // Only the sampled flag is meaningful across versions; keep "random" too.
        let flags = TraceFlags::new(flags.to_u8() & 0x03);
        Some(SpanContext::new(trace_id, span_id, flags, true, trace_state))
    }
}

/// Formats a version-00 `traceparent`.
pub fn format_traceparent(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> String {
    format!("00-{trace_id}-{span_id}-{:02x}", flags.to_u8())
}

/// Parses a `traceparent`, forward-compatibly: a later version is read by the
/// version-00 layout if what follows it starts with `-`. IDs must be lowercase
/// hex and not all zeros; version `ff` is invalid.
pub fn parse_traceparent(header: &str) -> Result<(TraceId, SpanId, TraceFlags), ParseError> {
    let err = |why: &str| ParseError::new("traceparent", why);
    let h = header.trim_matches([' ', '\t']);
    let b = h.as_bytes();
    if b.len() < 55 {
        return Err(err("shorter than 55 characters"));
    }
    let lower_hex = |s: &[u8]| s.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c));
    let version = &b[0..2];
    if !lower_hex(version) {
        return Err(err("version is not two lowercase hex digits"));
    }
    if version == b"ff" {
        return Err(err("version ff is invalid"));
    }
    if version == b"00" && b.len() != 55 {
        return Err(err("version 00 must be exactly 55 characters"));
    }
    if b.len() > 55 && b[55] != b'-' {
        return Err(err("unexpected data after the flags"));
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return Err(err("fields must be separated by '-'"));
    }
    let (tid, sid, fl) = (&b[3..35], &b[36..52], &b[53..55]);
    if !lower_hex(tid) || !lower_hex(sid) || !lower_hex(fl) {
        return Err(err("IDs and flags must be lowercase hex"));
    }
    // The slices are ASCII hex, so these conversions cannot fail.
    let trace_id = TraceId::from_hex(&h[3..35])?;
    let span_id = SpanId::from_hex(&h[36..52])?;
    if !trace_id.is_valid() {
        return Err(err("trace id is all zeros"));
    }
    if !span_id.is_valid() {
        return Err(err("parent id is all zeros"));
    }
    let flags = u8::from_str_radix(&h[53..55], 16).map_err(|e| err(&e.to_string()))?;
    Ok((trace_id, span_id, TraceFlags::new(flags)))
}

/// Most baggage members W3C asks a receiver to keep.
pub const MAX_BAGGAGE_MEMBERS: usize = 64;
/// Most bytes of a `baggage` header W3C asks a receiver to keep.
pub const MAX_BAGGAGE_BYTES: usize = 8192;

/// W3C Baggage: name/value pairs (with optional properties) that travel with a
/// request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    entries: Vec<BaggageEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct BaggageEntry {
    key: String,
    value: String,
    /// Properties after the value (`;k=v;flag`), kept verbatim.
    properties: String,
}

impl Baggage {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a `baggage` header leniently: invalid members are skipped, and
    /// members past the W3C limits (64 members, 8192 bytes) are dropped.
    pub fn parse(header: &str) -> Baggage {
        let mut b = Baggage::new();
        let mut bytes = 0;
        for member in header.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            if b.entries.len() >= MAX_BAGGAGE_MEMBERS || bytes + member.len() > MAX_BAGGAGE_BYTES {
                break;
            }
            let (kv, properties) = match member.split_once(';') {
                Some((kv, p)) => (kv, p.trim().to_string()),
                None => (member, String::new()),
            };
            let Some((k, v)) = kv.split_once('=') else { continue };
            let k = k.trim_matches([' ', '\t']);
            if k.is_empty() || !k.bytes().all(is_token_char) {
                continue;
            }
            let Some(v) = percent_decode(v.trim_matches([' ', '\t'])) else { continue };
            bytes += member.len() + 1;
            b.set_with_properties(k, v, properties);
        }
        b
    }

    /// Sets an entry (replacing one with the same key).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.set_with_properties(key, value, String::new());
    }

    fn set_with_properties(&mut self, key: impl Into<String>, value: impl Into<String>, properties: String) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => {
                e.value = value;
                e.properties = properties;
            }
            None => self.entries.push(BaggageEntry { key, value, properties }),
        }
    }

    /// An entry's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|e| (e.key.as_str(), e.value.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The header value: values percent-encoded, keys that are not W3C tokens
    /// left out.
    pub fn header_value(&self) -> String {
        let mut out = String::new();
        for e in self.entries.iter().filter(|e| !e.key.is_empty() && e.key.bytes().all(is_token_char)) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&e.key);
            out.push('=');
            percent_encode_into(&e.value, &mut out);
            if !e.properties.is_empty() {
                out.push(';');
                out.push_str(&e.properties);
            }
        }
        out
    }

    /// Writes the `baggage` header (nothing if empty).
    pub fn inject(&self, carrier: &mut impl Injector) {
        if !self.is_empty() {
            carrier.set(BAGGAGE, self.header_value());
        }
    }

    /// Reads the `baggage` header (empty if absent).
    pub fn extract(carrier: &impl Extractor) -> Baggage {
        carrier.get(BAGGAGE).map(|h| Baggage::parse(&h)).unwrap_or_default()
    }
}

/// RFC 7230 `tchar`, what W3C Baggage allows in keys.
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Decodes `%XX` escapes (baggage values, `OTEL_*` lists); `None` on a
/// malformed escape or invalid UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = crate::ids::hex_val(*b.get(i + 1)?)?;
            let lo = crate::ids::hex_val(*b.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes what W3C Baggage values may not contain literally.
fn percent_encode_into(s: &str, out: &mut String) {
    for &c in s.as_bytes() {
        let plain = c.is_ascii_graphic() && !matches!(c, b',' | b';' | b'\\' | b'"' | b'%' | b'=');
        if plain {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_valid_and_forward_compatible() {
        let (t, s, f) = parse_traceparent(VALID).unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
        assert!(f.is_sampled());
        assert_eq!(format_traceparent(t, s, f), VALID);
        // A future version with more fields is read by the 00 layout.
        assert!(parse_traceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever").is_ok());
        assert!(parse_traceparent(" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ").is_ok());
    }

    #[test]
    fn traceparent_malformed_is_rejected() {
        for bad in [
            "",
            "00",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-€1",
        ] {
            assert!(parse_traceparent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn inject_then_extract_round_trips_over_maps_and_http_headers() {
        let ctx = SpanContext::new(
            TraceId::from_u128(0x4bf92f3577b34da6a3ce929d0e0e4736),
            SpanId::from_u64(0x00f067aa0ba902b7),
            TraceFlags::SAMPLED,
            false,
            TraceState::parse("ot=th:8,vendor=x").unwrap(),
        );
        let mut map = HashMap::new();
        TraceContext::inject(&ctx, &mut map);
        let got = TraceContext::extract(&map).unwrap();
        assert_eq!((got.trace_id(), got.span_id(), got.flags()), (ctx.trace_id(), ctx.span_id(), ctx.flags()));
        assert!(got.is_remote());
        assert_eq!(got.trace_state(), ctx.trace_state());

        let mut headers = http::HeaderMap::new();
        TraceContext::inject(&ctx, &mut headers);
        assert_eq!(headers.get("traceparent").unwrap(), VALID);
        assert_eq!(TraceContext::extract(&headers).unwrap().span_id(), ctx.span_id());
        // Several tracestate headers are one list.
        headers.remove("tracestate");
        headers.append("tracestate", http::HeaderValue::from_static("a=1"));
        headers.append("tracestate", http::HeaderValue::from_static("b=2"));
        assert_eq!(TraceContext::extract(&headers).unwrap().trace_state().header_value(), "a=1,b=2");
    }

    #[test]
    fn a_bad_tracestate_is_dropped_but_the_traceparent_kept() {
        let mut map = HashMap::new();
        map.insert("Traceparent".to_string(), VALID.to_string());
        map.insert("tracestate".to_string(), "not a list".to_string());
        let got = TraceContext::extract(&map).unwrap();
        assert!(got.trace_state().is_empty());
        map.insert("Traceparent".to_string(), "garbage".to_string());
        assert!(TraceContext::extract(&map).is_none());
        assert!(TraceContext::extract(&HashMap::new()).is_none());
        let mut out = HashMap::new();
        TraceContext::inject(&SpanContext::invalid(), &mut out);
        assert!(out.is_empty(), "an invalid context injects nothing");
    }

    #[test]
    fn baggage_parses_leniently_and_round_trips() {
        let b =
            Baggage::parse("userId=alice, serverNode = DF%2028 ;prop=1,bad key=1,=novalue,noequals,isProduction=false");
        assert_eq!(b.get("userId"), Some("alice"));
        assert_eq!(b.get("serverNode"), Some("DF 28"));
        assert_eq!(b.get("isProduction"), Some("false"));
        assert_eq!(b.len(), 3);
        let again = Baggage::parse(&b.header_value());
        assert_eq!(again, b);
        let mut h = http::HeaderMap::new();
        b.inject(&mut h);
        assert_eq!(Baggage::extract(&h), b);
    }

    #[test]
    fn baggage_limits_are_kept() {
        let many: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        assert_eq!(Baggage::parse(&many.join(",")).len(), MAX_BAGGAGE_MEMBERS);
        let big = format!("a={},b=1", "x".repeat(MAX_BAGGAGE_BYTES));
        assert!(Baggage::parse(&big).is_empty());
    }

    proptest! {
        #[test]
        fn traceparent_round_trips(t in 1u128.., s in 1u64.., f in any::<u8>()) {
            let h = format_traceparent(TraceId::from_u128(t), SpanId::from_u64(s), TraceFlags::new(f));
            let (t2, s2, f2) = parse_traceparent(&h).unwrap();
            prop_assert_eq!((t2.to_u128(), s2.to_u64(), f2.to_u8()), (t, s, f));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,120}") {
            let _ = parse_traceparent(&s);
            let _ = Baggage::parse(&s);
        }

        #[test]
        fn baggage_values_round_trip(entries in proptest::collection::vec(("[a-zA-Z0-9_-]{1,10}", "\\PC{0,20}"), 0..10)) {
            let mut b = Baggage::new();
            for (k, v) in &entries {
                b.set(k.clone(), v.trim_matches([' ', '\t']).to_string());
            }
            prop_assert_eq!(Baggage::parse(&b.header_value()), b);
        }
    }
}
