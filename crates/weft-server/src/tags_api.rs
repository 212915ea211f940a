//! Tag names and values for query builders: `GET /weft/v1/tags?scope=` and
//! `GET /weft/v1/tags/{tag}/values`.
//!
//! Names: `{"scopes": [{"name": "resource"|"span"|"intrinsic", "tags": […]}],
//! "complete": bool}`. Values: `{"tag", "values": [{"type", "value"}],
//! "complete", "stats"}` — found by reading the newest data first, bounded by
//! `limit`, a byte budget and a deadline; `complete: false` says a bound was
//! hit. Tags are spelt as in filters (`span.http.method`,
//! `resource.service.name`, `.region`, `name`, `status` …).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use weft_store::tags::{ValuesQuery, INTRINSICS};
use weft_traceql::parse_field;

use crate::api::{error, form_pairs, ok_json};
use crate::http::Body;
use crate::search_api::{parse_time, Time};
use crate::State;

/// Values listed when the request gives no limit.
const DEFAULT_LIMIT: usize = 1_000;
/// Most values one answer may list.
const MAX_LIMIT: usize = 100_000;
/// Bytes of values one answer may hold.
const MAX_BYTES: usize = 4 << 20;
/// How long a value listing may read, unless the request asks for less.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);

/// `GET /weft/v1/tags?scope=span|resource|intrinsic|all`.
pub async fn names(state: Arc<State>, query: Option<&str>) -> http::Response<Body> {
    let mut scope = "all".to_owned();
    for (k, v) in form_pairs(query.unwrap_or("")) {
        match k.as_str() {
            "scope" => scope = v,
            other => return error(StatusCode::BAD_REQUEST, format!("unknown parameter {other:?}; use scope=")),
        }
    }
    if !valid_scope(&scope) {
        return error(StatusCode::BAD_REQUEST, format!("scope {scope:?} is not one of span, resource, intrinsic, all"));
    }
    let store = state.store.clone();
    let names = match tokio::task::spawn_blocking(move || store.tag_names()).await {
        Ok(n) => n,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let complete = names.complete;
    ok_json(&serde_json::json!({ "scopes": scopes(names, &scope), "complete": complete }))
}

/// Whether `scope` is one a tag-names call takes.
pub fn valid_scope(scope: &str) -> bool {
    ["all", "span", "resource", "intrinsic"].contains(&scope)
}

/// Tag names by scope, `[{"name": "resource"|"span"|"intrinsic", "tags": […]}]`,
/// for one scope or `all` (the shape weft's and Tempo's v2 APIs share).
pub fn scopes(names: weft_store::tags::TagNames, scope: &str) -> Vec<serde_json::Value> {
    let want = |s: &str| scope == "all" || scope == s;
    let mut scopes = Vec::new();
    if want("resource") {
        scopes.push(serde_json::json!({ "name": "resource", "tags": names.resource }));
    }
    if want("span") {
        scopes.push(serde_json::json!({ "name": "span", "tags": names.span }));
    }
    if want("intrinsic") {
        let tags: Vec<&str> = INTRINSICS.iter().map(|i| i.as_str()).collect();
        scopes.push(serde_json::json!({ "name": "intrinsic", "tags": tags }));
    }
    scopes
}

fn time(v: &str, what: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) => Ok(n),
        Err(_) => parse_time(&Time::Text(v.to_owned()), what),
    }
}

/// `GET /weft/v1/tags/{tag}/values?limit=&start=&end=&timeoutMs=`; `tag` is
/// the path segment, still percent-encoded.
pub async fn values(state: Arc<State>, tag: &str, query: Option<&str>) -> http::Response<Body> {
    let tag = crate::api::percent_decode(tag, false);
    let Some(field) = parse_field(&tag) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "{tag:?} is not a tag: use span.KEY, resource.KEY, .KEY or an intrinsic ({})",
                INTRINSICS.map(|i| i.as_str()).join(", ")
            ),
        );
    };
    let mut q =
        ValuesQuery { limit: DEFAULT_LIMIT, max_bytes: MAX_BYTES, deadline: Instant::now(), start: 0, end: u64::MAX };
    let mut timeout = DEFAULT_TIMEOUT;
    for (k, v) in form_pairs(query.unwrap_or("")) {
        let r = match k.as_str() {
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => {
                    q.limit = n;
                    Ok(())
                }
                _ => Err(format!("limit {v:?} is not a number from 1 to {MAX_LIMIT}")),
            },
            "start" => time(&v, "start").map(|t| q.start = t),
            "end" => time(&v, "end").map(|t| q.end = t),
            "timeoutMs" => match v.parse::<u64>() {
                Ok(ms) if ms > 0 => {
                    timeout = Duration::from_millis(ms).min(MAX_TIMEOUT);
                    Ok(())
                }
                _ => Err(format!("timeoutMs {v:?} is not a positive number")),
            },
            other => Err(format!("unknown parameter {other:?}; use limit, start, end, timeoutMs")),
        };
        if let Err(e) = r {
            return error(StatusCode::BAD_REQUEST, e);
        }
    }
    if q.start >= q.end {
        return error(StatusCode::BAD_REQUEST, "start must be before end");
    }
    q.deadline = Instant::now() + timeout;
    let store = state.store.clone();
    let found = match tokio::task::spawn_blocking(move || store.tag_values(&field, &q)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return error(StatusCode::BAD_REQUEST, e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let values: Vec<serde_json::Value> =
        found.values.iter().map(|v| serde_json::json!({ "type": v.kind, "value": v.value })).collect();
    ok_json(&serde_json::json!({
        "tag": tag,
        "values": values,
        "complete": found.complete,
        "stats": {
            "blocksRead": found.blocks_read,
            "blocksSkipped": found.blocks_skipped,
            "spansRead": found.spans_read,
        },
    }))
}
