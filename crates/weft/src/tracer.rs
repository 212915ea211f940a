//! Installing a tracer: configuration, the shared state every span refers to, the
//! global "current tracer", and the [`Tracer`] handle with `stats`,
//! `force_flush` and `shutdown`.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::buffer::budget::Budget;
use crate::buffer::chunk::ChunkRange;
use crate::buffer::thread_buffer::{ThreadBuffer, ThreadCounters};
use crate::collector;
use crate::error::InitError;
use crate::export::{DirectSubmit, Settlement, SpanBatch, SpanExporter};
use crate::record::SpanRecord;
use crate::resource::Resource;
use crate::sampler::adaptive::AdaptiveConfig;
use crate::sampler::{AlwaysOn, DropReason, ParentBased, Sampler};
use crate::stats::{Dropped, SampledOutTraces, Stats};
use crate::value::{Key, Value};

/// Limits on what one span may carry (OpenTelemetry's span limits).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    /// Most attributes per span (default 128).
    pub max_attributes: u32,
    /// Most events per span (default 128).
    pub max_events: u32,
    /// Most links per span (default 128).
    pub max_links: u32,
    /// Most attributes per event (default 128).
    pub max_attributes_per_event: u32,
    /// Most attributes per link (default 128).
    pub max_attributes_per_link: u32,
    /// Longest string attribute value in bytes (default: unlimited).
    pub max_attribute_value_len: Option<usize>,
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            max_attributes: 128,
            max_events: 128,
            max_links: 128,
            max_attributes_per_event: 128,
            max_attributes_per_link: 128,
            max_attribute_value_len: None,
        }
    }
}

/// Default memory bound for all buffered spans.
pub const DEFAULT_MEMORY_LIMIT: usize = 32 << 20;

/// Configures and installs a tracer. Obtain one with [`crate::builder`].
pub struct TracerBuilder {
    sampler: Box<dyn Sampler>,
    exporter: Option<Box<dyn SpanExporter>>,
    memory_limit: usize,
    max_batch_spans: usize,
    schedule_delay: Duration,
    adaptive: Option<AdaptiveConfig>,
    limits: SpanLimits,
    resource: Resource,
    log_at_shutdown: bool,
}

impl Default for TracerBuilder {
    fn default() -> Self {
        TracerBuilder {
            sampler: Box::new(ParentBased::new(AlwaysOn)),
            exporter: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            max_batch_spans: 2048,
            schedule_delay: Duration::from_millis(200),
            adaptive: Some(AdaptiveConfig::default()),
            limits: SpanLimits::default(),
            resource: Resource::default_for_process(),
            log_at_shutdown: true,
        }
    }
}

impl TracerBuilder {
    /// The sampler (default: `ParentBased(AlwaysOn)`).
    pub fn sampler(mut self, s: impl Sampler) -> Self {
        self.sampler = Box::new(s);
        self
    }
    /// The exporter (required).
    pub fn exporter(mut self, e: impl SpanExporter) -> Self {
        self.exporter = Some(Box::new(e));
        self
    }
    /// Bound in bytes on all buffered span memory (default 32 MiB).
    pub fn memory_limit_bytes(mut self, n: usize) -> Self {
        self.memory_limit = n;
        self
    }
    /// Most spans per export call (default 2048).
    pub fn max_batch_spans(mut self, n: usize) -> Self {
        self.max_batch_spans = n;
        self
    }
    /// Longest a finished span waits before it is exported in a partial batch
    /// (default 200 ms).
    pub fn schedule_delay(mut self, d: Duration) -> Self {
        self.schedule_delay = d;
        self
    }
    /// The adaptive stage's marks; `None` turns it off (then a full buffer drops
    /// spans, counted as `memory_bound`).
    pub fn adaptive(mut self, a: Option<AdaptiveConfig>) -> Self {
        self.adaptive = a;
        self
    }
    /// Span limits.
    pub fn span_limits(mut self, l: SpanLimits) -> Self {
        self.limits = l;
        self
    }
    /// Sets `service.name`.
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.resource.set("service.name", name.into());
        self
    }
    /// Sets a resource attribute.
    pub fn resource_attribute(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Self {
        self.resource.set(key, value);
        self
    }
    /// Applies the standard `OTEL_*` variables of this process (see [`crate::env`]):
    /// service name and resource, sampler, span limits, batching, memory bound,
    /// `OTEL_SDK_DISABLED`. Invalid values are reported on stderr, naming the
    /// variable, and the default is kept.
    pub fn with_env(self) -> Self {
        self.with_env_config(crate::env::EnvConfig::from_env())
    }

    /// Applies an already parsed [`crate::env::EnvConfig`]; its warnings go to stderr.
    pub fn with_env_config(mut self, env: crate::env::EnvConfig) -> Self {
        for w in &env.warnings {
            eprintln!("weft: {w}");
        }
        for kv in env.resource {
            self.resource.set(kv.key, kv.value);
        }
        if let Some(name) = env.service_name {
            self.resource.set("service.name", name);
        }
        if env.disabled {
            self.sampler = Box::new(crate::sampler::AlwaysOff);
        } else if let Some(s) = env.sampler {
            self.sampler = s;
        }
        self.limits = env.span_limits;
        if let Some(d) = env.schedule_delay {
            self.schedule_delay = d;
        }
        if let Some(n) = env.max_export_batch_size {
            self.max_batch_spans = n;
        }
        if let Some(n) = env.memory_limit_bytes {
            self.memory_limit = n;
        }
        self
    }

    /// Whether shutdown writes the final accounting to stderr (default true).
    pub fn log_at_shutdown(mut self, on: bool) -> Self {
        self.log_at_shutdown = on;
        self
    }

    /// Starts the collector and makes this the tracer new root spans use.
    pub fn install(self) -> Result<Tracer, InitError> {
        let mut exporter = self.exporter.ok_or_else(|| InitError::InvalidConfig("no exporter configured".into()))?;
        if self.max_batch_spans == 0 {
            return Err(InitError::InvalidConfig("max_batch_spans must be at least 1".into()));
        }
        if let Some(a) = &self.adaptive {
            if !a.is_valid() {
                return Err(InitError::InvalidConfig(format!("adaptive marks out of order: {a:?}")));
            }
        }
        if self.memory_limit < 64 * 1024 {
            return Err(InitError::InvalidConfig("memory limit must be at least 64 KiB".into()));
        }
        let _installing = INSTALL_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let prev = GLOBAL.load(Ordering::Acquire);
        // SAFETY: GLOBAL only ever holds null or a leaked `&'static TracerShared`.
        if let Some(prev) = unsafe { prev.as_ref() } {
            if !prev.shut_down.load(Ordering::Acquire) {
                return Err(InitError::AlreadyInstalled);
            }
        }
        let follows_local = self.sampler.follows_local_parent();
        let roots_always_sampled = self.sampler.always_samples_roots();
        let roots_never_sampled = self.sampler.never_samples_roots();
        let adaptive_high_bytes =
            self.adaptive.map_or(usize::MAX, |a| (a.high_water * self.memory_limit as f64) as usize);
        // Leaked on purpose: spans hold `&'static` references to it, so it must
        // outlive every span, including ones that end after shutdown.
        let clock = crate::clock::Clock::new();
        let starved_after_ticks = clock.ticks_for(Duration::from_micros(250));
        let direct = exporter.direct();
        let shared: &'static TracerShared = Box::leak(Box::new(TracerShared {
            budget: Budget::new(self.memory_limit),
            clock,
            sampler: self.sampler,
            follows_local,
            roots_always_sampled,
            roots_never_sampled,
            adaptive_high_bytes,
            adaptive: self.adaptive,
            limits: self.limits,
            resource: Arc::new(self.resource),
            registry: Mutex::new(Registry::default()),
            writing_threads: AtomicUsize::new(0),
            busy_threads: AtomicUsize::new(0),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            orphans: Mutex::new(Vec::new()),
            direct,
            handoffs_in_flight: AtomicUsize::new(0),
            handoffs_paused: AtomicUsize::new(0),
            handed_back: Mutex::new(Some(Vec::new())),
            orphan_counters: OrphanCounters::default(),
            out: CollectorCounters::default(),
            control: Mutex::new(Control::default()),
            control_cv: Condvar::new(),
            collector_thread: OnceLock::new(),
            collector_nap: std::sync::atomic::AtomicU8::new(NAP_NONE),
            collector_cpu: AtomicUsize::new(usize::MAX),
            collector_heartbeat: crate::buffer::budget::CachePadded(AtomicU64::new(0)),
            starved_after_ticks,
            shut_down: AtomicBool::new(false),
            final_stats: OnceLock::new(),
            log_at_shutdown: self.log_at_shutdown,
        }));
        let cfg = collector::Config { max_batch_spans: self.max_batch_spans, schedule_delay: self.schedule_delay };
        let handle = std::thread::Builder::new()
            .name("weft-collector".into())
            .spawn(move || collector::run(shared, exporter, cfg))?;
        let _ = shared.collector_thread.set(handle.thread().clone());
        GLOBAL.store(shared as *const TracerShared as *mut TracerShared, Ordering::Release);
        Ok(Tracer { shared, thread: Mutex::new(Some(handle)) })
    }
}

/// The collector is running or in its shortest nap.
pub(crate) const NAP_NONE: u8 = 0;
/// The collector is in its quiet nap (1 or 20 ms, see `collector::quiet_nap`).
pub(crate) const NAP_QUIET: u8 = 1;
/// The collector is idle (nothing buffered) in a 50 ms sleep.
pub(crate) const NAP_IDLE: u8 = 2;

static GLOBAL: AtomicPtr<TracerShared> = AtomicPtr::new(std::ptr::null_mut());
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// The installed tracer, if any and not shut down.
#[inline]
pub(crate) fn global() -> Option<&'static TracerShared> {
    // SAFETY: GLOBAL only ever holds null or a leaked `&'static TracerShared`.
    unsafe { GLOBAL.load(Ordering::Acquire).as_ref() }
}

#[derive(Default)]
pub(crate) struct Registry {
    pub buffers: Vec<Arc<ThreadBuffer>>,
    /// Counters of buffers whose threads ended and were fully drained.
    pub retired: RetiredCounters,
}

#[derive(Default, Clone)]
pub(crate) struct RetiredCounters {
    pub started: u64,
    pub sampled_out_spans: u64,
    pub sampled_out_traces: [u64; DropReason::COUNT],
    pub recorded: u64,
    pub dropped_memory: u64,
}

impl RetiredCounters {
    pub(crate) fn add(&mut self, c: &ThreadCounters) {
        self.started += c.started.get();
        self.sampled_out_spans += c.sampled_out_spans.get();
        for (a, b) in self.sampled_out_traces.iter_mut().zip(&c.sampled_out_traces) {
            *a += b.get();
        }
        self.recorded += c.recorded.get();
        self.dropped_memory += c.dropped_memory.get();
    }
}

/// Counters for spans ended where the thread's state was already destroyed
/// (each one recorded or dropped for memory: see `stats`).
#[derive(Default)]
pub(crate) struct OrphanCounters {
    pub recorded: AtomicU64,
    pub dropped_memory: AtomicU64,
}

/// Export outcomes and calls, written by settlements and whichever thread
/// exports (the collector, or an application thread handing a chunk to the
/// exporter directly).
#[derive(Default)]
pub(crate) struct CollectorCounters {
    pub exported: AtomicU64,
    pub export_failed: AtomicU64,
    pub export_rejected: AtomicU64,
    pub batches: AtomicU64,
    /// Of `batches`, those application threads handed over directly.
    pub direct_batches: AtomicU64,
}

#[derive(Default)]
pub(crate) struct Control {
    pub flush_requested: u64,
    pub flush_completed: u64,
    pub shutdown_requested: bool,
    pub shutdown_completed: bool,
}

/// The state shared by a tracer's spans, threads and collector.
pub(crate) struct TracerShared {
    pub budget: Budget,
    pub clock: crate::clock::Clock,
    pub sampler: Box<dyn Sampler>,
    pub follows_local: bool,
    /// The sampler samples every root: new traces skip the sampler call.
    pub roots_always_sampled: bool,
    /// The sampler drops every root: new traces skip the sampler call.
    pub roots_never_sampled: bool,
    /// Usage above which the adaptive stage starts shedding (usize::MAX if off).
    pub adaptive_high_bytes: usize,
    pub adaptive: Option<AdaptiveConfig>,
    pub limits: SpanLimits,
    pub resource: Arc<Resource>,
    pub registry: Mutex<Registry>,
    /// Threads with a live buffer (sizes their chunks); kept by the registry.
    pub writing_threads: AtomicUsize,
    /// Threads that published spans lately, as the collector last counted
    /// (`collector::BUSY_WINDOW`): whether the collector has a CPU to spare
    /// depends on these, not on threads that only hold a buffer.
    pub busy_threads: AtomicUsize,
    /// CPUs this process may run on (at start).
    pub cpus: usize,
    pub orphans: Mutex<Vec<SpanRecord>>,
    /// The exporter's offer to take batches from any thread
    /// ([`crate::SpanExporter::direct`]).
    pub direct: Option<Arc<dyn DirectSubmit>>,
    /// Hand-overs to the direct submitter begun and not yet finished (from
    /// the claim in `ThreadWriter::grow` to the submit or the hand-back): a
    /// flush or shutdown waits for none to be left, so that no span that
    /// ended before it is in a thread's hands when it completes.
    pub handoffs_in_flight: AtomicUsize,
    /// Flushes in progress: while any is, threads begin no hand-over (and the
    /// collector's export loop yields to the flush).
    pub handoffs_paused: AtomicUsize,
    /// Records a thread claimed for the direct submitter, which refused
    /// them: the collector exports them with the rest. `None` once the
    /// collector has stopped (ranges handed back then are dropped, their
    /// spans counted as `dropped.shutdown`).
    pub handed_back: Mutex<Option<Vec<ChunkRange>>>,
    pub orphan_counters: OrphanCounters,
    pub out: CollectorCounters,
    pub control: Mutex<Control>,
    pub control_cv: Condvar,
    collector_thread: OnceLock<Thread>,
    /// What kind of sleep the collector is in: [`NAP_NONE`], [`NAP_QUIET`] or
    /// [`NAP_IDLE`]. Producers read it once per chunk to decide whether to wake it.
    pub collector_nap: std::sync::atomic::AtomicU8,
    /// The CPU the collector last went to sleep on ([`current_home`]
    /// numbering): a thread on it wakes the collector sooner than others (see
    /// `collector::wakes_collector`).
    ///
    /// [`current_home`]: crate::buffer::budget::current_home
    pub collector_cpu: AtomicUsize,
    /// Clock ticks at the collector's last round (its heartbeat).
    pub collector_heartbeat: crate::buffer::budget::CachePadded<AtomicU64>,
    /// 250 µs in clock ticks.
    starved_after_ticks: u64,
    pub shut_down: AtomicBool,
    pub final_stats: OnceLock<Stats>,
    log_at_shutdown: bool,
}

impl TracerShared {
    pub(crate) fn register(&self, buffer: Arc<ThreadBuffer>) {
        let mut r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        r.buffers.push(buffer);
        self.writing_threads.store(r.buffers.len(), Ordering::Relaxed);
    }

    /// Whether the collector has not run a round for 250 µs (while not idle).
    #[inline]
    pub(crate) fn collector_is_starved(&self) -> bool {
        self.collector_nap.load(Ordering::Relaxed) != NAP_IDLE
            && self.clock.ticks().wrapping_sub(self.collector_heartbeat.load(Ordering::Relaxed))
                > self.starved_after_ticks
    }

    /// Wakes the collector if it is in a long sleep. Called once per chunk, not
    /// per span, by a thread on CPU `cpu` if it knows ([`current_home`]).
    ///
    /// [`current_home`]: crate::buffer::budget::current_home
    pub(crate) fn nudge_collector(&self, cpu: Option<usize>) {
        // Wake it from an idle sleep always, from its quiet nap once more than
        // `wakes_collector` says is in use (buffered memory is what the adaptive stage
        // reacts to, and slot arrays kept in flight long go cold), and
        // never from its shortest nap: waking a parked thread is a system call,
        // and doing it for every chunk was measured in the spans' p99.
        let wake = match self.collector_nap.load(Ordering::Relaxed) {
            NAP_IDLE => true,
            NAP_QUIET => {
                let threads = self.busy_threads.load(Ordering::Relaxed);
                let same_cpu = cpu.map(|c| c == self.collector_cpu.load(Ordering::Relaxed));
                crate::collector::wakes_collector(self.budget.used(), self.budget.limit(), threads, self.cpus, same_cpu)
            }
            _ => false,
        };
        if wake && self.collector_nap.swap(NAP_NONE, Ordering::AcqRel) != NAP_NONE {
            if let Some(t) = self.collector_thread.get() {
                t.unpark();
            }
        }
    }

    /// Records a span ended on a thread whose local state is gone (thread
    /// teardown): a slow, locked path that still loses nothing.
    pub(crate) fn push_orphan(&self, rec: SpanRecord) {
        if !self.budget.try_charge(crate::buffer::chunk::SLOT_BYTES) {
            self.orphan_counters.dropped_memory.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Ok(mut o) = self.orphans.lock() {
            o.push(rec);
            self.orphan_counters.recorded.fetch_add(1, Ordering::Relaxed);
        } else {
            self.budget.release(crate::buffer::chunk::SLOT_BYTES);
            self.orphan_counters.dropped_memory.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Begins a hand-over to the direct submitter, unless a flush or the
    /// shutdown is under way (then the collector takes the records). A `true`
    /// must be matched by [`TracerShared::end_handoff`].
    ///
    /// `SeqCst` on both sides: a flush or shutdown marks itself, then the
    /// collector sees no hand-over in flight; a thread counts itself in
    /// flight, then looks for a mark. One of the two sees the other.
    pub(crate) fn begin_handoff(&self) -> bool {
        self.handoffs_in_flight.fetch_add(1, Ordering::SeqCst);
        if self.shut_down.load(Ordering::SeqCst) || self.handoffs_paused.load(Ordering::SeqCst) > 0 {
            self.end_handoff();
            return false;
        }
        true
    }

    /// Whether a flush or the shutdown is under way.
    pub(crate) fn flush_or_shutdown_pending(&self) -> bool {
        self.handoffs_paused.load(Ordering::Relaxed) > 0 || self.shut_down.load(Ordering::Relaxed)
    }

    /// Ends a hand-over [`TracerShared::begin_handoff`] began.
    pub(crate) fn end_handoff(&self) {
        self.handoffs_in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Hands records a thread claimed from its own sealed chunk to the
    /// exporter's direct submitter (see `ThreadWriter::grow`), or back to the
    /// collector if it refuses, and ends the hand-over. Runs on the
    /// application thread, outside any borrow of its thread-local state: the
    /// exporter may record spans.
    #[cold]
    pub(crate) fn submit_directly(&'static self, range: ChunkRange) {
        let Some(direct) = &self.direct else {
            self.hand_back(vec![range]);
            return self.end_handoff();
        };
        let n = range.len() as u64;
        let batch = SpanBatch::new(vec![range], self.resource.clone(), self.clock.anchor());
        let settlement = Settlement::new(self, n);
        // A panic drops the batch's settlement while unwinding, which counts
        // its spans as failed; it must not unwind into the span's caller.
        let refused = match catch_unwind(AssertUnwindSafe(|| direct.try_submit(batch, settlement))) {
            Ok(Ok(())) | Err(_) => {
                self.out.batches.fetch_add(1, Ordering::Relaxed);
                self.out.direct_batches.fetch_add(1, Ordering::Relaxed);
                false
            }
            Ok(Err((batch, settlement))) => {
                settlement.cancel();
                self.hand_back(batch.into_ranges());
                true
            }
        };
        self.end_handoff();
        if refused {
            // As a thread that cannot hand over does (`ThreadWriter::grow`):
            // the collector is late and now has more to do.
            self.yield_to_collector();
        }
    }

    /// Gives claimed records to the collector (a rare, locked path); drops
    /// them once it has stopped.
    pub(crate) fn hand_back(&self, ranges: Vec<ChunkRange>) {
        if let Some(v) = self.handed_back.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            v.extend(ranges);
        }
    }

    /// The current accounting.
    pub(crate) fn stats(&self) -> Stats {
        if let Some(s) = self.final_stats.get() {
            return s.clone();
        }
        let mut t = {
            let r = self.registry.lock().unwrap_or_else(|e| e.into_inner());
            let mut t = r.retired.clone();
            for b in &r.buffers {
                t.add(&b.counters);
            }
            t
        };
        let oc = &self.orphan_counters;
        t.recorded += oc.recorded.load(Ordering::Relaxed);
        t.dropped_memory += oc.dropped_memory.load(Ordering::Relaxed);
        let exported = self.out.exported.load(Ordering::Relaxed);
        let failed = self.out.export_failed.load(Ordering::Relaxed);
        let rejected = self.out.export_rejected.load(Ordering::Relaxed);
        let mut traces = SampledOutTraces::default();
        for (i, n) in t.sampled_out_traces.iter().enumerate() {
            traces.add(DropReason::from_index(i as u8), *n);
        }
        let mut buffered = t.recorded.saturating_sub(exported + failed + rejected);
        let mut shutdown = 0;
        if self.shut_down.load(Ordering::Acquire) && self.control.lock().map(|c| c.shutdown_completed).unwrap_or(true) {
            // Nothing buffered will be exported any more.
            shutdown = buffered;
            buffered = 0;
        }
        Stats {
            // A span of a sampled-out trace is counted once, when it starts, as
            // started, ended and sampled out (see `ThreadCounters`).
            started: t.started + t.sampled_out_spans,
            // Every recording span that ended was recorded or dropped for
            // memory, on a thread or as an orphan: its end is not counted
            // apart (one counter write fewer per span).
            ended: t.recorded + t.dropped_memory + t.sampled_out_spans,
            sampled_out: t.sampled_out_spans,
            sampled_out_traces: traces,
            dropped: Dropped {
                memory_bound: t.dropped_memory,
                export_failed: failed,
                export_rejected: rejected,
                shutdown,
            },
            exported,
            buffered,
            export_batches: self.out.batches.load(Ordering::Relaxed),
            direct_batches: self.out.direct_batches.load(Ordering::Relaxed),
            memory_used_bytes: self.budget.used() as u64,
            memory_peak_bytes: self.budget.peak() as u64,
            memory_limit_bytes: self.budget.limit() as u64,
            adaptive_probability: self.adaptive.map_or(1.0, |a| a.probability(self.budget.used(), self.budget.limit())),
        }
    }

    fn wait_control(&self, deadline: Instant, done: impl Fn(&Control) -> bool) -> bool {
        let mut c = self.control.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if done(&c) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            c = match self.control_cv.wait_timeout(c, deadline - now) {
                Ok((c, _)) => c,
                Err(e) => e.into_inner().0,
            };
        }
    }

    pub(crate) fn wake_collector(&self) {
        self.collector_nap.store(NAP_NONE, Ordering::Relaxed);
        if let Some(t) = self.collector_thread.get() {
            t.unpark();
        }
    }

    /// Wakes the starved collector (it may be parked past its nap) and gives
    /// up the rest of this thread's time slice, so that it may run sooner.
    pub(crate) fn yield_to_collector(&self) {
        self.wake_collector();
        std::thread::yield_now();
    }
}

/// Why a flush or shutdown did not finish.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The timeout passed first; the stats say what was still buffered.
    #[error("timed out; {buffered} spans were still buffered")]
    Timeout {
        /// Spans not yet exported when the timeout passed.
        buffered: u64,
    },
    /// The tracer was already shut down.
    #[error("the tracer is shut down")]
    ShutDown,
}

/// The handle of an installed tracer. Dropping it shuts the tracer down (with a
/// 5 s timeout).
pub struct Tracer {
    shared: &'static TracerShared,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer").finish_non_exhaustive()
    }
}

impl Tracer {
    /// The current span accounting.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// The resource spans are exported with.
    pub fn resource(&self) -> &Resource {
        &self.shared.resource
    }

    /// Waits until every span that ended before this call has reached the exporter
    /// (and the exporter's own `force_flush` returned), or `timeout` passes.
    pub fn force_flush(&self, timeout: Duration) -> Result<(), FlushError> {
        let deadline = Instant::now() + timeout;
        // No thread begins a hand-over to the direct submitter while the flush
        // is under way (see `TracerShared::begin_handoff`); the collector
        // waits for those in flight.
        struct Paused<'a>(&'a AtomicUsize);
        impl Drop for Paused<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.shared.handoffs_paused.fetch_add(1, Ordering::SeqCst);
        let _paused = Paused(&self.shared.handoffs_paused);
        let ticket = {
            let mut c = self.shared.control.lock().unwrap_or_else(|e| e.into_inner());
            if c.shutdown_requested {
                return Err(FlushError::ShutDown);
            }
            c.flush_requested += 1;
            c.flush_requested
        };
        self.shared.wake_collector();
        if self.shared.wait_control(deadline, |c| c.flush_completed >= ticket || c.shutdown_completed) {
            Ok(())
        } else {
            Err(FlushError::Timeout { buffered: self.shared.stats().buffered })
        }
    }

    /// Stops new root spans, exports everything buffered, shuts the exporter down
    /// and returns the final accounting. After `timeout`, gives up: what is still
    /// buffered is counted as `dropped.shutdown` and the accounting is frozen.
    pub fn shutdown(&self, timeout: Duration) -> Result<Stats, FlushError> {
        let deadline = Instant::now() + timeout;
        {
            let mut c = self.shared.control.lock().unwrap_or_else(|e| e.into_inner());
            if c.shutdown_requested {
                return Err(FlushError::ShutDown);
            }
            c.shutdown_requested = true;
        }
        // New roots stop here; spans of traces already started still end into
        // their thread buffers and are exported by the final drain if they end
        // before it, or counted as `dropped.shutdown` after it.
        let me = self.shared as *const TracerShared as *mut TracerShared;
        let _ = GLOBAL.compare_exchange(me, std::ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire);
        // SeqCst: see `TracerShared::begin_handoff`.
        self.shared.shut_down.store(true, Ordering::SeqCst);
        self.shared.wake_collector();
        let finished = self.shared.wait_control(deadline, |c| c.shutdown_completed);
        let result = if finished {
            if let Some(h) = self.thread.lock().ok().and_then(|mut t| t.take()) {
                let _ = h.join();
            }
            Ok(self.shared.stats())
        } else {
            let mut s = self.shared.stats();
            s.dropped.shutdown += s.buffered;
            s.buffered = 0;
            let _ = self.shared.final_stats.set(s.clone());
            Err(FlushError::Timeout { buffered: s.dropped.shutdown })
        };
        if self.shared.log_at_shutdown {
            eprintln!("weft: tracer shut down: {}", self.shared.stats());
        }
        result
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        let requested = self.shared.control.lock().map(|c| c.shutdown_requested).unwrap_or(true);
        if !requested {
            let _ = self.shutdown(Duration::from_secs(5));
        }
    }
}

/// The accounting of the installed tracer, if one is installed.
pub fn stats() -> Option<Stats> {
    global().map(TracerShared::stats)
}

impl std::fmt::Debug for TracerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracerBuilder")
            .field("sampler", &self.sampler)
            .field("memory_limit", &self.memory_limit)
            .field("max_batch_spans", &self.max_batch_spans)
            .field("schedule_delay", &self.schedule_delay)
            .field("adaptive", &self.adaptive)
            .finish_non_exhaustive()
    }
}
