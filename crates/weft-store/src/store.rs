//! The store: the head, the blocks on disk, and the sealer thread that moves
//! complete traces from one to the other.
//!
//! ## Sealing
//! At every watermark `W` the sealer takes from the head each trace with no span
//! received for `trace_idle` as of `W` (and, when the head is over its bound,
//! the traces that went quiet longest, counted as sealed early). For each one it
//! asks the blocks whether the trace is already stored (late spans, or data
//! replayed from the log after a crash): if so the stored spans are read, the new
//! ones deduplicated against them by span ID, and the summary recomputed over the
//! whole trace; the newest block holding a trace has its current summary. The
//! traces go into one new block, written durably, then made visible.
//!
//! ## Releasing the log
//! Every span received before `W` is in the head or sealed. Once the block is
//! durable, every span received before `min(W, oldest receive time still in the
//! head)` is in a block, and the `release` callback is told so: the server's
//! write-ahead log deletes the segments that hold only older records.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::block::{self, Block, TraceRows};
use crate::block_rows::BlockCache;
use crate::head::{Head, HeadTrace};
use crate::span::{FullSpan, Origin, StoredSpan};
use crate::summary::{SpanFacts, TraceSummary};
use crate::wire::{self, Scratch, SpanRef};
use crate::StoreError;

/// Settings.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Where blocks live (`DIR/blocks`).
    pub dir: PathBuf,
    /// Head partitions (one per server shard).
    pub partitions: usize,
    /// A trace with no new span for this long (as of the watermark) is complete.
    pub trace_idle: Duration,
    /// Bytes the head may hold before the quietest traces are sealed early.
    pub head_bytes: usize,
    /// Blocks with fewer spans than this are merged by compaction.
    pub compact_below_spans: u64,
    /// Merged blocks stop growing at this many spans. Compaction holds its
    /// inputs decoded in memory (0.5–2 KB a span), so this also bounds its memory.
    pub block_max_spans: u64,
    /// Blocks whose newest span ended longer ago than this are deleted (`None`: kept).
    pub retention_age: Option<Duration>,
    /// The oldest blocks are deleted while blocks take more bytes than this.
    pub retention_bytes: Option<u64>,
}

impl StoreConfig {
    /// Defaults for a data directory.
    pub fn new(dir: PathBuf) -> Self {
        StoreConfig {
            dir,
            partitions: 1,
            trace_idle: Duration::from_secs(10),
            head_bytes: 128 << 20,
            compact_below_spans: 10_000,
            block_max_spans: 30_000,
            retention_age: None,
            retention_bytes: None,
        }
    }
}

/// Counters of what the store did (all totals since start, except gauges).
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Span rows written to blocks by sealing.
    pub spans_stored: AtomicU64,
    /// Traces sealed.
    pub traces_sealed: AtomicU64,
    /// Traces sealed before they were idle, because the head was full.
    pub traces_sealed_early: AtomicU64,
    /// Spans of traces already in a block when they were sealed (late spans).
    pub late_spans: AtomicU64,
    /// Spans dropped as exact duplicates (same trace and span ID) of stored ones.
    pub duplicate_spans: AtomicU64,
    /// Spans whose stored bytes did not decode (never expected: ingest checks them).
    pub undecodable_spans: AtomicU64,
    /// Blocks written by sealing.
    pub blocks_sealed: AtomicU64,
    /// Seal attempts that failed (the traces stay in memory and are retried).
    pub seal_failures: AtomicU64,
    /// Compactions done.
    pub compactions: AtomicU64,
    /// Blocks deleted by retention.
    pub retention_deleted_blocks: AtomicU64,
    /// Spans in blocks deleted by retention.
    pub retention_deleted_spans: AtomicU64,
    /// Block directories that could not be opened (skipped, left on disk).
    pub corrupt_blocks: AtomicU64,
    /// Nanoseconds spent writing blocks.
    pub seal_nanos: AtomicU64,
    /// Everything received before this (Unix ns) is in blocks.
    pub durable_before: AtomicU64,
    /// The latest watermark seen (Unix ns).
    pub watermark: AtomicU64,
}

enum Msg {
    Watermark(u64),
    Flush(mpsc::Sender<()>),
}

/// The store.
pub struct Store {
    cfg: StoreConfig,
    blocks_dir: PathBuf,
    /// The head (public for the server's debug endpoints and metrics).
    pub head: Head,
    /// Open blocks, oldest first.
    blocks: RwLock<Vec<Arc<Block>>>,
    /// Traces taken from the head and being written (visible to queries).
    sealing: Mutex<Arc<HashMap<[u8; 16], HeadTrace>>>,
    /// Held (write) while traces move head → sealing and sealing → block, and
    /// (read) while a query takes its view of blocks, sealing and head, so that a
    /// trace in transit is always seen in one of the three.
    handoff: RwLock<()>,
    next_seq: AtomicU64,
    /// Traces with spans in more than one block (see [`BlockMeta::split`]).
    split: RwLock<HashSet<[u8; 16]>>,
    /// Set when the sealer was woken for memory pressure and has not run since.
    pressure: std::sync::atomic::AtomicBool,
    /// What the store did.
    pub stats: StoreStats,
    /// Blocks decoded whole for searches, kept a little while.
    decoded: Mutex<BlockCache>,
    release: Box<dyn Fn(u64) + Send + Sync>,
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.blocks_dir).finish_non_exhaustive()
    }
}

/// Most bytes of blocks decoded whole for searches the store keeps (see
/// [`crate::block_rows`]): a few blocks, enough for an export's pages.
const DECODED_BYTES: usize = 192 << 20;
/// Decoded blocks unused this long are let go.
const DECODED_IDLE: Duration = Duration::from_secs(30);

/// How far the wall clock may step back and late spans still find the block
/// holding their trace's earlier spans.
const CLOCK_STEP_MARGIN: Duration = Duration::from_secs(600);

fn now_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// Decodes and deduplicates (by span ID) a trace's stored spans, counting
/// duplicates and undecodable ones in `stats` when given (sealing, not queries).
fn decode_all(spans: &[StoredSpan], stats: Option<&StoreStats>, seen: &mut HashSet<Vec<u8>>) -> Vec<FullSpan> {
    let count = |c: fn(&StoreStats) -> &AtomicU64| {
        if let Some(st) = stats {
            c(st).fetch_add(1, Ordering::Relaxed);
        }
    };
    let mut out = Vec::with_capacity(spans.len());
    for s in spans {
        match s.decode() {
            Some(span) => {
                if seen.insert(span.span_id.clone()) {
                    out.push(FullSpan { origin: s.origin.clone(), span });
                } else {
                    count(|st| &st.duplicate_spans);
                }
            }
            None => count(|st| &st.undecodable_spans),
        }
    }
    out
}

impl Store {
    /// Opens the blocks under `cfg.dir/blocks` (skipping and reporting damaged
    /// ones, removing unfinished ones) and starts the sealer. `release(t)` is
    /// called whenever everything received before `t` has become durable in blocks.
    pub fn open(
        cfg: StoreConfig,
        head_bytes: Arc<AtomicUsize>,
        release: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Arc<Store>, StoreError> {
        let blocks_dir = cfg.dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir)
            .map_err(|source| StoreError::Io { path: blocks_dir.display().to_string(), source })?;
        let stats = StoreStats::default();
        let mut blocks = Vec::new();
        let mut max_seq = 0;
        let entries = std::fs::read_dir(&blocks_dir)
            .map_err(|source| StoreError::Io { path: blocks_dir.display().to_string(), source })?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(".tmp-") {
                // An unfinished block from before a crash: its data is still in the log.
                let _ = std::fs::remove_dir_all(entry.path());
                continue;
            }
            let Ok(seq) = name.parse::<u64>() else { continue };
            max_seq = max_seq.max(seq);
            match Block::open(&entry.path()) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(e) => {
                    stats.corrupt_blocks.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(block = %entry.path().display(), error = %e, "a block cannot be read; it is skipped and left on disk");
                }
            }
        }
        // A merged block whose inputs are still there (a crash between writing it
        // and deleting them): it holds all their data, so they go now.
        let merged: HashSet<u64> = blocks.iter().flat_map(|b| b.meta.merged_from.clone()).collect();
        blocks.retain(|b| {
            let superseded = merged.contains(&b.meta.seq);
            if superseded {
                let _ = std::fs::remove_dir_all(&b.dir);
            }
            !superseded
        });
        blocks.sort_by_key(|b| (b.meta.order, b.meta.seq));
        let split: HashSet<[u8; 16]> = blocks.iter().flat_map(|b| b.split_ids()).collect();
        let parts = cfg.partitions;
        let store = Arc::new(Store {
            head: Head::new(parts, head_bytes),
            blocks_dir,
            blocks: RwLock::new(blocks),
            sealing: Mutex::new(Arc::new(HashMap::new())),
            handoff: RwLock::new(()),
            next_seq: AtomicU64::new(max_seq + 1),
            split: RwLock::new(split),
            pressure: std::sync::atomic::AtomicBool::new(false),
            decoded: Mutex::new(BlockCache::new(DECODED_BYTES)),
            stats,
            release: Box::new(release),
            tx: Mutex::new(None),
            thread: Mutex::new(None),
            cfg,
        });
        let (tx, rx) = mpsc::channel();
        let weak = Arc::downgrade(&store);
        let handle = std::thread::Builder::new()
            .name("weft-sealer".into())
            .spawn(move || sealer(weak, rx))
            .map_err(|source| StoreError::Io { path: "sealer thread".into(), source })?;
        *store.tx.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        *store.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        Ok(store)
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Spans processed by shard `part`, received at `recv` (Unix ns).
    pub fn insert(&self, part: usize, recv: u64, spans: &[StoredSpan]) {
        self.head.insert(part, recv, spans);
        // Filling up: wake the sealer now rather than at the next watermark.
        if self.head.bytes() > self.cfg.head_bytes * 3 / 4 && !self.pressure.swap(true, Ordering::Relaxed) {
            let w = self.stats.watermark.load(Ordering::Relaxed);
            if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
                let _ = tx.send(Msg::Watermark(w));
            }
        }
    }

    /// A new watermark: seal what is complete (on the sealer thread).
    pub fn watermark(&self, t: u64) {
        self.stats.watermark.fetch_max(t, Ordering::Relaxed);
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(Msg::Watermark(t));
        }
    }

    /// Seals everything in the head now (at shutdown, or in tests) and waits.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if let Some(tx) = &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = tx.send(Msg::Flush(done));
        }
        let _ = wait.recv_timeout(Duration::from_secs(300));
    }

    /// Stops the sealer after a last flush.
    pub fn close(&self) {
        self.flush();
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
    }

    /// The open blocks, oldest first.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Blocks decoded whole for searches.
    pub(crate) fn decoded(&self) -> std::sync::MutexGuard<'_, BlockCache> {
        self.decoded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Traces being sealed right now.
    pub fn sealing(&self) -> Arc<HashMap<[u8; 16], HeadTrace>> {
        self.sealing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Holds off hand-overs between head, sealing set and blocks while a
    /// reader takes its view of all three.
    pub(crate) fn handoff_read(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.handoff.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Traces with spans in more than one block.
    pub fn split_traces(&self) -> HashSet<[u8; 16]> {
        self.split.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The trace's start as the newest of `blocks` holding it summarised it,
    /// among those that could hold spans of a trace first received at
    /// `first_recv` (the rule sealing uses; 0: all) — `None` if none does.
    /// Sealing merges every earlier block's spans of a trace into the summary
    /// it writes, so the newest one covers all the trace's spans in blocks.
    pub(crate) fn block_start_since(&self, trace_id: &[u8; 16], first_recv: u64, blocks: &[Arc<Block>]) -> Option<u64> {
        let since = first_recv.saturating_sub(CLOCK_STEP_MARGIN.as_nanos() as u64);
        blocks
            .iter()
            .rev()
            .filter(|b| b.meta.written_at == 0 || b.meta.written_at >= since)
            .find_map(|b| b.find(trace_id).and_then(|(pos, _)| b.starts.get(pos).copied()))
    }

    /// Every stored span of a trace (blocks, head, being sealed), deduplicated,
    /// with its current summary; `None` if the store has no span of it.
    pub fn trace(&self, trace_id: &[u8; 16]) -> Result<Option<(TraceSummary, Vec<FullSpan>)>, StoreError> {
        Ok(self.trace_and_completeness(trace_id)?.map(|(summary, spans, _)| (summary, spans)))
    }

    /// [`Store::trace`], and whether the trace is complete: every span of it is
    /// in a block (it went `trace_idle` without a new span as of the
    /// watermark, so a copy of it stays current unless a late span arrives).
    pub fn trace_and_completeness(
        &self,
        trace_id: &[u8; 16],
    ) -> Result<Option<(TraceSummary, Vec<FullSpan>, bool)>, StoreError> {
        let (blocks, sealing, head) = {
            let _view = self.handoff.read().unwrap_or_else(|e| e.into_inner());
            (self.blocks(), self.sealing(), self.head.get(trace_id))
        };
        let mut seen = HashSet::new();
        let mut spans = Vec::new();
        let mut newest_summary = None;
        // Newest block first: its summary is the current one.
        for b in blocks.iter().rev() {
            if let Some((pos, e)) = b.find(trace_id) {
                if newest_summary.is_none() {
                    newest_summary = b.summaries_at(&[pos])?.pop();
                }
                for s in b.spans_at(&[(e.first_row as usize, e.rows as usize)])? {
                    if seen.insert(s.span.span_id.clone()) {
                        spans.push(s);
                    }
                }
            }
        }
        let mut fresh = 0;
        for held in [sealing.get(trace_id).map(|t| t.spans.clone()).unwrap_or_default(), head] {
            let new = decode_all(&held, None, &mut seen);
            fresh += new.len();
            spans.extend(new);
        }
        if spans.is_empty() {
            return Ok(None);
        }
        let summary = match newest_summary {
            Some(s) if fresh == 0 => s,
            _ => TraceSummary::of(*trace_id, &spans),
        };
        spans.sort_by_key(|s| s.span.start_time_unix_nano);
        Ok(Some((summary, spans, fresh == 0)))
    }

    /// Services with spans in the store (blocks, being sealed, head), sorted.
    pub fn services(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for b in self.blocks() {
            out.extend(b.meta.services.iter().cloned());
        }
        self.for_each_unsealed(|s| {
            if !out.contains(&*s.origin.service) {
                out.insert(s.origin.service.to_string());
            }
        });
        out
    }

    /// (service, span name) pairs in the store, for one service or all,
    /// sorted. A block lists at most 10,000 pairs.
    pub fn operations(&self, service: Option<&str>) -> BTreeSet<(String, String)> {
        let wanted = |s: &str| service.is_none_or(|w| w == s);
        let mut out = BTreeSet::new();
        for b in self.blocks() {
            out.extend(b.meta.operations.iter().filter(|(s, _)| wanted(s)).cloned());
        }
        self.for_each_unsealed(|s| {
            if wanted(&s.origin.service) {
                if let Ok(r) = wire::parse_span(&s.span, &mut Scratch::default()) {
                    let op = (s.origin.service.to_string(), r.name.to_owned());
                    if !out.contains(&op) {
                        out.insert(op);
                    }
                }
            }
        });
        out
    }

    /// (service, span name, span kind) triples in the store, for one service
    /// or all, sorted. Blocks written before kinds were listed give their
    /// operations with kind 0 (unspecified).
    pub fn operation_kinds(&self, service: Option<&str>) -> BTreeSet<(String, String, i32)> {
        let wanted = |s: &str| service.is_none_or(|w| w == s);
        let mut out = BTreeSet::new();
        for b in self.blocks() {
            if b.meta.operation_kinds.is_empty() {
                out.extend(b.meta.operations.iter().filter(|(s, _)| wanted(s)).map(|(s, n)| (s.clone(), n.clone(), 0)));
            } else {
                out.extend(b.meta.operation_kinds.iter().filter(|(s, _, _)| wanted(s)).cloned());
            }
        }
        self.for_each_unsealed(|s| {
            if wanted(&s.origin.service) {
                if let Ok(r) = wire::parse_span(&s.span, &mut Scratch::default()) {
                    let op = (s.origin.service.to_string(), r.name.to_owned(), r.kind);
                    if !out.contains(&op) {
                        out.insert(op);
                    }
                }
            }
        });
        out
    }

    /// Calls `f` on every span not in a block yet (head, and being sealed),
    /// outside the head's locks.
    pub(crate) fn for_each_unsealed(&self, mut f: impl FnMut(&StoredSpan)) {
        let _handoff = self.handoff.read().unwrap_or_else(|e| e.into_inner());
        let sealing = self.sealing();
        let head = self.head.snapshot();
        drop(_handoff);
        for t in sealing.values() {
            t.spans.iter().for_each(&mut f);
        }
        for (_, spans) in &head {
            spans.iter().for_each(&mut f);
        }
    }

    /// How many span rows the store holds for a trace (blocks, head, being
    /// sealed; duplicates not removed), without reading any span: for checks
    /// over many trace IDs.
    pub fn span_rows(&self, trace_id: &[u8; 16]) -> u64 {
        let _view = self.handoff.read().unwrap_or_else(|e| e.into_inner());
        let blocks: u64 = self.blocks().iter().filter_map(|b| b.find(trace_id)).map(|(_, e)| u64::from(e.rows)).sum();
        let sealing = self.sealing().get(trace_id).map_or(0, |t| t.spans.len() as u64);
        blocks + sealing + self.head.get(trace_id).len() as u64
    }

    /// Seals the traces `pick` chooses (all of them for a flush); returns how
    /// many traces went into a block.
    pub(crate) fn seal(&self, watermark: u64, flush: bool) -> Result<usize, StoreError> {
        self.pressure.store(false, Ordering::Relaxed);
        let idle = self.cfg.trace_idle.as_nanos() as u64;
        let handoff = self.handoff.write().unwrap_or_else(|e| e.into_inner());
        let mut taken = self.head.drain(|_, t| flush || t.last_recv.saturating_add(idle) <= watermark);
        let held = self.head.bytes();
        if held > self.cfg.head_bytes * 3 / 4 {
            // Over the bound: the traces quiet the longest go now, counted.
            let early = self.head.drain_oldest(held - self.cfg.head_bytes / 2);
            self.stats.traces_sealed_early.fetch_add(early.len() as u64, Ordering::Relaxed);
            taken.extend(early);
        }
        if taken.is_empty() {
            drop(handoff);
            self.release_log(watermark);
            return Ok(0);
        }
        let bytes: usize = taken.iter().map(|(_, t)| t.bytes).sum();
        // The set being sealed stays readable (queries look here) and is also
        // what is written: one map, no copy of the spans' list.
        let sealing: Arc<HashMap<[u8; 16], HeadTrace>> = Arc::new(taken.into_iter().collect());
        *self.sealing.lock().unwrap_or_else(|e| e.into_inner()) = sealing.clone();
        drop(handoff);
        let mut taken: Vec<(&[u8; 16], &HeadTrace)> = sealing.iter().collect();
        // Split by arrival (close to start time), not at random: the blocks of
        // one seal then cover successive stretches of time, and a search or
        // export in time order reads one block at a time instead of all of
        // them for every page.
        taken.sort_unstable_by_key(|(id, t)| (t.first_recv, **id));
        let started = Instant::now();
        // One block per 64 Ki spans: decoding is the memory-hungry part of a seal
        // (0.5–2 KB a span), so a big head is written in bounded steps.
        let mut result = Ok(0);
        let mut chunk_start = 0;
        let mut rows = 0;
        for i in 0..=taken.len() {
            let end = i == taken.len();
            if end || (rows > 0 && rows + taken[i].1.spans.len() > 65_536) {
                match self.write_sealed(&taken[chunk_start..i]) {
                    Ok(n) => result = result.map(|m| m + n),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                chunk_start = i;
                rows = 0;
            }
            if !end {
                rows += taken[i].1.spans.len();
            }
        }
        self.stats.seal_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        match result {
            Ok(n) => {
                // The block is visible already (a reader may see it and the
                // sealing set at once, and deduplicates); now the set can go.
                let _handoff = self.handoff.write().unwrap_or_else(|e| e.into_inner());
                *self.sealing.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(HashMap::new());
                drop(_handoff);
                self.head.release(bytes);
                self.release_log(watermark);
                Ok(n)
            }
            Err(e) => {
                // Put them back: nothing is lost, the next watermark retries.
                self.stats.seal_failures.fetch_add(1, Ordering::Relaxed);
                let _handoff = self.handoff.write().unwrap_or_else(|e| e.into_inner());
                for (id, t) in taken {
                    let part = crate::head::shard_of(id, self.head.parts());
                    self.head.insert(part, t.first_recv, &t.spans);
                }
                self.head.release(bytes);
                *self.sealing.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(HashMap::new());
                Err(e)
            }
        }
    }

    fn write_sealed(&self, taken: &[(&[u8; 16], &HeadTrace)]) -> Result<usize, StoreError> {
        let blocks = self.blocks();
        let mut scratch = Scratch::default();
        let mut traces = Vec::with_capacity(taken.len());
        let mut spans_total = 0;
        for (id, t) in taken {
            // Already stored (late spans, or replayed after a crash)?
            let mut stored: Vec<FullSpan> = Vec::new();
            let mut stored_ids: HashSet<[u8; 8]> = HashSet::new();
            // A block written before the trace's first span arrived cannot
            // hold it (receive times survive replay); the margin covers the
            // wall clock stepping back.
            let since = t.first_recv.saturating_sub(CLOCK_STEP_MARGIN.as_nanos() as u64);
            for b in blocks.iter().rev().filter(|b| b.meta.written_at == 0 || b.meta.written_at >= since) {
                if let Some((_, e)) = b.find(id) {
                    for s in b.spans_at(&[(e.first_row as usize, e.rows as usize)])? {
                        if stored_ids.insert(s.facts().span_id) {
                            stored.push(s);
                        }
                    }
                }
            }
            let mut spans: Vec<(&Origin, SpanRef<'_>)> = Vec::with_capacity(t.spans.len());
            let mut seen: HashSet<[u8; 8]> = HashSet::new();
            let many = t.spans.len() > 32;
            for s in &t.spans {
                let marks = scratch.marks();
                let r = match wire::parse_span(&s.span, &mut scratch) {
                    Ok(r) => r,
                    Err(_) => {
                        self.stats.undecodable_spans.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                };
                // Small traces are checked by a linear search, big ones by a set.
                let dup = stored_ids.contains(&r.span_id)
                    || if many { !seen.insert(r.span_id) } else { spans.iter().any(|(_, x)| x.span_id == r.span_id) };
                if dup {
                    self.stats.duplicate_spans.fetch_add(1, Ordering::Relaxed);
                    scratch.truncate(marks);
                    continue;
                }
                spans.push((&*s.origin, r));
            }
            if !stored.is_empty() {
                self.stats.late_spans.fetch_add(spans.len() as u64, Ordering::Relaxed);
            }
            if spans.is_empty() {
                continue;
            }
            let mut facts: Vec<SpanFacts<'_>> = stored.iter().map(FullSpan::facts).collect();
            facts.extend(spans.iter().map(|(o, r)| r.facts(&o.service)));
            spans_total += spans.len();
            let continued = !stored.is_empty();
            if continued {
                self.split.write().unwrap_or_else(|e| e.into_inner()).insert(**id);
            }
            traces.push(TraceRows { summary: TraceSummary::of_facts(**id, &facts), spans, continued });
        }
        if traces.is_empty() {
            return Ok(0);
        }
        let n = traces.len();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let block = block::write(&self.blocks_dir, seq, seq, traces, &scratch, Vec::new())?;
        self.blocks.write().unwrap_or_else(|e| e.into_inner()).push(Arc::new(block));
        self.stats.blocks_sealed.fetch_add(1, Ordering::Relaxed);
        self.stats.traces_sealed.fetch_add(n as u64, Ordering::Relaxed);
        self.stats.spans_stored.fetch_add(spans_total as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn release_log(&self, watermark: u64) {
        let durable = self.head.oldest_recv().map_or(watermark, |t| t.min(watermark));
        let before = self.stats.durable_before.fetch_max(durable, Ordering::Relaxed);
        if durable > before {
            (self.release)(durable);
        }
    }

    /// Deletes blocks past the retention age or over the byte limit, oldest first.
    pub fn enforce_retention(&self) {
        let now = now_nanos();
        let blocks = self.blocks();
        let mut total: u64 = blocks.iter().map(|b| b.meta.bytes).sum();
        let mut doomed = Vec::new();
        for b in &blocks {
            let too_old =
                self.cfg.retention_age.is_some_and(|age| b.meta.max_end.saturating_add(age.as_nanos() as u64) < now);
            let too_big = self.cfg.retention_bytes.is_some_and(|limit| total > limit);
            if too_old || too_big {
                total -= b.meta.bytes;
                doomed.push(b.meta.seq);
            }
        }
        if doomed.is_empty() {
            return;
        }
        self.blocks.write().unwrap_or_else(|e| e.into_inner()).retain(|b| !doomed.contains(&b.meta.seq));
        for b in blocks.iter().filter(|b| doomed.contains(&b.meta.seq)) {
            self.stats.retention_deleted_blocks.fetch_add(1, Ordering::Relaxed);
            self.stats.retention_deleted_spans.fetch_add(b.meta.spans, Ordering::Relaxed);
            if let Err(e) = std::fs::remove_dir_all(&b.dir) {
                tracing::warn!(block = %b.dir.display(), error = %e, "could not delete a block past retention");
            }
        }
    }

    /// Merges runs of consecutive small blocks into one (deduplicating spans of a
    /// trace present in several; the newest input's summary is kept, being the
    /// current one). Returns how many blocks were merged.
    pub fn compact(&self) -> Result<usize, StoreError> {
        let blocks = self.blocks();
        let mut run: Vec<Arc<Block>> = Vec::new();
        let mut spans = 0;
        for b in &blocks {
            if b.meta.spans < self.cfg.compact_below_spans && spans + b.meta.spans <= self.cfg.block_max_spans {
                spans += b.meta.spans;
                run.push(b.clone());
            } else if run.len() >= 2 {
                break;
            } else {
                run.clear();
                spans = 0;
            }
        }
        if run.len() < 2 {
            return Ok(0);
        }
        let mut merged: HashMap<[u8; 16], Merging> = HashMap::new();
        for b in &run {
            for (sum, spans) in b.all_traces()? {
                let e = merged.entry(sum.trace_id).or_insert_with(|| (sum.clone(), Vec::new(), HashSet::new()));
                e.0 = sum; // later blocks hold the newer summary
                for s in spans {
                    if e.2.insert(s.span.span_id.clone()) {
                        e.1.push(s);
                    }
                }
            }
        }
        let traces: Vec<(TraceSummary, Vec<FullSpan>)> = merged.into_values().map(|(s, v, _)| (s, v)).collect();
        // The merged block takes the newest input's place in the order.
        let order = run.last().map_or(0, |b| b.meta.order);
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let inputs: Vec<u64> = run.iter().map(|b| b.meta.seq).collect();
        let split = self.split.read().unwrap_or_else(|e| e.into_inner()).clone();
        let written = block::write_decoded(&self.blocks_dir, seq, order, traces, inputs.clone(), &split)?;
        // Swap: the new block replaces the run. It is durable before any input is
        // deleted; after a crash in between, opening the store deletes the inputs.
        {
            let mut list = self.blocks.write().unwrap_or_else(|e| e.into_inner());
            let at = list.iter().position(|b| inputs.contains(&b.meta.seq)).unwrap_or(list.len());
            list.retain(|b| !inputs.contains(&b.meta.seq));
            let at = at.min(list.len());
            list.insert(at, Arc::new(written));
        }
        for b in &run {
            let _ = std::fs::remove_dir_all(&b.dir);
        }
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        Ok(run.len())
    }
}

/// A trace being merged: its newest summary, its spans, their IDs.
type Merging = (TraceSummary, Vec<FullSpan>, HashSet<Vec<u8>>);

fn sealer(store: std::sync::Weak<Store>, rx: mpsc::Receiver<Msg>) {
    let mut last_upkeep = Instant::now();
    loop {
        let msg = rx.recv_timeout(Duration::from_secs(1));
        let Some(store) = store.upgrade() else { return };
        match msg {
            Ok(Msg::Watermark(mut w)) => {
                // Catch up to the latest watermark in one pass.
                while let Ok(m) = rx.try_recv() {
                    match m {
                        Msg::Watermark(t) => w = w.max(t),
                        Msg::Flush(done) => {
                            seal_logged(&store, w, true);
                            let _ = done.send(());
                        }
                    }
                }
                seal_logged(&store, w, false);
            }
            Ok(Msg::Flush(done)) => {
                let w = store.stats.watermark.load(Ordering::Relaxed);
                seal_logged(&store, w, true);
                let _ = done.send(());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if last_upkeep.elapsed() >= Duration::from_secs(5) {
            last_upkeep = Instant::now();
            store.enforce_retention();
            store.decoded().expire(DECODED_IDLE);
            match store.compact() {
                Ok(0) => {}
                Ok(n) => tracing::debug!(blocks = n, "compacted"),
                Err(e) => tracing::error!(error = %e, "compaction failed; the blocks stay as they are"),
            }
        }
    }
}

fn seal_logged(store: &Store, w: u64, flush: bool) {
    if let Err(e) = store.seal(w, flush) {
        tracing::error!(error = %e, "sealing failed; the traces stay in memory and in the log, and are retried");
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::columns::tests::rich_span;
    use prost::Message;

    fn stored(t: u8, i: u8) -> StoredSpan {
        let f = rich_span(t, i);
        StoredSpan { origin: f.origin.clone(), trace_id: [t; 16], span: bytes::Bytes::from(f.span.encode_to_vec()) }
    }

    fn open(dir: &Path) -> (Arc<Store>, Arc<AtomicU64>) {
        let released = Arc::new(AtomicU64::new(0));
        let r = released.clone();
        let mut cfg = StoreConfig::new(dir.to_path_buf());
        cfg.partitions = 2;
        cfg.trace_idle = Duration::from_nanos(100);
        let store = Store::open(cfg, Arc::new(AtomicUsize::new(0)), move |t| r.store(t, Ordering::Relaxed)).unwrap();
        (store, released)
    }

    #[test]
    fn idle_traces_are_sealed_late_spans_merge_and_restart_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let (store, released) = open(dir.path());
        store.insert(0, 1_000, &[stored(1, 1), stored(1, 2), stored(2, 1)]);
        store.insert(1, 5_000, &[stored(3, 1)]);
        // Watermark 1_200: traces 1 and 2 idle (last at 1_000 + 100), 3 not.
        store.seal(1_200, false).unwrap();
        assert_eq!(store.blocks().len(), 1);
        assert_eq!(store.stats.traces_sealed.load(Ordering::Relaxed), 2);
        // Trace 3 (received at 5_000) is still in the head: the log is released
        // up to the watermark, which is older.
        assert_eq!(released.load(Ordering::Relaxed), 1_200);
        let (sum, spans) = store.trace(&[1; 16]).unwrap().unwrap();
        assert_eq!((sum.span_count, spans.len()), (2, 2));
        // Trace 3 is still in the head and readable.
        assert_eq!(store.trace(&[3; 16]).unwrap().unwrap().1.len(), 1);
        // A late span of trace 1 and a duplicate of one already stored.
        store.insert(0, 6_000, &[stored(1, 3), stored(1, 1)]);
        store.seal(10_000, false).unwrap();
        assert_eq!(store.stats.duplicate_spans.load(Ordering::Relaxed), 1);
        let (sum, spans) = store.trace(&[1; 16]).unwrap().unwrap();
        assert_eq!((sum.span_count, spans.len()), (3, 3), "the summary covers the whole trace");
        assert_eq!(store.head.bytes(), 0);
        store.close();
        drop(store);
        let (again, _) = open(dir.path());
        assert_eq!(again.trace(&[1; 16]).unwrap().unwrap().1.len(), 3);
        assert_eq!(again.trace(&[3; 16]).unwrap().unwrap().1.len(), 1);
        assert!(again.trace(&[9; 16]).unwrap().is_none());
        // Compaction merges the small blocks, keeping the current summaries.
        let before = again.blocks().len();
        assert!(before >= 2);
        assert_eq!(again.compact().unwrap(), before);
        assert_eq!(again.blocks().len(), 1);
        let (sum, spans) = again.trace(&[1; 16]).unwrap().unwrap();
        assert_eq!((sum.span_count, spans.len()), (3, 3));
        assert_eq!(again.blocks()[0].meta.spans, 5);
        again.close();
    }

    #[test]
    fn a_full_head_seals_early_and_retention_deletes_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path().to_path_buf());
        cfg.head_bytes = 2_000;
        cfg.retention_bytes = Some(1);
        let store = Store::open(cfg, Arc::new(AtomicUsize::new(0)), |_| {}).unwrap();
        for t in 1..=20u8 {
            store.insert(0, u64::from(t), &[stored(t, 1)]);
        }
        store.seal(0, false).unwrap();
        assert!(store.stats.traces_sealed_early.load(Ordering::Relaxed) > 0);
        // (The sealer thread, woken by the pressure, may have sealed some too.)
        store.close();
        assert!(store.head.bytes() <= 1_000);
        assert!(!store.blocks().is_empty());
        store.enforce_retention();
        assert!(store.blocks().is_empty());
        assert!(store.stats.retention_deleted_blocks.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn damaged_blocks_are_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(dir.path());
        store.insert(0, 1, &[stored(1, 1)]);
        store.flush();
        store.close();
        drop(store);
        let b = dir.path().join("blocks").join(block::dir_name(1));
        std::fs::write(b.join("traces.parquet"), b"garbage").unwrap();
        std::fs::create_dir_all(dir.path().join("blocks/.tmp-0000000000000009")).unwrap();
        let (again, _) = open(dir.path());
        assert_eq!(again.stats.corrupt_blocks.load(Ordering::Relaxed), 1);
        assert!(again.blocks().is_empty());
        assert!(!dir.path().join("blocks/.tmp-0000000000000009").exists());
        again.close();
    }
}
