//! weft's native query API on the `--http` address, the part that answers by
//! trace ID and lists what is stored:
//!
//! - `GET /weft/v1/traces/{id}` — one trace as OTLP JSON (`TracesData`, hex
//!   IDs), or protobuf with `Accept: application/x-protobuf`;
//! - `POST /weft/v1/traces:batchGet` — `{"traceIds": [...]}` (up to 10,000),
//!   answered as NDJSON, one line per ID in the order asked, streamed so that
//!   memory stays bounded whatever the traces weigh;
//! - `GET /weft/v1/services`, `GET /weft/v1/operations?service=` — what the
//!   store holds;
//! - `GET /weft/v1/stats` — the accounting counters: what was received,
//!   refused, rejected, stored, and where the rest is.
//!
//! Errors are JSON `{"error": "..."}` with a 4xx status saying what to fix.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use weft_store::otlp_json::{self, to_otlp};
use weft_store::summary::{hex, unhex};
use weft_store::{FullSpan, TraceSummary};

use crate::http::Body;
use crate::metrics::Refusal;
use crate::State;

/// Most trace IDs one `traces:batchGet` may ask for.
pub const MAX_BATCH_IDS: usize = 10_000;
/// Largest request body the query API reads.
const MAX_QUERY_BODY: usize = 4 << 20;
/// NDJSON chunks buffered ahead of a slow reader (each up to one trace).
const STREAM_CHUNKS: usize = 8;

/// A whole-body answer of `content_type`.
pub fn body_response(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> http::Response<Body> {
    let mut r = http::Response::new(http_body_util::Either::Left(Full::new(Bytes::from(body))));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(crate) fn ok_json(v: &serde_json::Value) -> http::Response<Body> {
    body_response(StatusCode::OK, v.to_string().into_bytes(), "application/json")
}

/// A JSON error answer.
pub fn error(status: StatusCode, msg: impl std::fmt::Display) -> http::Response<Body> {
    body_response(status, serde_json::json!({ "error": msg.to_string() }).to_string().into_bytes(), "application/json")
}

/// Parses a trace ID: 32 hex digits, or 16 (a 64-bit ID, zero-extended on the
/// left as Jaeger and Tempo do). Upper or lower case.
pub fn parse_trace_id(s: &str) -> Result<[u8; 16], String> {
    let s = s.trim();
    if s.len() != 32 && s.len() != 16 {
        return Err(format!("a trace ID is 32 (or 16) hex digits, got {} characters: {s:?}", s.len()));
    }
    let bytes = unhex(s).ok_or_else(|| format!("a trace ID is hex digits only, got {s:?}"))?;
    let mut id = [0u8; 16];
    id[16 - bytes.len()..].copy_from_slice(&bytes);
    Ok(id)
}

fn wants_protobuf(req: &http::Request<Incoming>) -> bool {
    accepts_protobuf(req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok()))
}

/// Whether an Accept header asks for protobuf.
pub fn accepts_protobuf(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|m| {
            let m = m.split(';').next().unwrap_or("").trim();
            m.eq_ignore_ascii_case("application/x-protobuf") || m.eq_ignore_ascii_case("application/protobuf")
        })
    })
}

/// `GET /weft/v1/traces/{id}`.
pub async fn trace(state: Arc<State>, req: http::Request<Incoming>, id: &str) -> http::Response<Body> {
    let id = match parse_trace_id(id) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let protobuf = wants_protobuf(&req);
    let spans = match read_trace(&state, id).await {
        Ok(Some(spans)) => spans,
        Ok(None) => return error(StatusCode::NOT_FOUND, format!("trace {} not found", hex(&id))),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if protobuf {
        let data = TracesData { resource_spans: to_otlp(spans) };
        body_response(StatusCode::OK, data.encode_to_vec(), "application/x-protobuf")
    } else {
        let mut out = Vec::with_capacity(spans.len() * 1024);
        out.extend_from_slice(b"{\"resourceSpans\":");
        otlp_json::resource_spans(&mut out, &spans);
        out.push(b'}');
        body_response(StatusCode::OK, out, "application/json")
    }
}

/// Every span of a trace (read on a blocking thread), `None` if unknown.
pub async fn read_trace(state: &Arc<State>, id: [u8; 16]) -> Result<Option<Vec<FullSpan>>, String> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.trace(&id)).await {
        Ok(Ok(found)) => Ok(found.map(|(_, spans)| spans)),
        Ok(Err(e)) => Err(format!("trace {} could not be read: {e}", hex(&id))),
        Err(e) => Err(format!("lookup failed: {e}")),
    }
}

/// A streamed body: chunks come from a producer through a bounded channel,
/// so a slow reader slows the producer instead of growing a buffer.
pub struct Stream(tokio::sync::mpsc::Receiver<Bytes>);

impl Stream {
    /// A body of the chunks `rx` receives, ending when its senders are gone.
    pub fn new(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        Stream(rx)
    }
}

impl hyper::body::Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

fn ndjson(rx: tokio::sync::mpsc::Receiver<Bytes>) -> http::Response<Body> {
    let mut r = http::Response::new(http_body_util::Either::Right(http_body_util::Either::Right(Stream(rx))));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    r
}

pub(crate) async fn read_json(req: http::Request<Incoming>) -> Result<serde_json::Value, http::Response<Body>> {
    let body = match Limited::new(req.into_body(), MAX_QUERY_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("could not read the body (at most {MAX_QUERY_BODY} bytes): {e}"),
            ))
        }
    };
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")))
}

/// One line of a `traces:batchGet` answer; `complete` says every span of the
/// trace is sealed into blocks, so a client may cache it.
fn trace_line(
    id: &[u8; 16],
    found: Result<Option<(TraceSummary, Vec<FullSpan>, bool)>, weft_store::StoreError>,
) -> Vec<u8> {
    let mut line = match found {
        Ok(Some((summary, spans, complete))) => {
            let mut out = Vec::with_capacity(256 + spans.len() * 1024);
            out.extend_from_slice(b"{\"traceId\":\"");
            out.extend_from_slice(hex(id).as_bytes());
            out.extend_from_slice(if complete {
                b"\",\"found\":true,\"complete\":true,\"summary\":"
            } else {
                b"\",\"found\":true,\"complete\":false,\"summary\":"
            });
            if serde_json::to_writer(&mut out, &summary).is_err() {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b",\"resourceSpans\":");
            otlp_json::resource_spans(&mut out, &spans);
            out.push(b'}');
            out
        }
        Ok(None) => serde_json::json!({ "traceId": hex(id), "found": false }).to_string().into_bytes(),
        Err(e) => {
            serde_json::json!({ "traceId": hex(id), "found": false, "error": e.to_string() }).to_string().into_bytes()
        }
    };
    line.push(b'\n');
    line
}

/// `POST /weft/v1/traces:batchGet`.
pub async fn batch_get(state: Arc<State>, req: http::Request<Incoming>) -> http::Response<Body> {
    let body = match read_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(list) = body.get("traceIds").and_then(|v| v.as_array()) else {
        return error(StatusCode::BAD_REQUEST, r#"the body must be {"traceIds": ["<hex>", ...]}"#);
    };
    if list.len() > MAX_BATCH_IDS {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_BATCH_IDS} trace IDs per call, got {}; split the list", list.len()),
        );
    }
    let mut ids = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        match v.as_str().map(parse_trace_id) {
            Some(Ok(id)) => ids.push(id),
            Some(Err(e)) => return error(StatusCode::BAD_REQUEST, format!("traceIds[{i}]: {e}")),
            None => return error(StatusCode::BAD_REQUEST, format!("traceIds[{i}] is not a string")),
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        for id in ids {
            if tx.blocking_send(Bytes::from(trace_line(&id, store.trace_and_completeness(&id)))).is_err() {
                return; // the client went away
            }
        }
    });
    ndjson(rx)
}

/// `GET /weft/v1/services`.
pub async fn services(state: Arc<State>) -> http::Response<Body> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.services()).await {
        Ok(s) => ok_json(&serde_json::json!({ "services": s })),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// `GET /weft/v1/operations?service=S` (all services without `service`).
pub async fn operations(state: Arc<State>, query: Option<&str>) -> http::Response<Body> {
    let mut service = None;
    for (k, v) in form_pairs(query.unwrap_or("")) {
        match k.as_str() {
            "service" => service = Some(v),
            other => return error(StatusCode::BAD_REQUEST, format!("unknown parameter {other:?}; use service=")),
        }
    }
    let store = state.store.clone();
    let ops = match tokio::task::spawn_blocking(move || store.operations(service.as_deref())).await {
        Ok(o) => o,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let ops: Vec<serde_json::Value> =
        ops.into_iter().map(|(s, n)| serde_json::json!({ "service": s, "name": n })).collect();
    ok_json(&serde_json::json!({ "operations": ops }))
}

/// `key=value` pairs of a query string, percent-decoded (`+` is a space).
pub fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// `%XX` escapes decoded (a malformed one is kept as it is); `+` becomes a
/// space only in query strings. Invalid UTF-8 is replaced, never refused.
pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET /weft/v1/stats`: every span the server was sent is in one of these.
pub fn stats(state: &State) -> http::Response<Body> {
    let m = &state.metrics;
    let st = &state.store.stats;
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    ok_json(&serde_json::json!({
        "received": {
            "requests": l(&m.requests),
            "spans": l(&m.spans_received),
            "bytes": l(&m.bytes_received),
        },
        "refused": {
            "requestsOverBudget": m.refused(Refusal::Budget),
            "requestsLogUnavailable": m.refused(Refusal::Log),
            "requestsTooLarge": m.refused(Refusal::TooLarge),
            "requestsShuttingDown": m.refused(Refusal::ShuttingDown),
            "spansUncounted": l(&m.refused_spans_unknown),
        },
        "rejected": {
            "invalidRequests": l(&m.rejected_invalid_requests),
            "invalidSpans": l(&m.rejected_invalid_spans),
            "attributesDropped": l(&m.attributes_dropped),
            "attributeValuesTruncated": l(&m.attribute_values_truncated),
        },
        "log": {
            "appends": l(&m.log_appends),
            "bytes": l(&m.log_bytes),
            "replayedRecords": l(&m.log_replayed_records),
            "corruptRecords": l(&m.log_corrupt_records),
            "tailBytesCut": l(&m.log_tail_bytes_cut),
            "writeErrors": l(&m.log_write_errors),
        },
        "processed": { "spans": l(&m.spans_processed) },
        "store": {
            "spansStored": l(&st.spans_stored),
            "tracesSealed": l(&st.traces_sealed),
            "tracesSealedEarly": l(&st.traces_sealed_early),
            "lateSpans": l(&st.late_spans),
            "duplicateSpans": l(&st.duplicate_spans),
            "undecodableSpans": l(&st.undecodable_spans),
            "sealFailures": l(&st.seal_failures),
            "corruptBlocks": l(&st.corrupt_blocks),
            "retentionDeletedSpans": l(&st.retention_deleted_spans),
            "headBytes": state.store.head.bytes(),
            "headTraces": state.store.head.traces(),
            "blocks": state.store.blocks().len(),
        },
        "watermark": l(&st.watermark),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_parse_in_both_lengths_and_bad_ones_say_why() {
        assert_eq!(parse_trace_id("0102030405060708090a0b0c0d0e0f10").unwrap()[15], 0x10);
        assert_eq!(parse_trace_id("0102030405060708090A0B0C0D0E0F10").unwrap()[10], 0x0b);
        let short = parse_trace_id("00000000000000ff").unwrap();
        assert_eq!(short, [[0; 15].as_slice(), &[0xff]].concat().as_slice());
        assert!(parse_trace_id("abc").unwrap_err().contains("32 (or 16) hex digits"));
        assert!(parse_trace_id("zz02030405060708090a0b0c0d0e0f10").unwrap_err().contains("hex digits only"));
        assert!(parse_trace_id("é102030405060708090a0b0c0d0e0f1").is_err());
    }

    #[test]
    fn query_strings_decode() {
        assert_eq!(
            form_pairs("service=a%20b&x=1+2&bad=%zz&e"),
            vec![
                ("service".into(), "a b".into()),
                ("x".into(), "1 2".into()),
                ("bad".into(), "%zz".into()),
                ("e".into(), "".into())
            ]
        );
        assert_eq!(form_pairs("t=%"), vec![("t".into(), "%".into())]);
    }
}
