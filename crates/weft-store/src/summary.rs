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

impl TraceSummary {
    /// Summarises the spans of one trace (deduplicated by the caller).
    pub fn of(trace_id: [u8; 16], spans: &[FullSpan]) -> TraceSummary {
        let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span.span_id.as_slice()).collect();
        let mut services = BTreeSet::new();
        let mut sum = TraceSummary { trace_id, min_start: u64::MAX, ..Default::default() };
        let mut root: Option<&FullSpan> = None;
        for s in spans {
            let sp = &s.span;
            services.insert(&*s.origin.service);
            sum.span_count += 1;
            if sp.status.as_ref().is_some_and(|st| st.code == STATUS_ERROR) {
                sum.error_count += 1;
            }
            sum.min_start = sum.min_start.min(sp.start_time_unix_nano);
            sum.max_end = sum.max_end.max(sp.end_time_unix_nano.max(sp.start_time_unix_nano));
            if sp.parent_span_id.is_empty() {
                // Several roots (a broken client): the earliest is the root.
                if root.is_none_or(|r| sp.start_time_unix_nano < r.span.start_time_unix_nano) {
                    root = Some(s);
                }
            } else if !ids.contains(sp.parent_span_id.as_slice()) {
                sum.orphan_count += 1;
            }
        }
        if sum.span_count == 0 {
            sum.min_start = 0;
        }
        sum.services = services.into_iter().map(str::to_owned).collect();
        match root {
            Some(r) => {
                sum.root_service = r.origin.service.to_string();
                sum.root_name = r.span.name.clone();
                sum.start = r.span.start_time_unix_nano;
                sum.duration = r.span.end_time_unix_nano.saturating_sub(r.span.start_time_unix_nano);
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
