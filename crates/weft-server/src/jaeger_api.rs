//! Jaeger's query APIs on the `--http` address, so Jaeger UI and Grafana's
//! Jaeger data source work against `weft serve` unchanged:
//!
//! - v1 JSON (`/api/services`, `/api/services/{s}/operations`,
//!   `/api/operations`, `/api/traces`, `/api/traces/{id}`,
//!   `/api/dependencies`), every answer in Jaeger's envelope
//!   `{"data", "total", "limit", "offset", "errors"}`, errors included;
//! - api_v3 (`/api/v3/services`, `/api/v3/operations`, `/api/v3/traces/{id}`,
//!   `/api/v3/traces`, `/api/v3/trace-summaries`): OTLP JSON results, errors as
//!   `{"error": {"httpCode", "message"}}`, parameters in snake_case or
//!   camelCase.
//!
//! Unknown parameters are ignored, as Jaeger ignores them (Grafana sends some
//! of its own); malformed known ones are 400s naming the parameter.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::StatusCode;
use weft_store::search::Load;
use weft_store::summary::hex;
use weft_store::FullSpan;
use weft_traceql::Filter;

use crate::api::{body_response, form_pairs, parse_trace_id, read_trace};
use crate::compat_query::{self, collect, parse_go_duration, parse_kind, with_retry_after, Collect, SpanSearch};
use crate::http::Body;
use crate::jaeger_model;
use crate::search_api::{now_nanos, parse_time, Time};
use crate::State;

/// A v1 search's window when it gives no start: two days, as Jaeger.
const DEFAULT_LOOKBACK_NS: u64 = 2 * 24 * 3600 * 1_000_000_000;
/// A v1 search's limit when it gives none.
const DEFAULT_LIMIT: usize = 100;
/// `/api/dependencies`' window when it gives no `lookback`: a day.
const DEFAULT_DEPENDENCY_LOOKBACK_MS: u64 = 24 * 3600 * 1000;

fn envelope(
    status: StatusCode,
    data: serde_json::Value,
    total: usize,
    errors: Vec<serde_json::Value>,
) -> http::Response<Body> {
    let v = serde_json::json!({
        "data": data,
        "total": total,
        "limit": 0,
        "offset": 0,
        "errors": if errors.is_empty() { serde_json::Value::Null } else { errors.into() },
    });
    with_retry_after(body_response(status, v.to_string().into_bytes(), "application/json"))
}

fn v1_ok(data: serde_json::Value) -> http::Response<Body> {
    let total = data.as_array().map_or(0, Vec::len);
    envelope(StatusCode::OK, data, total, Vec::new())
}

fn v1_error(status: StatusCode, msg: impl std::fmt::Display) -> http::Response<Body> {
    envelope(
        status,
        serde_json::Value::Null,
        0,
        vec![serde_json::json!({"code": status.as_u16(), "msg": msg.to_string()})],
    )
}

fn v3_error(status: StatusCode, msg: impl std::fmt::Display) -> http::Response<Body> {
    let v = serde_json::json!({"error": {"httpCode": status.as_u16(), "message": msg.to_string()}});
    with_retry_after(body_response(status, v.to_string().into_bytes(), "application/json"))
}

fn v3_ok(v: serde_json::Value) -> http::Response<Body> {
    body_response(StatusCode::OK, v.to_string().into_bytes(), "application/json")
}

/// Routes a request under `/api/` that is Jaeger's; `None` if the path is
/// not one of Jaeger's.
pub async fn route(state: Arc<State>, path: &str, query: Option<&str>) -> Option<http::Response<Body>> {
    let q = form_pairs(query.unwrap_or(""));
    Some(match path {
        "/api/services" => v1_services(&state).await,
        "/api/operations" => v1_operations(&state, &q).await,
        "/api/traces" => v1_traces(&state, &q).await,
        "/api/dependencies" => v1_dependencies(&state, &q).await,
        "/api/v3/services" => v3_services(&state).await,
        "/api/v3/operations" => v3_operations(&state, &q).await,
        "/api/v3/traces" => v3_search(&state, &q, false).await,
        "/api/v3/trace-summaries" => v3_search(&state, &q, true).await,
        p => {
            if let Some(rest) = p.strip_prefix("/api/v3/traces/") {
                v3_trace(&state, &crate::api::percent_decode(rest, false), &q).await
            } else if let Some(rest) = p.strip_prefix("/api/traces/") {
                v1_trace(&state, &crate::api::percent_decode(rest, false), &q).await
            } else if let Some(svc) = p.strip_prefix("/api/services/").and_then(|r| r.strip_suffix("/operations")) {
                v1_service_operations(&state, &crate::api::percent_decode(svc, false)).await
            } else {
                return None;
            }
        }
    })
}

async fn services(state: &Arc<State>) -> Vec<String> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.services().into_iter().collect()).await.unwrap_or_default()
}

/// (name, span kind) of a service's operations; all services' if `None`.
async fn operations(state: &Arc<State>, service: Option<String>) -> Vec<(String, String, i32)> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.operation_kinds(service.as_deref()).into_iter().collect())
        .await
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], names: &[&str]) -> Option<&'a str> {
    q.iter().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

async fn v1_services(state: &Arc<State>) -> http::Response<Body> {
    v1_ok(services(state).await.into())
}

async fn v1_service_operations(state: &Arc<State>, service: &str) -> http::Response<Body> {
    let mut names: Vec<String> =
        operations(state, Some(service.to_owned())).await.into_iter().map(|(_, n, _)| n).collect();
    names.dedup();
    v1_ok(names.into())
}

fn kind_filtered(ops: Vec<(String, String, i32)>, kind: Option<weft_traceql::ast::Kind>) -> Vec<serde_json::Value> {
    ops.into_iter()
        .filter(|(_, _, k)| kind.is_none_or(|want| want as i32 == *k))
        .map(|(_, name, k)| serde_json::json!({"name": name, "spanKind": jaeger_model::kind_name(k).unwrap_or("")}))
        .collect()
}

async fn v1_operations(state: &Arc<State>, q: &[(String, String)]) -> http::Response<Body> {
    let Some(service) = param(q, &["service"]) else {
        return v1_error(StatusCode::BAD_REQUEST, "parameter 'service' is required");
    };
    let kind = match parse_kind(param(q, &["spanKind"]).unwrap_or("")) {
        Ok(k) => k,
        Err(e) => return v1_error(StatusCode::BAD_REQUEST, format!("spanKind: {e}")),
    };
    v1_ok(kind_filtered(operations(state, Some(service.to_owned())).await, kind).into())
}

async fn v1_trace(state: &Arc<State>, id: &str, q: &[(String, String)]) -> http::Response<Body> {
    let id = match parse_trace_id(id) {
        Ok(id) => id,
        Err(e) => return v1_error(StatusCode::BAD_REQUEST, e),
    };
    // The window is only a hint to narrow the lookup (Jaeger takes µs,
    // Grafana sends ms; a lookup by ID needs neither), but a malformed one is
    // still an error, as in Jaeger.
    for name in ["start", "end"] {
        if let Some(v) = param(q, &[name]) {
            if v.parse::<u64>().is_err() {
                return v1_error(
                    StatusCode::BAD_REQUEST,
                    format!("unable to parse param '{name}': {v:?} is not a number"),
                );
            }
        }
    }
    match read_trace(state, id).await {
        Ok(Some(spans)) => v1_ok(serde_json::json!([jaeger_model::trace(&id, &spans)])),
        Ok(None) => v1_error(StatusCode::NOT_FOUND, "trace not found"),
        Err(e) => v1_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// Jaeger's `tags` parameter (a JSON object) and repeated `tag=key:value`.
fn v1_tags(q: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, v) in q {
        match k.as_str() {
            "tags" if !v.is_empty() => {
                let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(v).map_err(|e| {
                    format!("malformed 'tags' parameter, expecting a JSON object like {{\"k\":\"v\"}}: {e}")
                })?;
                for (key, val) in map {
                    let text = match val {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    };
                    out.push((key, text));
                }
            }
            "tag" => {
                let (key, val) =
                    v.split_once(':').ok_or_else(|| format!("malformed 'tag' parameter {v:?}, expecting key:value"))?;
                out.push((key.to_owned(), val.to_owned()));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn micros(q: &[(String, String)], name: &str) -> Result<Option<u64>, String> {
    param(q, &[name])
        .map(|v| {
            v.parse::<u64>()
                .map(|us| us.saturating_mul(1_000))
                .map_err(|_| format!("unable to parse param '{name}': {v:?} is not microseconds since the epoch"))
        })
        .transpose()
}

fn durations(q: &[(String, String)], min: &[&str], max: &[&str]) -> Result<(Option<u64>, Option<u64>), String> {
    let d = |names: &[&str]| {
        param(q, names)
            .map(|v| parse_go_duration(v).map_err(|e| format!("unable to parse param '{}': {e}", names[0])))
            .transpose()
    };
    let (lo, hi) = (d(min)?, d(max)?);
    if let (Some(lo), Some(hi)) = (lo, hi) {
        if hi < lo {
            return Err(format!("'{}' should be greater than '{}'", max[0], min[0]));
        }
    }
    Ok((lo, hi))
}

fn limit(q: &[(String, String)], names: &[&str], default: usize) -> Result<usize, String> {
    match param(q, names) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(n) => Ok(n.min(compat_query::MAX_LIMIT)),
            Err(_) => Err(format!("unable to parse param '{}': {v:?} is not a number", names[0])),
        },
    }
}

async fn v1_traces(state: &Arc<State>, q: &[(String, String)]) -> http::Response<Body> {
    let ids: Vec<&str> = q.iter().filter(|(k, _)| k == "traceID").map(|(_, v)| v.as_str()).collect();
    if !ids.is_empty() {
        return v1_multi_get(state, &ids).await;
    }
    let parsed = (|| -> Result<(Filter, u64, u64, usize), String> {
        let service = param(q, &["service"]).ok_or("parameter 'service' is required")?;
        let (min_duration, max_duration) = durations(q, &["minDuration"], &["maxDuration"])?;
        let search = SpanSearch {
            service: Some(service.to_owned()),
            operation: param(q, &["operation"]).map(str::to_owned),
            kind: None,
            tags: v1_tags(q)?,
            min_duration,
            max_duration,
        };
        let end = micros(q, "end")?.unwrap_or_else(now_nanos);
        let lookback = match param(q, &["lookback"]) {
            Some(l) if l != "custom" => parse_go_duration(l).ok(),
            _ => None,
        };
        let start = micros(q, "start")?.unwrap_or_else(|| end.saturating_sub(lookback.unwrap_or(DEFAULT_LOOKBACK_NS)));
        if start > end {
            return Err("'start' is after 'end'".into());
        }
        Ok((Filter::new(&search.query())?, start, end, limit(q, &["limit"], DEFAULT_LIMIT)?))
    })();
    let (filter, start, end, limit) = match parsed {
        Ok(p) => p,
        Err(e) => return v1_error(StatusCode::BAD_REQUEST, e),
    };
    match collect(state, Collect { start, end: end.saturating_add(1), filter, limit, load: Load::AllSpans }).await {
        Ok((hits, _)) => {
            let traces: Vec<serde_json::Value> = hits
                .iter()
                .filter_map(|h| serde_json::to_value(jaeger_model::trace(&h.summary.trace_id, &h.spans)).ok())
                .collect();
            v1_ok(traces.into())
        }
        Err(e) => v1_error(e.status(), e),
    }
}

async fn v1_multi_get(state: &Arc<State>, ids: &[&str]) -> http::Response<Body> {
    let mut traces = Vec::new();
    let mut errors = Vec::new();
    for raw in ids {
        let id = match parse_trace_id(raw) {
            Ok(id) => id,
            Err(e) => return v1_error(StatusCode::BAD_REQUEST, e),
        };
        match read_trace(state, id).await {
            Ok(Some(spans)) => traces.push(serde_json::to_value(jaeger_model::trace(&id, &spans)).unwrap_or_default()),
            Ok(None) => errors.push(serde_json::json!({"code": 404, "msg": "trace not found", "traceID": raw})),
            Err(e) => errors.push(serde_json::json!({"code": 500, "msg": e, "traceID": raw})),
        }
    }
    let total = traces.len();
    envelope(StatusCode::OK, traces.into(), total, errors)
}

async fn v1_dependencies(state: &Arc<State>, q: &[(String, String)]) -> http::Response<Body> {
    let ms = |name: &str| -> Result<Option<u64>, String> {
        param(q, &[name])
            .map(|v| v.parse::<u64>().map_err(|_| format!("unable to parse param '{name}': {v:?} is not milliseconds")))
            .transpose()
    };
    let (end, lookback) = match (ms("endTs"), ms("lookback")) {
        (Ok(e), Ok(l)) => {
            (e.map_or_else(now_nanos, |e| e.saturating_mul(1_000_000)), l.unwrap_or(DEFAULT_DEPENDENCY_LOOKBACK_MS))
        }
        (Err(e), _) | (_, Err(e)) => return v1_error(StatusCode::BAD_REQUEST, e),
    };
    let start = end.saturating_sub(lookback.saturating_mul(1_000_000));
    match compat_query::dependencies(state, start, end).await {
        Ok(d) => {
            let links: Vec<serde_json::Value> = d
                .calls
                .into_iter()
                .map(|((parent, child), n)| serde_json::json!({"parent": parent, "child": child, "callCount": n}))
                .collect();
            if !d.complete {
                tracing::info!(
                    "dependencies: the window held more traces than one answer reads in time; counts are partial"
                );
            }
            v1_ok(links.into())
        }
        Err(e) => v1_error(e.status(), e),
    }
}

async fn v3_services(state: &Arc<State>) -> http::Response<Body> {
    v3_ok(serde_json::json!({"services": services(state).await}))
}

async fn v3_operations(state: &Arc<State>, q: &[(String, String)]) -> http::Response<Body> {
    let kind = match parse_kind(param(q, &["span_kind", "spanKind"]).unwrap_or("")) {
        Ok(k) => k,
        Err(e) => return v3_error(StatusCode::BAD_REQUEST, format!("span_kind: {e}")),
    };
    let service = param(q, &["service"]).map(str::to_owned);
    v3_ok(serde_json::json!({"operations": kind_filtered(operations(state, service).await, kind)}))
}

fn rfc3339_param(q: &[(String, String)], names: &[&str]) -> Result<Option<u64>, String> {
    param(q, names).map(|v| parse_time(&Time::Text(v.to_owned()), names[0])).transpose()
}

/// OTLP JSON `{"resourceSpans": […]}` of the spans of one or more traces.
fn traces_data(spans: &[FullSpan]) -> Vec<u8> {
    let mut out = b"{\"resourceSpans\":".to_vec();
    weft_store::otlp_json::resource_spans(&mut out, spans);
    out.push(b'}');
    out
}

fn v3_result(data: Vec<u8>) -> http::Response<Body> {
    let mut out = b"{\"result\":".to_vec();
    out.extend_from_slice(&data);
    out.push(b'}');
    body_response(StatusCode::OK, out, "application/json")
}

async fn v3_trace(state: &Arc<State>, id: &str, q: &[(String, String)]) -> http::Response<Body> {
    let id = match parse_trace_id(id) {
        Ok(id) => id,
        Err(e) => return v3_error(StatusCode::BAD_REQUEST, e),
    };
    for names in [&["start_time", "startTime"][..], &["end_time", "endTime"][..]] {
        if let Err(e) = rfc3339_param(q, names) {
            return v3_error(StatusCode::BAD_REQUEST, e);
        }
    }
    match read_trace(state, id).await {
        Ok(Some(spans)) => v3_result(traces_data(&spans)),
        Ok(None) => v3_error(StatusCode::NOT_FOUND, "trace not found"),
        Err(e) => v3_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn v3_search(state: &Arc<State>, q: &[(String, String)], summaries: bool) -> http::Response<Body> {
    let parsed = (|| -> Result<(Filter, u64, u64, usize), String> {
        let start = rfc3339_param(q, &["query.start_time_min", "query.startTimeMin"])?
            .ok_or("query.start_time_min is required")?;
        let end = rfc3339_param(q, &["query.start_time_max", "query.startTimeMax"])?
            .ok_or("query.start_time_max is required")?;
        if start > end {
            return Err("query.start_time_min is after query.start_time_max".into());
        }
        let (min_duration, max_duration) =
            durations(q, &["query.duration_min", "query.durationMin"], &["query.duration_max", "query.durationMax"])?;
        let mut tags = Vec::new();
        if let Some(a) = param(q, &["query.attributes"]) {
            let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(a)
                .map_err(|e| format!("query.attributes must be a JSON object like {{\"k\":\"v\"}}: {e}"))?;
            for (k, v) in map {
                tags.push((k, v.as_str().map_or_else(|| v.to_string(), str::to_owned)));
            }
        }
        let search = SpanSearch {
            service: param(q, &["query.service_name", "query.serviceName"]).map(str::to_owned),
            operation: param(q, &["query.operation_name", "query.operationName"]).map(str::to_owned),
            kind: None,
            tags,
            min_duration,
            max_duration,
        };
        let limit = limit(
            q,
            &["query.search_depth", "query.searchDepth", "query.num_traces", "query.numTraces"],
            DEFAULT_LIMIT,
        )?;
        Ok((Filter::new(&search.query())?, start, end, limit))
    })();
    let (filter, start, end, limit) = match parsed {
        Ok(p) => p,
        Err(e) => return v3_error(StatusCode::BAD_REQUEST, e),
    };
    let hits = match collect(state, Collect { start, end: end.saturating_add(1), filter, limit, load: Load::AllSpans })
        .await
    {
        Ok((hits, _)) => hits,
        Err(e) => return v3_error(e.status(), e),
    };
    if summaries {
        let list: Vec<serde_json::Value> = hits.iter().map(|h| trace_summary(&h.summary, &h.spans)).collect();
        return v3_ok(serde_json::json!({"summaries": list}));
    }
    if hits.is_empty() {
        return v3_error(StatusCode::NOT_FOUND, "No traces found");
    }
    let spans: Vec<FullSpan> = hits.into_iter().flat_map(|h| h.spans).collect();
    v3_result(traces_data(&spans))
}

/// A trace summary as `/api/v3/trace-summaries` gives it (64-bit numbers as
/// strings, as the protobuf JSON mapping writes them).
fn trace_summary(s: &weft_store::TraceSummary, spans: &[FullSpan]) -> serde_json::Value {
    let mut per: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for fs in spans {
        let e = per.entry(&fs.origin.service).or_default();
        e.0 += 1;
        if fs.span.status.as_ref().is_some_and(|st| st.code == 2) {
            e.1 += 1;
        }
    }
    let services: Vec<serde_json::Value> = per
        .into_iter()
        .map(|(name, (n, e))| serde_json::json!({"name": name, "spanCount": n, "errorSpanCount": e}))
        .collect();
    serde_json::json!({
        "traceId": hex(&s.trace_id),
        "rootServiceName": s.root_service,
        "rootOperationName": s.root_name,
        "minStartTimeUnixNano": s.min_start.to_string(),
        "maxEndTimeUnixNano": s.max_end.to_string(),
        "spanCount": s.span_count,
        "errorSpanCount": s.error_count,
        "orphanSpanCount": s.orphan_count,
        "services": services,
    })
}
