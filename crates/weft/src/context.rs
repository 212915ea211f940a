//! The span context (what identifies a span across process boundaries) and the W3C
//! `tracestate`, including the OpenTelemetry `ot=th:…;rv:…` entry.
//!
//! `TraceState` keeps the `ot` sampling values as integers and any other vendors'
//! entries as one shared string, so copying it to every child span costs no
//! allocation in the common case (no foreign entries) and one reference-count
//! increment otherwise.

use std::sync::Arc;

use crate::error::ParseError;
use crate::ids::{SpanId, TraceFlags, TraceId};
use crate::sampler::threshold::{parse_rv, Threshold, MAX_RANDOMNESS};

/// Most list members W3C allows in `tracestate`.
const MAX_MEMBERS: usize = 32;

/// W3C `tracestate`, with OpenTelemetry's sampling entry parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceState {
    /// `ot=th:` — the rejection threshold the trace was sampled with; `NONE` if absent.
    th: u64,
    /// Everything else, `ot=rv:` included, rare enough to live behind one
    /// pointer: 16 bytes in every record, parent context and unsampled span,
    /// each of which writes it when it starts.
    foreign: Option<Arc<Foreign>>,
}

/// Marks an absent `th` (at most 2^56).
const NONE: u64 = u64::MAX;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Foreign {
    /// `ot=rv:` — explicit randomness to use instead of the trace ID's.
    rv: Option<u64>,
    /// Other `ot` sub-keys, kept verbatim (`key:value;key:value`).
    ot_rest: Option<Box<str>>,
    /// Every non-`ot` member, verbatim and in order (`k=v,k2=v2`).
    others: Option<Box<str>>,
}

impl Default for TraceState {
    fn default() -> Self {
        TraceState::EMPTY
    }
}

impl TraceState {
    /// An empty trace state.
    pub const EMPTY: TraceState = TraceState { th: NONE, foreign: None };

    /// The sampling threshold recorded in `ot=th:`, if any.
    #[inline]
    pub fn threshold(&self) -> Option<Threshold> {
        Threshold::from_raw(self.th)
    }
    /// This trace state with `ot=th:` set (or removed).
    #[inline]
    pub fn with_threshold(mut self, th: Option<Threshold>) -> Self {
        self.th = th.map_or(NONE, Threshold::raw);
        self
    }
    /// The explicit randomness from `ot=rv:`, if any.
    #[inline]
    pub fn explicit_randomness(&self) -> Option<u64> {
        self.foreign.as_ref().and_then(|f| f.rv)
    }
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.th == NONE && self.foreign.is_none()
    }

    /// Whether this value holds shared heap data (foreign members).
    ///
    /// This must cover everything a `TraceState` owns: when it is false, an
    /// unsampled span discards its trace state without running its destructor
    /// (`NonRecording::release`).
    #[inline]
    pub(crate) fn owns_shared(&self) -> bool {
        self.foreign.is_some()
    }

    /// References to the shared part (0 without one): lets tests see when a
    /// record holding a clone was dropped.
    #[cfg(test)]
    pub(crate) fn shared_refs(&self) -> usize {
        self.foreign.as_ref().map_or(0, Arc::strong_count)
    }

    /// Parses a `tracestate` header value. Malformed members are an error; callers
    /// that extract from a request ignore the whole header then, as W3C asks.
    pub fn parse(header: &str) -> Result<Self, ParseError> {
        let mut ts = TraceState::default();
        let mut foreign = Foreign::default();
        let mut others = String::new();
        let mut count = 0;
        for member in header.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_MEMBERS {
                return Err(ParseError::new("tracestate", "more than 32 list members"));
            }
            let (key, value) = member
                .split_once('=')
                .ok_or_else(|| ParseError::new("tracestate", format!("member {count} has no '='")))?;
            if !valid_key(key) {
                return Err(ParseError::new("tracestate", format!("invalid key {key:?}")));
            }
            if !valid_value(value) {
                return Err(ParseError::new("tracestate", format!("invalid value for key {key:?}")));
            }
            if key == "ot" {
                let mut rest = String::new();
                for sub in value.split(';') {
                    // OpenTelemetry's grammar for `ot`: `key:value` pairs, keys
                    // [a-z][a-z0-9]*, values [a-zA-Z0-9._-]*. Anything else would
                    // not survive a write and re-read unchanged (found by fuzzing).
                    let well_formed = sub.split_once(':').is_some_and(|(k, v)| {
                        k.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
                            && k.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                            && v.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
                    });
                    if !well_formed {
                        return Err(ParseError::new("tracestate", format!("malformed ot sub-key {sub:?}")));
                    }
                    match sub.split_once(':') {
                        Some(("th", v)) => ts.th = Threshold::parse_th(v)?.raw(),
                        Some(("rv", v)) => foreign.rv = Some(parse_rv(v)?),
                        Some(_) => {
                            if !rest.is_empty() {
                                rest.push(';');
                            }
                            rest.push_str(sub);
                        }
                        None => return Err(ParseError::new("tracestate", "ot sub-key without ':'")),
                    }
                }
                if !rest.is_empty() {
                    foreign.ot_rest = Some(rest.into());
                }
            } else {
                if !others.is_empty() {
                    others.push(',');
                }
                others.push_str(member);
            }
        }
        if !others.is_empty() {
            foreign.others = Some(others.into());
        }
        if foreign != Foreign::default() {
            ts.foreign = Some(Arc::new(foreign));
        }
        Ok(ts)
    }

    /// The header value (the `ot` member first, as the most recently updated).
    pub fn header_value(&self) -> String {
        let mut ot = String::new();
        if let Some(th) = self.threshold().and_then(|t| t.to_th()) {
            ot.push_str("th:");
            ot.push_str(&th);
        }
        if let Some(rv) = self.explicit_randomness() {
            if !ot.is_empty() {
                ot.push(';');
            }
            ot.push_str(&format!("rv:{:014x}", rv & MAX_RANDOMNESS));
        }
        let foreign = self.foreign.as_deref();
        if let Some(rest) = foreign.and_then(|f| f.ot_rest.as_deref()) {
            if !ot.is_empty() {
                ot.push(';');
            }
            ot.push_str(rest);
        }
        let mut out = String::new();
        if !ot.is_empty() {
            out.push_str("ot=");
            out.push_str(&ot);
        }
        if let Some(o) = foreign.and_then(|f| f.others.as_deref()) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(o);
        }
        out
    }
}

fn valid_key(k: &str) -> bool {
    // W3C: lowercase letter or digit first; [a-z0-9_\-*/] and one optional '@' (tenant@system).
    let b = k.as_bytes();
    if b.is_empty() || b.len() > 256 || !(b[0].is_ascii_lowercase() || b[0].is_ascii_digit()) {
        return false;
    }
    b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@'))
        && b.iter().filter(|&&c| c == b'@').count() <= 1
}

fn valid_value(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter().all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// What identifies a span: trace ID, span ID, flags and trace state, and whether it
/// came from another process.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    is_remote: bool,
    trace_state: TraceState,
}

impl SpanContext {
    /// Builds a span context.
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        flags: TraceFlags,
        is_remote: bool,
        trace_state: TraceState,
    ) -> Self {
        SpanContext { trace_id, span_id, flags, is_remote, trace_state }
    }
    /// The invalid context (all-zero IDs).
    pub fn invalid() -> Self {
        Self::default()
    }
    /// The trace ID.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    /// The span ID.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }
    /// The trace flags.
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }
    /// Whether the sampled flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }
    /// Whether this context was received from another process.
    pub fn is_remote(&self) -> bool {
        self.is_remote
    }
    /// The trace state.
    pub fn trace_state(&self) -> &TraceState {
        &self.trace_state
    }
    /// Whether both IDs are valid.
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }
    /// The 56 bits of randomness consistent sampling uses: `ot=rv` if present, else
    /// the trace ID's rightmost 56 bits.
    pub fn randomness(&self) -> u64 {
        self.trace_state.explicit_randomness().unwrap_or_else(|| self.trace_id.randomness())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_writes_ot_and_foreign_members() {
        let ts = TraceState::parse("ot=th:c;rv:0123456789abcd;xx:1,congo=t61rcWkgMzE, rojo=00f067aa0ba902b7").unwrap();
        assert_eq!(ts.threshold().unwrap().probability(), 0.25);
        assert_eq!(ts.explicit_randomness(), Some(0x0123456789abcd));
        assert_eq!(ts.header_value(), "ot=th:c;rv:0123456789abcd;xx:1,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    }

    #[test]
    fn malformed_tracestate_is_an_error() {
        // The last one was found by fuzzing: it parsed, but did not survive a
        // write and re-read.
        for bad in [
            "noequals",
            "UPPER=1",
            "a=b=c",
            "ot=th:zz",
            "ot=th",
            "k=",
            "k=v\u{1}",
            &"a=1,".repeat(33),
            "ot=:   ? ;th:D",
        ] {
            assert!(TraceState::parse(bad).is_err(), "{bad}");
        }
        assert!(TraceState::parse("").unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = TraceState::parse(&s);
        }

        #[test]
        fn header_round_trips(th in proptest::option::of(0u64..(1u64 << 56)), rv in proptest::option::of(0u64..(1u64 << 56)),
                              others in proptest::collection::vec(("[a-z][a-z0-9]{0,6}", "[a-zA-Z0-9]{1,8}"), 0..4)) {
            let mut ts = TraceState::default().with_threshold(th.and_then(Threshold::from_raw));
            let o: Vec<String> = others.iter().filter(|(k, _)| k != "ot").map(|(k, v)| format!("{k}={v}")).collect();
            let f = Foreign { rv, ot_rest: None, others: (!o.is_empty()).then(|| o.join(",").into()) };
            if f != Foreign::default() { ts.foreign = Some(Arc::new(f)); }
            let parsed = TraceState::parse(&ts.header_value()).unwrap();
            prop_assert_eq!(parsed, ts);
        }
    }
}
