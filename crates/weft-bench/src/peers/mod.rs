//! One module per peer, each writing the workload in that tracer's fastest
//! idiomatic form (static names, explicit or thread-local parents as the tracer
//! intends, no needless allocation), with a counting exporter.

mod fastrace_peer;
mod otel_peer;
mod tracing_otel_peer;
mod tracing_weft_peer;
mod weft_peer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::driver::{Driven, SPANS_PER_REQUEST};
use crate::measure::{p99, peak_rss_kb, rss_kb, Row};
use crate::{Peer, RunConfig};

/// The counting back end every peer's exporter feeds.
pub struct Sink {
    delivered: AtomicU64,
    traces: Option<Mutex<HashMap<u128, u32>>>,
    delay: Duration,
}

impl Sink {
    pub fn new(cfg: &RunConfig) -> Self {
        Sink {
            delivered: AtomicU64::new(0),
            traces: cfg.check_traces.then(|| Mutex::new(HashMap::new())),
            delay: Duration::from_secs_f64(cfg.export_delay_ms / 1000.0),
        }
    }

    /// Takes one batch: waits the configured time, counts, optionally tallies traces.
    pub fn batch(&self, n: usize, trace_ids: impl Iterator<Item = u128>) {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.delivered.fetch_add(n as u64, Ordering::Relaxed);
        if let Some(t) = &self.traces {
            if let Ok(mut t) = t.lock() {
                for id in trace_ids {
                    *t.entry(id).or_default() += 1;
                }
            }
        }
    }

    /// Whether batches need trace IDs.
    pub fn wants_ids(&self) -> bool {
        self.traces.is_some()
    }

    fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    fn incomplete(&self) -> Option<u64> {
        self.traces.as_ref().map(|t| {
            t.lock().map(|t| t.values().filter(|&&c| u64::from(c) != SPANS_PER_REQUEST).count() as u64).unwrap_or(0)
        })
    }
}

/// What a peer's run produced.
pub struct Outcome {
    pub driven: Driven,
    pub flush: Duration,
    /// Spans the tracer reports as not delivered, if it reports any.
    pub counted: Option<u64>,
    pub detail: serde_json::Value,
}

/// Runs one peer and measures it.
pub fn run(peer: Peer, cfg: &RunConfig, threads: usize) -> Row {
    let sink: &'static Sink = Box::leak(Box::new(Sink::new(cfg)));
    let cpu_ghz = crate::cpu_speed::effective_ghz();
    let rss0 = rss_kb();
    let mut o = match peer {
        Peer::Weft => weft_peer::run(cfg, threads, sink),
        Peer::Otel => otel_peer::run(cfg, threads, sink),
        Peer::Fastrace => fastrace_peer::run(cfg, threads, sink),
        Peer::TracingOtel => tracing_otel_peer::run(cfg, threads, sink),
        Peer::TracingWeft => tracing_weft_peer::run(cfg, threads, sink),
        Peer::TracingWeftSubscriber => tracing_weft_peer::run_subscriber(cfg, threads, sink),
    };
    let rss_delta_kb = peak_rss_kb().saturating_sub(rss0);
    let spans = o.driven.requests * SPANS_PER_REQUEST;
    let delivered = sink.delivered();
    let counted = o.counted;
    let wall_ns = o.driven.wall.as_nanos() as f64;
    Row {
        peer: serde_json::to_value(peer).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        workload: serde_json::to_value(cfg.workload)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        threads,
        spans,
        wall_ms: wall_ns / 1e6,
        flush_ms: o.flush.as_secs_f64() * 1e3,
        ns_per_span: if spans > 0 { wall_ns / spans as f64 } else { 0.0 },
        spans_per_s: if wall_ns > 0.0 { spans as f64 / (wall_ns / 1e9) } else { 0.0 },
        delivered,
        delivered_pct: if spans > 0 { 100.0 * delivered as f64 / spans as f64 } else { 100.0 },
        counted_dropped: counted,
        // With sampling off, not delivering is the point, not a loss.
        silent_lost: if cfg.workload == crate::Workload::Unsampled {
            0
        } else {
            spans.saturating_sub(delivered + counted.unwrap_or(0))
        },
        rss_delta_kb,
        p99_ns: p99(&mut o.driven.latencies),
        export_delay_ms: cfg.export_delay_ms,
        incomplete_traces: sink.incomplete(),
        cpu_ghz,
        detail: o.detail,
    }
}
