//! Every ended span is exported or counted: at thread exit, from idle threads, at
//! shutdown, after shutdown, and when the exporter fails, rejects, panics or hangs.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{Failing, Recorder};
use weft::{ExportResult, SpanBatch, SpanExporter};

fn quiet() -> weft::TracerBuilder {
    weft::builder().log_at_shutdown(false)
}

#[test]
fn spans_of_exited_threads_are_delivered() {
    let rec = Recorder::default();
    let tracer = quiet().exporter(rec.clone()).install().unwrap();
    let handles: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(|| {
                for i in 0..1000 {
                    let _r = weft::Span::enter("r");
                    let mut c = weft::Span::child("c");
                    // Records owning heap data: their chunks' drops are deferred
                    // to threads opening chunks, then to the collector.
                    c.set_attribute("owned", format!("value-{i}"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    tracer.force_flush(Duration::from_secs(10)).unwrap();
    assert_eq!(rec.count(), 32_000, "force_flush returns only after every ended span is exported");
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!((stats.ended, stats.exported, stats.dropped.total()), (32_000, 32_000, 0));
    assert_eq!(stats.memory_used_bytes, 0, "every chunk returned its bytes");
}

#[test]
fn heap_data_of_exported_spans_is_freed_while_the_tracer_runs() {
    // Freed chunks' strings are dropped by the next thread that opens a chunk;
    // when no thread does, the collector frees them once it has been idle for
    // a few rounds, so the bytes do not stay charged until shutdown.
    let rec = Recorder::default();
    let tracer = quiet().exporter(rec.clone()).install().unwrap();
    std::thread::spawn(|| {
        for i in 0..2000 {
            let mut s = weft::Span::root("owning");
            s.set_attribute("owned", "x".repeat(100 + i % 7));
        }
    })
    .join()
    .unwrap();
    tracer.force_flush(Duration::from_secs(10)).unwrap();
    assert_eq!(rec.count(), 2000);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tracer.stats().memory_used_bytes != 0 {
        assert!(std::time::Instant::now() < deadline, "still charged: {:?}", tracer.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(tracer.shutdown(Duration::from_secs(5)).unwrap().is_balanced());
}

#[test]
fn force_flush_reaches_spans_of_a_thread_that_went_idle() {
    let rec = Recorder::default();
    let tracer = quiet().schedule_delay(Duration::from_secs(3600)).exporter(rec.clone()).install().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let idle = std::thread::spawn(move || {
        for _ in 0..5 {
            drop(weft::Span::root("idle thread span"));
        }
        done_tx.send(()).unwrap();
        while !stop2.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    done_rx.recv().unwrap();
    tracer.force_flush(Duration::from_secs(10)).unwrap();
    assert_eq!(rec.count(), 5, "a partial batch from a live, idle thread is flushed");
    stop.store(true, Ordering::SeqCst);
    idle.join().unwrap();
    assert!(tracer.shutdown(Duration::from_secs(5)).unwrap().is_balanced());
}

#[test]
fn spans_ending_after_shutdown_are_counted_not_lost() {
    let rec = Recorder::default();
    let tracer = quiet().exporter(rec.clone()).install().unwrap();
    let open = weft::Span::root("still open at shutdown");
    drop(weft::Span::root("done before"));
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((stats.started, stats.ended, stats.exported), (2, 1, 1));
    assert!(!weft::Span::root("after shutdown").is_recording(), "no new traces after shutdown");
    drop(open);
    let after = tracer.stats();
    assert_eq!(after.ended, 2);
    assert_eq!(after.dropped.shutdown, 1, "{after:?}");
    assert!(after.is_balanced());
    assert_eq!(tracer.force_flush(Duration::from_secs(1)), Err(weft::FlushError::ShutDown));
}

#[test]
fn failed_and_rejected_exports_are_counted() {
    let tracer = quiet().exporter(Failing { reject: None }).install().unwrap();
    for _ in 0..10 {
        drop(weft::Span::root("x"));
    }
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(stats.dropped.export_failed, 10);
    assert!(stats.is_balanced());
}

#[test]
fn partial_rejection_is_counted_as_rejected() {
    let tracer = quiet().exporter(Failing { reject: Some(3) }).install().unwrap();
    for _ in 0..10 {
        drop(weft::Span::root("x"));
    }
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!((stats.dropped.export_rejected, stats.exported), (3, 7));
    assert!(stats.is_balanced());
}

struct Panicking;
impl SpanExporter for Panicking {
    fn export(&mut self, _: SpanBatch) -> ExportResult {
        panic!("exporter bug")
    }
}

#[test]
fn a_panicking_exporter_is_counted_and_the_collector_survives() {
    let tracer = quiet().exporter(Panicking).install().unwrap();
    drop(weft::Span::root("a"));
    tracer.force_flush(Duration::from_secs(5)).unwrap();
    drop(weft::Span::root("b"));
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(stats.dropped.export_failed, 2);
    assert!(stats.is_balanced());
}

struct Hanging(mpsc::Receiver<()>);
impl SpanExporter for Hanging {
    fn export(&mut self, _: SpanBatch) -> ExportResult {
        let _ = self.0.recv();
        Ok(())
    }
}

#[test]
fn shutdown_timeout_counts_what_was_still_buffered_and_freezes_the_books() {
    let (tx, rx) = mpsc::channel();
    let tracer = quiet().exporter(Hanging(rx)).install().unwrap();
    for _ in 0..7 {
        drop(weft::Span::root("stuck"));
    }
    let err = tracer.shutdown(Duration::from_millis(300)).unwrap_err();
    assert_eq!(err, weft::FlushError::Timeout { buffered: 7 });
    let stats = tracer.stats();
    assert_eq!((stats.dropped.shutdown, stats.exported), (7, 0));
    assert!(stats.is_balanced());
    tx.send(()).unwrap(); // the exporter finishes late: the books stay as reported
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(tracer.stats(), stats);
}

#[test]
fn span_times_reach_the_exporter_as_unix_nanoseconds_on_every_path() {
    // A span's times are clock ticks until it ends, converted to Unix time on
    // every path a record leaves by: into the thread's chunk, or orphaned when
    // it ends during thread teardown. Explicit times are kept as given.
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mem = weft::InMemoryExporter::new();
    let tracer = quiet().exporter(mem.clone()).install().unwrap();
    let before = now();
    drop(weft::Span::root("chunk"));
    thread_local! {
        static HELD: RefCell<Option<weft::Span>> = const { RefCell::new(None) };
    }
    std::thread::spawn(|| {
        // Registered before weft's own thread state, so destroyed after it: the
        // span then ends with no thread state left and is orphaned.
        HELD.with(|_| {});
        let span = weft::Span::root("orphan");
        HELD.with(|h| *h.borrow_mut() = Some(span));
    })
    .join()
    .unwrap();
    let given = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_600_000_000_123_456_789);
    weft::Span::builder("explicit").start_time(given).start().end_at(given + Duration::from_millis(5));
    // One time given, the other read from the clock.
    drop(weft::Span::builder("given start").start_time(given).start());
    weft::Span::root("given end").end_at(given);
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    let after = now();
    assert!(stats.is_balanced(), "{stats:?}");
    let spans = mem.spans();
    for name in ["chunk", "orphan"] {
        let s = spans.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("{name} not exported: {stats:?}"));
        assert!(
            before <= s.start_unix_nanos && s.start_unix_nanos <= s.end_unix_nanos && s.end_unix_nanos <= after,
            "{name}: {} .. {} outside {before} .. {after}",
            s.start_unix_nanos,
            s.end_unix_nanos
        );
    }
    let e = spans.iter().find(|s| s.name == "explicit").unwrap();
    assert_eq!((e.start_unix_nanos, e.end_unix_nanos), (1_600_000_000_123_456_789, 1_600_000_000_128_456_789));
    let g = spans.iter().find(|s| s.name == "given start").unwrap();
    assert_eq!(g.start_unix_nanos, 1_600_000_000_123_456_789);
    // (Within the test's whole window: the tick conversion and the system
    // clock may disagree by a microsecond or so, more than narrower bounds.)
    assert!((before..=after).contains(&g.end_unix_nanos), "{} outside {before} .. {after}", g.end_unix_nanos);
    let g = spans.iter().find(|s| s.name == "given end").unwrap();
    assert!((before..=after).contains(&g.start_unix_nanos), "{} outside {before} .. {after}", g.start_unix_nanos);
    assert_eq!(g.end_unix_nanos, 1_600_000_000_123_456_789);
}

#[test]
fn a_batch_read_from_several_threads_at_once_shows_each_of_them_unix_times() {
    // A batch converts its records' clock ticks the first time it is read;
    // readers racing for that first read must all see converted times, never
    // ticks or a record half converted.
    use std::sync::{Arc, Mutex};
    use std::time::{SystemTime, UNIX_EPOCH};
    let now = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    #[derive(Clone, Default)]
    struct Racing(Arc<Mutex<Vec<(u64, u64)>>>);
    impl weft::SpanExporter for Racing {
        fn export(&mut self, batch: weft::SpanBatch) -> weft::ExportResult {
            let seen = std::thread::scope(|s| {
                let readers: Vec<_> = (0..4)
                    .map(|i| {
                        let batch = &batch;
                        s.spawn(move || {
                            let times: Vec<(u64, u64)> = if i % 2 == 0 {
                                batch.iter().map(|r| (r.start_unix_nanos, r.end_unix_nanos)).collect()
                            } else {
                                batch.slices().flatten().map(|r| (r.start_unix_nanos, r.end_unix_nanos)).collect()
                            };
                            times
                        })
                    })
                    .collect();
                readers.into_iter().map(|r| r.join().unwrap()).collect::<Vec<_>>()
            });
            for other in &seen[1..] {
                assert_eq!(other, &seen[0], "every reader sees the same times");
            }
            self.0.lock().unwrap().extend(seen[0].iter().copied());
            Ok(())
        }
    }
    let exporter = Racing::default();
    let tracer = quiet().exporter(exporter.clone()).install().unwrap();
    let before = now();
    for _ in 0..5_000 {
        let _root = weft::Span::enter("root");
        drop(weft::Span::child("leaf"));
    }
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap();
    let after = now();
    let times = exporter.0.lock().unwrap();
    assert_eq!(times.len(), 10_000, "{stats:?}");
    for &(start, end) in times.iter() {
        assert!(before <= start && start <= end && end <= after, "{start} .. {end} outside {before} .. {after}");
    }
}

#[test]
fn spans_begun_in_thread_local_destructors_are_recorded_or_never_start() {
    // weft frees its thread state at thread exit, in a destructor registered
    // when the thread first records. Destructors of other thread-locals run in
    // reverse order of registration: those registered later run before weft's
    // and record normally; those registered earlier run after it, and there
    // every span is a no-op (not started, not counted) and nothing panics.
    use std::cell::RefCell;
    struct StartsSpans(&'static str);
    impl Drop for StartsSpans {
        fn drop(&mut self) {
            let _r = weft::Span::enter(self.0);
            let mut c = weft::Span::child("child");
            c.set_attribute("owned", format!("{}-owned", self.0));
            let _parent = c.set_local_parent();
            assert_eq!(weft::current_context().is_some(), c.is_recording());
            weft::add_event_to_current("event", Vec::new());
            drop(weft::Span::child_of(&c.context(), "explicit child"));
        }
    }
    thread_local! {
        static EARLY: RefCell<Option<StartsSpans>> = const { RefCell::new(None) };
        static LATE: RefCell<Option<StartsSpans>> = const { RefCell::new(None) };
    }
    let mem = weft::InMemoryExporter::new();
    let tracer = quiet().exporter(mem.clone()).install().unwrap();
    std::thread::spawn(|| {
        EARLY.with(|e| *e.borrow_mut() = Some(StartsSpans("early")));
        drop(weft::Span::root("first"));
        LATE.with(|e| *e.borrow_mut() = Some(StartsSpans("late")));
    })
    .join()
    .unwrap();
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    let mut names: Vec<String> = mem.spans().iter().map(|s| s.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["child", "explicit child", "first", "late"], "{stats:?}");
    assert_eq!((stats.started, stats.exported), (4, 4));
    assert_eq!(stats.memory_used_bytes, 0);
}
