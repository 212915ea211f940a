//! The tower layer: a server span per request, parented by the incoming W3C
//! headers (or a new trace when they are absent or malformed), the local parent
//! of the handler's spans, ended with HTTP attributes and status; and the client
//! helper that injects the current context into outgoing headers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tower_layer::Layer;
use tower_service::Service;
use weft::http_layer::{inject_current_context, TraceLayer};
use weft::{InMemoryExporter, Span, SpanKind, Status, Value};

/// A handler: starts a child span, answers with the status in the path
/// (`/status/503`), or fails for `/fail`.
#[derive(Clone)]
struct Handler;

impl Service<http::Request<()>> for Handler {
    type Response = http::Response<()>;
    type Error = &'static str;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<()>, &'static str>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        let path = req.uri().path().to_owned();
        Box::pin(async move {
            let _work = Span::child("handler work");
            if path == "/fail" {
                return Err("handler failed");
            }
            let code = path.strip_prefix("/status/").and_then(|c| c.parse().ok()).unwrap_or(200u16);
            Ok(http::Response::builder().status(code).body(()).unwrap_or_default())
        })
    }
}

fn request(path: &str, traceparent: Option<&str>) -> http::Request<()> {
    let mut b =
        http::Request::builder().method("GET").uri(path).header("host", "shop.local").header("user-agent", "test/1");
    if let Some(tp) = traceparent {
        b = b.header("traceparent", tp).header("tracestate", "vendor=1");
    }
    b.body(()).unwrap()
}

#[test]
fn each_request_gets_a_server_span() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder().exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    let mut svc = TraceLayer::new().layer(Handler);
    let remote = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    for (path, tp) in
        [("/orders?id=7", Some(remote)), ("/status/503", None), ("/status/404", Some("00-bad")), ("/fail", None)]
    {
        let _ = futures::executor::block_on(svc.call(request(path, tp)));
    }
    tracer.shutdown(Duration::from_secs(5)).unwrap();
    let spans = mem.spans();
    let servers: Vec<_> = spans.iter().filter(|s| s.kind == SpanKind::Server).collect();
    assert_eq!(servers.len(), 4);
    for server in &servers {
        let work = spans.iter().find(|s| s.name == "handler work" && s.trace_id == server.trace_id).expect("child");
        assert_eq!(work.parent_span_id, server.span_id, "the handler's span is a child of the server span");
        assert_eq!(server.name, "GET");
        assert_eq!(server.attribute("http.request.method"), Some(&Value::from("GET")));
        assert_eq!(server.attribute("server.address"), Some(&Value::from("shop.local")));
    }
    let orders = servers.iter().find(|s| s.attribute("url.path") == Some(&Value::from("/orders"))).unwrap();
    assert_eq!(orders.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(orders.parent_span_id.to_string(), "b7ad6b7169203331");
    assert!(orders.parent_is_remote);
    assert_eq!(orders.trace_state.header_value(), "vendor=1");
    assert_eq!(orders.attribute("url.query"), Some(&Value::from("id=7")));
    assert_eq!(orders.attribute("http.response.status_code"), Some(&Value::I64(200)));
    assert_eq!(orders.status, Status::Unset);
    let s503 = servers.iter().find(|s| s.attribute("url.path") == Some(&Value::from("/status/503"))).unwrap();
    assert!(matches!(s503.status, Status::Error { .. }), "5xx is an error");
    let s404 = servers.iter().find(|s| s.attribute("url.path") == Some(&Value::from("/status/404"))).unwrap();
    assert_eq!(s404.status, Status::Unset, "4xx is the client's error, not the server's");
    assert!(!s404.parent_span_id.is_valid(), "a malformed traceparent starts a new trace");
    let fail = servers.iter().find(|s| s.attribute("url.path") == Some(&Value::from("/fail"))).unwrap();
    assert!(matches!(fail.status, Status::Error { .. }));
}

#[test]
fn outgoing_requests_carry_the_current_context() {
    let tracer = weft::builder().exporter(InMemoryExporter::new()).log_at_shutdown(false).install().unwrap();
    let mut headers = http::HeaderMap::new();
    inject_current_context(&mut headers);
    assert!(headers.is_empty(), "nothing to inject outside a span");
    let span = Span::enter("client call");
    inject_current_context(&mut headers);
    let tp = headers.get("traceparent").unwrap().to_str().unwrap().to_owned();
    let ctx = span.context();
    assert_eq!(tp, format!("00-{}-{}-03", ctx.trace_id(), ctx.span_id()));
    drop(span);
    tracer.shutdown(Duration::from_secs(5)).unwrap();
}
