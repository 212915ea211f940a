//! The exporter interface and the exporters that ship with the core: in-memory
//! (for tests) and console.
//!
//! The collector calls [`SpanExporter::submit`] from its own thread with a
//! [`SpanBatch`] that refers to the records where the producing threads wrote
//! them: nothing is copied on the way. The batch's memory returns to the budget
//! when the batch is dropped, so an exporter that keeps batches (to retry them)
//! keeps them counted against the bound.
//!
//! Each batch comes with a [`Settlement`]: the batch's place in the tracer's
//! books. Synchronous exporters implement only [`SpanExporter::export`] and the
//! default `submit` settles with its result. Exporters that deliver in the
//! background (the OTLP exporter keeps several requests in flight) take the
//! settlement along and settle it when the backend answers; a settlement dropped
//! unsettled counts its spans as failed, so an exporter bug cannot lose spans
//! silently either.
//!
//! An exporter that can take a batch from any thread without blocking offers a
//! [`DirectSubmit`] ([`SpanExporter::direct`]): while the collector waits for a
//! CPU, application threads hand it their full chunks themselves (see
//! `ThreadWriter::grow`).

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Once};

use crate::buffer::chunk::ChunkRange;
use crate::clock::Anchor;
use crate::record::SpanRecord;
use crate::resource::Resource;

/// Finished spans handed to an exporter, with the resource they belong to.
///
/// The records' times are written as clock ticks by the threads that ended
/// them; the batch converts them to Unix nanoseconds the first time its spans
/// are read ([`SpanBatch::iter`], [`SpanBatch::slices`]), with the clock's
/// anchor taken when the batch was cut. Neither the span's thread nor the
/// collector pays for it: the conversion happens where an exporter reads each
/// record anyway. (Done by the collector for every record it picked up, it
/// added a cross-core read and write of every record's first line: nested
/// spans on 2 threads of 2 cores 16 % slower, measured.)
pub struct SpanBatch {
    ranges: Vec<ChunkRange>,
    len: usize,
    resource: Arc<Resource>,
    anchor: Anchor,
    settled: Once,
}

impl SpanBatch {
    /// A batch of `ranges`, whose tick readings convert with `anchor`. The
    /// ranges must be the only ones over their records (the collector's cut).
    pub(crate) fn new(ranges: Vec<ChunkRange>, resource: Arc<Resource>, anchor: Anchor) -> Self {
        let len = ranges.iter().map(ChunkRange::len).sum();
        SpanBatch { ranges, len, resource, anchor, settled: Once::new() }
    }

    /// Its ranges, for giving records a direct submitter refused back to the
    /// collector.
    pub(crate) fn into_ranges(self) -> Vec<ChunkRange> {
        self.ranges
    }

    /// Converts every record's times, once, before any is read.
    fn settle(&self) {
        self.settled.call_once(|| {
            for r in &self.ranges {
                // SAFETY: the batch holds the only ranges over its records
                // (`new`), and no reference into them exists before this
                // `Once` completes: every accessor calls `settle` first.
                unsafe { r.settle_times(self.anchor) };
            }
        });
    }
    /// Number of spans.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The spans, each thread's in the order it ended them — except records a
    /// direct submitter refused, which come back to the collector after later
    /// ones (see [`DirectSubmit`]).
    pub fn iter(&self) -> impl Iterator<Item = &SpanRecord> + '_ {
        self.settle();
        self.ranges.iter().flat_map(|r| r.records())
    }
    /// The spans as contiguous slices (for encoders that work slice by slice).
    pub fn slices(&self) -> impl Iterator<Item = &[SpanRecord]> + '_ {
        self.settle();
        self.ranges.iter().map(|r| r.records())
    }
    /// The resource of the process that produced them.
    pub fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }
}

impl std::fmt::Debug for SpanBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBatch").field("len", &self.len).finish()
    }
}

/// Why an export did not (fully) succeed. The collector counts the affected spans
/// under the matching [`crate::stats::Dropped`] reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The whole batch failed (after whatever retries the exporter does).
    #[error("export failed: {0}")]
    Failed(String),
    /// The backend accepted the batch but rejected some spans (OTLP partial
    /// success); those are counted as rejected, the rest as exported.
    #[error("{rejected} spans rejected by the backend: {message}")]
    PartiallyRejected {
        /// How many spans were rejected.
        rejected: u64,
        /// The backend's explanation.
        message: String,
    },
    /// The export did not finish in time.
    #[error("export timed out")]
    Timeout,
}

/// The result of an export call.
pub type ExportResult = Result<(), ExportError>;

/// A batch's entry in the tracer's books, to be closed with the export's outcome.
///
/// Until it is settled the batch's spans count as `buffered`; [`Settlement::settle`]
/// moves them to `exported`, `dropped.export_rejected` or `dropped.export_failed`.
/// Dropping it unsettled counts them as failed.
#[must_use = "an unsettled settlement counts its spans as failed"]
pub struct Settlement {
    tracer: Option<&'static crate::tracer::TracerShared>,
    spans: u64,
}

impl Settlement {
    pub(crate) fn new(tracer: &'static crate::tracer::TracerShared, spans: u64) -> Self {
        Settlement { tracer: Some(tracer), spans }
    }

    /// A settlement that counts nowhere, for exercising an exporter outside a
    /// tracer (unit tests, benchmarks).
    pub fn detached(spans: u64) -> Self {
        Settlement { tracer: None, spans }
    }

    /// How many spans it accounts for.
    pub fn spans(&self) -> u64 {
        self.spans
    }

    /// Splits off a settlement for the first `n` spans (at most all of them), for
    /// an exporter that sends one batch as several requests.
    pub fn split_off(&mut self, n: u64) -> Settlement {
        let n = n.min(self.spans);
        self.spans -= n;
        Settlement { tracer: self.tracer, spans: n }
    }

    /// Records the outcome of exporting the spans.
    pub fn settle(mut self, result: &ExportResult) {
        self.record(result);
    }

    /// Closes the settlement without counting anything: its spans went back
    /// to the collector, which settles them again.
    pub(crate) fn cancel(mut self) {
        self.spans = 0;
    }

    fn record(&mut self, result: &ExportResult) {
        let n = std::mem::take(&mut self.spans);
        let Some(tracer) = self.tracer else { return };
        if n == 0 || tracer.final_stats.get().is_some() {
            return; // nothing to count, or shutdown timed out and froze the books
        }
        let out = &tracer.out;
        match result {
            Ok(()) => {
                out.exported.fetch_add(n, Ordering::Relaxed);
            }
            Err(ExportError::PartiallyRejected { rejected, .. }) => {
                let rejected = (*rejected).min(n);
                out.export_rejected.fetch_add(rejected, Ordering::Relaxed);
                out.exported.fetch_add(n - rejected, Ordering::Relaxed);
            }
            Err(_) => {
                out.export_failed.fetch_add(n, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Settlement {
    fn drop(&mut self) {
        if self.spans > 0 {
            self.record(&Err(ExportError::Failed("the exporter dropped the batch unsettled".into())));
        }
    }
}

impl std::fmt::Debug for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settlement").field("spans", &self.spans).finish()
    }
}

/// Receives batches of finished spans on the collector thread.
pub trait SpanExporter: Send + 'static {
    /// Exports one batch. Blocking is allowed: the application's threads never wait
    /// on it; while it blocks, spans accumulate up to the memory bound and the
    /// adaptive stage sheds new traces.
    fn export(&mut self, batch: SpanBatch) -> ExportResult;
    /// Takes one batch and its settlement. The default exports it synchronously and
    /// settles with the result; asynchronous exporters override this, keep both,
    /// and settle when the outcome is known. Blocking here is backpressure: while
    /// it blocks, spans accumulate up to the memory bound.
    fn submit(&mut self, batch: SpanBatch, settlement: Settlement) {
        let result = self.export(batch);
        settlement.settle(&result);
    }
    /// Delivers anything the exporter itself buffers.
    fn force_flush(&mut self) -> ExportResult {
        Ok(())
    }
    /// Called once, last, at tracer shutdown.
    fn shutdown(&mut self) -> ExportResult {
        Ok(())
    }
    /// A handle through which application threads may hand batches to this
    /// exporter directly, or `None` (the default): only the collector calls
    /// it. Asked once, when the tracer is installed.
    fn direct(&mut self) -> Option<Arc<dyn DirectSubmit>> {
        None
    }
}

/// Takes batches from any thread, without blocking: an exporter's offer
/// ([`SpanExporter::direct`]) to application threads.
///
/// When more threads are busy than there are CPUs, the collector thread can
/// wait milliseconds for its turn, and at tens of millions of spans per second
/// each millisecond buffers megabytes — enough for the adaptive stage to shed
/// traces although the exporter is idle. While the collector is late, a thread
/// that fills a chunk then hands it here itself, on its own CPU time (a few
/// hundred nanoseconds per chunk of up to 256 spans with an exporter that only
/// queues or counts), and the chunk's memory is free again as soon as the
/// exporter lets go of the batch.
///
/// The call is made on an application thread that is ending a span, so it must
/// be quick and must not block: an exporter that cannot take the batch now
/// returns it, and the collector exports it later as usual. Spans the exporter
/// creates here are recorded normally (and may be handed over in turn: the
/// call can re-enter). A panic is caught and counts the batch as failed. No
/// call begins after a flush or the tracer's shutdown has begun until it is
/// done (shutdown: ever), and every call made before is over when either
/// reaches the exporter.
pub trait DirectSubmit: Send + Sync + 'static {
    /// Takes `batch` and its settlement (to be settled as in
    /// [`SpanExporter::submit`]), or gives both back untouched.
    #[allow(clippy::result_large_err)]
    fn try_submit(&self, batch: SpanBatch, settlement: Settlement) -> Result<(), (SpanBatch, Settlement)>;
}

impl<E: SpanExporter + ?Sized> SpanExporter for Box<E> {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        (**self).export(batch)
    }
    fn submit(&mut self, batch: SpanBatch, settlement: Settlement) {
        (**self).submit(batch, settlement)
    }
    fn force_flush(&mut self) -> ExportResult {
        (**self).force_flush()
    }
    fn shutdown(&mut self) -> ExportResult {
        (**self).shutdown()
    }
    fn direct(&mut self) -> Option<Arc<dyn DirectSubmit>> {
        (**self).direct()
    }
}

/// Keeps copies of every exported span in memory; for tests.
#[derive(Clone, Debug, Default)]
pub struct InMemoryExporter {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    resource: Arc<Mutex<Option<Arc<Resource>>>>,
}

impl InMemoryExporter {
    /// A new, empty exporter. Clone it to keep a handle for reading.
    pub fn new() -> Self {
        Self::default()
    }
    /// Every span exported so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
    /// The number of spans exported so far.
    pub fn len(&self) -> usize {
        self.spans.lock().map(|s| s.len()).unwrap_or_default()
    }
    /// Whether nothing was exported yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The resource of the last batch.
    pub fn resource(&self) -> Option<Arc<Resource>> {
        self.resource.lock().ok().and_then(|r| r.clone())
    }
}

impl SpanExporter for InMemoryExporter {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        let mut spans = self.spans.lock().map_err(|_| ExportError::Failed("poisoned".into()))?;
        spans.extend(batch.iter().cloned());
        if let Ok(mut r) = self.resource.lock() {
            *r = Some(batch.resource().clone());
        }
        Ok(())
    }
    fn direct(&mut self) -> Option<Arc<dyn DirectSubmit>> {
        Some(Arc::new(self.clone()))
    }
}

impl DirectSubmit for InMemoryExporter {
    /// Takes the batch unless another thread is storing one (never waits).
    fn try_submit(&self, batch: SpanBatch, settlement: Settlement) -> Result<(), (SpanBatch, Settlement)> {
        let Ok(mut spans) = self.spans.try_lock() else {
            return Err((batch, settlement));
        };
        spans.extend(batch.iter().cloned());
        drop(spans);
        if let Ok(mut r) = self.resource.try_lock() {
            *r = Some(batch.resource().clone());
        }
        settlement.settle(&Ok(()));
        Ok(())
    }
}

/// Writes one line per span to a writer (stdout by default).
pub struct ConsoleExporter<W: Write + Send + 'static = std::io::Stdout> {
    out: W,
}

impl ConsoleExporter {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        ConsoleExporter { out: std::io::stdout() }
    }
}

impl<W: Write + Send + 'static> ConsoleExporter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        ConsoleExporter { out }
    }
}

impl<W: Write + Send + 'static> SpanExporter for ConsoleExporter<W> {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        let service = batch.resource().service_name().unwrap_or("").to_owned();
        for s in batch.iter() {
            let mut line = format!(
                "{service} trace={} span={} parent={} name={:?} kind={:?} dur={}ns status={:?}",
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.name,
                s.kind,
                s.duration_nanos(),
                s.status
            );
            for kv in &s.attributes {
                line.push_str(&format!(" {}={}", kv.key, kv.value));
            }
            writeln!(self.out, "{line}").map_err(|e| ExportError::Failed(e.to_string()))?;
        }
        Ok(())
    }
    fn force_flush(&mut self) -> ExportResult {
        self.out.flush().map_err(|e| ExportError::Failed(e.to_string()))
    }
}

impl<W: Write + Send + 'static> std::fmt::Debug for ConsoleExporter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleExporter").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::budget::Budget;
    use crate::buffer::chunk::{Chunk, SLOT_BYTES};

    /// A batch of `n` records, over a chunk built from records.
    fn batch(n: usize) -> SpanBatch {
        let budget: &'static Budget = Box::leak(Box::new(Budget::new(1 << 20)));
        assert!(budget.try_charge(n * SLOT_BYTES));
        let records = (0..n).map(|_| crate::testing::record("r")).collect();
        let chunk = Chunk::from_records(records, n * SLOT_BYTES, budget);
        let range = chunk.claim(n).expect("fresh records");
        SpanBatch::new(vec![range], Arc::new(Resource::empty()), crate::clock::Clock::new().anchor())
    }

    /// The in-memory exporter takes batches from any thread, and gives one
    /// back rather than wait while another thread is storing.
    #[test]
    fn the_in_memory_exporter_takes_direct_batches_without_waiting() {
        let mut exporter = InMemoryExporter::new();
        let direct = exporter.direct().expect("offers a direct submitter");
        let held = exporter.spans.lock().unwrap();
        let (b, s) = direct.try_submit(batch(3), Settlement::detached(3)).expect_err("refused while locked");
        assert_eq!((b.len(), s.spans()), (3, 3), "given back untouched");
        drop(held);
        assert!(direct.try_submit(b, s).is_ok());
        assert_eq!(exporter.len(), 3);
        assert!(exporter.resource().is_some());
    }
}
