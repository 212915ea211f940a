//! What the Jaeger- and Tempo-compatible APIs share: Go-style durations,
//! filters built from their search parameters (as TraceQL ASTs, so no value
//! needs escaping), searches run to a list of traces under the server's search
//! limits, and the service dependency graph.
//!
//! Their parameters mean what they mean in Jaeger and Tempo: a Jaeger search's
//! service, operation, tags and durations must all hold on one span (Jaeger's
//! own stores test them span by span); a tag matches a span or resource
//! attribute of that key whose value, written as text, is the given one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, StatusCode};
use weft_store::search::{Hit, Load, Order, Search, SearchStats};
use weft_store::FullSpan;
use weft_traceql::ast::{Cond, Field, Intrinsic, Kind, Literal, Op, Query, Scope, SpanExpr, StatusCode as Status};
use weft_traceql::Filter;

use crate::State;

/// How long a compatible search may run: Jaeger UI gives up after 10 s.
pub const SEARCH_TIMEOUT: Duration = Duration::from_secs(9);
/// Most traces a compatible search returns (Jaeger and Tempo both cap theirs).
pub const MAX_LIMIT: usize = 10_000;
/// Matches held while waiting for their turn.
const MAX_PENDING: usize = 50_000;

/// Parses a Go duration (`300ms`, `1.5s`, `1h30m`, `2us`, `250µs`, `0`) into
/// nanoseconds.
pub fn parse_go_duration(s: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("{s:?} is not a duration like 100ms, 1.5s or 1h30m ({why})");
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() {
        return Err(bad("empty"));
    }
    if t.starts_with('-') {
        return Err(bad("negative"));
    }
    let t = t.strip_prefix('+').unwrap_or(t);
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad("a number must come before each unit"));
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(bad("a unit is missing: ns, us, ms, s, m or h")),
            u => return Err(bad(&format!("unknown unit {u:?}"))),
        };
        rest = &rest[unit_len..];
        total += n * scale;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad("too long"));
    }
    Ok(total.round() as u64)
}

fn cond(field: Field, op: Op, value: Literal) -> SpanExpr {
    SpanExpr::Cond(Cond { field, op, value })
}

/// Every one of `conds`, as a balanced tree of `&&`: its text nests
/// log₂(n) deep, so a search with hundreds of tags stays within the parser's
/// nesting limit when printed and read back (a chain nested n deep did not —
/// the fuzzer found it).
pub fn all_of(mut conds: Vec<SpanExpr>) -> Option<SpanExpr> {
    while conds.len() > 1 {
        let mut next = Vec::with_capacity(conds.len().div_ceil(2));
        let mut it = conds.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => SpanExpr::And(Box::new(a), Box::new(b)),
                None => a,
            });
        }
        conds = next;
    }
    conds.pop()
}

fn or(a: SpanExpr, b: SpanExpr) -> SpanExpr {
    SpanExpr::Or(Box::new(a), Box::new(b))
}

/// The condition "attribute `key` (span or resource) is `value`", `value`
/// being text as Jaeger and Tempo take it: a number or boolean matches an
/// attribute of that type too. A few keys name what OTLP holds elsewhere —
/// `error`, `span.kind`, `otel.status_code` — as Jaeger's translation of OTLP
/// writes them.
pub fn tag_condition(key: &str, value: &str) -> SpanExpr {
    let attr = || Field::Attr(Scope::Any, key.to_owned());
    let text = cond(attr(), Op::Eq, Literal::Str(value.to_owned()));
    match (key, value) {
        ("error", "true") => {
            return or(cond(Field::Intrinsic(Intrinsic::Status), Op::Eq, Literal::Status(Status::Error)), text)
        }
        ("span.kind", k) => {
            if let Some(kind) = Kind::ALL.into_iter().find(|x| x.as_str() == k.to_ascii_lowercase()) {
                return or(cond(Field::Intrinsic(Intrinsic::Kind), Op::Eq, Literal::Kind(kind)), text);
            }
        }
        ("otel.status_code" | "status.code" | "status", s) => {
            let status = match s.to_ascii_lowercase().as_str() {
                "error" | "2" => Some(Status::Error),
                "ok" | "1" => Some(Status::Ok),
                "unset" | "0" => Some(Status::Unset),
                _ => None,
            };
            if let Some(st) = status {
                return or(cond(Field::Intrinsic(Intrinsic::Status), Op::Eq, Literal::Status(st)), text);
            }
        }
        _ => {}
    }
    if let Ok(i) = value.parse::<i64>() {
        or(text, cond(attr(), Op::Eq, Literal::Int(i)))
    } else if let Ok(f) = value.parse::<f64>().map_err(|_| ()).and_then(|f| if f.is_finite() { Ok(f) } else { Err(()) })
    {
        or(text, cond(attr(), Op::Eq, Literal::Float(f)))
    } else if let Ok(b) = value.parse::<bool>() {
        or(text, cond(attr(), Op::Eq, Literal::Bool(b)))
    } else {
        text
    }
}

/// The parts of a search every compatible API can ask for.
#[derive(Debug, Default, Clone)]
pub struct SpanSearch {
    /// The span's service.
    pub service: Option<String>,
    /// The span's name.
    pub operation: Option<String>,
    /// The span's kind (`server`, …).
    pub kind: Option<Kind>,
    /// Attribute conditions (key, value as text).
    pub tags: Vec<(String, String)>,
    /// Least span duration, ns.
    pub min_duration: Option<u64>,
    /// Greatest span duration, ns.
    pub max_duration: Option<u64>,
}

impl SpanSearch {
    /// What one span must satisfy (`None`: any span).
    pub fn span_expr(&self) -> Option<SpanExpr> {
        let mut e = Vec::new();
        if let Some(s) = &self.service {
            e.push(cond(Field::Attr(Scope::Resource, "service.name".into()), Op::Eq, Literal::Str(s.clone())));
        }
        if let Some(o) = &self.operation {
            e.push(cond(Field::Intrinsic(Intrinsic::Name), Op::Eq, Literal::Str(o.clone())));
        }
        if let Some(k) = self.kind {
            e.push(cond(Field::Intrinsic(Intrinsic::Kind), Op::Eq, Literal::Kind(k)));
        }
        for (k, v) in &self.tags {
            e.push(tag_condition(k, v));
        }
        if let Some(d) = self.min_duration {
            e.push(cond(Field::Intrinsic(Intrinsic::Duration), Op::Ge, Literal::Duration(d)));
        }
        if let Some(d) = self.max_duration {
            e.push(cond(Field::Intrinsic(Intrinsic::Duration), Op::Le, Literal::Duration(d)));
        }
        all_of(e)
    }

    /// The whole filter: one spanset.
    pub fn query(&self) -> Query {
        Query::Spanset(self.span_expr().unwrap_or(SpanExpr::All))
    }
}

/// A span kind named as Jaeger and OTLP JSON name them (`server`,
/// `SPAN_KIND_SERVER`); empty is "any".
pub fn parse_kind(s: &str) -> Result<Option<Kind>, String> {
    let l = s.trim().to_ascii_lowercase();
    let l = l.strip_prefix("span_kind_").unwrap_or(&l);
    if l.is_empty() {
        return Ok(None);
    }
    Kind::ALL.into_iter().find(|k| k.as_str() == l).map(Some).ok_or_else(|| {
        format!("span kind {s:?} is not one of unspecified, internal, server, client, producer, consumer")
    })
}

/// A search to run to the end of a page.
pub struct Collect {
    /// Window on trace start, Unix ns.
    pub start: u64,
    /// End of the window (exclusive).
    pub end: u64,
    /// The filter.
    pub filter: Filter,
    /// Most traces.
    pub limit: usize,
    /// What each trace carries.
    pub load: Load,
}

/// Why a compatible search did not run.
#[derive(Debug)]
pub enum CollectError {
    /// The server is running its most searches; retry after a second.
    Busy,
    /// The search failed.
    Failed(String),
}

impl CollectError {
    /// HTTP status for it.
    pub fn status(&self) -> StatusCode {
        match self {
            CollectError::Busy => StatusCode::TOO_MANY_REQUESTS,
            CollectError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl std::fmt::Display for CollectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CollectError::Busy => f.write_str("too many searches are running; retry in a second"),
            CollectError::Failed(e) => write!(f, "the search failed: {e}"),
        }
    }
}

/// Adds `Retry-After` to a 429.
pub fn with_retry_after<B>(mut r: http::Response<B>) -> http::Response<B> {
    if r.status() == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// Runs a search newest first, holding one of the server's search permits,
/// and returns its traces and what it inspected.
pub async fn collect(state: &Arc<State>, c: Collect) -> Result<(Vec<Hit>, SearchStats), CollectError> {
    let permit = state.searches.clone().try_acquire_owned().map_err(|_| CollectError::Busy)?;
    let store = state.store.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let q = Search {
            start: c.start,
            end: c.end,
            filter: &c.filter,
            order: Order::NewestFirst,
            limit: c.limit,
            after: None,
            load: c.load,
            deadline: Instant::now() + SEARCH_TIMEOUT,
            max_pending: MAX_PENDING,
        };
        let mut hits = Vec::new();
        let end = store.search(&q, |h| {
            hits.push(h);
            true
        });
        end.map(|e| (hits, e.stats)).map_err(|e| CollectError::Failed(e.to_string()))
    });
    job.await.map_err(|e| CollectError::Failed(e.to_string()))?
}

/// Calls between services: for every span whose parent is in the same trace
/// and in another service, one call from the parent's service to the span's.
/// Counted over the traces starting in `[start, end)`, newest first, until
/// [`SEARCH_TIMEOUT`]; `complete` is false if it stopped early.
pub struct Dependencies {
    /// (parent service, child service) → calls.
    pub calls: BTreeMap<(String, String), u64>,
    /// Whether every trace of the window was counted.
    pub complete: bool,
}

/// Counts the calls of one trace into `calls`.
pub fn count_calls(spans: &[FullSpan], calls: &mut BTreeMap<(String, String), u64>) {
    let by_id: std::collections::HashMap<&[u8], &str> =
        spans.iter().map(|s| (s.span.span_id.as_slice(), &*s.origin.service)).collect();
    for s in spans {
        if s.span.parent_span_id.is_empty() {
            continue;
        }
        if let Some(parent) = by_id.get(s.span.parent_span_id.as_slice()) {
            if *parent != &*s.origin.service {
                *calls.entry(((*parent).to_owned(), s.origin.service.to_string())).or_default() += 1;
            }
        }
    }
}

/// The dependency graph of traces starting in `[start, end)`.
pub async fn dependencies(state: &Arc<State>, start: u64, end: u64) -> Result<Dependencies, CollectError> {
    let permit = state.searches.clone().try_acquire_owned().map_err(|_| CollectError::Busy)?;
    let store = state.store.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let filter = Filter::parse("").map_err(|e| CollectError::Failed(e.to_string()))?;
        let deadline = Instant::now() + SEARCH_TIMEOUT;
        let mut calls = BTreeMap::new();
        let mut after = None;
        loop {
            let q = Search {
                start,
                end,
                filter: &filter,
                order: Order::NewestFirst,
                limit: 5_000,
                after,
                load: Load::AllSpans,
                deadline,
                max_pending: MAX_PENDING,
            };
            let e = store
                .search(&q, |h| {
                    count_calls(&h.spans, &mut calls);
                    true
                })
                .map_err(|e| CollectError::Failed(e.to_string()))?;
            if e.stats.stopped.is_some() {
                return Ok(Dependencies { calls, complete: false });
            }
            match e.next {
                Some(n) => after = Some(n),
                None => return Ok(Dependencies { calls, complete: true }),
            }
        }
    });
    job.await.map_err(|e| CollectError::Failed(e.to_string()))?
}

/// Every attribute a query names (scope, key), in order of first mention:
/// Tempo shows them beside each matched span.
pub fn named_attributes(q: &Query) -> Vec<(Scope, String)> {
    fn spans(e: &SpanExpr, out: &mut Vec<(Scope, String)>) {
        match e {
            SpanExpr::All => {}
            SpanExpr::Cond(c) => {
                if let Field::Attr(s, k) = &c.field {
                    if !out.iter().any(|(s2, k2)| s2 == s && k2 == k) {
                        out.push((*s, k.clone()));
                    }
                }
            }
            SpanExpr::And(a, b) | SpanExpr::Or(a, b) => {
                spans(a, out);
                spans(b, out);
            }
        }
    }
    fn walk(q: &Query, out: &mut Vec<(Scope, String)>) {
        match q {
            Query::Spanset(e) => spans(e, out),
            Query::And(a, b) | Query::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(q, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_bad_ones_say_why() {
        assert_eq!(parse_go_duration("1.2s"), Ok(1_200_000_000));
        assert_eq!(parse_go_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_go_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration("250µs"), Ok(250_000));
        assert_eq!(parse_go_duration("3us"), Ok(3_000));
        assert_eq!(parse_go_duration("7ns"), Ok(7));
        assert_eq!(parse_go_duration("0"), Ok(0));
        for bad in ["", "5", "ms", "-1s", "1x", "1.2.3s", "s1"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_go_duration("10parsecs").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn searches_become_one_spanset_that_parses_back() {
        let s = SpanSearch {
            service: Some("a \"quoted\" svc".into()),
            operation: Some("GET /x".into()),
            kind: Some(Kind::Server),
            tags: vec![("http.status_code".into(), "200".into()), ("error".into(), "true".into())],
            min_duration: Some(1_000_000),
            max_duration: Some(2_000_000_000),
        };
        let q = s.query();
        let text = q.to_string();
        assert_eq!(weft_traceql::parse(&text).unwrap(), q, "{text}");
        assert!(text.contains("resource.service.name = \"a \\\"quoted\\\" svc\""), "{text}");
        assert!(text.contains("span.http.status_code") || text.contains(".http.status_code = 200"), "{text}");
        assert!(text.contains("status = error"), "{text}");
        assert_eq!(SpanSearch::default().query().to_string(), "{ }");
        assert!(Filter::new(&q).is_ok());
    }

    #[test]
    fn odd_keys_and_values_still_make_filters_that_parse_back() {
        let keys = ["", "a b", "\"", "name", "status", ".x", "k=v", "é", "span.kind", "error", "status.code"];
        let values =
            ["1e5", "-0", "1.0", "NaN", "inf", "true", "", "\\", "server", "ERROR", "9223372036854775808", "0x10"];
        for k in keys {
            for v in values {
                let s = SpanSearch { tags: vec![(k.into(), v.into())], ..Default::default() };
                let q = s.query();
                let text = q.to_string();
                assert_eq!(weft_traceql::parse(&text).as_ref(), Ok(&q), "{k:?}={v:?}: {text}");
            }
        }
    }

    #[test]
    fn hundreds_of_tags_still_print_as_a_filter_that_parses_back() {
        // (The parser also caps a filter at 16 KiB of text.)
        let tags = (0..200).map(|i| (format!("k{i}"), format!("{i}"))).collect();
        let q = SpanSearch { tags, service: Some("s".into()), ..Default::default() }.query();
        assert_eq!(weft_traceql::parse(&q.to_string()), Ok(q));
        assert!(all_of(Vec::new()).is_none());
    }

    proptest::proptest! {
        #[test]
        fn any_tag_makes_a_filter_that_parses_back(k in ".{0,12}", v in ".{0,12}") {
            let q = SpanSearch { tags: vec![(k, v)], ..Default::default() }.query();
            let text = q.to_string();
            proptest::prop_assert_eq!(weft_traceql::parse(&text), Ok(q), "{}", text);
        }

        #[test]
        fn go_durations_read_what_they_say(h in 0u64..100, m in 0u64..60, s in 0u64..60, ms in 0u64..1000) {
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let want = ((h * 60 + m) * 60 + s) * 1_000_000_000 + ms * 1_000_000;
            proptest::prop_assert_eq!(parse_go_duration(&text), Ok(want));
        }
    }

    #[test]
    fn kinds_parse_in_both_spellings() {
        assert_eq!(parse_kind("SPAN_KIND_CLIENT"), Ok(Some(Kind::Client)));
        assert_eq!(parse_kind("server"), Ok(Some(Kind::Server)));
        assert_eq!(parse_kind(""), Ok(None));
        assert!(parse_kind("sideways").is_err());
    }

    #[test]
    fn calls_cross_services_only() {
        use opentelemetry_proto::tonic::trace::v1::Span;
        use weft_store::Origin;
        let origin = |s: &str| {
            Arc::new(Origin::new(
                vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                    key: "service.name".into(),
                    value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
                        value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s.into())),
                    }),
                    ..Default::default()
                }],
                Default::default(),
            ))
        };
        let span = |id: u8, parent: Option<u8>, svc: &str| FullSpan {
            origin: origin(svc),
            span: Span {
                span_id: vec![id; 8],
                parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
                ..Default::default()
            },
        };
        let spans = vec![
            span(1, None, "web"),
            span(2, Some(1), "web"),
            span(3, Some(2), "db"),
            span(4, Some(1), "db"),
            span(5, Some(9), "cache"),
        ];
        let mut calls = BTreeMap::new();
        count_calls(&spans, &mut calls);
        assert_eq!(calls.into_iter().collect::<Vec<_>>(), vec![(("web".into(), "db".into()), 2)]);
    }
}
