//! What a run reports, and how memory and latency are measured.

use serde::{Deserialize, Serialize};

/// One result line.
#[derive(Debug, Serialize, Deserialize)]
pub struct Row {
    pub peer: String,
    pub workload: String,
    pub threads: usize,
    /// Spans created.
    pub spans: u64,
    /// Time the producing threads took (the traced program's time).
    pub wall_ms: f64,
    /// Time from the end of the workload until the tracer said it was flushed.
    pub flush_ms: f64,
    /// `wall_ms` per created span, in ns.
    pub ns_per_span: f64,
    pub spans_per_s: f64,
    /// Spans the counting exporter received.
    pub delivered: u64,
    pub delivered_pct: f64,
    /// Spans the tracer itself reports as not delivered (sampled out under
    /// pressure, dropped for a reason). `null` when the tracer exposes no count.
    pub counted_dropped: Option<u64>,
    /// created − delivered − counted: spans gone without a trace.
    pub silent_lost: u64,
    /// Peak RSS minus RSS before the workload.
    pub rss_delta_kb: u64,
    /// p99 of one leaf span's start + end, sampled every 64th request.
    pub p99_ns: u64,
    pub export_delay_ms: f64,
    /// With --check-traces: delivered traces missing some of their spans.
    pub incomplete_traces: Option<u64>,
    /// The machine's effective clock just before the run (see `cpu_speed.rs`):
    /// absolute times scale with it.
    #[serde(default)]
    pub cpu_ghz: Option<f64>,
    /// Peer-specific detail (weft: its full accounting).
    pub detail: serde_json::Value,
}

impl Row {
    pub fn header() -> String {
        format!(
            "{:<22} {:<9} {:>3} {:>10} {:>9} {:>8} {:>9} {:>8} {:>10} {:>10} {:>9} {:>8}",
            "peer",
            "workload",
            "thr",
            "spans",
            "wall_ms",
            "ns/span",
            "deliv%",
            "flush_ms",
            "counted",
            "silent",
            "rss_kb",
            "p99_ns"
        )
    }
    pub fn table_line(&self) -> String {
        format!(
            "{:<22} {:<9} {:>3} {:>10} {:>9.1} {:>8.1} {:>9.2} {:>8.1} {:>10} {:>10} {:>9} {:>8}",
            self.peer,
            self.workload,
            self.threads,
            self.spans,
            self.wall_ms,
            self.ns_per_span,
            self.delivered_pct,
            self.flush_ms,
            self.counted_dropped.map_or("n/a".to_string(), |c| c.to_string()),
            self.silent_lost,
            self.rss_delta_kb,
            self.p99_ns
        )
    }
}

/// Reads a `/proc/self/status` field in kB.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Current resident memory, kB.
pub fn rss_kb() -> u64 {
    status_kb("VmRSS:")
}

/// Peak resident memory of this process, kB.
pub fn peak_rss_kb() -> u64 {
    status_kb("VmHWM:")
}

/// The p99 of latency samples.
pub fn p99(samples: &mut [u32]) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    let i = ((samples.len() as f64) * 0.99).ceil() as usize;
    u64::from(samples[i.clamp(1, samples.len()) - 1])
}
