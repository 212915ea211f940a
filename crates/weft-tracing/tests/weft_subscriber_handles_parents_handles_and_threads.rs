//! `WeftSubscriber`'s own bookkeeping: explicit parents and roots, spans kept
//! alive by cloned handles and closed on another thread, `follows_from` links,
//! the current span, slot reuse, and many threads — with every span accounted for.

use std::time::Duration;

use tracing::Subscriber;
use weft::InMemoryExporter;
use weft_tracing::WeftSubscriber;

fn install() -> (weft::Tracer, InMemoryExporter) {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder().exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    (tracer, mem)
}

#[test]
fn explicit_parents_roots_links_and_clones() {
    let (tracer, mem) = install();
    let dispatch = tracing::Dispatch::new(WeftSubscriber::new());
    tracing::dispatcher::with_default(&dispatch, || {
        let a = tracing::info_span!("a");
        let _a = a.enter();
        let b = tracing::info_span!("b");
        // Explicit parent that is not the entered span; an explicit root.
        let c = tracing::info_span!(parent: &b, "c");
        let r = tracing::info_span!(parent: None, "r");
        r.follows_from(&c);
        // A clone keeps the span open after the original is dropped, and the span
        // ends on another thread.
        let keep = c.clone();
        drop(c);
        let d = dispatch.clone();
        std::thread::spawn(move || {
            // Events go to the thread's default subscriber.
            tracing::dispatcher::with_default(&d, || {
                let _e = keep.enter();
                tracing::info!("from another thread");
            })
        })
        .join()
        .unwrap();
        assert_eq!(dispatch.downcast_ref::<WeftSubscriber>().map(|s| s.current_span().id().cloned()), Some(a.id()));
        drop((b, r));
    });
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats}");
    let spans = mem.spans();
    assert_eq!(spans.len(), 4, "{:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    let by = |n: &str| spans.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no span {n}"));
    let (a, b, c, r) = (by("a"), by("b"), by("c"), by("r"));
    assert_eq!(b.parent_span_id, a.span_id);
    assert_eq!(c.parent_span_id, b.span_id, "explicit parent");
    assert!(!r.parent_span_id.is_valid(), "explicit root");
    assert_ne!(r.trace_id, a.trace_id);
    assert_eq!(r.links()[0].context.span_id(), c.span_id, "follows_from becomes a link");
    assert_eq!(c.events()[0].name, "from another thread");
}

#[test]
fn many_threads_many_spans_all_accounted_for() {
    let (tracer, mem) = install();
    let dispatch = tracing::Dispatch::new(WeftSubscriber::new());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let d = dispatch.clone();
            std::thread::spawn(move || {
                tracing::dispatcher::with_default(&d, || {
                    for i in 0..5_000 {
                        let root = tracing::info_span!("root", t, i);
                        let _r = root.enter();
                        let child = tracing::info_span!("child");
                        let _c = child.enter();
                        tracing::info!("tick");
                    }
                })
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap();
    assert!(stats.is_balanced(), "{stats}");
    // The in-memory exporter is slow enough that the adaptive stage may shed
    // whole traces under this burst: counted, and the kept ones arrive whole.
    assert_eq!(stats.ended, 80_000, "{stats}");
    assert_eq!(stats.exported + stats.sampled_out, 80_000, "{stats}");
    let spans = mem.spans();
    assert_eq!(spans.len() as u64, stats.exported);
    let roots: std::collections::HashMap<_, _> =
        spans.iter().filter(|s| s.name == "root").map(|s| (s.span_id, s.trace_id)).collect();
    for c in spans.iter().filter(|s| s.name == "child") {
        assert_eq!(roots.get(&c.parent_span_id), Some(&c.trace_id), "every kept child under its own kept root");
        assert_eq!(c.events().len(), 1);
    }
}
