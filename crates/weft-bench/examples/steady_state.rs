//! Steady-state probe: the nested request (root → child → leaf, 2 attributes)
//! on one thread for many rounds in one process, printing each round's ns per
//! span beside a CPU-throughput control, and weft's peak buffered bytes.
//!
//! The suite's runs are a fraction of a second each; this shows what a
//! process that keeps producing sees later (it found the slot-array pool
//! cycling through more memory than the last-level cache holds, see
//! docs/benchmarks.md). The control (four independent rotate/xor chains, no
//! memory) tells a slower round of the host apart from a slower weft.
//!
//! `IDLE_THREADS=n` adds n threads that record one span each and then sleep
//! until the end, as a thread pool's idle workers would: they hold buffers
//! but write nothing, and must not make the collector act as if every CPU
//! were busy.
//!
//! `cargo run --release -p weft-bench --example steady_state -- [rounds] [requests per round]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::{ExportResult, Span, SpanBatch, SpanExporter};

/// An exporter that only takes the batch, so the collector's cost is weft's own.
struct Discard;

impl SpanExporter for Discard {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        std::hint::black_box(batch.len());
        Ok(())
    }
}

#[inline(never)]
fn request() {
    let _root = Span::enter("request");
    let _child = Span::enter("child");
    let mut leaf = Span::child("leaf");
    leaf.set_attribute("http.status_code", 200i64);
    leaf.set_attribute("component", "bench");
}

/// ns per 80 independent rotate/xor operations (10 iterations of four chains:
/// 30 per request, reported per span like the spans are): a figure that moves
/// only with the core's own throughput.
fn control(requests: u64) -> f64 {
    let start = Instant::now();
    let (mut a, mut b, mut c, mut d) = (1u64, 2u64, 3u64, 4u64);
    for i in 0..requests * 30 {
        a = a.rotate_left(7) ^ i;
        b = b.rotate_left(9) ^ i;
        c = c.rotate_left(11) ^ i;
        d = d.rotate_left(13) ^ i;
    }
    std::hint::black_box((a, b, c, d));
    start.elapsed().as_nanos() as f64 / (requests * 3) as f64
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let per_round: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(100_000);
    let tracer = weft::builder().exporter(Discard).log_at_shutdown(false).install()?;
    let idle: usize = match std::env::var("IDLE_THREADS") {
        Ok(v) => v.parse().map_err(|e| anyhow::anyhow!("IDLE_THREADS={v:?}: {e}"))?,
        Err(_) => 0,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let idlers: Vec<_> = (0..idle)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                request();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    // Let the collector see the idle threads' one span each before timing.
    std::thread::sleep(Duration::from_millis(50));
    let producer = std::thread::spawn(move || {
        (0..rounds)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..per_round {
                    request();
                }
                let span_ns = start.elapsed().as_nanos() as f64 / (per_round * 3) as f64;
                (span_ns, control(per_round))
            })
            .collect::<Vec<_>>()
    });
    let rows = producer.join().map_err(|_| anyhow::anyhow!("the producer panicked"))?;
    stop.store(true, Ordering::Relaxed);
    for t in idlers {
        t.join().map_err(|_| anyhow::anyhow!("an idle thread panicked"))?;
    }
    let stats = tracer.shutdown(Duration::from_secs(30))?;
    println!("round  ns/span  control");
    for (i, (span_ns, control_ns)) in rows.iter().enumerate() {
        println!("{i:5}  {span_ns:7.1}  {control_ns:7.1}");
    }
    println!(
        "exported {} of {} spans; peak buffered {} KiB",
        stats.exported,
        stats.ended,
        stats.memory_peak_bytes >> 10
    );
    Ok(())
}
