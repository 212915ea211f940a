//! weft in one file: spans on several threads and in async tasks, a sampler, an
//! exporter, and the accounting that shows where every span went.
//!
//! Run it with `cargo run --release -p weft --example quickstart`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::{ExportResult, FutureExt, Span, SpanBatch, SpanExporter, SpanKind, Status};

/// Prints the first few spans it receives and counts the rest.
struct PrintFirst {
    printed: u64,
    total: Arc<AtomicU64>,
}

impl SpanExporter for PrintFirst {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        for s in batch.iter() {
            if self.printed < 8 {
                self.printed += 1;
                println!(
                    "  span {:<14} trace={} parent={} {:>7} ns {:?}",
                    s.name,
                    s.trace_id,
                    s.parent_span_id,
                    s.duration_nanos(),
                    s.attributes.iter().map(|kv| format!("{}={}", kv.key, kv.value)).collect::<Vec<_>>()
                );
            }
        }
        self.total.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[weft::trace(record(order_id))]
async fn load_order(order_id: u64) -> Result<u64, String> {
    tokio_like_yield().await;
    let mut db = Span::child("db.query");
    db.set_attribute("db.system", "postgresql");
    Ok(order_id * 2)
}

/// A tiny stand-in for an async runtime's yield, so the example needs no runtime
/// crate: the future completes on its second poll.
async fn tokio_like_yield() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

fn main() {
    let total = Arc::new(AtomicU64::new(0));
    let tracer = weft::builder()
        .service_name("quickstart")
        .exporter(PrintFirst { printed: 0, total: total.clone() })
        .log_at_shutdown(false)
        .install()
        .expect("no other tracer is installed");

    println!("weft quickstart: the first spans exported");
    // One request with an async step, driven by a minimal executor.
    {
        let mut req =
            Span::builder("GET /orders/{id}").kind(SpanKind::Server).attribute("http.route", "/orders/{id}").enter();
        let v = futures_lite_block_on(load_order(21).in_span(Span::child("handler")));
        req.set_attribute("result", v.unwrap_or_default() as i64);
        req.set_status(Status::Ok);
    }

    // Four threads, 250 000 requests each: root → child → leaf with 2 attributes.
    let start = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                for i in 0..250_000u64 {
                    let _root = Span::enter("request");
                    let _child = Span::enter("child");
                    let mut leaf = Span::child("leaf");
                    leaf.set_attribute("http.status_code", 200i64);
                    leaf.set_attribute("i", i as i64);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = start.elapsed();

    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap_or_else(|_| tracer.stats());
    let spans = 4 * 250_000 * 3;
    println!();
    println!("{spans} spans on 4 threads in {elapsed:?} ({:.1} ns per span)", elapsed.as_nanos() as f64 / spans as f64);
    println!("exporter received {} spans", total.load(Ordering::Relaxed));
    println!("accounting: {stats}");
    println!(
        "every ended span accounted for: {} (ended {} = exported {} + dropped {} + sampled out {} + buffered {})",
        stats.is_balanced(),
        stats.ended,
        stats.exported,
        stats.dropped.total(),
        stats.sampled_out,
        stats.buffered
    );
}

/// Polls a future to completion on this thread (enough for the example).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    let waker = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
