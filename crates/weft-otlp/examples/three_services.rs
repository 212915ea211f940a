//! Three processes, one trace: a client calls `frontend`, which calls `backend`;
//! W3C trace context travels in the HTTP headers and each process exports its
//! spans over OTLP/HTTP.
//!
//! `cargo run --release -p weft-otlp --example three_services`
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, all three export there (weft's server,
//! an OpenTelemetry Collector, Jaeger, Tempo…). Otherwise this process also runs
//! a small OTLP/HTTP receiver and prints each trace it received as a tree, with
//! the service each span came from.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use weft::{FutureExt, Span, SpanKind};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Received = Arc<Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("frontend") => service("frontend", args.get(2).cloned()),
        Some("backend") => service("backend", None),
        _ => launcher(),
    }
}

/// Runs one HTTP service until its stdin closes; prints its port first.
fn service(name: &'static str, downstream: Option<String>) -> Result<(), Error> {
    let (tracer, _) = weft_otlp::install_from_env()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        std::io::stdout().flush()?;
        let stop = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                line.clear();
            }
        });
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    let (sock, _) = accepted?;
                    let downstream = downstream.clone();
                    let handler = tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        handle(name, downstream.clone(), req)
                    });
                    // The server span: parent from the request's traceparent.
                    let svc = hyper_util::service::TowerToHyperService::new(
                        tower::ServiceBuilder::new().layer(weft::http_layer::TraceLayer::new()).service(handler),
                    );
                    tokio::spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
                    });
                }
            }
        }
        Ok::<_, Error>(())
    })?;
    // Shutting down flushes; the tracer logs its accounting to stderr.
    let _ = tracer.shutdown(Duration::from_secs(10));
    Ok(())
}

async fn handle(
    name: &'static str,
    downstream: Option<String>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let item = req.uri().path().trim_start_matches('/').to_owned();
    let body = match downstream {
        // frontend: ask the backend for the price, in a client span.
        Some(port) => {
            let call = get(format!("http://127.0.0.1:{port}/{item}"));
            let span = Span::builder("GET /price").kind(SpanKind::Client).attribute("peer.service", "backend").start();
            match call.in_span(span).await {
                Ok(price) => format!("{item} costs {price}"),
                Err(e) => format!("backend failed: {e}"),
            }
        }
        // backend: a database query.
        None => {
            let mut q = Span::child("SELECT price");
            q.set_attribute("db.system", "postgresql");
            q.set_attribute("item", item.clone());
            (item.len() * 100).to_string()
        }
    };
    tracing_note(name);
    Ok(http::Response::new(Full::new(Bytes::from(body))))
}

/// Records which service answered on the current (server) span.
fn tracing_note(service: &str) {
    weft::add_event_to_current("answered", vec![weft::KeyValue::new("service", service.to_owned())]);
}

/// GET with the current span's context injected into the headers.
async fn get(url: String) -> Result<String, Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(url).body(Empty::new())?;
    weft::http_layer::inject_current_context(req.headers_mut());
    let resp = client.request(req).await?;
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

struct ChildProcess(Child);

impl ChildProcess {
    fn spawn(args: &[&str], service: &str, endpoint: &str) -> Result<(Self, u16), Error> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(args)
            .env("OTEL_SERVICE_NAME", service)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let port = line.trim().parse()?;
        Ok((ChildProcess(child), port))
    }
    /// Closes its stdin (it shuts its tracer down, flushing) and waits.
    fn stop(mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn launcher() -> Result<(), Error> {
    let received: Received = Arc::default();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let endpoint = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(e) => e,
        Err(_) => {
            let port = rt.block_on(receiver(received.clone()))?;
            format!("http://127.0.0.1:{port}")
        }
    };
    println!("exporting to {endpoint}");
    let (backend, backend_port) = ChildProcess::spawn(&["backend"], "backend", &endpoint)?;
    let (frontend, frontend_port) =
        ChildProcess::spawn(&["frontend", &backend_port.to_string()], "frontend", &endpoint)?;

    let exporter = weft_otlp::OtlpExporter::builder().endpoint(&endpoint).build()?;
    let tracer = weft::builder().service_name("client").exporter(exporter).log_at_shutdown(false).install()?;
    for item in ["book", "lamp"] {
        let span = Span::builder("checkout").kind(SpanKind::Client).attribute("item", item).start();
        let answer = rt.block_on(get(format!("http://127.0.0.1:{frontend_port}/{item}")).in_span(span))?;
        println!("client: {answer}");
    }
    frontend.stop();
    backend.stop();
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap_or_else(|_| tracer.stats());
    println!("client: {stats}");
    if std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_err() {
        print_traces(&received.lock().map_err(|_| "poisoned")?);
    }
    Ok(())
}

/// A minimal OTLP/HTTP receiver that keeps every span with its service name.
async fn receiver(received: Received) -> Result<u16, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let received = received.clone();
            let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let received = received.clone();
                async move {
                    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    let Ok(msg) = ExportTraceServiceRequest::decode(body) else {
                        let mut r = http::Response::new(Full::new(Bytes::from("undecodable")));
                        *r.status_mut() = http::StatusCode::BAD_REQUEST;
                        return Ok::<_, Infallible>(r);
                    };
                    let mut got = received.lock().unwrap_or_else(|e| e.into_inner());
                    for rs in msg.resource_spans {
                        let service = rs
                            .resource
                            .iter()
                            .flat_map(|r| &r.attributes)
                            .find(|kv| kv.key == "service.name")
                            .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(AnyValue::StringValue(s)) => Some(s.clone()),
                                _ => None,
                            })
                            .unwrap_or_default();
                        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                            got.push((service.clone(), span));
                        }
                    }
                    Ok(http::Response::new(Full::new(Bytes::new())))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(sock), svc).await;
            });
        }
    });
    Ok(port)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn print_traces(spans: &[(String, opentelemetry_proto::tonic::trace::v1::Span)]) {
    let mut traces: HashMap<&[u8], Vec<&(String, opentelemetry_proto::tonic::trace::v1::Span)>> = HashMap::new();
    for s in spans {
        traces.entry(&s.1.trace_id).or_default().push(s);
    }
    let mut whole = 0;
    for (id, spans) in &traces {
        let mut services: Vec<&str> = spans.iter().map(|(svc, _)| svc.as_str()).collect();
        services.sort_unstable();
        services.dedup();
        whole += usize::from(services.len() == 3);
        println!(
            "\ntrace {}: {} spans from {} processes ({})",
            hex(id),
            spans.len(),
            services.len(),
            services.join(", ")
        );
        let roots = spans.iter().filter(|(_, s)| s.parent_span_id.is_empty());
        for root in roots {
            print_tree(root, spans, 1);
        }
    }
    println!("\n{whole} of {} traces carry spans from all 3 processes under one trace ID", traces.len());
}

fn print_tree(
    node: &(String, opentelemetry_proto::tonic::trace::v1::Span),
    all: &[&(String, opentelemetry_proto::tonic::trace::v1::Span)],
    depth: usize,
) {
    let (svc, s) = node;
    let micros = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1000;
    println!("{:indent$}{svc}: {} ({micros} µs, span {})", "", s.name, hex(&s.span_id), indent = depth * 2);
    for child in all.iter().filter(|(_, c)| c.parent_span_id == s.span_id) {
        print_tree(child, all, depth + 1);
    }
}
