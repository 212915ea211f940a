//! `Stats`: the span accounting of a tracer. Every span that ends is exported,
//! dropped for a named reason, sampled out, or still buffered — and the numbers
//! say which, so no loss is silent.

use std::fmt;

use crate::sampler::DropReason;

/// Traces dropped at their root by each sampler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SampledOutTraces {
    /// By [`crate::sampler::AlwaysOff`].
    pub always_off: u64,
    /// By [`crate::sampler::TraceIdRatio`].
    pub ratio: u64,
    /// By [`crate::sampler::RateLimiting`].
    pub rate_limit: u64,
    /// By a [`crate::sampler::RuleBased`] rule.
    pub rule: u64,
    /// By the adaptive stage under memory pressure.
    pub adaptive: u64,
    /// Because the (remote or explicit) parent was not sampled.
    pub parent: u64,
}

impl SampledOutTraces {
    pub(crate) fn add(&mut self, reason: DropReason, n: u64) {
        match reason {
            DropReason::AlwaysOff => self.always_off += n,
            DropReason::Ratio => self.ratio += n,
            DropReason::RateLimit => self.rate_limit += n,
            DropReason::Rule => self.rule += n,
            DropReason::Adaptive => self.adaptive += n,
            DropReason::Parent => self.parent += n,
        }
    }
    /// All of them.
    pub fn total(&self) -> u64 {
        self.always_off + self.ratio + self.rate_limit + self.rule + self.adaptive + self.parent
    }
}

/// Recorded spans that were not exported, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// No buffer space: the memory bound was reached (the adaptive stage normally
    /// prevents this by shedding whole new traces first).
    pub memory_bound: u64,
    /// The exporter failed the batch (after its own retries), or panicked.
    pub export_failed: u64,
    /// The backend rejected them (OTLP partial success).
    pub export_rejected: u64,
    /// Still buffered when the tracer shut down (shutdown timed out, or the spans
    /// ended after shutdown).
    pub shutdown: u64,
}

impl Dropped {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.memory_bound + self.export_failed + self.export_rejected + self.shutdown
    }
}

/// A snapshot of a tracer's span accounting.
///
/// Invariant, checked by [`Stats::is_balanced`]:
/// `ended == exported + dropped.total() + sampled_out + buffered`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Spans started (recording or not).
    pub started: u64,
    /// Spans ended. A span of a sampled-out trace records nothing and is counted
    /// as ended (and sampled out) as soon as it starts, which keeps its end free
    /// of any bookkeeping.
    pub ended: u64,
    /// Spans not recorded because their trace was sampled out.
    pub sampled_out: u64,
    /// Traces sampled out, by sampler.
    pub sampled_out_traces: SampledOutTraces,
    /// Recorded spans lost, by reason.
    pub dropped: Dropped,
    /// Spans the exporter accepted.
    pub exported: u64,
    /// Recorded spans not yet exported (0 after shutdown).
    pub buffered: u64,
    /// Export calls made.
    pub export_batches: u64,
    /// Of `export_batches`, those application threads handed to the
    /// exporter's direct submitter while the collector waited for a CPU
    /// ([`crate::DirectSubmit`]).
    pub direct_batches: u64,
    /// Bytes of span buffers in use now, including the heap data (owned strings,
    /// events) of exported spans whose freeing waits for the next thread that
    /// opens a buffer chunk, or for the idle collector (0 after shutdown).
    pub memory_used_bytes: u64,
    /// The most bytes in use at once.
    pub memory_peak_bytes: u64,
    /// The configured bound.
    pub memory_limit_bytes: u64,
    /// The adaptive stage's current keep probability for new traces.
    pub adaptive_probability: f64,
}

impl Stats {
    /// Whether every ended span is accounted for.
    pub fn is_balanced(&self) -> bool {
        self.ended == self.exported + self.dropped.total() + self.sampled_out + self.buffered
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.sampled_out_traces;
        let d = &self.dropped;
        write!(
            f,
            "started={} ended={} exported={} buffered={} sampled_out={} (traces: always_off={} ratio={} rate_limit={} rule={} adaptive={} parent={}) \
             dropped: memory_bound={} export_failed={} export_rejected={} shutdown={} memory_peak={}B/{}B",
            self.started,
            self.ended,
            self.exported,
            self.buffered,
            self.sampled_out,
            s.always_off,
            s.ratio,
            s.rate_limit,
            s.rule,
            s.adaptive,
            s.parent,
            d.memory_bound,
            d.export_failed,
            d.export_rejected,
            d.shutdown,
            self.memory_peak_bytes,
            self.memory_limit_bytes
        )
    }
}
