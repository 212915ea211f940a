//! The receiver goes down for 10 s under steady load and comes back: every span
//! that fit in the memory bound arrives, the rest are counted, and they are
//! counted as whole traces (no trace arrives with a missing span).

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::Receiver;
use weft::Span;
use weft_otlp::{OtlpExporter, Protocol, RetryPolicy};

#[test]
fn receiver_down_for_ten_seconds_then_back() {
    let rx = Receiver::start();
    let exporter = OtlpExporter::builder()
        .protocol(Protocol::Grpc)
        .endpoint(rx.grpc_url())
        .retry(RetryPolicy { max_backoff: Duration::from_millis(500), ..RetryPolicy::default() })
        .timeout(Duration::from_secs(2))
        .log_failures(false)
        .build()
        .expect("exporter");
    let handle = exporter.handle();
    let limit = 4 << 20;
    let tracer = weft::builder()
        .service_name("down-test")
        .exporter(exporter)
        .memory_limit_bytes(limit)
        .schedule_delay(Duration::from_millis(50))
        .log_at_shutdown(false)
        .install()
        .expect("tracer");

    // Steady load: 3-span traces at about 20 000 spans/s, for 14 s.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let load = std::thread::spawn(move || {
        let mut n = 0u64;
        let start = Instant::now();
        while !s.load(Ordering::Relaxed) {
            for _ in 0..20 {
                let _root = Span::enter("request");
                let mut child = Span::enter("handler");
                child.set_attribute("n", n as i64);
                let _leaf = Span::child("db");
                n += 1;
            }
            // Pace against the clock, not by sleeping per batch.
            let due = start + Duration::from_micros(n * 150);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        n
    });
    std::thread::sleep(Duration::from_secs(2));
    rx.down();
    std::thread::sleep(Duration::from_secs(10));
    let during = tracer.stats();
    rx.up();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let traces = load.join().expect("load thread");
    let stats = tracer.shutdown(Duration::from_secs(60)).expect("shutdown");

    assert!(stats.is_balanced(), "{stats}");
    assert_eq!(stats.ended, 3 * traces);
    assert_eq!(stats.ended, stats.exported + stats.dropped.total() + stats.sampled_out, "{stats}");
    // Nothing waited past the retry budget, nothing was refused for lack of memory:
    // the adaptive stage shed whole new traces instead.
    assert_eq!(stats.dropped.total(), 0, "{stats}");
    assert!(stats.memory_peak_bytes <= limit as u64, "{stats}");
    assert!(during.sampled_out_traces.adaptive > 0, "the bound was reached while down: {during}");
    let h = handle.stats();
    assert!(h.retries > 0, "{h:?}");
    assert_eq!(h.exported_spans, stats.exported);

    // Everything counted as exported arrived, as whole traces. A request the
    // receiver took just before it went down, whose answer was lost with the
    // connection, is sent again (OTLP is at-least-once): count spans by ID.
    let spans = rx.spans();
    let mut unique: HashMap<Vec<u8>, &opentelemetry_proto::tonic::trace::v1::Span> = HashMap::new();
    for s in &spans {
        if let Some(prev) = unique.insert(s.span_id.clone(), s) {
            assert_eq!(prev, s, "a resent span is the same span");
        }
    }
    assert_eq!(unique.len() as u64, stats.exported, "{stats}");
    let mut per_trace: HashMap<Vec<u8>, Vec<String>> = HashMap::new();
    for s in unique.values() {
        per_trace.entry(s.trace_id.clone()).or_default().push(s.name.clone());
    }
    let broken: Vec<_> = per_trace.values().filter(|names| names.len() != 3).collect();
    assert!(broken.is_empty(), "{} broken traces, e.g. {:?}", broken.len(), broken.first());
    assert_eq!(per_trace.len() as u64 * 3, stats.exported);
    eprintln!(
        "{traces} traces ended, {} delivered whole, {} spans received twice; {stats}",
        per_trace.len(),
        spans.len() - unique.len()
    );
}
