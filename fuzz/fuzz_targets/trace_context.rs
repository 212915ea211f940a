//! Fuzzes the SDK's decoders of outside input: `traceparent`, `tracestate` and
//! `baggage` headers, hex trace and span IDs, and `th` thresholds. None may
//! panic; what parses must write back to a value that parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft::propagation::{format_traceparent, parse_traceparent, Baggage};
use weft::sampler::Threshold;
use weft::{SpanId, TraceId, TraceState};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(ts) = TraceState::parse(s) {
        let written = ts.header_value();
        let again = TraceState::parse(&written).expect("a written tracestate parses");
        assert_eq!(again, ts, "tracestate round trip");
    }
    if let Ok((t, id, flags)) = parse_traceparent(s) {
        let written = format_traceparent(t, id, flags);
        assert_eq!(parse_traceparent(&written), Ok((t, id, flags)), "traceparent round trip");
    }
    let baggage = Baggage::parse(s);
    assert_eq!(Baggage::parse(&baggage.header_value()), baggage, "baggage round trip");
    if let Ok(t) = TraceId::from_hex(s) {
        assert_eq!(TraceId::from_hex(&t.to_string()), Ok(t));
    }
    if let Ok(id) = SpanId::from_hex(s) {
        assert_eq!(SpanId::from_hex(&id.to_string()), Ok(id));
    }
    if let Ok(th) = Threshold::parse_th(s) {
        if let Some(w) = th.to_th() {
            assert_eq!(Threshold::parse_th(&w), Ok(th));
        }
    }
});
