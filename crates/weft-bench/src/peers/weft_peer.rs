//! weft: `Span::enter` for the root and child (thread-local parents), `Span::child`
//! for the leaf, static names and attributes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::{DirectSubmit, ExportResult, Settlement, Span, SpanBatch, SpanExporter};

use super::{Outcome, Sink};
use crate::driver::drive;
use crate::{RunConfig, Workload};

pub(super) struct Counting(pub(super) &'static Sink);

impl SpanExporter for Counting {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        let ids = self.0.wants_ids().then(|| batch.iter().map(|s| s.trace_id.to_u128()).collect::<Vec<_>>());
        self.0.batch(batch.len(), ids.into_iter().flatten());
        Ok(())
    }
    /// An exporter that takes no time and counts with one atomic add takes
    /// batches from any thread without blocking; one that waits per batch,
    /// or tallies trace IDs under a lock, does not offer to.
    fn direct(&mut self) -> Option<Arc<dyn DirectSubmit>> {
        (self.0.delay.is_zero() && !self.0.wants_ids()).then(|| Arc::new(Counting(self.0)) as Arc<dyn DirectSubmit>)
    }
}

impl DirectSubmit for Counting {
    fn try_submit(&self, batch: SpanBatch, settlement: Settlement) -> Result<(), (SpanBatch, Settlement)> {
        self.0.batch(batch.len(), std::iter::empty());
        settlement.settle(&Ok(()));
        Ok(())
    }
}

#[inline]
fn request(measure: bool) -> u32 {
    let _root = Span::enter("request");
    let _child = Span::enter("child");
    let t = measure.then(Instant::now);
    {
        let mut leaf = Span::child("leaf");
        leaf.set_attribute("http.status_code", 200i64);
        leaf.set_attribute("component", "bench");
    }
    t.map_or(0, |t| t.elapsed().as_nanos() as u32)
}

pub fn run(cfg: &RunConfig, threads: usize, sink: &'static Sink) -> Outcome {
    let tracer = install(cfg, sink);
    let driven = drive(cfg, threads, request);
    finish(tracer, driven)
}

/// Installs weft with a counting exporter (shared with the `tracing` bridge peer).
pub(super) fn install(cfg: &RunConfig, sink: &'static Sink) -> weft::Tracer {
    let mut b =
        weft::builder().exporter(Counting(sink)).memory_limit_bytes(cfg.memory_limit_mb << 20).log_at_shutdown(false);
    if cfg.workload == Workload::Unsampled {
        b = b.sampler(weft::sampler::AlwaysOff);
    }
    match b.install() {
        Ok(t) => t,
        Err(e) => panic!("installing weft: {e}"),
    }
}

/// Shuts weft down and reports its accounting.
pub(super) fn finish(tracer: weft::Tracer, driven: crate::driver::Driven) -> Outcome {
    let t = Instant::now();
    let stats = tracer.shutdown(Duration::from_secs(120)).unwrap_or_else(|_| tracer.stats());
    let flush = t.elapsed();
    let shed = stats.sampled_out;
    Outcome {
        driven,
        flush,
        counted: Some(stats.dropped.total() + shed),
        detail: serde_json::json!({
            "started": stats.started,
            "ended": stats.ended,
            "exported": stats.exported,
            "sampled_out": stats.sampled_out,
            "adaptive_sampled_out_traces": stats.sampled_out_traces.adaptive,
            "dropped_memory_bound": stats.dropped.memory_bound,
            "dropped_total": stats.dropped.total(),
            "memory_peak_bytes": stats.memory_peak_bytes,
            "memory_limit_bytes": stats.memory_limit_bytes,
            "export_batches": stats.export_batches,
            "direct_batches": stats.direct_batches,
            "balanced": stats.is_balanced(),
        }),
    }
}
