//! [`OtlpExporter`]: encodes batches on the collector thread and delivers them
//! from its own thread and single-threaded runtime, several requests at once,
//! retrying as the OTLP specification says.
//!
//! The collector hands each batch over with its [`Settlement`]; the exporter
//! keeps both until the backend has answered, so spans being sent or waiting
//! for a retry stay counted against the tracer's memory bound (and the adaptive
//! stage sheds new traces when a backend is down), and each request's outcome is
//! counted exactly once: exported, rejected (partial success) or failed.
//!
//! Backpressure: at most `max_in_flight` requests are in flight and one more
//! waits in the hand-over queue; beyond that `submit` blocks the collector
//! thread (never an application thread), and spans wait in the bounded buffers.
//! Running on its own thread means export works from synchronous programs and
//! cannot deadlock on a busy or blocked application runtime.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, Notify, Semaphore};
use weft::otlp_encode::encode_export_request;
use weft::{ExportError, ExportResult, Resource, Settlement, SpanBatch, SpanExporter, SpanRecord};

use crate::config::{Compression, OtlpExporterBuilder, Protocol};
use crate::json::encode_export_request_json;
use crate::retry::{RetryPolicy, Verdict};
use crate::transport::Transport;
use crate::BuildError;

/// Sends spans to an OTLP endpoint over gRPC or HTTP. Build it with
/// [`OtlpExporter::builder`] or [`OtlpExporter::from_env`] and give it to
/// [`weft::TracerBuilder::exporter`].
pub struct OtlpExporter {
    tx: Option<mpsc::Sender<Job>>,
    shared: Arc<Shared>,
    protocol: Protocol,
    compression: Compression,
    max_request_bytes: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A handle on a running exporter's counters, usable after the exporter was
/// moved into the tracer.
#[derive(Clone, Debug)]
pub struct OtlpHandle {
    shared: Arc<Shared>,
}

impl OtlpHandle {
    /// The exporter's counters now.
    pub fn stats(&self) -> ExporterStats {
        self.shared.stats()
    }
}

/// What the exporter did, request by request. Span totals match the tracer's
/// `exported`, `dropped.export_rejected` and `dropped.export_failed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExporterStats {
    /// Requests sent, retries included.
    pub attempts: u64,
    /// Retries (attempts after a retryable answer).
    pub retries: u64,
    /// Requests the backend accepted (fully or partially).
    pub accepted_requests: u64,
    /// Requests accepted with some spans rejected (OTLP partial success).
    pub partially_rejected_requests: u64,
    /// Requests given up on (permanent error, retry time exhausted, shutdown).
    pub failed_requests: u64,
    /// Spans the backend accepted.
    pub exported_spans: u64,
    /// Spans the backend rejected.
    pub rejected_spans: u64,
    /// Spans in requests given up on.
    pub failed_spans: u64,
    /// Request body bytes sent (after compression), retries included.
    pub bytes_sent: u64,
    /// Requests being sent or waiting to retry now.
    pub in_flight: u64,
    /// The most recent failure or retry reason.
    pub last_error: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    attempts: AtomicU64,
    retries: AtomicU64,
    accepted_requests: AtomicU64,
    partially_rejected_requests: AtomicU64,
    failed_requests: AtomicU64,
    exported_spans: AtomicU64,
    rejected_spans: AtomicU64,
    failed_spans: AtomicU64,
    bytes_sent: AtomicU64,
    in_flight: AtomicU64,
    last_error: Mutex<Option<String>>,
    last_log: Mutex<Option<Instant>>,
    log_failures: bool,
    /// Set at shutdown: retries stop, requests already on the wire finish.
    stopping: AtomicBool,
    stop: Notify,
}

impl Shared {
    fn stats(&self) -> ExporterStats {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ExporterStats {
            attempts: l(&self.attempts),
            retries: l(&self.retries),
            accepted_requests: l(&self.accepted_requests),
            partially_rejected_requests: l(&self.partially_rejected_requests),
            failed_requests: l(&self.failed_requests),
            exported_spans: l(&self.exported_spans),
            rejected_spans: l(&self.rejected_spans),
            failed_spans: l(&self.failed_spans),
            bytes_sent: l(&self.bytes_sent),
            in_flight: l(&self.in_flight),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }

    fn note_error(&self, why: &str, give_up: Option<u64>) {
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(why.to_owned());
        }
        let Some(spans) = give_up else { return };
        if !self.log_failures {
            return;
        }
        // At most one line per second: a backend that is down fails every batch.
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *last = Some(Instant::now());
            eprintln!(
                "weft-otlp: gave up on a request of {spans} spans ({why}); {} spans failed so far, counted in the tracer's stats",
                self.failed_spans.load(Ordering::Relaxed)
            );
        }
    }
}

enum Job {
    Export(Request),
    Flush(std::sync::mpsc::SyncSender<()>),
}

struct Request {
    body: Bytes,
    settlement: Settlement,
    /// Keeps the batch's buffers (and their charge against the memory bound)
    /// until the outcome is known.
    _batch: Arc<SpanBatch>,
}

impl OtlpExporter {
    /// A builder with the defaults (HTTP/protobuf to `http://localhost:4318`).
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::default()
    }

    /// An exporter configured by the `OTEL_EXPORTER_OTLP_*` variables of this
    /// process (invalid values are warned about on stderr and replaced by defaults).
    pub fn from_env() -> Result<Self, BuildError> {
        let env = weft::EnvConfig::from_env();
        for w in &env.warnings {
            eprintln!("weft: {w}");
        }
        OtlpExporterBuilder::from_env(&env.otlp).build()
    }

    /// A handle on the counters.
    pub fn handle(&self) -> OtlpHandle {
        OtlpHandle { shared: self.shared.clone() }
    }

    pub(crate) fn start(cfg: OtlpExporterBuilder) -> Result<Self, BuildError> {
        let shared = Arc::new(Shared { log_failures: cfg.log_failures, ..Shared::default() });
        let (tx, rx) = mpsc::channel::<Job>(1);
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), BuildError>>(1);
        let endpoint = cfg.resolved_endpoint();
        let worker = Worker {
            shared: shared.clone(),
            policy: cfg.retry,
            timeout: cfg.timeout,
            max_in_flight: cfg.max_in_flight,
        };
        let (protocol, headers, compression, timeout) =
            (cfg.protocol, cfg.headers.clone(), cfg.compression, cfg.timeout);
        let thread = std::thread::Builder::new()
            .name("weft-otlp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(BuildError::Runtime(e.to_string())));
                        return;
                    }
                };
                rt.block_on(async move {
                    let transport = match Transport::new(&endpoint, protocol, &headers, compression, timeout) {
                        Ok(t) => t,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    worker.run(transport, rx).await;
                });
            })
            .map_err(|e| BuildError::Runtime(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err(BuildError::Runtime("the exporter thread ended at start".into())),
        }
        Ok(OtlpExporter {
            tx: Some(tx),
            shared,
            protocol: cfg.protocol,
            compression: cfg.compression,
            max_request_bytes: cfg.max_request_bytes,
            thread: Some(thread),
        })
    }

    fn encode(&self, resource: &Resource, spans: &[&SpanRecord]) -> Vec<u8> {
        match self.protocol {
            Protocol::HttpJson => encode_export_request_json(resource, spans.iter().copied()),
            _ => encode_export_request(resource, spans.iter().copied()),
        }
    }

    /// Cuts the batch into request bodies no larger than `max_request_bytes`
    /// (unless a single span is larger), each with the number of spans it holds.
    fn bodies(&self, batch: &SpanBatch) -> Vec<(Vec<u8>, usize)> {
        let spans: Vec<&SpanRecord> = batch.iter().collect();
        let mut out = Vec::new();
        let mut todo = vec![(0, spans.len())];
        while let Some((from, to)) = todo.pop() {
            let body = self.encode(batch.resource(), &spans[from..to]);
            if body.len() > self.max_request_bytes && to - from > 1 {
                let mid = from + (to - from) / 2;
                // Pushed in reverse so requests go out in the batch's order.
                todo.push((mid, to));
                todo.push((from, mid));
            } else {
                out.push((body, to - from));
            }
        }
        out
    }

    fn compress(&self, body: Vec<u8>) -> Bytes {
        // gRPC compresses inside tonic (it sets the message's compressed flag).
        if self.compression == Compression::Gzip && self.protocol != Protocol::Grpc {
            let mut enc =
                flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::fast());
            if enc.write_all(&body).is_ok() {
                if let Ok(z) = enc.finish() {
                    return Bytes::from(z);
                }
            }
        }
        Bytes::from(body)
    }

    fn send_job(&self, job: Job) -> Result<(), Job> {
        match &self.tx {
            // The collector is a plain thread, so blocking here is allowed; it is
            // the backpressure that keeps spans in the bounded buffers.
            Some(tx) => tx.blocking_send(job).map_err(|e| e.0),
            None => Err(job),
        }
    }

    fn wait_idle(&self) -> ExportResult {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        if self.send_job(Job::Flush(done_tx)).is_err() {
            return Err(ExportError::Failed("the exporter is shut down".into()));
        }
        done_rx.recv().map_err(|_| ExportError::Failed("the exporter thread ended".into()))
    }
}

impl SpanExporter for OtlpExporter {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        // Only reached when called directly, not through the collector: deliver
        // and wait for the outcome.
        let n = batch.len() as u64;
        let before = self.shared.stats();
        self.submit(batch, Settlement::detached(n));
        self.wait_idle()?;
        let after = self.shared.stats();
        let failed = after.failed_spans - before.failed_spans;
        let rejected = after.rejected_spans - before.rejected_spans;
        if failed > 0 {
            Err(ExportError::Failed(after.last_error.unwrap_or_default()))
        } else if rejected > 0 {
            Err(ExportError::PartiallyRejected { rejected, message: after.last_error.unwrap_or_default() })
        } else {
            Ok(())
        }
    }

    fn submit(&mut self, batch: SpanBatch, mut settlement: Settlement) {
        let batch = Arc::new(batch);
        for (body, spans) in self.bodies(&batch) {
            let part = settlement.split_off(spans as u64);
            let req = Request { body: self.compress(body), settlement: part, _batch: batch.clone() };
            if let Err(Job::Export(req)) = self.send_job(Job::Export(req)) {
                let why = "the exporter is shut down".to_owned();
                self.shared.failed_requests.fetch_add(1, Ordering::Relaxed);
                self.shared.failed_spans.fetch_add(req.settlement.spans(), Ordering::Relaxed);
                req.settlement.settle(&Err(ExportError::Failed(why)));
            }
        }
    }

    fn force_flush(&mut self) -> ExportResult {
        self.wait_idle()
    }

    fn shutdown(&mut self) -> ExportResult {
        // Deliver what is queued and in flight, without starting new retries.
        let result = self.wait_idle_then_stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        result
    }
}

impl OtlpExporter {
    fn wait_idle_then_stop(&mut self) -> ExportResult {
        self.shared.stopping.store(true, Ordering::Release);
        self.shared.stop.notify_waiters();
        let r = self.wait_idle();
        self.tx = None; // the worker ends when the queue closes
        r
    }
}

impl Drop for OtlpExporter {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.wait_idle_then_stop();
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

impl std::fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("protocol", &self.protocol)
            .field("compression", &self.compression)
            .field("stats", &self.shared.stats())
            .finish_non_exhaustive()
    }
}

/// The exporter thread's side.
struct Worker {
    shared: Arc<Shared>,
    policy: RetryPolicy,
    timeout: Duration,
    max_in_flight: usize,
}

impl Worker {
    async fn run(self, transport: Transport, mut rx: mpsc::Receiver<Job>) {
        let slots = Arc::new(Semaphore::new(self.max_in_flight));
        let all = u32::try_from(self.max_in_flight).unwrap_or(u32::MAX);
        let worker = Arc::new(self);
        while let Some(job) = rx.recv().await {
            match job {
                Job::Export(req) => {
                    let Ok(permit) = slots.clone().acquire_owned().await else { break };
                    let (w, t) = (worker.clone(), transport.clone());
                    tokio::spawn(async move {
                        w.deliver(&t, req).await;
                        drop(permit);
                    });
                }
                Job::Flush(done) => {
                    // Every slot free means nothing is in flight.
                    if let Ok(p) = slots.acquire_many(all).await {
                        drop(p);
                    }
                    let _ = done.send(());
                }
            }
        }
        let _ = slots.acquire_many(all).await;
    }

    async fn deliver(&self, transport: &Transport, req: Request) {
        let shared = &*self.shared;
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let spans = req.settlement.spans();
        let started = Instant::now();
        let mut rng = Jitter::new();
        let mut retry = 0u32;
        let result = loop {
            shared.attempts.fetch_add(1, Ordering::Relaxed);
            shared.bytes_sent.fetch_add(req.body.len() as u64, Ordering::Relaxed);
            match transport.send(req.body.clone(), self.timeout).await {
                Verdict::Accepted { rejected, message } => {
                    let rejected = rejected.min(spans);
                    shared.accepted_requests.fetch_add(1, Ordering::Relaxed);
                    shared.exported_spans.fetch_add(spans - rejected, Ordering::Relaxed);
                    if rejected > 0 || !message.is_empty() {
                        shared.partially_rejected_requests.fetch_add(u64::from(rejected > 0), Ordering::Relaxed);
                        shared.rejected_spans.fetch_add(rejected, Ordering::Relaxed);
                        shared.note_error(&format!("partial success: {rejected} rejected: {message}"), None);
                    }
                    if rejected > 0 {
                        break Err(ExportError::PartiallyRejected { rejected, message });
                    }
                    break Ok(());
                }
                Verdict::Fail(why) => break Err(self.give_up(why, spans)),
                Verdict::Retry { after, why } => {
                    let delay = after.unwrap_or_else(|| self.policy.backoff(retry, rng.next_unit()));
                    if shared.stopping.load(Ordering::Acquire) {
                        break Err(self.give_up(format!("{why}; not retried: shutting down"), spans));
                    }
                    if started.elapsed() + delay > self.policy.max_elapsed {
                        let why = format!("{why}; retries exhausted after {:?}", started.elapsed());
                        break Err(self.give_up(why, spans));
                    }
                    shared.note_error(&why, None);
                    shared.retries.fetch_add(1, Ordering::Relaxed);
                    retry += 1;
                    let stop = shared.stop.notified();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stop => {
                            break Err(self.give_up(format!("{why}; not retried: shutting down"), spans));
                        }
                    }
                }
            }
        };
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        req.settlement.settle(&result);
    }

    fn give_up(&self, why: String, spans: u64) -> ExportError {
        self.shared.failed_requests.fetch_add(1, Ordering::Relaxed);
        self.shared.failed_spans.fetch_add(spans, Ordering::Relaxed);
        self.shared.note_error(&why, Some(spans));
        ExportError::Failed(why)
    }
}

/// A small xorshift generator for backoff jitter (no need for a crypto RNG).
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(Instant::now().elapsed().as_nanos() as u64);
        Jitter(h.finish() | 1)
    }
    fn next_unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}
