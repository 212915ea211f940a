//! `tracing` spans become weft spans with their fields as attributes and their
//! nesting as parents; events become span events; weft spans made inside an
//! entered `tracing` span nest under it; async code instrumented with
//! `tracing::Instrument` keeps its parent across polls. The same holds for the
//! layer (over `tracing-subscriber`'s registry) and for the standalone
//! `WeftSubscriber`.

use std::time::Duration;

use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use weft::{InMemoryExporter, Value};
use weft_tracing::{WeftLayer, WeftSubscriber};

#[test]
fn spans_fields_events_and_nesting_through_the_layer() {
    scenario(tracing::Dispatch::new(tracing_subscriber::registry().with(WeftLayer::new())));
}

#[test]
fn spans_fields_events_and_nesting_through_the_subscriber() {
    scenario(tracing::Dispatch::new(WeftSubscriber::new()));
}

fn scenario(dispatch: tracing::Dispatch) {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder().exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        let outer = tracing::info_span!("request", user = "ada", attempt = 2u64, late = tracing::field::Empty);
        let _o = outer.enter();
        outer.record("late", true);
        tracing::info!(rows = 3, "loaded");
        {
            let inner = tracing::debug_span!("db", table = "orders");
            let _i = inner.enter();
            let _native = weft::Span::child("weft native");
            tracing::error!("query failed");
        }
        let fut = async {
            tracing::warn!(retry = true, "retrying");
        }
        .instrument(tracing::info_span!("async step"));
        futures::executor::block_on(fut);
    });
    tracer.shutdown(Duration::from_secs(5)).unwrap();
    let spans = mem.spans();
    let by = |n: &str| spans.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no span {n}"));
    let request = by("request");
    assert_eq!(request.attribute("user"), Some(&Value::from("ada")));
    assert_eq!(request.attribute("attempt"), Some(&Value::I64(2)));
    assert_eq!(request.attribute("late"), Some(&Value::Bool(true)));
    assert_eq!(request.events()[0].name, "loaded");
    assert!(request.events()[0].attributes.iter().any(|kv| kv.key == "rows" && kv.value == Value::I64(3)));
    let db = by("db");
    assert_eq!(db.parent_span_id, request.span_id);
    assert_eq!(db.attribute("table"), Some(&Value::from("orders")));
    assert!(matches!(db.status, weft::Status::Error { .. }), "an error event marks the span");
    assert_eq!(by("weft native").parent_span_id, db.span_id, "weft spans nest under the entered tracing span");
    let step = by("async step");
    assert_eq!(step.parent_span_id, request.span_id);
    assert_eq!(step.events()[0].name, "retrying");
    assert!(spans.iter().all(|s| s.trace_id == request.trace_id));
}
