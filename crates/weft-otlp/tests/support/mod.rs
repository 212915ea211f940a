//! An OTLP receiver for tests (gRPC and HTTP on one port) that answers from a
//! script: accept, partial success, any HTTP status with `Retry-After`, any gRPC
//! code with `RetryInfo`, a slow answer, a dropped connection, or being down.
//! It decodes every request with the `opentelemetry-proto` types (protobuf and
//! JSON), independently of weft's encoders, and logs each attempt.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::sync::watch;

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Accept everything.
    Accept,
    /// Accept with a partial success rejecting this many spans.
    Partial(i64, &'static str),
    /// An HTTP status (only for HTTP requests) and an optional `Retry-After`.
    Http(u16, Option<&'static str>),
    /// A gRPC error code and an optional `RetryInfo` delay (only for gRPC requests).
    Grpc(tonic::Code, Option<Duration>),
    /// Accept, after this long.
    Slow(Duration),
    /// Drop the connection without answering.
    Reset,
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub at: Instant,
    pub grpc: bool,
    pub json: bool,
    pub gzip: bool,
    pub spans: usize,
    pub reply: Reply,
}

#[derive(Default)]
pub struct State {
    script: Mutex<VecDeque<Reply>>,
    attempts: Mutex<Vec<Attempt>>,
    accepted: Mutex<Vec<ExportTraceServiceRequest>>,
    headers: Mutex<Vec<http::HeaderMap>>,
}

/// A running receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    down: watch::Sender<bool>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Starts on a free 127.0.0.1 port, on its own runtime thread.
    pub fn start() -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap())
    }

    /// Starts on `addr`.
    pub fn start_on(addr: SocketAddr) -> Receiver {
        let state = Arc::new(State::default());
        let (down, down_rx) = watch::channel(false);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (st, stp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let accepted = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
                    if stp.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(Ok((sock, _))) = accepted else { continue };
                    if *down_rx.borrow() {
                        drop(sock); // down: connections are dropped at once
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let st = st.clone();
                    let mut down_rx = down_rx.clone();
                    tokio::spawn(async move {
                        let kill = Arc::new(tokio::sync::Notify::new());
                        let k = kill.clone();
                        let svc = hyper::service::service_fn(move |req| handle(st.clone(), k.clone(), req));
                        let builder =
                            hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                        let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(sock), svc);
                        tokio::select! {
                            _ = conn => {}
                            _ = kill.notified() => {}
                            _ = down_rx.wait_for(|d| *d) => {}
                        }
                    });
                }
            });
        });
        let addr = rx.recv().unwrap();
        Receiver { addr, state, down, stop }
    }

    pub fn http_url(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Queues answers for the next requests (after them: accept).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }
    /// Drops every connection and refuses new ones until `up`.
    pub fn down(&self) {
        let _ = self.down.send(true);
    }
    pub fn up(&self) {
        let _ = self.down.send(false);
    }
    pub fn attempts(&self) -> Vec<Attempt> {
        self.state.attempts.lock().unwrap().clone()
    }
    pub fn accepted(&self) -> Vec<ExportTraceServiceRequest> {
        self.state.accepted.lock().unwrap().clone()
    }
    /// Every accepted span.
    pub fn spans(&self) -> Vec<Span> {
        self.accepted()
            .into_iter()
            .flat_map(|r| r.resource_spans)
            .flat_map(|rs| rs.scope_spans)
            .flat_map(|ss| ss.spans)
            .collect()
    }
    pub fn headers(&self) -> Vec<http::HeaderMap> {
        self.state.headers.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.down.send(true);
    }
}

type Frames = futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>;
type Body = http_body_util::Either<Full<Bytes>, StreamBody<Frames>>;

fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> http::Response<Body> {
    let mut r = http::Response::new(http_body_util::Either::Left(Full::new(body.into())));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_str(content_type).unwrap());
    r
}

fn gunzip(b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

async fn handle(
    st: Arc<State>,
    kill: Arc<tokio::sync::Notify>,
    req: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let grpc =
        req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let json = req.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == b"application/json");
    let gzip_header = if grpc { "grpc-encoding" } else { "content-encoding" };
    let gzip = req.headers().get(gzip_header).is_some_and(|v| v.as_bytes() == b"gzip");
    st.headers.lock().unwrap().push(req.headers().clone());
    let path = req.uri().path().to_owned();
    let Ok(body) = req.into_body().collect().await else {
        return Ok(full(400, "text/plain", "body"));
    };
    let mut body = body.to_bytes();
    let decoded: Result<ExportTraceServiceRequest, String> = if grpc {
        if path != "/opentelemetry.proto.collector.trace.v1.TraceService/Export" || body.len() < 5 {
            Err(format!("bad gRPC call {path}"))
        } else {
            let compressed = body[0] == 1;
            let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
            body.advance(5);
            let msg = body.slice(..len.min(body.len()));
            let msg = if compressed { gunzip(&msg).map(Bytes::from) } else { Ok(msg) };
            msg.and_then(|m| ExportTraceServiceRequest::decode(m).map_err(|e| e.to_string()))
        }
    } else if path != "/v1/traces" {
        Err(format!("bad path {path}"))
    } else {
        let raw = if gzip { gunzip(&body) } else { Ok(body.to_vec()) };
        raw.and_then(|raw| {
            if json {
                serde_json::from_slice(&raw).map_err(|e| e.to_string())
            } else {
                ExportTraceServiceRequest::decode(raw.as_slice()).map_err(|e| e.to_string())
            }
        })
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return Ok(full(400, "text/plain", format!("undecodable: {e}"))),
    };
    let spans = decoded.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    let reply = st.script.lock().unwrap().pop_front().unwrap_or(Reply::Accept);
    st.attempts.lock().unwrap().push(Attempt { at: Instant::now(), grpc, json, gzip, spans, reply: reply.clone() });
    let partial = match &reply {
        Reply::Accept => None,
        Reply::Partial(n, m) => Some(ExportTracePartialSuccess { rejected_spans: *n, error_message: (*m).into() }),
        Reply::Slow(d) => {
            tokio::time::sleep(*d).await;
            None
        }
        Reply::Reset => {
            kill.notify_one();
            std::future::pending::<()>().await;
            None
        }
        Reply::Http(code, retry_after) => {
            let mut r = full(*code, "text/plain", format!("scripted {code}"));
            if let Some(ra) = retry_after {
                r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static(ra));
            }
            return Ok(r);
        }
        Reply::Grpc(code, delay) => {
            let status = match delay {
                Some(d) => <tonic::Status as tonic_types::StatusExt>::with_error_details(
                    *code,
                    "scripted",
                    tonic_types::ErrorDetails::with_retry_info(Some(*d)),
                ),
                None => tonic::Status::new(*code, "scripted"),
            };
            return Ok(status.into_http::<Full<Bytes>>().map(http_body_util::Either::Left));
        }
    };
    let resp = ExportTraceServiceResponse { partial_success: partial };
    st.accepted.lock().unwrap().push(decoded);
    if grpc {
        let msg = resp.encode_to_vec();
        let mut frame = vec![0u8];
        frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        frame.extend_from_slice(&msg);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            vec![Ok(Frame::data(Bytes::from(frame))), Ok(Frame::trailers(trailers))];
        let mut r = http::Response::new(http_body_util::Either::Right(StreamBody::new(futures::stream::iter(frames))));
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        return Ok(r);
    }
    if json {
        let p = resp.partial_success.map(
            |p| serde_json::json!({"rejectedSpans": p.rejected_spans.to_string(), "errorMessage": p.error_message}),
        );
        let body = match p {
            Some(p) => serde_json::json!({"partialSuccess": p}),
            None => serde_json::json!({}),
        };
        return Ok(full(200, "application/json", body.to_string()));
    }
    Ok(full(200, "application/x-protobuf", resp.encode_to_vec()))
}
pub mod spans;
