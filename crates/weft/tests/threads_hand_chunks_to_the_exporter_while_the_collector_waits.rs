//! While the collector cannot run (here: it is stuck in an export call; on a
//! busy machine: waiting for a CPU), threads that fill a chunk hand it to an
//! exporter that takes batches from any thread (`SpanExporter::direct`). Their
//! spans are delivered exactly once, memory stays below the adaptive stage's
//! mark so no trace is shed, batches the exporter refuses go to the collector,
//! and the books balance.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use weft::{DirectSubmit, ExportResult, Settlement, SpanBatch, SpanExporter};

/// What reached the exporter, and by which way.
#[derive(Default)]
struct Seen {
    spans: Mutex<Vec<u64>>,
    via_collector: AtomicU64,
    via_threads: AtomicU64,
    refused: AtomicU64,
    /// Closed until the test opens it: the collector's export calls wait here.
    gate: Mutex<bool>,
    opened: Condvar,
}

impl Seen {
    fn take(&self, batch: &SpanBatch) {
        self.spans.lock().unwrap().extend(batch.iter().map(|s| s.span_id.to_u64()));
    }
    fn open(&self) {
        *self.gate.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

/// The collector's side: blocks until the gate opens (30 s at most, so that
/// a failing test still ends).
struct Gated(Arc<Seen>);

impl SpanExporter for Gated {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        let open = self.0.gate.lock().unwrap();
        let _open = self.0.opened.wait_timeout_while(open, Duration::from_secs(30), |open| !*open).unwrap();
        self.0.via_collector.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.0.take(&batch);
        Ok(())
    }
    fn direct(&mut self) -> Option<Arc<dyn DirectSubmit>> {
        Some(Arc::new(Direct { seen: self.0.clone(), refuse_first: 5 }))
    }
}

/// The threads' side: refuses the first few batches, then takes every one.
struct Direct {
    seen: Arc<Seen>,
    refuse_first: u64,
}

impl DirectSubmit for Direct {
    fn try_submit(&self, batch: SpanBatch, settlement: Settlement) -> Result<(), (SpanBatch, Settlement)> {
        if self.seen.refused.fetch_add(1, Ordering::Relaxed) < self.refuse_first {
            return Err((batch, settlement));
        }
        self.seen.refused.fetch_sub(1, Ordering::Relaxed);
        self.seen.via_threads.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.seen.take(&batch);
        settlement.settle(&Ok(()));
        Ok(())
    }
}

#[test]
fn threads_deliver_their_own_chunks_while_the_collector_is_stuck() {
    let seen = Arc::new(Seen::default());
    let limit = 4 << 20;
    let tracer = weft::builder()
        .exporter(Gated(seen.clone()))
        .memory_limit_bytes(limit)
        // The collector exports (and gets stuck) as soon as spans arrive.
        .max_batch_spans(16)
        .log_at_shutdown(false)
        .install()
        .unwrap();
    let threads = 4u64;
    // Each thread alone writes several times the memory bound: without the
    // threads' hand-over, the adaptive stage would shed most of these traces.
    let per_thread = if cfg!(debug_assertions) { 40_000 } else { 200_000 };
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                for k in 0..per_thread {
                    let mut s = weft::Span::root("work");
                    s.set_attribute("k", (t * per_thread + k) as i64);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let by_threads = seen.via_threads.load(Ordering::Relaxed);
    assert!(by_threads > 0, "the threads handed chunks over while the collector was stuck");
    seen.open();
    let stats = tracer.shutdown(Duration::from_secs(60)).unwrap();
    let total = threads * per_thread;
    assert_eq!(stats.sampled_out, 0, "nothing shed: {stats:?}");
    assert_eq!(stats.dropped.total(), 0, "{stats:?}");
    assert_eq!(stats.exported, total, "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
    assert!(stats.direct_batches > 0 && stats.direct_batches < stats.export_batches, "{stats:?}");
    assert_eq!(stats.memory_used_bytes, 0);
    assert!(stats.memory_peak_bytes <= limit as u64);
    assert_eq!(seen.refused.load(Ordering::Relaxed), 5, "refused batches were not offered again");
    let spans = seen.spans.lock().unwrap();
    assert_eq!(spans.len() as u64, total, "every span arrived once");
    assert_eq!(spans.iter().collect::<HashSet<_>>().len() as u64, total, "no span arrived twice");
    assert_eq!(
        seen.via_collector.load(Ordering::Relaxed) + seen.via_threads.load(Ordering::Relaxed),
        total,
        "each span came one way"
    );
}

/// An exporter without a direct submitter is only ever called by the
/// collector: with it stuck, the threads' spans wait in the buffer (and the
/// adaptive stage sheds new traces, counted), exactly as before.
#[test]
fn without_a_direct_submitter_only_the_collector_exports() {
    struct CollectorOnly(Arc<Seen>);
    impl SpanExporter for CollectorOnly {
        fn export(&mut self, batch: SpanBatch) -> ExportResult {
            let open = self.0.gate.lock().unwrap();
            let _open = self.0.opened.wait_timeout_while(open, Duration::from_secs(30), |open| !*open).unwrap();
            self.0.take(&batch);
            Ok(())
        }
    }
    let seen = Arc::new(Seen::default());
    let tracer = weft::builder()
        .exporter(CollectorOnly(seen.clone()))
        .memory_limit_bytes(4 << 20)
        .max_batch_spans(16)
        .log_at_shutdown(false)
        .install()
        .unwrap();
    std::thread::spawn(|| {
        for _ in 0..50_000 {
            drop(weft::Span::root("work"));
        }
    })
    .join()
    .unwrap();
    assert!(seen.spans.lock().unwrap().len() <= 16, "only the collector's first batch, stuck in export");
    seen.open();
    let stats = tracer.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(stats.direct_batches, 0);
    assert!(stats.sampled_out > 0, "the stuck collector made the adaptive stage shed: {stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(seen.spans.lock().unwrap().len() as u64, stats.exported);
}
