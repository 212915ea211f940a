//! Trace summaries: what is known about a trace as a whole, computed when it is
//! complete (and again when late spans arrive).
//!
//! ## Duration under clock skew
//! Services' clocks disagree, often by milliseconds, so a child can appear to
//! start before its parent or end after it. Raw timestamps are kept untouched in
//! the spans; the summary's `start` and `duration` follow one rule:
//! - with a root span (no parent), the trace starts when the root starts and
//!   lasts as long as the root: the root is measured on one clock, and it
//!   encloses the request as its caller saw it, so skewed clocks elsewhere cannot
//!   stretch or shrink it;
//! - without a root (not received, or the trace began outside), the trace spans
//!   the earliest start to the latest end over all its spans.
//!
//! `min_start`/`max_end` keep the raw extremes over all spans for whoever wants
//! the other view.

use std::collections::{BTreeSet, HashSet};

use serde::Serialize;

use crate::span::FullSpan;

/// `Status.code` of an error.
pub const STATUS_ERROR: i32 = 2;

/// One trace, summarised.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    /// The trace.
    #[serde(serialize_with = "hex16")]
    pub trace_id: [u8; 16],
    /// The root span's service ("" without a root).
    pub root_service: String,
    /// The root span's name ("" without a root).
    pub root_name: String,
    /// Start, Unix ns (see the module note).
    pub start: u64,
    /// Duration, ns (see the module note).
    pub duration: u64,
    /// Earliest span start over all spans, Unix ns.
    pub min_start: u64,
    /// Latest span end over all spans, Unix ns.
    pub max_end: u64,
    /// Spans.
    pub span_count: u32,
    /// Spans with status ERROR.
    pub error_count: u32,
    /// Services with spans in it, sorted.
    pub services: Vec<String>,
    /// Spans whose parent is not in the trace.
    pub orphan_count: u32,
}

fn hex16<S: serde::Serializer>(id: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(id))
}

/// Lower-case hex of bytes.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(b.len() * 2);
    for &x in b {
        out.push(D[(x >> 4) as usize] as char);
        out.push(D[(x & 15) as usize] as char);
    }
    out
}

/// Bytes of an even number of hex digits (either case); `None` otherwise.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    b.chunks_exact(2).map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?)).collect()
}

/// Parses 32 hex digits (either case) into a trace ID.
pub fn parse_hex16(s: &str) -> Option<[u8; 16]> {
    unhex(s)?.try_into().ok()
}

/// What a summary needs of one span, borrowed from wherever the span is (read
/// in place while sealing, or decoded from a block).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpanFacts<'a> {
    /// Service of its resource.
    pub service: &'a str,
    /// Span name.
    pub name: &'a str,
    /// Span ID.
    pub span_id: [u8; 8],
    /// Parent span ID, `None` for a root.
    pub parent: Option<[u8; 8]>,
    /// Start, Unix ns.
    pub start: u64,
    /// End, Unix ns.
    pub end: u64,
    /// Whether its status is ERROR.
    pub error: bool,
}

impl FullSpan {
    /// The facts a summary needs.
    pub fn facts(&self) -> SpanFacts<'_> {
        let sp = &self.span;
        let id8 = |b: &[u8]| <[u8; 8]>::try_from(b).unwrap_or_default();
        SpanFacts {
            service: &self.origin.service,
            name: &sp.name,
            span_id: id8(&sp.span_id),
            parent: (!sp.parent_span_id.is_empty()).then(|| id8(&sp.parent_span_id)),
            start: sp.start_time_unix_nano,
            end: sp.end_time_unix_nano,
            error: sp.status.as_ref().is_some_and(|st| st.code == STATUS_ERROR),
        }
    }
}

impl TraceSummary {
    /// Summarises the spans of one trace (deduplicated by the caller).
    pub fn of(trace_id: [u8; 16], spans: &[FullSpan]) -> TraceSummary {
        let facts: Vec<SpanFacts<'_>> = spans.iter().map(FullSpan::facts).collect();
        TraceSummary::of_facts(trace_id, &facts)
    }

    /// Summarises one trace from its spans' facts (deduplicated by the caller).
    pub fn of_facts(trace_id: [u8; 16], spans: &[SpanFacts<'_>]) -> TraceSummary {
        // Most traces are small: a linear search for parents beats building a
        // hash set for them.
        let big = spans.len() > 32;
        let ids: HashSet<[u8; 8]> = if big { spans.iter().map(|s| s.span_id).collect() } else { HashSet::new() };
        let has = |id: &[u8; 8]| if big { ids.contains(id) } else { spans.iter().any(|s| &s.span_id == id) };
        let mut services = BTreeSet::new();
        let mut sum = TraceSummary { trace_id, min_start: u64::MAX, ..Default::default() };
        let mut root: Option<&SpanFacts<'_>> = None;
        for s in spans {
            services.insert(s.service);
            sum.span_count += 1;
            if s.error {
                sum.error_count += 1;
            }
            sum.min_start = sum.min_start.min(s.start);
            sum.max_end = sum.max_end.max(s.end.max(s.start));
            match &s.parent {
                // Several roots (a broken client): the earliest is the root.
                None => {
                    if root.is_none_or(|r| s.start < r.start) {
                        root = Some(s);
                    }
                }
                Some(p) if !has(p) => sum.orphan_count += 1,
                Some(_) => {}
            }
        }
        if sum.span_count == 0 {
            sum.min_start = 0;
        }
        sum.services = services.into_iter().map(str::to_owned).collect();
        match root {
            Some(r) => {
                sum.root_service = r.service.to_owned();
                sum.root_name = r.name.to_owned();
                sum.start = r.start;
                sum.duration = r.end.saturating_sub(r.start);
            }
            None => {
                sum.start = sum.min_start;
                sum.duration = sum.max_end.saturating_sub(sum.min_start);
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use opentelemetry_proto::tonic::trace::v1::{Span, Status};

    use super::*;
    use crate::span::Origin;

    fn span(service: &str, id: u8, parent: u8, start: u64, end: u64, error: bool) -> FullSpan {
        FullSpan {
            origin: Arc::new(Origin { service: Arc::from(service), ..Default::default() }),
            span: Span {
                trace_id: vec![1; 16],
                span_id: vec![id; 8],
                parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
                name: format!("op{id}"),
                start_time_unix_nano: start,
                end_time_unix_nano: end,
                status: error.then(|| Status { code: STATUS_ERROR, message: "bad".into() }),
                ..Default::default()
            },
        }
    }

    #[test]
    fn root_sets_start_and_duration_even_when_children_are_skewed() {
        // The backend's clock is 5 ms ahead: its child ends after the root.
        let spans = [
            span("front", 1, 0, 1_000, 11_000, false),
            span("back", 2, 1, 2_000, 16_000, true),
            span("back", 3, 9, 500, 600, false),
        ];
        let s = TraceSummary::of([1; 16], &spans);
        assert_eq!((s.start, s.duration), (1_000, 10_000));
        assert_eq!((s.min_start, s.max_end), (500, 16_000));
        assert_eq!((s.span_count, s.error_count, s.orphan_count), (3, 1, 1));
        assert_eq!(s.services, vec!["back", "front"]);
        assert_eq!((s.root_service.as_str(), s.root_name.as_str()), ("front", "op1"));
    }

    #[test]
    fn without_a_root_the_trace_spans_its_spans() {
        let spans = [span("a", 2, 1, 2_000, 3_000, false), span("b", 3, 2, 2_500, 4_000, false)];
        let s = TraceSummary::of([1; 16], &spans);
        assert_eq!((s.start, s.duration, s.orphan_count), (2_000, 2_000, 1));
        assert_eq!(s.root_service, "");
        assert_eq!(hex(&[0xab, 0x01]), "ab01");
    }
}
