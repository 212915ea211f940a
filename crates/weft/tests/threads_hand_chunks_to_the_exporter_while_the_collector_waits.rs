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
    /// Waits for the gate to open (30 s at most, so that a failing test
    /// still ends).
    fn wait_open(&self) {
        let open = self.gate.lock().unwrap();
        let _open = self.opened.wait_timeout_while(open, Duration::from_secs(30), |open| !*open).unwrap();
    }
}

/// A tracer whose collector exports (and so gets stuck in a gated exporter)
/// as soon as spans arrive, with a 4 MiB bound.
fn install_eager(exporter: impl SpanExporter) -> weft::Tracer {
    weft::builder()
        .exporter(exporter)
        .memory_limit_bytes(4 << 20)
        .max_batch_spans(16)
        .log_at_shutdown(false)
        .install()
        .unwrap()
}

/// Ends `n` root spans on a thread of their own, and waits for it.
fn roots_on_a_thread(n: usize) -> std::thread::Result<()> {
    std::thread::spawn(move || {
        for _ in 0..n {
            drop(weft::Span::root("work"));
        }
    })
    .join()
}

/// The collector's side: blocks until the gate opens.
struct Gated(Arc<Seen>);

impl SpanExporter for Gated {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        self.0.wait_open();
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
    let limit = 4 << 20; // install_eager's
    let tracer = install_eager(Gated(seen.clone()));
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
    assert_eq!(
        seen.refused.load(Ordering::Relaxed),
        5,
        "the first five hand-overs were refused (and exported by the collector)"
    );
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
            self.0.wait_open();
            self.0.take(&batch);
            Ok(())
        }
    }
    let seen = Arc::new(Seen::default());
    let tracer = install_eager(CollectorOnly(seen.clone()));
    roots_on_a_thread(50_000).unwrap();
    assert!(seen.spans.lock().unwrap().len() <= 16, "only the collector's first batch, stuck in export");
    seen.open();
    let stats = tracer.shutdown(Duration::from_secs(60)).unwrap();
    assert_eq!(stats.direct_batches, 0);
    assert!(stats.sampled_out > 0, "the stuck collector made the adaptive stage shed: {stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(seen.spans.lock().unwrap().len() as u64, stats.exported);
}

/// An exporter whose collector side takes 1 ms per batch (so the collector
/// keeps missing its heartbeat and threads hand chunks over) and whose direct
/// side notes any call that comes after its shutdown.
#[derive(Default)]
struct Slow {
    delivered: AtomicU64,
    shut: std::sync::atomic::AtomicBool,
    late_calls: AtomicU64,
    direct_calls: AtomicU64,
}

struct SlowCollector(Arc<Slow>);

impl SpanExporter for SlowCollector {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        std::thread::sleep(Duration::from_millis(1));
        self.0.delivered.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
    fn shutdown(&mut self) -> ExportResult {
        self.0.shut.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn direct(&mut self) -> Option<Arc<dyn DirectSubmit>> {
        Some(Arc::new(SlowDirect(self.0.clone())))
    }
}

/// A tracer over a [`SlowCollector`], and a thread that ends child spans of
/// one long trace until `stop` is set (they keep recording after a shutdown,
/// as new roots would not).
fn slow_tracer_and_writer(
    slow: &Arc<Slow>,
) -> (weft::Tracer, Arc<std::sync::atomic::AtomicBool>, std::thread::JoinHandle<()>) {
    let tracer = weft::builder()
        .exporter(SlowCollector(slow.clone()))
        .memory_limit_bytes(4 << 20)
        .log_at_shutdown(false)
        .install()
        .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let _root = weft::Span::enter("long");
            while !stop.load(Ordering::Relaxed) {
                drop(weft::Span::child("work"));
            }
        })
    };
    (tracer, stop, writer)
}

struct SlowDirect(Arc<Slow>);

impl DirectSubmit for SlowDirect {
    fn try_submit(&self, batch: SpanBatch, settlement: Settlement) -> Result<(), (SpanBatch, Settlement)> {
        if self.0.shut.load(Ordering::SeqCst) {
            self.0.late_calls.fetch_add(1, Ordering::SeqCst);
        }
        self.0.direct_calls.fetch_add(1, Ordering::SeqCst);
        self.0.delivered.fetch_add(batch.len() as u64, Ordering::SeqCst);
        settlement.settle(&Ok(()));
        Ok(())
    }
}

/// Every `force_flush` delivers all spans that ended before it was called,
/// also while a thread keeps handing chunks over: a flush waits for the
/// hand-overs in flight and stops new ones until it is done.
#[test]
fn a_flush_waits_for_chunks_in_a_threads_hands() {
    let slow = Arc::new(Slow::default());
    let (tracer, stop, writer) = slow_tracer_and_writer(&slow);
    let flushes = if cfg!(debug_assertions) { 30 } else { 100 };
    for _ in 0..flushes {
        std::thread::sleep(Duration::from_millis(5));
        // Spans recorded so far (ended, neither shed by the adaptive stage
        // nor dropped): each must have reached the exporter when the flush
        // returns.
        let s = tracer.stats();
        let recorded = s.ended - s.sampled_out - s.dropped.total();
        tracer.force_flush(Duration::from_secs(30)).unwrap();
        let delivered = slow.delivered.load(Ordering::SeqCst);
        assert!(delivered >= recorded, "a flush returned with {} recorded spans undelivered", recorded - delivered);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let stats = tracer.shutdown(Duration::from_secs(60)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(stats.exported, slow.delivered.load(Ordering::SeqCst));
    assert!(stats.direct_batches > 0, "the thread handed chunks over between flushes: {stats:?}");
}

/// A thread that keeps ending spans through the tracer's shutdown never
/// calls the direct submitter after the exporter's `shutdown`, the books
/// balance, and its buffers go back to the budget when it exits.
#[test]
fn no_hand_over_reaches_an_exporter_that_was_shut_down() {
    let slow = Arc::new(Slow::default());
    let (tracer, stop, writer) = slow_tracer_and_writer(&slow);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while slow.direct_calls.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "the thread never handed a chunk over");
        std::thread::sleep(Duration::from_millis(1));
    }
    let stats = tracer.shutdown(Duration::from_secs(60)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(slow.late_calls.load(Ordering::SeqCst), 0, "a hand-over came after the exporter's shutdown");
    let after = tracer.stats();
    assert!(after.is_balanced(), "{after:?}");
    assert!(after.dropped.shutdown > 0, "spans ended after the shutdown are counted: {after:?}");
    assert_eq!(after.memory_used_bytes, 0, "buffers went back to the budget: {after:?}");
}

/// A direct submitter that panics costs its batch (counted as failed), not
/// the thread that called it.
#[test]
fn a_panicking_direct_submitter_fails_its_batch_not_the_thread() {
    struct Panicky(Arc<Seen>);
    impl DirectSubmit for Panicky {
        fn try_submit(&self, batch: SpanBatch, settlement: Settlement) -> Result<(), (SpanBatch, Settlement)> {
            if self.0.refused.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("exporter bug");
            }
            self.0.via_threads.fetch_add(batch.len() as u64, Ordering::SeqCst);
            settlement.settle(&Ok(()));
            Ok(())
        }
    }
    struct Stuck(Arc<Seen>);
    impl SpanExporter for Stuck {
        fn export(&mut self, batch: SpanBatch) -> ExportResult {
            self.0.wait_open();
            self.0.via_collector.fetch_add(batch.len() as u64, Ordering::SeqCst);
            Ok(())
        }
        fn direct(&mut self) -> Option<Arc<dyn DirectSubmit>> {
            Some(Arc::new(Panicky(self.0.clone())))
        }
    }
    let seen = Arc::new(Seen::default());
    let tracer = install_eager(Stuck(seen.clone()));
    roots_on_a_thread(50_000).expect("the panic stayed in the exporter");
    seen.open();
    let stats = tracer.shutdown(Duration::from_secs(60)).unwrap();
    assert!(stats.dropped.export_failed > 0, "{stats:?}");
    assert_eq!(
        stats.exported,
        seen.via_collector.load(Ordering::SeqCst) + seen.via_threads.load(Ordering::SeqCst),
        "{stats:?}"
    );
    assert_eq!(stats.exported + stats.dropped.export_failed, 50_000, "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
}
