//! The native search API: `POST /weft/v1/traces:query` and
//! `POST /weft/v1/spans:query`.
//!
//! Body (JSON, unknown fields refused so a typo is not silently ignored):
//! `{"start", "end", "filter", "view", "limit", "cursor", "order", "timeoutMs"}`
//! — times as RFC 3339 strings or Unix nanoseconds; `filter` in the TraceQL
//! subset (empty: every trace); `view` `summary` (default) or `full`; `order`
//! `newest` (default) or `oldest`. The answer is NDJSON: one trace (or span)
//! per line, then a last line `{"nextCursor", "completeUntil", "stats"}`.
//!
//! The cursor is opaque: it holds the window, the order, a hash of the filter
//! and the keyset position, so a resumed call continues the same query (the
//! body's filter must be the same; its times and order are taken from the
//! cursor). Answers are produced on a blocking thread and streamed through a
//! bounded channel; with `Accept-Encoding: gzip` they are gzip-compressed as
//! they go. Searches run at most [`MAX_CONCURRENT`] at a time; more get 429
//! with `Retry-After`.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use weft_store::search::{Hit, Load, Order, Position, Search, SearchEnd};
use weft_store::summary::{hex, unhex};
use weft_traceql::Filter;

use crate::api::{error, read_json, Stream};
use crate::http::Body;
use crate::State;
use weft_store::otlp_json;

/// Searches running at once; the rest are told to come back.
pub const MAX_CONCURRENT: usize = 4;
/// Most traces one page may hold.
pub const MAX_LIMIT: usize = 1_000_000;
/// Traces per page when the body gives no limit.
const DEFAULT_LIMIT: usize = 100;
/// How long a search may run, unless the body asks for less (or more, up to
/// [`MAX_TIMEOUT`]).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_TIMEOUT: Duration = Duration::from_secs(300);
/// Window when the body gives no start: the hour before `end`.
const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);
/// Matches held at once while waiting for their turn (about 200 bytes each).
const MAX_PENDING: usize = 200_000;
/// Chunks buffered ahead of a slow reader.
const STREAM_CHUNKS: usize = 16;

/// A time as the body may give it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Time {
    Nanos(u64),
    Text(String),
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QueryBody {
    start: Option<Time>,
    end: Option<Time>,
    #[serde(default)]
    filter: String,
    view: Option<String>,
    limit: Option<u64>,
    cursor: Option<String>,
    order: Option<String>,
    timeout_ms: Option<u64>,
}

/// What the answer lines hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One trace per line.
    Traces,
    /// One matched span per line.
    Spans,
}

pub(crate) fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

pub(crate) fn parse_time(t: &Time, what: &str) -> Result<u64, String> {
    match t {
        Time::Nanos(n) => Ok(*n),
        Time::Text(s) => humantime::parse_rfc3339_weak(s)
            .map_err(|e| format!("{what}: {s:?} is not an RFC 3339 time like 2026-11-22T10:00:00Z ({e})"))
            .and_then(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .map_err(|_| format!("{what}: {s:?} is before 1970"))
            }),
    }
}

/// RFC 3339 text of Unix nanoseconds.
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// FNV-1a: a stable hash of the filter for the cursor (not a security check:
/// it only catches a client resuming with another filter by mistake).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// What a cursor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    order: Order,
    start: u64,
    end: u64,
    filter: u64,
    at: Position,
}

const CURSOR_VERSION: u8 = 1;
const CURSOR_BYTES: usize = 1 + 1 + 8 + 8 + 8 + 24;

impl Cursor {
    fn encode(&self) -> String {
        let mut b = Vec::with_capacity(CURSOR_BYTES);
        b.push(CURSOR_VERSION);
        b.push(match self.order {
            Order::NewestFirst => 0,
            Order::OldestFirst => 1,
        });
        b.extend_from_slice(&self.start.to_be_bytes());
        b.extend_from_slice(&self.end.to_be_bytes());
        b.extend_from_slice(&self.filter.to_be_bytes());
        b.extend_from_slice(&self.at.to_bytes());
        hex(&b)
    }

    fn decode(s: &str) -> Result<Cursor, String> {
        let bad = || format!("the cursor {s:?} is not one this server gave out; start without a cursor");
        let bytes = unhex(s).filter(|b| b.len() == CURSOR_BYTES).ok_or_else(bad)?;
        if bytes[0] != CURSOR_VERSION {
            return Err(bad());
        }
        let order = match bytes[1] {
            0 => Order::NewestFirst,
            1 => Order::OldestFirst,
            _ => return Err(bad()),
        };
        let u = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(x)
        };
        let mut at = [0u8; 24];
        at.copy_from_slice(&bytes[26..50]);
        Ok(Cursor { order, start: u(2), end: u(10), filter: u(18), at: Position::from_bytes(&at) })
    }
}

/// A checked request.
#[derive(Debug)]
struct Request {
    filter: Filter,
    start: u64,
    end: u64,
    order: Order,
    limit: usize,
    after: Option<Position>,
    full: bool,
    timeout: Duration,
}

fn check(body: QueryBody) -> Result<Request, String> {
    let filter = Filter::parse(&body.filter).map_err(|e| format!("filter: {e}"))?;
    let full = match body.view.as_deref() {
        None | Some("summary") => false,
        Some("full") => true,
        Some(v) => return Err(format!("view: {v:?} is not one of \"summary\", \"full\"")),
    };
    let mut order = match body.order.as_deref() {
        None | Some("newest") => Order::NewestFirst,
        Some("oldest") => Order::OldestFirst,
        Some(v) => return Err(format!("order: {v:?} is not one of \"newest\", \"oldest\"")),
    };
    let limit = match body.limit {
        None => DEFAULT_LIMIT,
        Some(0) => return Err("limit: must be at least 1".into()),
        Some(n) if n > MAX_LIMIT as u64 => {
            return Err(format!("limit: at most {MAX_LIMIT} per page; page with the cursor"))
        }
        Some(n) => n as usize,
    };
    let timeout = body.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis).min(MAX_TIMEOUT);
    let end = body.end.as_ref().map(|t| parse_time(t, "end")).transpose()?;
    let start = body.start.as_ref().map(|t| parse_time(t, "start")).transpose()?;
    let mut end = end.unwrap_or_else(now_nanos);
    let mut start = start.unwrap_or_else(|| end.saturating_sub(DEFAULT_WINDOW.as_nanos() as u64));
    if start > end {
        return Err(format!("start ({}) is after end ({})", rfc3339(start), rfc3339(end)));
    }
    let mut after = None;
    if let Some(c) = body.cursor.as_deref() {
        let c = Cursor::decode(c)?;
        if c.filter != fnv(filter.canonical()) {
            return Err("cursor: it belongs to a query with another filter; send the same filter, or no cursor".into());
        }
        (start, end, order, after) = (c.start, c.end, c.order, Some(c.at));
    }
    Ok(Request { filter, start, end, order, limit, after, full, timeout })
}

/// Where answer lines go: the channel to the client, gzip-compressed or not.
/// Lines are gathered into chunks of about [`CHUNK_BYTES`] (one channel send
/// per span line cost more than encoding it), but a chunk never waits longer
/// than [`CHUNK_WAIT`], so a slow search still streams what it has found.
struct Sink {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    buf: Vec<u8>,
    since: Instant,
}

/// Bytes gathered before a chunk goes out.
const CHUNK_BYTES: usize = 256 << 10;
/// Longest a line waits in a chunk.
const CHUNK_WAIT: Duration = Duration::from_millis(50);

impl Sink {
    fn new(tx: tokio::sync::mpsc::Sender<Bytes>, gzip: bool) -> Sink {
        let gzip = gzip.then(|| flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        Sink { tx, gzip, buf: Vec::with_capacity(CHUNK_BYTES + (64 << 10)), since: Instant::now() }
    }

    /// Sends a line; `false` if the client has gone.
    fn line(&mut self, line: &[u8]) -> bool {
        self.write_line(|out| out.extend_from_slice(line))
    }

    /// Sends the line `write` writes, straight into the chunk being gathered
    /// when not compressing (a full export is gigabytes: each copy shows).
    fn write_line(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        let held = match &mut self.gzip {
            None => {
                write(&mut self.buf);
                self.buf.push(b'\n');
                self.buf.len()
            }
            Some(z) => {
                let mut line = std::mem::take(&mut self.buf);
                line.clear();
                write(&mut line);
                line.push(b'\n');
                let ok = z.write_all(&line).is_ok();
                self.buf = line;
                if !ok {
                    return false;
                }
                z.get_ref().len() * 4
            }
        };
        if held >= CHUNK_BYTES || self.since.elapsed() >= CHUNK_WAIT {
            return self.flush();
        }
        true
    }

    /// Sends what is gathered.
    fn flush(&mut self) -> bool {
        self.since = Instant::now();
        let chunk = match &mut self.gzip {
            None => std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + (64 << 10))),
            Some(z) => std::mem::take(z.get_mut()),
        };
        chunk.is_empty() || self.tx.blocking_send(Bytes::from(chunk)).is_ok()
    }

    fn finish(mut self) {
        if self.flush() {
            if let Some(z) = self.gzip {
                if let Ok(rest) = z.finish() {
                    let _ = self.tx.blocking_send(Bytes::from(rest));
                }
            }
        }
    }
}

fn wants_gzip(req: &http::Request<Incoming>) -> bool {
    req.headers().get_all(http::header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|e| {
            let mut parts = e.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !q_zero
        })
    })
}

/// Writes one trace line.
fn trace_line(out: &mut Vec<u8>, hit: &Hit, full: bool) {
    out.extend_from_slice(b"{\"traceId\":\"");
    out.extend_from_slice(hex(&hit.summary.trace_id).as_bytes());
    out.extend_from_slice(b"\",\"summary\":");
    if serde_json::to_writer(&mut *out, &hit.summary).is_err() {
        out.extend_from_slice(b"null");
    }
    if full {
        let at = out.len();
        out.extend_from_slice(b",\"resourceSpans\":");
        if hit.rows.is_empty() {
            otlp_json::resource_spans(out, &hit.spans);
        } else if let Err(e) = otlp_json::resource_spans_of_rows(out, &hit.rows) {
            // Damaged rows: the trace line says so instead of holding half a span.
            out.truncate(at);
            out.extend_from_slice(b",\"error\":");
            otlp_json::string(out, &format!("its spans could not be read: {e}"));
        }
    }
    out.push(b'}');
}

/// The span lines of a trace: each OTLP span with its resource, scope and
/// the trace's summary fields beside it.
fn span_lines(hit: Hit, sink: &mut Sink) -> bool {
    let s = &hit.summary;
    hit.spans.iter().all(|fs| {
        sink.write_line(|line| {
            line.push(b'{');
            otlp_json::span_fields(line, &fs.span);
            line.extend_from_slice(b",\"service\":");
            otlp_json::string(line, &fs.origin.service);
            line.extend_from_slice(b",\"resource\":{\"attributes\":");
            otlp_json::key_values(line, &fs.origin.resource);
            line.extend_from_slice(b"},\"scope\":");
            otlp_json::scope(line, &fs.origin.scope);
            line.extend_from_slice(b",\"traceRootService\":");
            otlp_json::string(line, &s.root_service);
            line.extend_from_slice(b",\"traceRootName\":");
            otlp_json::string(line, &s.root_name);
            let _ = write!(
                line,
                ",\"traceStartTimeUnixNano\":\"{}\",\"traceDurationNanos\":\"{}\",\"traceSpanCount\":{},\"traceErrorCount\":{}}}",
                s.start, s.duration, s.span_count, s.error_count
            );
        })
    })
}

/// `POST /weft/v1/traces:query` and `POST /weft/v1/spans:query`.
pub async fn query(state: Arc<State>, req: http::Request<Incoming>, lines: Lines) -> http::Response<Body> {
    let gzip = wants_gzip(&req);
    let value = match read_json(req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body: QueryBody = match serde_json::from_value(value) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body does not fit the query shape: {e}")),
    };
    let r = match check(body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Ok(permit) = state.searches.clone().try_acquire_owned() else {
        let mut resp = error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_CONCURRENT} searches are running; retry after the delay in Retry-After"),
        );
        resp.headers_mut().insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_CHUNKS);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut sink = Sink::new(tx, gzip);
        let load = match (lines, r.full) {
            (Lines::Spans, _) => Load::MatchedSpans,
            (Lines::Traces, true) => Load::AllRows,
            (Lines::Traces, false) => Load::Summary,
        };
        let q = Search {
            start: r.start,
            end: r.end,
            filter: &r.filter,
            order: r.order,
            limit: r.limit,
            after: r.after,
            load,
            deadline: Instant::now() + r.timeout,
            max_pending: MAX_PENDING,
        };
        let mut last = None;
        let result = store.search(&q, |hit| {
            last = Some(hit.position);
            match lines {
                Lines::Traces => sink.write_line(|out| trace_line(out, &hit, r.full)),
                Lines::Spans => span_lines(hit, &mut sink),
            }
        });
        let cursor = |at: Position| {
            Cursor { order: r.order, start: r.start, end: r.end, filter: fnv(r.filter.canonical()), at }.encode()
        };
        let watermark = store.stats.watermark.load(std::sync::atomic::Ordering::Relaxed);
        let idle = store.config().trace_idle.as_nanos() as u64;
        let complete = (watermark > idle).then(|| rfc3339(watermark - idle));
        let last_line = match result {
            Ok(SearchEnd { next, stats }) => serde_json::json!({
                "nextCursor": next.map(cursor),
                "completeUntil": complete,
                "stats": stats,
            }),
            Err(e) => serde_json::json!({
                "nextCursor": last.or(r.after).map(cursor),
                "completeUntil": complete,
                "error": format!("the search stopped: {e}; resume with nextCursor"),
            }),
        };
        sink.line(last_line.to_string().as_bytes());
        sink.finish();
    });
    let mut resp = http::Response::new(http_body_util::Either::Right(http_body_util::Either::Right(Stream::new(rx))));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    if gzip {
        resp.headers_mut().insert(http::header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Result<Request, String> {
        check(serde_json::from_value(v).map_err(|e| e.to_string())?)
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let c = Cursor {
            order: Order::OldestFirst,
            start: 5,
            end: u64::MAX,
            filter: 77,
            at: Position::of(Order::OldestFirst, 9, &[3; 16]),
        };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert!(Cursor::decode("zz").is_err());
        assert!(Cursor::decode(&"g".repeat(CURSOR_BYTES * 2)).is_err());
        let mut other = c.encode().into_bytes();
        other[1] = b'9';
        assert!(Cursor::decode(std::str::from_utf8(&other).unwrap()).is_err(), "unknown version");
        assert!(Cursor::decode(&"é".repeat(CURSOR_BYTES)).is_err());
    }

    #[test]
    fn bodies_are_checked() {
        let r = body(serde_json::json!({"start": "2026-11-22T10:00:00Z", "end": 1_800_000_000_000_000_000u64, "limit": 5, "view": "full", "order": "oldest"})).unwrap();
        assert_eq!(r.start, 1_795_341_600_000_000_000);
        assert_eq!((r.limit, r.full, r.order), (5, true, Order::OldestFirst));
        let r = body(serde_json::json!({})).unwrap();
        assert_eq!(r.end - r.start, DEFAULT_WINDOW.as_nanos() as u64);
        for (b, says) in [
            (serde_json::json!({"filter": "{ name = }"}), "filter: at column 10"),
            (serde_json::json!({"view": "all"}), "view"),
            (serde_json::json!({"limit": 0}), "limit"),
            (serde_json::json!({"limit": 2_000_000}), "at most"),
            (serde_json::json!({"start": "yesterday"}), "RFC 3339"),
            (serde_json::json!({"start": 10, "end": 5}), "after end"),
            (serde_json::json!({"order": "up"}), "order"),
            (serde_json::json!({"cursor": "abc"}), "cursor"),
            (serde_json::json!({"limt": 5}), "unknown field"),
        ] {
            let e = body(b.clone()).unwrap_err();
            assert!(e.contains(says), "{b}: {e}");
        }
        let c = Cursor {
            order: Order::NewestFirst,
            start: 1,
            end: 2,
            filter: fnv("{ }"),
            at: Position::of(Order::NewestFirst, 1, &[0; 16]),
        };
        let e = body(serde_json::json!({"cursor": c.encode(), "filter": "{ name = \"x\" }"})).unwrap_err();
        assert!(e.contains("another filter"), "{e}");
        let r = body(serde_json::json!({"cursor": c.encode(), "filter": "{}"})).unwrap();
        assert_eq!((r.start, r.end), (1, 2), "the cursor's window wins");
    }
}
