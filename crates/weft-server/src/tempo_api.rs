//! Tempo's HTTP query API on the `--http` address, so Grafana's Tempo data
//! source works against `weft serve` unchanged:
//!
//! - `/api/echo`, `/ready` — Grafana's "Save & test";
//! - `/api/v2/traces/{id}` (`{"trace", "status"}`, or protobuf
//!   `TraceByIDResponse` with `Accept: application/protobuf`) and
//!   `/api/traces/{id}` (`{"batches"}`); IDs in the JSON in base64, as Tempo
//!   writes them; trace IDs accepted in hex (leading zeros may be left out) or
//!   base64;
//! - `/api/search` — TraceQL subset in `q`, or logfmt `tags` with
//!   `minDuration`/`maxDuration`; `limit`, `spss`, `start`/`end` in epoch
//!   seconds;
//! - tag names and values, v1 and v2 forms.
//!
//! Errors are plain text with a 4xx status, as Tempo answers them.

use std::sync::Arc;

use base64::Engine;
use http::{HeaderValue, StatusCode};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use weft_store::search::Load;
use weft_store::summary::{hex, unhex};
use weft_store::tags::ValuesQuery;
use weft_traceql::ast::{Cond, Field, Intrinsic, Literal, Op, Query, Scope, SpanExpr};
use weft_traceql::Filter;

use crate::api::{body_response, form_pairs, read_trace};
use crate::compat_query::{
    all_of, collect, named_attributes, parse_go_duration, tag_condition, with_retry_after, Collect,
};
use crate::http::Body;
use crate::search_api::now_nanos;
use crate::State;

/// Traces a search returns when it gives no `limit` (Tempo's default).
const DEFAULT_LIMIT: usize = 20;
/// Matched spans shown per trace when it gives no `spss` (Tempo's default).
const DEFAULT_SPSS: usize = 3;
/// A search's window when it gives no start: the last hour.
const DEFAULT_WINDOW_NS: u64 = 3600 * 1_000_000_000;
/// Values listed by a tag-values call.
const VALUES_LIMIT: usize = 1_000;

fn plain(status: StatusCode, msg: impl Into<String>) -> http::Response<Body> {
    let mut r = body_response(status, msg.into().into_bytes(), "text/plain; charset=utf-8");
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

fn ok(v: serde_json::Value) -> http::Response<Body> {
    body_response(StatusCode::OK, v.to_string().into_bytes(), "application/json")
}

/// Routes a request that is Tempo's; `None` if the path is not one of Tempo's.
pub async fn route(
    state: Arc<State>,
    path: &str,
    query: Option<&str>,
    accept: Option<&str>,
) -> Option<http::Response<Body>> {
    let q = form_pairs(query.unwrap_or(""));
    Some(match path {
        "/api/echo" => plain(StatusCode::OK, "echo"),
        "/ready" => plain(StatusCode::OK, "ready"),
        "/api/search" => search(&state, &q).await,
        "/api/search/tags" => tag_names(&state, false, &q).await,
        "/api/v2/search/tags" => tag_names(&state, true, &q).await,
        p => {
            let decode = |s: &str| crate::api::percent_decode(s, false);
            if let Some(id) = p.strip_prefix("/api/v2/traces/") {
                trace(&state, &decode(id), true, accept).await
            } else if let Some(id) = p.strip_prefix("/api/traces/") {
                trace(&state, &decode(id), false, accept).await
            } else if let Some(tag) = p.strip_prefix("/api/v2/search/tag/").and_then(|r| r.strip_suffix("/values")) {
                tag_values(&state, &decode(tag), true, &q).await
            } else if let Some(tag) = p.strip_prefix("/api/search/tag/").and_then(|r| r.strip_suffix("/values")) {
                tag_values(&state, &decode(tag), false, &q).await
            } else {
                return None;
            }
        }
    })
}

/// A trace ID in hex (1 to 32 digits; Tempo leaves out leading zeros) or in
/// base64 (16 or 8 bytes).
pub fn parse_id(s: &str) -> Result<[u8; 16], String> {
    let s = s.trim();
    let mut id = [0u8; 16];
    if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let padded = format!("{s:0>32}");
        let bytes = unhex(&padded).ok_or_else(|| format!("{s:?} is not a trace ID"))?;
        id.copy_from_slice(&bytes);
        return Ok(id);
    }
    let engines = [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE];
    for e in engines {
        if let Ok(b) = e.decode(s) {
            if b.len() == 16 || b.len() == 8 {
                id[16 - b.len()..].copy_from_slice(&b);
                return Ok(id);
            }
        }
    }
    Err(format!("{s:?} is not a trace ID: send 32 hex digits (or base64 of 16 bytes)"))
}

/// Rewrites the hex IDs of OTLP JSON into base64, as Tempo's JSON has them.
fn ids_to_base64(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(k.as_str(), "traceId" | "spanId" | "parentSpanId") {
                    if let Some(b) = x.as_str().and_then(unhex) {
                        *x = base64::engine::general_purpose::STANDARD.encode(b).into();
                        continue;
                    }
                }
                ids_to_base64(x);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(ids_to_base64),
        _ => {}
    }
}

async fn trace(state: &Arc<State>, id: &str, v2: bool, accept: Option<&str>) -> http::Response<Body> {
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e),
    };
    let spans = match read_trace(state, id).await {
        Ok(Some(s)) => s,
        Ok(None) => return plain(StatusCode::NOT_FOUND, format!("trace not found: {}", hex(&id))),
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if crate::api::accepts_protobuf(accept) {
        let data = TracesData { resource_spans: weft_store::otlp_json::to_otlp(spans) };
        // tempopb.Trace has the layout of TracesData (resource spans in field
        // 1); TraceByIDResponse holds it in field 1 and the status in field 3
        // (0: COMPLETE). /api/traces answers a bare tempopb.Trace.
        let body = if v2 {
            let trace = data.encode_to_vec();
            let mut out = Vec::with_capacity(trace.len() + 8);
            prost::encoding::encode_key(1, prost::encoding::WireType::LengthDelimited, &mut out);
            prost::encoding::encode_varint(trace.len() as u64, &mut out);
            out.extend_from_slice(&trace);
            out
        } else {
            data.encode_to_vec()
        };
        return body_response(StatusCode::OK, body, "application/protobuf");
    }
    let mut json = Vec::new();
    weft_store::otlp_json::resource_spans(&mut json, &spans);
    let mut batches: serde_json::Value = match serde_json::from_slice(&json) {
        Ok(v) => v,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("could not write the trace: {e}")),
    };
    ids_to_base64(&mut batches);
    if v2 {
        ok(serde_json::json!({"trace": {"resourceSpans": batches}, "status": "COMPLETE"}))
    } else {
        ok(serde_json::json!({"batches": batches}))
    }
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

fn seconds(q: &[(String, String)], name: &str) -> Result<Option<u64>, String> {
    param(q, name)
        .map(|v| {
            v.parse::<u64>()
                .map(|s| s.saturating_mul(1_000_000_000))
                .map_err(|_| format!("invalid {name} {v:?}: seconds since the epoch expected"))
        })
        .transpose()
}

/// Splits logfmt (`a=b c="d e"`) into pairs, as Tempo reads its `tags`.
pub fn logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("invalid tags: {key:?} has no =value (logfmt: key=value key2=\"value 2\")"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => value.extend(chars.next()),
                    Some(c) => value.push(c),
                    None => return Err(format!("invalid tags: the quoted value of {key:?} is not closed")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// The filter of a tag search: every tag on one span, as Tempo's tag search
/// does; `name`, `root.name`, `root.service.name`, `service.name` and
/// `status.code` name what they name in Tempo.
fn tags_query(tags: &[(String, String)]) -> Option<SpanExpr> {
    let conds = tags
        .iter()
        .map(|(k, v)| {
            let c = |field, value| SpanExpr::Cond(Cond { field, op: Op::Eq, value });
            match k.as_str() {
                "name" => c(Field::Intrinsic(Intrinsic::Name), Literal::Str(v.clone())),
                "root.name" => c(Field::Intrinsic(Intrinsic::TraceRootName), Literal::Str(v.clone())),
                "root.service.name" => c(Field::Intrinsic(Intrinsic::TraceRootService), Literal::Str(v.clone())),
                "service.name" => c(Field::Attr(Scope::Resource, "service.name".into()), Literal::Str(v.clone())),
                _ => tag_condition(k, v),
            }
        })
        .collect();
    all_of(conds)
}

fn trace_duration(op: Op, ns: u64) -> Query {
    Query::Spanset(SpanExpr::Cond(Cond {
        field: Field::Intrinsic(Intrinsic::TraceDuration),
        op,
        value: Literal::Duration(ns),
    }))
}

async fn search(state: &Arc<State>, q: &[(String, String)]) -> http::Response<Body> {
    let parsed = (|| -> Result<(Query, u64, u64, usize, usize), String> {
        let mut query = match (param(q, "q"), param(q, "tags")) {
            (Some(text), _) => weft_traceql::parse(text).map_err(|e| format!("invalid TraceQL query: {e}"))?,
            (None, tags) => Query::Spanset(tags_query(&logfmt(tags.unwrap_or(""))?).unwrap_or(SpanExpr::All)),
        };
        let d =
            |name| param(q, name).map(|v| parse_go_duration(v).map_err(|e| format!("invalid {name}: {e}"))).transpose();
        let (min, max) = (d("minDuration")?, d("maxDuration")?);
        if let (Some(lo), Some(hi)) = (min, max) {
            if hi < lo {
                return Err("invalid maxDuration: it is less than minDuration".into());
            }
        }
        // Tempo's durations bound the trace's; they join the query as one
        // more spanset.
        if let Some(lo) = min {
            query = Query::And(Box::new(query), Box::new(trace_duration(Op::Ge, lo)));
        }
        if let Some(hi) = max {
            query = Query::And(Box::new(query), Box::new(trace_duration(Op::Le, hi)));
        }
        let end = seconds(q, "end")?.unwrap_or_else(now_nanos);
        let start = seconds(q, "start")?.unwrap_or_else(|| end.saturating_sub(DEFAULT_WINDOW_NS));
        if start > end {
            return Err("invalid start: it is after end".into());
        }
        let num = |name, default| match param(q, name) {
            None => Ok(default),
            Some(v) => v
                .parse::<usize>()
                .map(|n| if n == 0 { default } else { n.min(crate::compat_query::MAX_LIMIT) })
                .map_err(|_| format!("invalid {name} {v:?}: a number expected")),
        };
        Ok((query, start, end, num("limit", DEFAULT_LIMIT)?, num("spss", DEFAULT_SPSS)?))
    })();
    let (query, start, end, limit, spss) = match parsed {
        Ok(p) => p,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e),
    };
    let filter = match Filter::new(&query) {
        Ok(f) => f,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("invalid TraceQL query: {e}")),
    };
    let shown = named_attributes(&query);
    // Tempo's end is inclusive at second precision.
    let end = end.saturating_add(1_000_000_000);
    let (hits, stats) = match collect(state, Collect { start, end, filter, limit, load: Load::MatchedSpans }).await {
        Ok(r) => r,
        Err(e) => return with_retry_after(plain(e.status(), e.to_string())),
    };
    let traces: Vec<serde_json::Value> = hits
        .iter()
        .map(|h| {
            let s = &h.summary;
            let spans: Vec<serde_json::Value> = h.spans.iter().take(spss).map(|fs| matched_span(fs, &shown)).collect();
            let set = serde_json::json!({"spans": spans, "matched": h.spans.len()});
            let root_service =
                if s.root_service.is_empty() { "<root span not yet received>" } else { s.root_service.as_str() };
            serde_json::json!({
                "traceID": hex(&s.trace_id),
                "rootServiceName": root_service,
                "rootTraceName": s.root_name,
                "startTimeUnixNano": s.start.to_string(),
                "durationMs": s.duration / 1_000_000,
                "spanSet": set,
                "spanSets": [set],
            })
        })
        .collect();
    ok(serde_json::json!({
        "traces": traces,
        "metrics": {
            "inspectedTraces": stats.traces_inspected,
            "inspectedSpans": stats.spans_inspected.to_string(),
            "inspectedBytes": "0",
            "completedJobs": stats.blocks_scanned,
            "totalJobs": stats.blocks,
        },
    }))
}

/// A matched span as Tempo lists it, with the attributes the query names.
fn matched_span(fs: &weft_store::FullSpan, shown: &[(Scope, String)]) -> serde_json::Value {
    let s = &fs.span;
    let mut attrs = Vec::new();
    for (scope, key) in shown {
        let span_attr = || s.attributes.iter().find(|kv| &kv.key == key);
        let res_attr = || fs.origin.resource.iter().find(|kv| &kv.key == key);
        let found = match scope {
            Scope::Span => span_attr(),
            Scope::Resource => res_attr(),
            Scope::Any => span_attr().or_else(res_attr),
        };
        if let Some(kv) = found {
            if let Ok(v) = serde_json::to_value(kv) {
                attrs.push(v);
            }
        }
    }
    let mut v = serde_json::json!({
        "spanID": hex(&s.span_id),
        "name": s.name,
        "startTimeUnixNano": s.start_time_unix_nano.to_string(),
        "durationNanos": s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano).to_string(),
    });
    if !attrs.is_empty() {
        v["attributes"] = attrs.into();
    }
    v
}

async fn tag_names(state: &Arc<State>, v2: bool, q: &[(String, String)]) -> http::Response<Body> {
    let scope = param(q, "scope").unwrap_or("all").to_owned();
    if !crate::tags_api::valid_scope(&scope) {
        return plain(StatusCode::BAD_REQUEST, format!("invalid scope {scope:?}: span, resource, intrinsic or all"));
    }
    let store = state.store.clone();
    let names = match tokio::task::spawn_blocking(move || store.tag_names()).await {
        Ok(n) => n,
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if !v2 {
        let mut all: Vec<String> = names.span.into_iter().chain(names.resource).collect();
        all.sort();
        all.dedup();
        return ok(serde_json::json!({"tagNames": all}));
    }
    ok(serde_json::json!({"scopes": crate::tags_api::scopes(names, &scope)}))
}

async fn tag_values(state: &Arc<State>, tag: &str, v2: bool, q: &[(String, String)]) -> http::Response<Body> {
    // v1 names are unscoped (`http.method`); v2 names are as in TraceQL.
    let field = if v2 {
        weft_traceql::parse_field(tag)
    } else if tag.is_empty() {
        None
    } else {
        Some(Field::Attr(Scope::Any, tag.to_owned()))
    };
    let Some(field) = field else {
        return plain(StatusCode::BAD_REQUEST, format!("invalid tag {tag:?}"));
    };
    let (start, end) = match (seconds(q, "start"), seconds(q, "end")) {
        (Ok(s), Ok(e)) => (s.unwrap_or(0), e.map_or(u64::MAX, |e| e.saturating_add(1_000_000_000))),
        (Err(e), _) | (_, Err(e)) => return plain(StatusCode::BAD_REQUEST, e),
    };
    if start >= end {
        return plain(StatusCode::BAD_REQUEST, "invalid start: it is after end");
    }
    let vq = ValuesQuery {
        limit: VALUES_LIMIT,
        max_bytes: 4 << 20,
        deadline: std::time::Instant::now() + std::time::Duration::from_secs(5),
        start,
        end,
    };
    let store = state.store.clone();
    let found = match tokio::task::spawn_blocking(move || store.tag_values(&field, &vq)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    if v2 {
        let vals: Vec<serde_json::Value> = found
            .values
            .iter()
            .map(|v| {
                // Tempo's types: string, int, float, bool, keyword (status, kind).
                serde_json::json!({"type": v.kind, "value": v.value})
            })
            .collect();
        ok(serde_json::json!({"tagValues": vals}))
    } else {
        let vals: Vec<&str> = found.values.iter().map(|v| v.value.as_str()).collect();
        ok(serde_json::json!({"tagValues": vals}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_from_hex_short_hex_and_base64() {
        let full = parse_id("0102030405060708090a0b0c0d0e0f10").unwrap();
        assert_eq!(full[0], 1);
        assert_eq!(parse_id("2030405060708090a0b0c0d0e0f10").unwrap()[1], 0x02, "leading zeros left out");
        let b64 = base64::engine::general_purpose::STANDARD.encode(full);
        assert_eq!(parse_id(&b64).unwrap(), full);
        assert!(parse_id("").is_err());
        assert!(parse_id("not an id!").is_err());
        assert!(parse_id(&"f".repeat(33)).is_err());
    }

    #[test]
    fn logfmt_tags_split_and_bad_ones_say_why() {
        assert_eq!(
            logfmt(r#"service.name=shop http.url="/a b" x=\"#).unwrap(),
            vec![("service.name".into(), "shop".into()), ("http.url".into(), "/a b".into()), ("x".into(), "\\".into())]
        );
        assert!(logfmt("novalue").unwrap_err().contains("no =value"));
        assert!(logfmt(r#"a="open"#).unwrap_err().contains("not closed"));
        assert!(logfmt("  ").unwrap().is_empty());
    }

    #[test]
    fn tag_searches_are_one_spanset_that_parses_back() {
        let tags = logfmt("service.name=shop name=GET root.name=x http.status_code=500").unwrap();
        let q = Query::Spanset(tags_query(&tags).unwrap());
        let text = q.to_string();
        assert_eq!(weft_traceql::parse(&text).unwrap(), q, "{text}");
        assert!(text.contains("trace:rootName = \"x\""), "{text}");
    }

    #[test]
    fn json_ids_become_base64() {
        let mut v = serde_json::json!([{"scopeSpans": [{"spans": [{"traceId": "00000000000000000000000000000001", "spanId": "0000000000000002", "name": "x"}]}]}]);
        ids_to_base64(&mut v);
        assert_eq!(v[0]["scopeSpans"][0]["spans"][0]["traceId"], "AAAAAAAAAAAAAAAAAAAAAQ==");
        assert_eq!(v[0]["scopeSpans"][0]["spans"][0]["spanId"], "AAAAAAAAAAI=");
        assert_eq!(v[0]["scopeSpans"][0]["spans"][0]["name"], "x");
    }
}
