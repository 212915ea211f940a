//! The `log` bridge and `add_event_to_current`: lines logged while a span is the
//! current local parent become its events — also from inside a future whose span
//! ends on another thread — and lines outside any span are not recorded.

use std::future::Future;
use std::time::Duration;

use weft::{FutureExt, InMemoryExporter, KeyValue, Span, Value};

#[test]
fn log_lines_attach_to_the_current_span() {
    weft::log_bridge::install(log::LevelFilter::Info).unwrap();
    let mem = InMemoryExporter::new();
    let tracer = weft::builder().exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    log::info!("outside any span");
    {
        let _request = Span::enter("request");
        log::info!("cache miss for {}", 42);
        log::debug!("below the level");
        {
            let _child = Span::enter("child");
            log::warn!(target: "db", "slow query");
        }
        assert!(weft::add_event_to_current("custom", vec![KeyValue::new("k", 1)]));
    }
    // A future polled on this thread and moved to another one to finish.
    let fut = async {
        log::error!("inside the future");
    }
    .in_span(Span::root("task"));
    let mut fut = Box::pin(fut);
    let waker = std::task::Waker::noop();
    assert!(fut.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_ready());
    std::thread::spawn(move || drop(fut)).join().unwrap();
    assert!(!weft::add_event_to_current("no span", vec![]), "no current span: refused");
    tracer.shutdown(Duration::from_secs(5)).unwrap();

    let spans = mem.spans();
    let by = |n: &str| spans.iter().find(|s| s.name == n).unwrap();
    let request = by("request");
    let names: Vec<&str> = request.events().iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["cache miss for 42", "custom"]);
    let ev = &request.events()[0];
    assert!(ev.attributes.contains(&KeyValue::new("log.severity", "INFO")));
    assert!(ev.time_unix_nanos >= request.start_unix_nanos && ev.time_unix_nanos <= request.end_unix_nanos);
    let child = by("child");
    assert_eq!(child.events()[0].name, "slow query");
    assert!(child.events()[0].attributes.contains(&KeyValue::new("code.namespace", Value::from("db"))));
    assert_eq!(by("task").events()[0].name, "inside the future");
    assert_eq!(weft::log_bridge::refused(), 0);
}
