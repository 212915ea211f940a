//! The OTLP exporter against a scripted receiver: for each answer the
//! specification names, whether the request is retried, how long the exporter
//! waits, and that the tracer's books balance to the span.

mod support;

use std::time::{Duration, Instant};

use support::{Receiver, Reply};
use weft::{Span, Stats, Tracer};
use weft_otlp::{Compression, OtlpExporter, OtlpHandle, Protocol, RetryPolicy};

const FAST_RETRY: RetryPolicy = RetryPolicy {
    initial_backoff: Duration::from_millis(40),
    max_backoff: Duration::from_millis(200),
    multiplier: 2.0,
    max_elapsed: Duration::from_secs(20),
};

fn install(rx: &Receiver, protocol: Protocol, retry: RetryPolicy) -> (Tracer, OtlpHandle) {
    let url = if protocol == Protocol::Grpc { rx.grpc_url() } else { rx.http_url() };
    let exporter = OtlpExporter::builder()
        .protocol(protocol)
        .endpoint(url)
        .retry(retry)
        .timeout(Duration::from_millis(800))
        .log_failures(false)
        .build()
        .expect("exporter");
    let handle = exporter.handle();
    let tracer =
        weft::builder().service_name("retry-test").exporter(exporter).log_at_shutdown(false).install().expect("tracer");
    (tracer, handle)
}

/// Ends `n` single-span traces and flushes them as one batch.
fn send(tracer: &Tracer, n: usize) {
    for i in 0..n {
        let mut s = Span::root("op");
        s.set_attribute("i", i as i64);
    }
    tracer.force_flush(Duration::from_secs(30)).expect("flush");
}

fn finish(tracer: Tracer) -> Stats {
    let stats = tracer.shutdown(Duration::from_secs(30)).expect("shutdown");
    assert!(stats.is_balanced(), "{stats}");
    assert_eq!(stats.ended, stats.exported + stats.dropped.total() + stats.sampled_out, "{stats}");
    stats
}

fn gap(rx: &Receiver, i: usize) -> Duration {
    let a = rx.attempts();
    a[i + 1].at - a[i].at
}

/// A retryable answer, then acceptance: two attempts, everything exported.
fn retried_then_delivered(protocol: Protocol, reply: Reply) {
    let rx = Receiver::start();
    rx.script([reply.clone()]);
    let (tracer, handle) = install(&rx, protocol, FAST_RETRY);
    send(&tracer, 10);
    let stats = finish(tracer);
    assert_eq!(rx.attempts().len(), 2, "{reply:?}: retried once");
    assert_eq!(rx.spans().len(), 10);
    assert_eq!((stats.exported, stats.dropped.total()), (10, 0), "{reply:?}");
    let h = handle.stats();
    assert_eq!((h.attempts, h.retries, h.accepted_requests, h.failed_requests), (2, 1, 1, 0), "{reply:?}");
}

/// A permanent answer: one attempt, the spans counted as failed.
fn not_retried(protocol: Protocol, reply: Reply) {
    let rx = Receiver::start();
    rx.script([reply.clone()]);
    let (tracer, handle) = install(&rx, protocol, FAST_RETRY);
    send(&tracer, 10);
    let stats = finish(tracer);
    assert_eq!(rx.attempts().len(), 1, "{reply:?}: not retried");
    assert_eq!((stats.exported, stats.dropped.export_failed), (0, 10), "{reply:?}: {stats}");
    let h = handle.stats();
    assert_eq!((h.attempts, h.retries, h.failed_requests, h.failed_spans), (1, 0, 1, 10), "{reply:?}");
    assert!(h.last_error.is_some());
}

#[test]
fn http_429_502_503_504_are_retried() {
    for code in [429, 502, 503, 504] {
        retried_then_delivered(Protocol::HttpProtobuf, Reply::Http(code, None));
    }
}

#[test]
fn other_http_errors_are_not_retried() {
    for code in [400, 401, 403, 404, 413, 500, 501] {
        not_retried(Protocol::HttpProtobuf, Reply::Http(code, Some("1")));
    }
}

#[test]
fn http_retry_after_is_honoured() {
    let rx = Receiver::start();
    rx.script([Reply::Http(503, Some("1")), Reply::Http(429, Some("1"))]);
    let (tracer, _) = install(&rx, Protocol::HttpProtobuf, FAST_RETRY);
    send(&tracer, 5);
    finish(tracer);
    assert_eq!(rx.attempts().len(), 3);
    // The backoff alone would wait at most 40 ms and 80 ms.
    assert!(gap(&rx, 0) >= Duration::from_secs(1), "{:?}", gap(&rx, 0));
    assert!(gap(&rx, 1) >= Duration::from_secs(1), "{:?}", gap(&rx, 1));
}

#[test]
fn grpc_retryable_codes_are_retried() {
    use tonic::Code::*;
    for code in [Cancelled, DeadlineExceeded, Aborted, OutOfRange, Unavailable, DataLoss] {
        retried_then_delivered(Protocol::Grpc, Reply::Grpc(code, None));
    }
}

#[test]
fn grpc_other_codes_are_not_retried() {
    use tonic::Code::*;
    for code in
        [InvalidArgument, Unknown, Internal, PermissionDenied, Unauthenticated, Unimplemented, FailedPrecondition]
    {
        not_retried(Protocol::Grpc, Reply::Grpc(code, None));
    }
}

#[test]
fn grpc_resource_exhausted_is_retried_only_with_retry_info_and_its_delay_is_honoured() {
    not_retried(Protocol::Grpc, Reply::Grpc(tonic::Code::ResourceExhausted, None));

    let rx = Receiver::start();
    rx.script([Reply::Grpc(tonic::Code::ResourceExhausted, Some(Duration::from_millis(1200)))]);
    let (tracer, _) = install(&rx, Protocol::Grpc, FAST_RETRY);
    send(&tracer, 5);
    let stats = finish(tracer);
    assert_eq!(rx.attempts().len(), 2);
    assert_eq!(stats.exported, 5);
    assert!(gap(&rx, 0) >= Duration::from_millis(1200), "{:?}", gap(&rx, 0));

    // RetryInfo on a retryable code is honoured too.
    let rx = Receiver::start();
    rx.script([Reply::Grpc(tonic::Code::Unavailable, Some(Duration::from_millis(900)))]);
    let (tracer, _) = install(&rx, Protocol::Grpc, FAST_RETRY);
    send(&tracer, 5);
    finish(tracer);
    assert!(gap(&rx, 0) >= Duration::from_millis(900), "{:?}", gap(&rx, 0));
}

#[test]
fn partial_success_is_counted_as_rejected_and_not_retried() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
        let rx = Receiver::start();
        rx.script([Reply::Partial(3, "3 spans had bad ids")]);
        let (tracer, handle) = install(&rx, protocol, FAST_RETRY);
        send(&tracer, 10);
        let stats = finish(tracer);
        assert_eq!(rx.attempts().len(), 1, "{protocol:?}");
        assert_eq!(
            (stats.exported, stats.dropped.export_rejected, stats.dropped.export_failed),
            (7, 3, 0),
            "{protocol:?}"
        );
        let h = handle.stats();
        assert_eq!((h.partially_rejected_requests, h.rejected_spans, h.exported_spans), (1, 3, 7), "{protocol:?}");
        assert!(h.last_error.unwrap_or_default().contains("bad ids"));
    }
}

#[test]
fn dropped_connections_are_retried() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        retried_then_delivered(protocol, Reply::Reset);
    }
}

#[test]
fn timed_out_requests_are_retried() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        // The exporter's timeout is 800 ms.
        retried_then_delivered(protocol, Reply::Slow(Duration::from_millis(2000)));
    }
}

#[test]
fn retries_stop_after_the_time_budget_and_the_spans_are_counted_failed() {
    let rx = Receiver::start();
    rx.script(std::iter::repeat_n(Reply::Http(503, None), 100));
    let policy = RetryPolicy { max_elapsed: Duration::from_millis(600), ..FAST_RETRY };
    let (tracer, handle) = install(&rx, Protocol::HttpProtobuf, policy);
    let t = Instant::now();
    send(&tracer, 10);
    assert!(t.elapsed() < Duration::from_secs(5));
    let stats = finish(tracer);
    let attempts = rx.attempts().len();
    assert!((3..100).contains(&attempts), "{attempts} attempts");
    assert_eq!((stats.exported, stats.dropped.export_failed), (0, 10));
    let h = handle.stats();
    assert_eq!((h.failed_requests, h.failed_spans, h.retries), (1, 10, attempts as u64 - 1));
    assert!(h.last_error.unwrap_or_default().contains("retries exhausted"));
}

#[test]
fn several_requests_are_in_flight_at_once() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let rx = Receiver::start();
        rx.script(std::iter::repeat_n(Reply::Slow(Duration::from_millis(400)), 4));
        let exporter = OtlpExporter::builder()
            .protocol(protocol)
            .endpoint(if protocol == Protocol::Grpc { rx.grpc_url() } else { rx.http_url() })
            .max_in_flight(4)
            .log_failures(false)
            .build()
            .expect("exporter");
        let tracer =
            weft::builder().exporter(exporter).max_batch_spans(10).log_at_shutdown(false).install().expect("tracer");
        send(&tracer, 40); // 4 batches of 10
        let stats = finish(tracer);
        assert_eq!(stats.exported, 40);
        let a = rx.attempts();
        assert_eq!(a.len(), 4, "{protocol:?}");
        // All four arrived while the first was still being answered.
        let spread = a[3].at - a[0].at;
        assert!(spread < Duration::from_millis(300), "{protocol:?}: requests were serialised ({spread:?})");
    }
}

#[test]
fn every_protocol_and_compression_delivers() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
        for compression in [Compression::None, Compression::Gzip] {
            let rx = Receiver::start();
            let exporter = OtlpExporter::builder()
                .protocol(protocol)
                .endpoint(if protocol == Protocol::Grpc { rx.grpc_url() } else { rx.http_url() })
                .compression(compression)
                .header("x-tenant", "acme")
                .build()
                .expect("exporter");
            let tracer = weft::builder()
                .service_name("every-protocol")
                .exporter(exporter)
                .log_at_shutdown(false)
                .install()
                .expect("tracer");
            {
                let mut root = Span::enter("request");
                root.set_attribute("http.route", "/a\"b\\c/ü");
                let mut child = Span::child("db");
                child.set_attribute("rows", 42i64);
                child.add_event("cache miss", vec![weft::KeyValue::new("key", "k1")]);
            }
            let stats = finish(tracer);
            assert_eq!(stats.exported, 2, "{protocol:?} {compression:?}");
            let a = rx.attempts();
            assert_eq!(a.len(), 1);
            assert_eq!(a[0].grpc, protocol == Protocol::Grpc);
            assert_eq!(a[0].json, protocol == Protocol::HttpJson);
            assert_eq!(a[0].gzip, compression == Compression::Gzip, "{protocol:?} {compression:?}");
            assert_eq!(rx.headers()[0].get("x-tenant").map(|v| v.as_bytes()), Some(&b"acme"[..]));
            let req = &rx.accepted()[0];
            let res = req.resource_spans[0].resource.as_ref().unwrap();
            assert!(res.attributes.iter().any(|kv| kv.key == "service.name"));
            let spans = &req.resource_spans[0].scope_spans[0].spans;
            let db = spans.iter().find(|s| s.name == "db").unwrap();
            let root = spans.iter().find(|s| s.name == "request").unwrap();
            assert_eq!(db.parent_span_id, root.span_id);
            assert_eq!(db.trace_id, root.trace_id);
            assert_eq!(db.events[0].name, "cache miss");
            let route = &root.attributes[0];
            assert_eq!(route.key, "http.route");
            use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
            assert_eq!(route.value.as_ref().unwrap().value, Some(V::StringValue("/a\"b\\c/ü".into())));
        }
    }
}

#[test]
fn large_batches_are_split_into_requests_under_the_size_limit() {
    let rx = Receiver::start();
    let exporter = OtlpExporter::builder().endpoint(rx.http_url()).max_request_bytes(4096).build().expect("exporter");
    let tracer = weft::builder().exporter(exporter).log_at_shutdown(false).install().expect("tracer");
    for i in 0..200 {
        let mut s = Span::root("op");
        s.set_attribute("payload", format!("{i:0>100}"));
    }
    let stats = finish(tracer);
    assert_eq!(stats.exported, 200);
    assert_eq!(rx.spans().len(), 200);
    assert!(rx.attempts().len() >= 200 * 150 / 4096, "{} requests", rx.attempts().len());
}

#[test]
fn an_unreachable_endpoint_fails_counted_after_the_retry_budget() {
    // Bind then drop: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let exporter = OtlpExporter::builder()
        .endpoint(format!("http://127.0.0.1:{port}/v1/traces"))
        .retry(RetryPolicy { max_elapsed: Duration::from_millis(300), ..FAST_RETRY })
        .log_failures(false)
        .build()
        .expect("exporter");
    let handle = exporter.handle();
    let tracer = weft::builder().exporter(exporter).log_at_shutdown(false).install().expect("tracer");
    send(&tracer, 7);
    let stats = finish(tracer);
    assert_eq!(stats.dropped.export_failed, 7);
    assert!(handle.stats().retries >= 1);
}
