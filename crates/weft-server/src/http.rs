//! Every HTTP route of the server, on hyper: OTLP/HTTP (`POST /v1/traces`),
//! OTLP/gRPC (`TraceService/Export`, framed by hand so that admission runs
//! before the body is read), the "not supported" answers for logs and metrics,
//! `/metrics`, `/healthz`, `/readyz`, `/api/debug/traces/{id}`, and the native
//! query API's routes (handled in [`crate::api`]).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full, Limited};

use hyper::body::{Frame, Incoming};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use prost::Message;

use crate::decode::{check, decode, decompress, Compression, Encoding};
use crate::metrics::Refusal;
use crate::shards::StoredSpan;
use crate::State;
use weft_store::Origin;

/// The gRPC method of OTLP trace export.
pub const GRPC_TRACES: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// How long refused clients are asked to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Decoded spans take about this many times their wire size in memory.
const DECODED_FACTOR: usize = 3;

/// Response bodies: whole, a gRPC message followed by trailers, or streamed.
pub type Body = http_body_util::Either<Full<Bytes>, http_body_util::Either<grpc_body::Framed, crate::api::Stream>>;

mod grpc_body {
    use super::*;
    /// The two frames of a gRPC answer: the message, then the trailers.
    pub struct Framed(pub Option<Frame<Bytes>>, pub Option<Frame<Bytes>>);
    impl hyper::body::Body for Framed {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            let f = self.0.take().or_else(|| self.1.take());
            std::task::Poll::Ready(f.map(Ok))
        }
    }
}

fn text(status: StatusCode, msg: impl Into<String>) -> http::Response<Body> {
    let mut r = http::Response::new(http_body_util::Either::Left(Full::new(Bytes::from(msg.into()))));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn json(status: StatusCode, v: serde_json::Value) -> http::Response<Body> {
    crate::api::body_response(status, v.to_string().into_bytes(), "application/json")
}

fn grpc_status(code: tonic::Code, msg: &str, retry: Option<Duration>) -> http::Response<Body> {
    use tonic_types::StatusExt;
    let status = match retry {
        Some(d) => tonic::Status::with_error_details(code, msg, tonic_types::ErrorDetails::with_retry_info(Some(d))),
        None => tonic::Status::new(code, msg),
    };
    status.into_http::<Full<Bytes>>().map(http_body_util::Either::Left)
}

fn grpc_ok(resp: &ExportTraceServiceResponse) -> http::Response<Body> {
    let msg = resp.encode_to_vec();
    let mut framed = Vec::with_capacity(msg.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    framed.extend_from_slice(&msg);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = grpc_body::Framed(Some(Frame::data(Bytes::from(framed))), Some(Frame::trailers(trailers)));
    let mut r = http::Response::new(http_body_util::Either::Right(http_body_util::Either::Left(body)));
    r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    r
}

/// Which protocol a request speaks, for its error answers.
#[derive(Copy, Clone, PartialEq, Eq)]
enum Proto {
    Grpc,
    Http { json: bool },
}

/// A refusal or rejection, in the request's protocol.
fn refuse(p: Proto, kind: Problem, msg: &str) -> http::Response<Body> {
    match (p, kind) {
        (Proto::Grpc, Problem::Busy) => grpc_status(tonic::Code::ResourceExhausted, msg, Some(RETRY_AFTER)),
        (Proto::Grpc, Problem::Unavailable) => grpc_status(tonic::Code::Unavailable, msg, Some(RETRY_AFTER)),
        (Proto::Grpc, Problem::TooLarge) => grpc_status(tonic::Code::ResourceExhausted, msg, None),
        (Proto::Grpc, Problem::Invalid) => grpc_status(tonic::Code::InvalidArgument, msg, None),
        (Proto::Http { .. }, Problem::Busy) => {
            let mut r = text(StatusCode::TOO_MANY_REQUESTS, msg);
            r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
            r
        }
        (Proto::Http { .. }, Problem::Unavailable) => {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, msg);
            r.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
            r
        }
        (Proto::Http { .. }, Problem::TooLarge) => text(StatusCode::PAYLOAD_TOO_LARGE, msg),
        (Proto::Http { .. }, Problem::Invalid) => text(StatusCode::BAD_REQUEST, msg),
    }
}

#[derive(Copy, Clone)]
enum Problem {
    Busy,
    Unavailable,
    TooLarge,
    Invalid,
}

/// Routes one request.
pub async fn handle(state: Arc<State>, req: http::Request<Incoming>) -> Result<http::Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let is_grpc =
        req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let resp = match (req.method(), path.as_str()) {
        (&Method::POST, GRPC_TRACES) => export(state, req, Proto::Grpc).await,
        (&Method::POST, "/v1/traces") if !is_grpc => {
            let ct = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
            let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
            match ct.as_str() {
                "application/x-protobuf" | "application/protobuf" => {
                    export(state, req, Proto::Http { json: false }).await
                }
                "application/json" => export(state, req, Proto::Http { json: true }).await,
                other => text(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!("unsupported Content-Type {other:?}: send application/x-protobuf or application/json"),
                ),
            }
        }
        (_, "/v1/traces") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST for /v1/traces"),
        (_, p) if p.starts_with("/opentelemetry.proto.collector.") => grpc_status(
            tonic::Code::Unimplemented,
            "weft accepts traces only; logs and metrics are not supported",
            None,
        ),
        (_, "/v1/logs" | "/v1/metrics") => text(
            StatusCode::NOT_FOUND,
            "weft accepts traces only (POST /v1/traces); logs and metrics are not supported",
        ),
        (&Method::GET, "/metrics") => {
            let mut body = state.metrics.render();
            crate::metrics::render_store(&state.store, &mut body);
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
            r
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") => {
            if state.shutting_down.load(Ordering::Relaxed) {
                text(StatusCode::SERVICE_UNAVAILABLE, "shutting down")
            } else {
                text(StatusCode::OK, "ready")
            }
        }
        (&Method::GET, p) if p.starts_with("/api/debug/traces/") => {
            debug_trace(&state, &p["/api/debug/traces/".len()..])
        }
        (&Method::POST, "/api/debug/missing") => debug_missing(&state, req).await,
        (&Method::GET, p) if p.starts_with("/weft/v1/traces/") => {
            let id = p["/weft/v1/traces/".len()..].to_owned();
            crate::api::trace(state, req, &id).await
        }
        (&Method::POST, "/weft/v1/traces:batchGet") => crate::api::batch_get(state, req).await,
        (&Method::POST, "/weft/v1/traces:query") => {
            crate::search_api::query(state, req, crate::search_api::Lines::Traces).await
        }
        (&Method::POST, "/weft/v1/spans:query") => {
            crate::search_api::query(state, req, crate::search_api::Lines::Spans).await
        }
        (&Method::GET, "/weft/v1/services") => crate::api::services(state).await,
        (&Method::GET, "/weft/v1/operations") => {
            let q = req.uri().query().map(str::to_owned);
            crate::api::operations(state, q.as_deref()).await
        }
        (&Method::GET, "/weft/v1/stats") => crate::api::stats(&state),
        (&Method::GET, "/weft/v1/tags") => {
            let q = req.uri().query().map(str::to_owned);
            crate::tags_api::names(state, q.as_deref()).await
        }
        (&Method::GET, p) if tag_of_values_path(p).is_some() => {
            let tag = tag_of_values_path(p).unwrap_or_default().to_owned();
            let q = req.uri().query().map(str::to_owned);
            crate::tags_api::values(state, &tag, q.as_deref()).await
        }
        (&Method::GET, p) if p.starts_with("/tempo/") => {
            // Grafana's Tempo data source pointed at `http://HOST/tempo`: every
            // Tempo route, with no overlap with Jaeger's.
            let (p, q) = (p["/tempo".len()..].to_owned(), req.uri().query().map(str::to_owned));
            let accept = header(&req, http::header::ACCEPT);
            match crate::tempo_api::route(state, &p, q.as_deref(), accept.as_deref()).await {
                Some(r) => r,
                None => text(StatusCode::NOT_FOUND, format!("no Tempo route for {p}")),
            }
        }
        (&Method::GET, p) if p.starts_with("/api/") || p == "/ready" => {
            let q = req.uri().query().map(str::to_owned);
            let accept = header(&req, http::header::ACCEPT);
            // `/api/traces/{id}` is both Jaeger's (JSON) and Tempo's v1 trace
            // by ID, which Grafana asks for in protobuf: the Accept header
            // decides.
            let tempo_first = p.starts_with("/api/traces/") && crate::api::accepts_protobuf(accept.as_deref());
            let mut found = None;
            if !tempo_first {
                found = crate::jaeger_api::route(state.clone(), p, q.as_deref()).await;
            }
            if found.is_none() {
                found = crate::tempo_api::route(state, p, q.as_deref(), accept.as_deref()).await;
            }
            found.unwrap_or_else(|| text(StatusCode::NOT_FOUND, format!("no route for GET {p}")))
        }
        (&Method::GET, p) if crate::ui::is_ui_path(p) => crate::ui::serve(p),
        (_, p) if p.starts_with("/weft/v1/") => crate::api::error(
            StatusCode::NOT_FOUND,
            format!("no route for {} {p}; see docs/api.md for the native API", req.method()),
        ),
        _ => text(StatusCode::NOT_FOUND, format!("no route for {} {path}", req.method())),
    };
    Ok(resp)
}

fn header(req: &http::Request<Incoming>, name: http::header::HeaderName) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// `TAG` of `/weft/v1/tags/TAG/values` (`None` for any other path; TAG may be
/// empty, which the handler refuses with a message).
fn tag_of_values_path(p: &str) -> Option<&str> {
    p.strip_prefix("/weft/v1/tags/")?.strip_suffix("/values")
}

async fn export(state: Arc<State>, req: http::Request<Incoming>, proto: Proto) -> http::Response<Body> {
    let m = &state.metrics;
    m.requests.fetch_add(1, Ordering::Relaxed);
    if state.shutting_down.load(Ordering::Relaxed) {
        m.refuse(Refusal::ShuttingDown);
        return refuse(proto, Problem::Unavailable, "the server is shutting down; retry");
    }
    let max = state.config.max_request_bytes;
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        m.refuse(Refusal::TooLarge);
        return refuse(proto, Problem::TooLarge, &format!("request body over the {max}-byte limit"));
    }
    // Admission before reading the body: what it declares (or, for a gRPC stream
    // with no length, the smallest request) must fit in the budget now.
    let want = declared.unwrap_or(1024).max(1) * DECODED_FACTOR;
    let Some(mut permit) = state.budget.try_take(want) else {
        m.refuse(Refusal::Budget);
        return refuse(proto, Problem::Busy, "ingest budget full; retry after the delay");
    };
    let arrival = state.in_flight.arrive();
    let codec_header = if proto == Proto::Grpc { "grpc-encoding" } else { "content-encoding" };
    let sent = req.headers().get(codec_header).map(|v| v.as_bytes());
    let Some(codec) = Compression::from_header(sent) else {
        let msg = format!(
            "unsupported {codec_header} {:?}: use gzip, zstd or none",
            String::from_utf8_lossy(sent.unwrap_or_default())
        );
        return refuse(proto, Problem::Invalid, &msg);
    };
    // Read frame by frame, holding budget for what has arrived: a body with no
    // declared length (gRPC) is refused as soon as it would not fit, instead of
    // being read in full first.
    let mut incoming = req.into_body();
    let mut buf = bytes::BytesMut::with_capacity(declared.unwrap_or(8192).min(max + 5));
    while let Some(frame) = incoming.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return refuse(proto, Problem::Invalid, &format!("could not read the request body: {e}")),
        };
        let Ok(data) = frame.into_data() else { continue };
        buf.extend_from_slice(&data);
        if buf.len() > max + 5 {
            m.refuse(Refusal::TooLarge);
            return refuse(proto, Problem::TooLarge, &format!("request body over the {max}-byte limit"));
        }
        let need = buf.len() * DECODED_FACTOR;
        if need > permit.bytes() && !permit.grow(need - permit.bytes()) {
            m.refuse(Refusal::Budget);
            return refuse(proto, Problem::Busy, "ingest budget full; retry after the delay");
        }
    }
    let body = buf.freeze();
    m.bytes_received.fetch_add(body.len() as u64, Ordering::Relaxed);
    // A gRPC body is one length-prefixed message; the frame says if it is compressed.
    let (raw, compressed) = if proto == Proto::Grpc {
        if body.len() < 5 {
            m.rejected_invalid_requests.fetch_add(1, Ordering::Relaxed);
            return refuse(proto, Problem::Invalid, "gRPC message frame missing or cut short");
        }
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if flag > 1 || body.len() != 5 + len {
            m.rejected_invalid_requests.fetch_add(1, Ordering::Relaxed);
            return refuse(proto, Problem::Invalid, "malformed gRPC message frame (one unary message expected)");
        }
        (body.slice(5..), flag == 1)
    } else {
        (body, codec != Compression::None)
    };
    if compressed && codec == Compression::None {
        return refuse(proto, Problem::Invalid, "compressed gRPC message without grpc-encoding (gzip or zstd)");
    }
    let raw = if compressed {
        match decompress(&raw, codec, max) {
            Ok(v) => Bytes::from(v),
            Err(crate::decode::DecodeError::TooLarge(_)) => {
                m.refuse(Refusal::TooLarge);
                return refuse(proto, Problem::TooLarge, &format!("decompressed body over the {max}-byte limit"));
            }
            Err(e) => {
                m.rejected_invalid_requests.fetch_add(1, Ordering::Relaxed);
                return refuse(proto, Problem::Invalid, &e.to_string());
            }
        }
    } else {
        raw
    };
    // The real size is known now: hold the budget for it.
    let need = raw.len() * DECODED_FACTOR;
    if need > permit.bytes() && !permit.grow(need - permit.bytes()) {
        m.refuse(Refusal::Budget);
        return refuse(proto, Problem::Busy, "ingest budget full; retry after the delay");
    }
    let encoding = if proto == (Proto::Http { json: true }) { Encoding::Json } else { Encoding::Protobuf };
    let limits = crate::decode::Limits {
        max_attributes: state.config.max_attributes,
        max_value_bytes: state.config.max_attribute_value_bytes,
    };
    // The fast path: a protobuf request whose spans need no change is kept as
    // sent — logged as is, its spans slices of its buffer — without decoding.
    if encoding == Encoding::Protobuf {
        if let Some(scanned) = crate::decode::scan(&raw, limits) {
            if !scanned.spans.is_empty() {
                let spans = scanned_spans(&raw, scanned);
                if let Err(refused) = log_and_route(&state, proto, raw, spans, arrival, permit).await {
                    return refused;
                }
            }
            return answer(proto, ExportTraceServiceResponse { partial_success: None });
        }
    }
    let decoded = match decode(&raw, encoding) {
        Ok(d) => d,
        Err(e) => {
            m.rejected_invalid_requests.fetch_add(1, Ordering::Relaxed);
            return refuse(proto, Problem::Invalid, &e.to_string());
        }
    };
    let checked = check(decoded, limits);
    m.rejected_invalid_spans.fetch_add(checked.rejected, Ordering::Relaxed);
    m.attributes_dropped.fetch_add(checked.attributes_dropped, Ordering::Relaxed);
    m.attribute_values_truncated.fetch_add(checked.values_truncated, Ordering::Relaxed);
    if checked.spans > 0 {
        let payload = if encoding == Encoding::Protobuf && !checked.modified {
            raw
        } else {
            Bytes::from(checked.request.encode_to_vec())
        };
        if let Err(refused) =
            log_and_route(&state, proto, payload, stored_spans(checked.request), arrival, permit).await
        {
            return refused;
        }
    }
    let partial = (checked.rejected > 0).then_some(ExportTracePartialSuccess {
        rejected_spans: checked.rejected as i64,
        error_message: checked.reject_message,
    });
    answer(proto, ExportTraceServiceResponse { partial_success: partial })
}

/// Appends an accepted request to the log (waiting for its sync), then hands its
/// spans to the shards. A log that cannot write refuses the request with a retry
/// delay.
async fn log_and_route(
    state: &State,
    proto: Proto,
    payload: Bytes,
    spans: Vec<StoredSpan>,
    arrival: Arc<crate::shards::Arrival>,
    permit: crate::admission::Permit,
) -> Result<(), http::Response<Body>> {
    if let Err(e) = state.wal.append(arrival.time, payload).await {
        state.metrics.refuse(Refusal::Log);
        tracing::warn!(error = %e, "refusing a request: the write-ahead log cannot write");
        return Err(refuse(proto, Problem::Unavailable, "the server cannot write its log (disk full?); retry later"));
    }
    state.metrics.spans_received.fetch_add(spans.len() as u64, Ordering::Relaxed);
    state.shards.route(spans, arrival, permit);
    Ok(())
}

/// The success answer in the request's protocol.
fn answer(proto: Proto, resp: ExportTraceServiceResponse) -> http::Response<Body> {
    match proto {
        Proto::Grpc => grpc_ok(&resp),
        Proto::Http { json: true } => match serde_json::to_value(&resp) {
            Ok(v) => json(StatusCode::OK, v),
            Err(_) => json(StatusCode::OK, serde_json::json!({})),
        },
        Proto::Http { json: false } => {
            let mut r = http::Response::new(http_body_util::Either::Left(Full::new(Bytes::from(resp.encode_to_vec()))));
            r.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"));
            r
        }
    }
}

/// The spans of a decoded request, each encoded on its own, with their origins.
pub fn stored_spans(
    req: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
) -> Vec<StoredSpan> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
        for ss in rs.scope_spans {
            let origin = Arc::new(Origin::new(attrs.clone(), ss.scope.unwrap_or_default()));
            for span in ss.spans {
                let mut trace_id = [0u8; 16];
                if span.trace_id.len() == 16 {
                    trace_id.copy_from_slice(&span.trace_id);
                }
                let span = Bytes::from(span.encode_to_vec());
                out.push(StoredSpan { origin: origin.clone(), trace_id, span });
            }
        }
    }
    out
}

/// The spans the scanner found, as slices of the request buffer.
pub fn scanned_spans(raw: &Bytes, scanned: crate::decode::Scanned) -> Vec<StoredSpan> {
    let resources = scanned.resources;
    let origins: Vec<Arc<Origin>> = scanned
        .scopes
        .into_iter()
        .map(|(r, scope)| {
            let attrs = resources.get(r).map(|r| r.attributes.clone()).unwrap_or_default();
            Arc::new(Origin::new(attrs, scope))
        })
        .collect();
    scanned
        .spans
        .into_iter()
        .filter_map(|(o, range, trace_id)| {
            Some(StoredSpan { origin: origins.get(o)?.clone(), trace_id, span: raw.slice(range) })
        })
        .collect()
}

fn debug_trace(state: &State, hex: &str) -> http::Response<Body> {
    let id = match crate::api::parse_trace_id(hex) {
        Ok(id) => id,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let spans = match state.store.trace(&id) {
        Ok(Some((_, spans))) => spans,
        Ok(None) => return text(StatusCode::NOT_FOUND, format!("trace {hex} not found")),
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("trace {hex} could not be read: {e}")),
    };
    let spans: Vec<serde_json::Value> = spans
        .iter()
        .map(|s| {
            serde_json::json!({
                "service": &*s.origin.service,
                "resource": serde_json::to_value(&s.origin.resource).unwrap_or_default(),
                "scope": serde_json::to_value(&s.origin.scope).unwrap_or_default(),
                "span": serde_json::to_value(&s.span).unwrap_or_default(),
            })
        })
        .collect();
    json(StatusCode::OK, serde_json::json!({"traceId": hex, "spans": spans}))
}

/// `POST /api/debug/missing` with hex trace IDs, one per line: answers
/// `{"checked": N, "missing": [...], "spans": S}` — which of them the server does
/// not hold, and how many spans the others have. For crash tests.
async fn debug_missing(state: &State, req: http::Request<Incoming>) -> http::Response<Body> {
    let body = match Limited::new(req.into_body(), 64 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("could not read the body: {e}")),
    };
    let mut missing = Vec::new();
    let (mut checked, mut spans) = (0u64, 0u64);
    for line in String::from_utf8_lossy(&body).lines() {
        let hex = line.trim();
        if hex.is_empty() {
            continue;
        }
        let id = match crate::api::parse_trace_id(hex) {
            Ok(id) => id,
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        };
        checked += 1;
        let n = state.store.span_rows(&id);
        if n == 0 {
            missing.push(hex.to_owned());
        }
        spans += n;
    }
    json(StatusCode::OK, serde_json::json!({"checked": checked, "missing": missing, "spans": spans}))
}
