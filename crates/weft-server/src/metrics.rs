//! The server's own metrics, rendered in the Prometheus text format on
//! `GET /metrics`. Plain atomics: every hot-path update is one relaxed add.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A histogram with fixed upper bounds (in the unit its name says).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_micro: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// A histogram with these bucket bounds (ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }
    /// Records one observation.
    pub fn observe(&self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micro.fetch_add((v * 1e6) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cum += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// Why a request was refused (admission).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The ingest byte budget is used up.
    Budget,
    /// The body is over the size limit.
    TooLarge,
    /// The write-ahead log cannot write (disk full, I/O error).
    Log,
    /// The server is shutting down.
    ShuttingDown,
}

impl Refusal {
    const ALL: [Refusal; 4] = [Refusal::Budget, Refusal::TooLarge, Refusal::Log, Refusal::ShuttingDown];
    fn label(self) -> &'static str {
        match self {
            Refusal::Budget => "budget",
            Refusal::TooLarge => "too_large",
            Refusal::Log => "log",
            Refusal::ShuttingDown => "shutting_down",
        }
    }
}

/// Every metric of the server.
#[derive(Debug)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub spans_received: AtomicU64,
    pub bytes_received: AtomicU64,
    refused: [AtomicU64; 4],
    pub refused_spans_unknown: AtomicU64,
    pub rejected_invalid_requests: AtomicU64,
    pub rejected_invalid_spans: AtomicU64,
    pub attributes_dropped: AtomicU64,
    pub attribute_values_truncated: AtomicU64,
    pub log_appends: AtomicU64,
    pub log_bytes: AtomicU64,
    pub log_fsync_seconds: Histogram,
    pub log_group_commit_size: Histogram,
    pub log_replayed_records: AtomicU64,
    pub log_tail_bytes_cut: AtomicU64,
    pub log_corrupt_records: AtomicU64,
    pub log_write_errors: AtomicU64,
    pub budget_used_bytes: AtomicU64,
    pub budget_limit_bytes: AtomicU64,
    pub shard_queue_spans: Vec<AtomicU64>,
    pub spans_processed: AtomicU64,
    pub watermark_lag_seconds: AtomicU64,
}

const FSYNC_BUCKETS: &[f64] = &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

impl Metrics {
    /// Zeroed metrics for `shards` shards.
    pub fn new(shards: usize) -> Self {
        Metrics {
            requests: AtomicU64::new(0),
            spans_received: AtomicU64::new(0),
            bytes_received: AtomicU64::new(0),
            refused: Default::default(),
            refused_spans_unknown: AtomicU64::new(0),
            rejected_invalid_requests: AtomicU64::new(0),
            rejected_invalid_spans: AtomicU64::new(0),
            attributes_dropped: AtomicU64::new(0),
            attribute_values_truncated: AtomicU64::new(0),
            log_appends: AtomicU64::new(0),
            log_bytes: AtomicU64::new(0),
            log_fsync_seconds: Histogram::new(FSYNC_BUCKETS),
            log_group_commit_size: Histogram::new(GROUP_BUCKETS),
            log_replayed_records: AtomicU64::new(0),
            log_tail_bytes_cut: AtomicU64::new(0),
            log_corrupt_records: AtomicU64::new(0),
            log_write_errors: AtomicU64::new(0),
            budget_used_bytes: AtomicU64::new(0),
            budget_limit_bytes: AtomicU64::new(0),
            shard_queue_spans: (0..shards).map(|_| AtomicU64::new(0)).collect(),
            spans_processed: AtomicU64::new(0),
            watermark_lag_seconds: AtomicU64::new(0),
        }
    }

    /// Counts a refused request.
    pub fn refuse(&self, why: Refusal) {
        self.refused[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Refused requests for one reason.
    pub fn refused(&self, why: Refusal) -> u64 {
        self.refused[why as usize].load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter("weft_ingest_requests_total", "OTLP export requests received.", l(&self.requests));
        counter("weft_ingest_spans_total", "Spans accepted (durable in the log).", l(&self.spans_received));
        counter("weft_ingest_bytes_total", "Request body bytes received.", l(&self.bytes_received));
        counter(
            "weft_ingest_invalid_requests_total",
            "Requests rejected as undecodable.",
            l(&self.rejected_invalid_requests),
        );
        counter(
            "weft_ingest_invalid_spans_total",
            "Spans rejected individually (invalid IDs), reported through partial_success.",
            l(&self.rejected_invalid_spans),
        );
        counter(
            "weft_ingest_attributes_dropped_total",
            "Attributes dropped by the count limit.",
            l(&self.attributes_dropped),
        );
        counter(
            "weft_ingest_attribute_values_truncated_total",
            "Attribute values cut to the length limit.",
            l(&self.attribute_values_truncated),
        );
        counter("weft_log_appends_total", "Records appended to the write-ahead log.", l(&self.log_appends));
        counter("weft_log_bytes_total", "Bytes appended to the write-ahead log.", l(&self.log_bytes));
        counter(
            "weft_log_replayed_records_total",
            "Records replayed from the log at start.",
            l(&self.log_replayed_records),
        );
        counter(
            "weft_log_tail_bytes_cut_total",
            "Bytes of torn or corrupt log tail cut at start.",
            l(&self.log_tail_bytes_cut),
        );
        counter(
            "weft_log_corrupt_records_total",
            "Corrupt records found in the log at start.",
            l(&self.log_corrupt_records),
        );
        counter(
            "weft_log_write_errors_total",
            "Failed log writes or syncs (the requests were refused).",
            l(&self.log_write_errors),
        );
        counter("weft_spans_processed_total", "Spans processed by the shards.", l(&self.spans_processed));
        let _ = writeln!(out, "# HELP weft_ingest_refused_total Requests refused with a retry delay or a size error, by reason.\n# TYPE weft_ingest_refused_total counter");
        for r in Refusal::ALL {
            let _ = writeln!(out, "weft_ingest_refused_total{{reason=\"{}\"}} {}", r.label(), self.refused(r));
        }
        let mut gauge = |name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            "weft_ingest_budget_used_bytes",
            "Bytes accepted and not yet durable in the store (requests in flight and the head).",
            l(&self.budget_used_bytes) as f64,
        );
        gauge("weft_ingest_budget_limit_bytes", "The ingest byte budget.", l(&self.budget_limit_bytes) as f64);
        gauge(
            "weft_watermark_lag_seconds",
            "How far the watermark is behind the clock.",
            l(&self.watermark_lag_seconds) as f64 / 1e6,
        );
        let _ = writeln!(
            out,
            "# HELP weft_shard_queue_spans Spans waiting in each shard's queue.\n# TYPE weft_shard_queue_spans gauge"
        );
        for (i, q) in self.shard_queue_spans.iter().enumerate() {
            let _ = writeln!(out, "weft_shard_queue_spans{{shard=\"{i}\"}} {}", l(q));
        }
        self.log_fsync_seconds.render("weft_log_fsync_seconds", "Time of each log sync.", &mut out);
        self.log_group_commit_size.render(
            "weft_log_group_commit_size",
            "Requests made durable by each sync.",
            &mut out,
        );
        out
    }
}

/// Appends the store's metrics (blocks, head, sealing, compaction, retention).
pub fn render_store(store: &weft_store::Store, out: &mut String) {
    let st = &store.stats;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let blocks = store.blocks();
    let mut line = |kind: &str, name: &str, help: &str, v: f64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
    };
    for (name, help, v) in [
        ("weft_store_spans_total", "Span rows written to blocks by sealing.", l(&st.spans_stored)),
        ("weft_store_traces_sealed_total", "Traces sealed into blocks.", l(&st.traces_sealed)),
        (
            "weft_store_traces_sealed_early_total",
            "Traces sealed before they were idle because the head was full.",
            l(&st.traces_sealed_early),
        ),
        (
            "weft_store_late_spans_total",
            "Spans that arrived after their trace was sealed (stored, summary updated).",
            l(&st.late_spans),
        ),
        (
            "weft_store_duplicate_spans_total",
            "Spans dropped as exact duplicates (same trace and span ID) of stored ones.",
            l(&st.duplicate_spans),
        ),
        (
            "weft_store_undecodable_spans_total",
            "Spans whose bytes did not decode at sealing (lost; never expected).",
            l(&st.undecodable_spans),
        ),
        ("weft_store_blocks_sealed_total", "Blocks written by sealing.", l(&st.blocks_sealed)),
        (
            "weft_store_seal_failures_total",
            "Failed seals (the traces stay in memory and in the log, and are retried).",
            l(&st.seal_failures),
        ),
        ("weft_store_compactions_total", "Compactions of small blocks.", l(&st.compactions)),
        ("weft_store_retention_deleted_blocks_total", "Blocks deleted by retention.", l(&st.retention_deleted_blocks)),
        (
            "weft_store_retention_deleted_spans_total",
            "Spans in blocks deleted by retention.",
            l(&st.retention_deleted_spans),
        ),
        (
            "weft_store_corrupt_blocks_total",
            "Block directories that could not be read (skipped, left on disk).",
            l(&st.corrupt_blocks),
        ),
    ] {
        line("counter", name, help, v as f64);
    }
    line("counter", "weft_store_seal_seconds_total", "Time spent writing blocks.", l(&st.seal_nanos) as f64 / 1e9);
    line(
        "gauge",
        "weft_store_head_bytes",
        "Bytes the head holds (counted in the ingest budget).",
        store.head.bytes() as f64,
    );
    line("gauge", "weft_store_head_traces", "Traces in the head.", store.head.traces() as f64);
    line("gauge", "weft_store_blocks", "Blocks on disk.", blocks.len() as f64);
    line(
        "gauge",
        "weft_store_block_bytes",
        "Bytes of blocks on disk.",
        blocks.iter().map(|b| b.meta.bytes).sum::<u64>() as f64,
    );
    line(
        "gauge",
        "weft_store_block_spans",
        "Span rows in blocks.",
        blocks.iter().map(|b| b.meta.spans).sum::<u64>() as f64,
    );
    line(
        "gauge",
        "weft_store_durable_before_seconds",
        "Everything received before this Unix time is in blocks.",
        l(&st.durable_before) as f64 / 1e9,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new(2);
        m.requests.fetch_add(3, Ordering::Relaxed);
        m.refuse(Refusal::Budget);
        m.log_fsync_seconds.observe(0.0003);
        m.log_fsync_seconds.observe(2.0);
        let t = m.render();
        assert!(t.contains("weft_ingest_requests_total 3\n"));
        assert!(t.contains("weft_ingest_refused_total{reason=\"budget\"} 1\n"));
        assert!(t.contains("weft_shard_queue_spans{shard=\"1\"} 0\n"));
        assert!(t.contains("weft_log_fsync_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(t.contains("weft_log_fsync_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("weft_log_fsync_seconds_count 2\n"));
    }
}
