//! The OTLP export benchmark: weft's OTLP exporter against `opentelemetry-otlp`
//! behind `opentelemetry_sdk`'s batch processor, same workload, same local
//! receiver, over gRPC or HTTP/protobuf.
//!
//! `weft-bench otlp` starts one receiver process (`otlp-sink`: decodes every
//! request and counts its spans), then runs each peer in its own child process
//! (`otlp-run`), taking turns. Each run creates the nested workload's spans as
//! fast as it can, shuts its tracer down (which waits for delivery) and reports
//! its wall time and its own CPU time (user + system, from `getrusage`); the
//! parent reads the receiver's count. End-to-end throughput is spans received
//! per second from the first span created to the tracer's shutdown returning.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::driver::{drive, SPANS_PER_REQUEST};
use crate::measure::{peak_rss_kb, rss_kb};
use crate::{RunConfig, Workload};

/// OTLP transports benchmarked.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

/// The exporters compared.
#[derive(Copy, Clone, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum OtlpPeer {
    /// weft + weft-otlp.
    #[value(name = "weft")]
    #[serde(rename = "weft")]
    Weft,
    /// opentelemetry_sdk 0.33 batch processor + opentelemetry-otlp 0.33 (tonic /
    /// reqwest blocking client).
    #[value(name = "opentelemetry-otlp")]
    #[serde(rename = "opentelemetry-otlp")]
    Otel,
}

/// One run's result.
#[derive(Debug, Serialize, Deserialize)]
pub struct OtlpRow {
    pub peer: OtlpPeer,
    pub transport: Transport,
    pub threads: usize,
    /// Spans created.
    pub spans: u64,
    /// Spans the receiver decoded.
    pub received: u64,
    pub received_pct: f64,
    /// Time the producing threads took.
    pub produce_ms: f64,
    /// From the first span to shutdown returning (everything delivered).
    pub total_ms: f64,
    /// received / total time.
    pub spans_per_s: f64,
    /// CPU (user + system) of the traced process, whole run.
    pub cpu_ms: f64,
    /// CPU seconds per million spans received.
    pub cpu_s_per_million: f64,
    /// Spans the tracer reports as not delivered (weft: sampled out or dropped, by
    /// reason); `null` when the tracer cannot tell.
    pub counted_dropped: Option<u64>,
    /// created − received − counted.
    pub silent_lost: u64,
    pub rss_delta_kb: u64,
    pub detail: serde_json::Value,
}

/// Parameters of the runs.
#[derive(Clone, Debug, clap::Args)]
pub struct OtlpConfig {
    /// Requests (3 spans each) in total, split over the threads.
    #[arg(long, default_value_t = 200_000)]
    pub requests: u64,
    /// weft's memory bound in MiB.
    #[arg(long, default_value_t = 32)]
    pub memory_limit_mb: usize,
    /// opentelemetry_sdk's batch queue in spans (its default is 2048).
    #[arg(long, default_value_t = 2048)]
    pub otel_queue: usize,
}

/// What a child run prints.
#[derive(Debug, Serialize, Deserialize)]
struct ChildResult {
    spans: u64,
    produce_ms: f64,
    total_ms: f64,
    cpu_ms: f64,
    counted_dropped: Option<u64>,
    rss_delta_kb: u64,
    detail: serde_json::Value,
}

fn cpu_ms() -> f64 {
    // SAFETY: getrusage writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn run_cfg(requests: u64) -> RunConfig {
    RunConfig {
        workload: Workload::Nested,
        requests,
        duration: 0.0,
        export_delay_ms: 0.0,
        memory_limit_mb: 32,
        check_traces: false,
    }
}

/// Runs one peer in this process against `endpoint` and prints a [`ChildResult`].
pub fn run_child(peer: OtlpPeer, transport: Transport, endpoint: &str, threads: usize, cfg: &OtlpConfig) -> Result<()> {
    let rss0 = rss_kb();
    let cpu0 = cpu_ms();
    let rc = run_cfg(cfg.requests);
    let start = Instant::now();
    let (driven, counted, detail) = match peer {
        OtlpPeer::Weft => {
            let protocol = match transport {
                Transport::Grpc => weft_otlp::Protocol::Grpc,
                Transport::Http => weft_otlp::Protocol::HttpProtobuf,
            };
            let exporter = weft_otlp::OtlpExporter::builder().protocol(protocol).endpoint(endpoint).build()?;
            let handle = exporter.handle();
            let tracer = weft::builder()
                .service_name("weft-bench")
                .exporter(exporter)
                .memory_limit_bytes(cfg.memory_limit_mb << 20)
                .log_at_shutdown(false)
                .install()?;
            let driven = drive(&rc, threads, |_| {
                let _root = weft::Span::enter("request");
                let _child = weft::Span::enter("child");
                let mut leaf = weft::Span::child("leaf");
                leaf.set_attribute("http.status_code", 200i64);
                leaf.set_attribute("component", "bench");
                drop(leaf);
                0
            });
            let stats = tracer.shutdown(Duration::from_secs(300)).unwrap_or_else(|_| tracer.stats());
            let counted = stats.sampled_out + stats.dropped.total();
            (
                driven,
                Some(counted),
                serde_json::json!({"stats": stats.to_string(), "exporter": format!("{:?}", handle.stats())}),
            )
        }
        OtlpPeer::Otel => {
            use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
            use opentelemetry::{Context as OCx, KeyValue};
            use opentelemetry_otlp::WithExportConfig;
            use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
            // tonic needs a Tokio runtime to live in; the batch processor runs its
            // own thread and blocks on the exporter's futures.
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
            let _guard = rt.enter();
            let exporter = match transport {
                Transport::Grpc => {
                    opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?
                }
                Transport::Http => opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(endpoint)
                    .build()?,
            };
            let batch = BatchSpanProcessor::builder(exporter)
                .with_batch_config(BatchConfigBuilder::default().with_max_queue_size(cfg.otel_queue).build())
                .build();
            let provider = SdkTracerProvider::builder()
                .with_span_processor(batch)
                .with_resource(opentelemetry_sdk::Resource::builder().with_service_name("weft-bench").build())
                .build();
            let tracer = provider.tracer("weft-bench");
            let driven = drive(&rc, threads, move |_| {
                let root = tracer.start("request");
                let cx = OCx::current_with_span(root);
                let child = tracer.start_with_context("child", &cx);
                let cx2 = cx.with_span(child);
                let mut leaf = tracer.start_with_context("leaf", &cx2);
                leaf.set_attribute(KeyValue::new("http.status_code", 200i64));
                leaf.set_attribute(KeyValue::new("component", "bench"));
                leaf.end();
                cx2.span().end();
                cx.span().end();
                0
            });
            let _ = provider.force_flush();
            let _ = provider.shutdown_with_timeout(Duration::from_secs(300));
            (driven, None, serde_json::json!({"note": "queue-full drops are only logged"}))
        }
    };
    let total = start.elapsed();
    let out = ChildResult {
        spans: driven.requests * SPANS_PER_REQUEST,
        produce_ms: driven.wall.as_secs_f64() * 1000.0,
        total_ms: total.as_secs_f64() * 1000.0,
        cpu_ms: cpu_ms() - cpu0,
        counted_dropped: counted,
        rss_delta_kb: peak_rss_kb().saturating_sub(rss0),
        detail,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// The receiver process: prints its port, counts spans until stdin closes.
pub fn sink() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        let count = Arc::new(AtomicU64::new(0));
        // Ends the process when the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            while std::io::stdin().read_line(&mut s).map(|n| n > 0).unwrap_or(false) {
                s.clear();
            }
            std::process::exit(0);
        });
        loop {
            let (sock, _) = listener.accept().await?;
            let _ = sock.set_nodelay(true);
            let count = count.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(count.clone(), req));
                let b = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let _ = b.serve_connection(hyper_util::rt::TokioIo::new(sock), svc).await;
            });
        }
    })
}

type GrpcFrames = futures::stream::Iter<std::vec::IntoIter<Result<hyper::body::Frame<Bytes>, Infallible>>>;
type SinkBody = http_body_util::Either<Full<Bytes>, http_body_util::StreamBody<GrpcFrames>>;

async fn handle(
    count: Arc<AtomicU64>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<SinkBody>, Infallible> {
    let path = req.uri().path().to_owned();
    if req.method() == http::Method::GET && path == "/count" {
        let n = count.load(Ordering::Relaxed).to_string();
        return Ok(http::Response::new(http_body_util::Either::Left(Full::new(Bytes::from(n)))));
    }
    let grpc = path.ends_with("TraceService/Export");
    let Ok(body) = req.into_body().collect().await else {
        return Ok(status(400));
    };
    let mut body = body.to_bytes();
    if grpc && body.len() >= 5 {
        body.advance(5);
    }
    let Ok(msg) = ExportTraceServiceRequest::decode(body) else {
        return Ok(status(400));
    };
    let n: usize = msg.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    count.fetch_add(n as u64, Ordering::Relaxed);
    let resp = ExportTraceServiceResponse::default().encode_to_vec();
    if grpc {
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(resp.len() as u32).to_be_bytes());
        framed.extend_from_slice(&resp);
        let mut trailers = http::HeaderMap::new();
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        let frames = futures::stream::iter(vec![
            Ok(hyper::body::Frame::data(Bytes::from(framed))),
            Ok(hyper::body::Frame::trailers(trailers)),
        ]);
        let mut r = http::Response::new(http_body_util::Either::Right(http_body_util::StreamBody::new(frames)));
        r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/grpc"));
        return Ok(r);
    }
    let mut r = http::Response::new(http_body_util::Either::Left(Full::new(Bytes::from(resp))));
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/x-protobuf"));
    Ok(r)
}

fn status(code: u16) -> http::Response<SinkBody> {
    let mut r = http::Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
    *r.status_mut() = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::BAD_REQUEST);
    r
}

/// Runs the benchmark: one receiver, every peer and transport in turn.
pub fn bench(
    cfg: &OtlpConfig,
    transports: &[Transport],
    peers: &[OtlpPeer],
    threads: usize,
    repeat: usize,
    json: bool,
) -> Result<()> {
    if threads == 0 || repeat == 0 || cfg.requests == 0 {
        bail!("--threads, --repeat and --requests must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut sink = Command::new(&exe).arg("otlp-sink").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let port = read_port(&mut sink)?;
    if !json {
        println!(
            "{:<20} {:<5} {:>3} {:>9} {:>8} {:>10} {:>10} {:>12} {:>9} {:>8}",
            "peer", "proto", "thr", "spans", "recv%", "total_ms", "spans/s", "cpu_s/Mspan", "silent", "rss_kb"
        );
    }
    for &transport in transports {
        let mut runs: Vec<Vec<OtlpRow>> = peers.iter().map(|_| Vec::new()).collect();
        for _ in 0..repeat {
            for (i, &peer) in peers.iter().enumerate() {
                runs[i].push(run_one(&exe, port, peer, transport, threads, cfg)?);
            }
        }
        for mut r in runs {
            r.sort_by(|a, b| a.spans_per_s.total_cmp(&b.spans_per_s));
            let all: Vec<f64> = r.iter().map(|x| x.spans_per_s.round()).collect();
            let mut row = r.swap_remove(r.len() / 2);
            if let Some(d) = row.detail.as_object_mut() {
                d.insert("runs_spans_per_s".into(), serde_json::json!(all));
            }
            if json {
                println!("{}", serde_json::to_string(&row)?);
            } else {
                println!(
                    "{:<20} {:<5} {:>3} {:>9} {:>8.2} {:>10.1} {:>10.0} {:>12.3} {:>9} {:>8}",
                    crate::value_name(row.peer),
                    crate::value_name(row.transport),
                    row.threads,
                    row.spans,
                    row.received_pct,
                    row.total_ms,
                    row.spans_per_s,
                    row.cpu_s_per_million,
                    row.silent_lost,
                    row.rss_delta_kb
                );
            }
        }
    }
    drop(sink.stdin.take());
    let _ = sink.wait();
    Ok(())
}

fn read_port(sink: &mut Child) -> Result<u16> {
    let out = sink.stdout.take().context("receiver stdout")?;
    let mut line = String::new();
    BufReader::new(out).read_line(&mut line)?;
    line.trim().parse().with_context(|| format!("receiver port: {line:?}"))
}

/// The receiver's span count, over a plain HTTP/1.1 GET.
fn received(port: u16) -> Result<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(b"GET /count HTTP/1.1\r\nHost: sink\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let body = text.split("\r\n\r\n").nth(1).context("receiver answer")?;
    body.trim().parse().with_context(|| format!("receiver count: {body:?}"))
}

fn run_one(
    exe: &std::path::Path,
    port: u16,
    peer: OtlpPeer,
    transport: Transport,
    threads: usize,
    cfg: &OtlpConfig,
) -> Result<OtlpRow> {
    let endpoint = match (peer, transport) {
        (_, Transport::Grpc) => format!("http://127.0.0.1:{port}"),
        (_, Transport::Http) => format!("http://127.0.0.1:{port}/v1/traces"),
    };
    let before = received(port)?;
    let out = Command::new(exe)
        .arg("otlp-run")
        .args(["--peer", &crate::value_name(peer)])
        .args(["--transport", &crate::value_name(transport)])
        .args(["--endpoint", &endpoint])
        .args(["--threads", &threads.to_string()])
        .args(["--requests", &cfg.requests.to_string()])
        .args(["--memory-limit-mb", &cfg.memory_limit_mb.to_string()])
        .args(["--otel-queue", &cfg.otel_queue.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("{peer:?} over {transport:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let c: ChildResult = serde_json::from_str(line).with_context(|| format!("parsing {peer:?}'s result: {line}"))?;
    // Requests still being decoded by the receiver when shutdown returned are
    // counted once they land; shutdown waits for the answers, so this is quick.
    let mut got = received(port)? - before;
    let deadline = Instant::now() + Duration::from_secs(2);
    while got < c.spans && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        got = received(port)? - before;
    }
    let counted = c.counted_dropped;
    Ok(OtlpRow {
        peer,
        transport,
        threads,
        spans: c.spans,
        received: got,
        received_pct: got as f64 * 100.0 / c.spans.max(1) as f64,
        produce_ms: c.produce_ms,
        total_ms: c.total_ms,
        spans_per_s: got as f64 / (c.total_ms / 1000.0),
        cpu_ms: c.cpu_ms,
        cpu_s_per_million: (c.cpu_ms / 1000.0) / (got.max(1) as f64 / 1e6),
        counted_dropped: counted,
        silent_lost: c.spans.saturating_sub(got + counted.unwrap_or(0)),
        rss_delta_kb: c.rss_delta_kb,
        detail: c.detail,
    })
}
