//! Searches: the traces whose start lies in a time window and that match a
//! TraceQL-subset filter, newest (or oldest) first, a page at a time.
//!
//! ## Order and paging
//! Traces are ordered by (start, trace ID), descending for newest-first. A
//! page ends after `limit` traces; its [`Position`] is the last trace's key,
//! and the next page takes the traces strictly after it — a keyset, so pages
//! neither skip nor repeat traces while new data arrives elsewhere.
//!
//! ## How a search runs
//! 1. A consistent view of blocks, the set being sealed and the head is taken.
//! 2. Traces not in a block yet are read in place and tested; so are traces
//!    whose spans lie in several blocks (late spans, [`crate::block::BlockMeta::split`]),
//!    which are read whole. Block rows of these traces are skipped later.
//! 3. Blocks are pruned by time range, keyset position and what their
//!    metadata lists (services, span names), then visited in output order
//!    (newest-first: by latest end, descending). In a block, traces are chosen
//!    by start time from memory, and only the columns the filter tests are
//!    read, for only those traces' rows.
//! 4. Matches wait in a bounded ordered buffer until no unvisited block can
//!    hold a trace ordered before them, then go out in order: the answer
//!    streams, and memory does not grow with the size of the export.
//!
//! Every search has a deadline and a cap on matches held; hitting either ends
//! the page early with a position to resume from, and says so in the stats.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use serde::Serialize;
use weft_traceql::{Filter, Pruning};

use crate::block::{merge_ranges, Block, BlockMeta, MAX_OPERATIONS};
use crate::block_rows::{worth_reading_whole, WholeBlock};
use crate::matching::{HeadSpan, SpanRows};
use crate::span::{FullSpan, StoredSpan};
use crate::store::Store;
use crate::summary::{hex, SpanFacts, TraceSummary};
use crate::wire::{self, Scratch};
use crate::StoreError;

/// Output order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Order {
    /// Latest start first (what a search screen shows).
    #[default]
    NewestFirst,
    /// Earliest start first (what an export usually wants).
    OldestFirst,
}

/// Where a page ended: the sort key of the last trace it returned (or of the
/// point the search got to). Opaque to users; the API encodes it in cursors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(u64, [u8; 16]);

impl Position {
    /// The position of a trace in `order`.
    pub fn of(order: Order, start: u64, trace_id: &[u8; 16]) -> Position {
        match order {
            Order::OldestFirst => Position(start, *trace_id),
            Order::NewestFirst => Position(u64::MAX - start, trace_id.map(|b| !b)),
        }
    }

    /// 24 bytes, for cursors.
    pub fn to_bytes(self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.0.to_be_bytes());
        out[8..].copy_from_slice(&self.1);
        out
    }

    /// Back from [`Position::to_bytes`].
    pub fn from_bytes(b: &[u8; 24]) -> Position {
        let mut k = [0u8; 8];
        k.copy_from_slice(&b[..8]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[8..]);
        Position(u64::from_be_bytes(k), id)
    }

    /// The position just before everything whose key starts at `self.0`.
    fn just_before(self) -> Option<Position> {
        self.0.checked_sub(1).map(|k| Position(k, [0xff; 16]))
    }
}

/// What each returned trace carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Load {
    /// Its summary only.
    #[default]
    Summary,
    /// Its summary and every span.
    AllSpans,
    /// Its summary and the spans that satisfy some spanset of the filter.
    MatchedSpans,
    /// Its summary and every span, as block rows ([`Hit::rows`]) where the
    /// trace comes from a block read whole, else as spans: for writers that
    /// encode straight from Arrow (see [`crate::otlp_json`]).
    AllRows,
}

/// A search.
#[derive(Debug)]
pub struct Search<'f> {
    /// Earliest trace start, Unix ns (inclusive).
    pub start: u64,
    /// Latest trace start, Unix ns (exclusive).
    pub end: u64,
    /// The filter.
    pub filter: &'f Filter,
    /// Output order.
    pub order: Order,
    /// Most traces in this page.
    pub limit: usize,
    /// Resume after this position.
    pub after: Option<Position>,
    /// What to return of each trace.
    pub load: Load,
    /// When to stop with a partial page.
    pub deadline: Instant,
    /// Most matches held at once, waiting for their turn.
    pub max_pending: usize,
}

/// One trace found.
#[derive(Debug)]
pub struct Hit {
    /// Its summary.
    pub summary: TraceSummary,
    /// Its spans per [`Search::load`], by start time.
    pub spans: Vec<FullSpan>,
    /// With [`Load::AllRows`], its spans as full-schema block rows instead
    /// (then `spans` is empty).
    pub rows: Vec<RecordBatch>,
    /// Its position (a cursor just after it resumes after it).
    pub position: Position,
}

/// What a search looked at.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchStats {
    /// Blocks in the store.
    pub blocks: u64,
    /// Blocks skipped by time range, position or metadata.
    pub blocks_pruned: u64,
    /// Blocks whose traces were looked at.
    pub blocks_scanned: u64,
    /// Traces tested (in blocks, by start time).
    pub traces_inspected: u64,
    /// Span rows tested.
    pub spans_inspected: u64,
    /// Traces not yet in a block, tested.
    pub unsealed_traces: u64,
    /// Traces spread over several blocks, read whole and tested.
    pub split_traces: u64,
    /// Traces returned.
    pub returned: u64,
    /// Milliseconds spent.
    pub elapsed_ms: f64,
    /// Why the page ended before its limit with more to come, if it did:
    /// "deadline" or "memory".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<&'static str>,
    /// Blocks that could not be read (damaged on disk): skipped, so the answer
    /// lacks their traces; the reasons are in `errors`.
    #[serde(skip_serializing_if = "is_zero")]
    pub blocks_unreadable: u64,
    /// Traces not returned because their data could not be read.
    #[serde(skip_serializing_if = "is_zero")]
    pub traces_unreadable: u64,
    /// What went wrong reading (at most a few).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Most read errors one answer lists.
const MAX_ERRORS: usize = 5;

/// How a search ended.
#[derive(Debug)]
pub struct SearchEnd {
    /// Where to resume, if there may be more.
    pub next: Option<Position>,
    /// What it looked at.
    pub stats: SearchStats,
}

/// A trace's spans as read.
enum Loaded {
    Spans(Vec<FullSpan>),
    /// Slices of a block read whole.
    Rows(Vec<RecordBatch>),
}

/// Where a waiting match is.
#[derive(Debug)]
enum Source {
    /// Position in block number .0 of the search's view.
    Block(usize, usize),
    /// Read whole (not in a block yet, or split): its summary.
    Whole(Box<TraceSummary>),
}

/// Matches waiting for their turn, best first, at most `cap`; the best key
/// ever dropped for room bounds what may still be returned in this page.
struct Pending {
    map: BTreeMap<Position, Source>,
    cap: usize,
    dropped: Option<Position>,
}

impl Pending {
    fn offer(&mut self, at: Position, src: Source) {
        if self.dropped.is_some_and(|d| at >= d) {
            return;
        }
        self.map.insert(at, src);
        if self.map.len() > self.cap {
            if let Some((worst, _)) = self.map.pop_last() {
                self.dropped = Some(self.dropped.map_or(worst, |d| d.min(worst)));
            }
        }
    }
}

struct MetaPruning<'a>(&'a BlockMeta);

impl Pruning for MetaPruning<'_> {
    fn may_have_service(&self, service: &str) -> bool {
        self.0.services.contains(service)
    }
    fn may_have_name(&self, name: &str) -> bool {
        self.0.operations.len() >= MAX_OPERATIONS || self.0.operations.iter().any(|(_, n)| n == name)
    }
}

/// A summary for filters that use no trace-level field.
static NO_TRACE: std::sync::LazyLock<TraceSummary> = std::sync::LazyLock::new(TraceSummary::default);

/// Returned traces are loaded this many at a time (bounds memory for full views).
const EMIT_BATCH: usize = 256;

struct Run<'s, 'f, F: FnMut(Hit) -> bool> {
    store: &'s Store,
    q: &'s Search<'f>,
    blocks: Vec<Arc<Block>>,
    pending: Pending,
    emit: F,
    remaining: usize,
    last: Option<Position>,
    stats: SearchStats,
    /// The client went away.
    gone: bool,
    /// Blocks found unreadable (reported once each).
    bad_blocks: HashSet<usize>,
}

impl Store {
    /// Runs a search, handing each trace found to `emit` in order (`emit`
    /// returns `false` to stop, e.g. when the client has gone).
    pub fn search<F: FnMut(Hit) -> bool>(&self, q: &Search<'_>, emit: F) -> Result<SearchEnd, StoreError> {
        let started = Instant::now();
        let (blocks, sealing, head) = {
            let _view = self.handoff_read();
            (self.blocks(), self.sealing(), self.head.snapshot_traces())
        };
        let mut run = Run {
            store: self,
            q,
            pending: Pending { map: BTreeMap::new(), cap: q.limit.min(q.max_pending).max(1), dropped: None },
            emit,
            remaining: q.limit,
            last: None,
            gone: false,
            bad_blocks: HashSet::new(),
            stats: SearchStats { blocks: blocks.len() as u64, ..Default::default() },
            blocks,
        };
        if q.limit == 0 || q.start >= q.end {
            run.stats.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
            return Ok(SearchEnd { next: None, stats: run.stats });
        }

        // Traces not in a block yet: the set being sealed and the head, merged.
        let mut unsealed: HashMap<[u8; 16], (u64, Vec<StoredSpan>)> = HashMap::new();
        for (id, t) in sealing.iter() {
            unsealed.insert(*id, (t.first_recv, t.spans.clone()));
        }
        drop(sealing);
        for (id, t) in head {
            let e = unsealed.entry(id).or_insert((t.first_recv, Vec::new()));
            e.0 = e.0.min(t.first_recv);
            e.1.extend(t.spans);
        }
        // Block rows of these are skipped: they are tested whole here.
        let mut skip = self.split_traces();
        let split: Vec<[u8; 16]> = skip.iter().copied().collect();
        let mut whole: HashSet<[u8; 16]> = HashSet::new();
        let mut scratch = Scratch::default();
        for (id, (first_recv, spans)) in &unsealed {
            if run.unsealed(id, *first_recv, spans, &mut scratch)? {
                whole.insert(*id);
            }
        }
        drop(scratch);
        skip.extend(whole.iter().copied());
        for id in split.iter().filter(|id| !whole.contains(*id)) {
            // Its newest block's summary is the whole trace's: read it only
            // if it can be in this page.
            if self.block_start_since(id, 0, &run.blocks).is_some_and(|start| !run.wanted(start, id)) {
                continue;
            }
            run.stats.split_traces += 1;
            if let Some((summary, spans)) = self.trace(id)? {
                run.whole(summary, &spans);
            }
        }
        drop(unsealed);

        // Blocks, in output order.
        let mut order: Vec<usize> = Vec::new();
        for (i, b) in run.blocks.iter().enumerate() {
            if run.block_may_match(b) {
                order.push(i);
            } else {
                run.stats.blocks_pruned += 1;
            }
        }
        match q.order {
            Order::NewestFirst => order.sort_by_key(|&i| std::cmp::Reverse(run.blocks[i].meta.max_end)),
            Order::OldestFirst => order.sort_by_key(|&i| run.blocks[i].meta.min_start),
        }
        let frontier = |b: &Block| match q.order {
            Order::NewestFirst => Position::of(q.order, b.meta.max_end, &[0xff; 16]).0,
            Order::OldestFirst => b.meta.min_start,
        };
        let mut next_block = 0;
        let mut stopped: Option<&'static str> = None;
        loop {
            let bound = order.get(next_block).map(|&i| Position(frontier(&run.blocks[i]), [0; 16]));
            let done = run.emit_until(bound)?;
            if done || run.gone {
                break;
            }
            if run.pending.dropped.is_some_and(|d| run.pending.map.first_key_value().is_none_or(|(k, _)| *k >= d)) {
                stopped = Some("memory");
                break;
            }
            let Some(&bi) = order.get(next_block) else { break };
            // Out of time: stop, if stopping here moves the cursor on (else a
            // client resuming would get the same empty page forever).
            if Instant::now() >= q.deadline && run.pending.dropped.is_none() {
                let resume = Position(frontier(&run.blocks[bi]), [0; 16]).just_before();
                if resume.is_some_and(|r| q.after.is_none_or(|a| r > a)) {
                    stopped = Some("deadline");
                    break;
                }
            }
            let block = run.blocks[bi].clone();
            match run.scan(bi, &block, &skip) {
                Ok(()) => run.stats.blocks_scanned += 1,
                // A damaged block is skipped and reported; the rest of the
                // store still answers.
                Err(e) => run.unreadable(bi, &e),
            }
            next_block += 1;
        }
        let more_left = run.remaining == 0
            && (!run.pending.map.is_empty() || run.pending.dropped.is_some() || next_block < order.len());
        let next = match stopped {
            _ if run.gone => run.last,
            None if more_left => run.last,
            None => None,
            Some(_) => {
                // Everything before the next block's frontier went out (unless
                // room ran out first): resume from there.
                let frontier_pos = order
                    .get(next_block)
                    .and_then(|&i| Position(frontier(&run.blocks[i]), [0; 16]).just_before())
                    .filter(|_| stopped == Some("deadline") && run.pending.dropped.is_none());
                match (frontier_pos, run.last) {
                    (Some(f), Some(l)) => Some(f.max(l)),
                    (f, l) => f.or(l).or(q.after),
                }
            }
        };
        run.stats.stopped = if next.is_some() { stopped } else { None };
        run.stats.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(SearchEnd { next, stats: run.stats })
    }
}

impl<F: FnMut(Hit) -> bool> Run<'_, '_, F> {
    /// Whether a trace starting at `start` is in the window and after the cursor.
    fn wanted(&self, start: u64, id: &[u8; 16]) -> bool {
        start >= self.q.start
            && start < self.q.end
            && self.q.after.is_none_or(|a| Position::of(self.q.order, start, id) > a)
    }

    fn block_may_match(&self, b: &Block) -> bool {
        let m = &b.meta;
        if m.spans == 0 || m.max_end < self.q.start || m.min_start >= self.q.end {
            return false;
        }
        if let Some(a) = self.q.after {
            // No trace of this block can come after the cursor.
            let best = match self.q.order {
                Order::NewestFirst => Position::of(self.q.order, m.min_start, &[0; 16]),
                Order::OldestFirst => Position::of(self.q.order, m.max_end, &[0xff; 16]),
            };
            if best <= a {
                return false;
            }
        }
        self.q.filter.may_match(&MetaPruning(m))
    }

    /// Tests a trace of the head (or being sealed) on its own spans; if it may
    /// have spans in blocks too, tests it whole and returns `true`. (A trace
    /// none of whose unsealed spans satisfies anything is not looked up: its
    /// block rows, if any, are tested with the block.)
    fn unsealed<'a>(
        &mut self,
        id: &[u8; 16],
        first_recv: u64,
        spans: &'a [StoredSpan],
        scratch: &mut Scratch<'a>,
    ) -> Result<bool, StoreError> {
        self.stats.unsealed_traces += 1;
        scratch.clear();
        let mut refs = Vec::with_capacity(spans.len());
        let mut seen: HashSet<[u8; 8]> = HashSet::with_capacity(spans.len());
        for s in spans {
            if let Ok(r) = wire::parse_span(&s.span, scratch) {
                if seen.insert(r.span_id) {
                    refs.push((&*s.origin, r));
                }
            }
        }
        let facts: Vec<SpanFacts<'_>> = refs.iter().map(|(o, r)| r.facts(&o.service)).collect();
        let summary = TraceSummary::of_facts(*id, &facts);
        let f = self.q.filter;
        let mut marks = vec![false; f.spansets()];
        for (origin, r) in &refs {
            f.mark_span(&HeadSpan { span: r, kvs: &scratch.kvs, origin }, &summary, &mut marks);
        }
        self.stats.spans_inspected += refs.len() as u64;
        // Spans in blocks could change the marks or the summary: look only when
        // it could matter, and only in blocks written since the trace began
        // arriving (the rule sealing uses).
        let interesting = marks.iter().any(|m| *m) || f.uses_trace_fields();
        let in_blocks = if interesting { self.store.block_start_since(id, first_recv, &self.blocks) } else { None };
        if let Some(block_start) = in_blocks {
            // Whole, the trace starts where its root is, or at the earlier of
            // the two starts if neither part has it: when neither start is in
            // this page, the trace cannot be returned here and is not read
            // (after a restart, replayed spans of thousands of stored traces
            // wait in the head, and every page read them all one by one).
            if self.wanted(summary.start, id) || self.wanted(block_start, id) {
                self.stats.split_traces += 1;
                if let Some((summary, spans)) = self.store.trace(id)? {
                    self.whole(summary, &spans);
                }
            }
            return Ok(true);
        }
        if f.trace_matches(&marks) && self.wanted(summary.start, id) {
            self.pending.offer(Position::of(self.q.order, summary.start, id), Source::Whole(Box::new(summary)));
        }
        Ok(false)
    }

    /// Tests a trace read whole.
    fn whole(&mut self, summary: TraceSummary, spans: &[FullSpan]) {
        let f = self.q.filter;
        let mut marks = vec![false; f.spansets()];
        for s in spans {
            f.mark_span(s, &summary, &mut marks);
        }
        self.stats.spans_inspected += spans.len() as u64;
        if f.trace_matches(&marks) && self.wanted(summary.start, &summary.trace_id) {
            let at = Position::of(self.q.order, summary.start, &summary.trace_id);
            self.pending.offer(at, Source::Whole(Box::new(summary)));
        }
    }

    /// Tests a block's traces.
    fn scan(&mut self, bi: usize, b: &Block, skip: &HashSet<[u8; 16]>) -> Result<(), StoreError> {
        let order = self.q.order;
        let cand: Vec<usize> = (0..b.index.len())
            .filter(|&i| {
                let id = &b.index[i].trace_id;
                let start = b.starts.get(i).copied().unwrap_or(0);
                self.wanted(start, id) && !skip.contains(id)
            })
            .collect();
        self.stats.traces_inspected += cand.len() as u64;
        if cand.is_empty() {
            return Ok(());
        }
        let f = self.q.filter;
        if f.matches_everything() {
            for i in cand {
                self.pending.offer(Position::of(order, b.starts[i], &b.index[i].trace_id), Source::Block(bi, i));
            }
            return Ok(());
        }
        let sums = if f.uses_trace_fields() { b.summaries_at(&cand)? } else { Vec::new() };
        let ranges =
            merge_ranges(cand.iter().map(|&i| (b.index[i].first_row as usize, b.index[i].rows as usize)).collect());
        let (span_attrs, resource_attrs) = f.attribute_scopes();
        let batches = b.span_columns(&ranges, &SpanRows::columns(span_attrs, resource_attrs))?;
        let views = batches.iter().map(SpanRows::of).collect::<Result<Vec<_>, _>>()?;
        let (mut v, mut row) = (0usize, 0usize);
        let mut marks = vec![false; f.spansets()];
        for (ci, &i) in cand.iter().enumerate() {
            marks.fill(false);
            let trace: &TraceSummary = sums.get(ci).unwrap_or(&NO_TRACE);
            for _ in 0..b.index[i].rows {
                while views.get(v).is_some_and(|x| row >= x.len()) {
                    v += 1;
                    row = 0;
                }
                let Some(view) = views.get(v) else {
                    return Err(StoreError::Format(format!(
                        "{}: fewer span rows than its index says",
                        b.dir.display()
                    )));
                };
                f.mark_span(&view.row(row), trace, &mut marks);
                row += 1;
            }
            self.stats.spans_inspected += u64::from(b.index[i].rows);
            if f.trace_matches(&marks) {
                self.pending.offer(Position::of(order, b.starts[i], &b.index[i].trace_id), Source::Block(bi, i));
            }
        }
        Ok(())
    }

    /// Sends the waiting matches ordered before `bound` (all, if `None`).
    /// Returns whether the page is full.
    fn emit_until(&mut self, bound: Option<Position>) -> Result<bool, StoreError> {
        loop {
            if self.remaining == 0 {
                return Ok(true);
            }
            let mut batch: Vec<(Position, Source)> = Vec::new();
            while batch.len() < EMIT_BATCH.min(self.remaining) {
                let Some((k, _)) = self.pending.map.first_key_value() else { break };
                if bound.is_some_and(|b| *k >= b) || self.pending.dropped.is_some_and(|d| *k >= d) {
                    break;
                }
                if let Some(entry) = self.pending.map.pop_first() {
                    batch.push(entry);
                }
            }
            if batch.is_empty() {
                return Ok(false);
            }
            for hit in self.load(batch) {
                self.last = Some(hit.position);
                self.remaining -= 1;
                self.stats.returned += 1;
                if !(self.emit)(hit) {
                    self.gone = true;
                    return Ok(true);
                }
            }
        }
    }

    /// Notes a block that could not be read; its traces are left out.
    fn unreadable(&mut self, bi: usize, e: &StoreError) {
        if !self.bad_blocks.insert(bi) {
            return;
        }
        self.stats.blocks_unreadable += 1;
        let seq = self.blocks[bi].meta.seq;
        tracing::warn!(block = seq, error = %e, "a block could not be read; the search skips it");
        if self.stats.errors.len() < MAX_ERRORS {
            self.stats.errors.push(format!("block {seq}: {e}"));
        }
    }

    /// Reads what the view needs of a batch of matches, in bulk per block.
    /// Traces whose data cannot be read are left out and counted.
    fn load(&mut self, batch: Vec<(Position, Source)>) -> Vec<Hit> {
        let spans = self.q.load != Load::Summary;
        let as_rows = self.q.load == Load::AllRows;
        // Per block: the positions wanted, read together.
        let mut per_block: HashMap<usize, Vec<usize>> = HashMap::new();
        for (_, src) in &batch {
            if let Source::Block(b, i) = src {
                per_block.entry(*b).or_default().push(*i);
            }
        }
        let mut read: HashMap<(usize, usize), (TraceSummary, Loaded)> = HashMap::new();
        for (bi, mut at) in per_block {
            at.sort_unstable();
            let b = self.blocks[bi].clone();
            let ranges: Vec<(usize, usize)> =
                at.iter().map(|&i| (b.index[i].first_row as usize, b.index[i].rows as usize)).collect();
            let store = self.store;
            let read_block = || -> Result<_, StoreError> {
                let cached = store.decoded().get(b.meta.seq);
                let whole = match cached {
                    Some(w) => Some(w),
                    None if spans && worth_reading_whole(&b, &ranges) => {
                        let w = WholeBlock::read(&b)?;
                        Some(store.decoded().insert(b.meta.seq, w))
                    }
                    None => None,
                };
                let mut rows_of = Vec::new();
                if let Some(w) = whole {
                    let sums = at.iter().map(|&i| w.summary(i).ok_or_else(|| StoreError::Format("bad index".into())));
                    let sums = sums.collect::<Result<Vec<_>, _>>()?;
                    if spans {
                        for &(from, len) in &ranges {
                            rows_of.push(if as_rows {
                                Loaded::Rows(w.rows(from, len)?)
                            } else {
                                Loaded::Spans(w.spans(from, len)?)
                            });
                        }
                    }
                    return Ok((sums, rows_of));
                }
                let sums = b.summaries_at(&at)?;
                if spans {
                    let mut all = b.spans_at(&merge_ranges(ranges.clone()))?.into_iter();
                    for &i in &at {
                        rows_of.push(Loaded::Spans(all.by_ref().take(b.index[i].rows as usize).collect::<Vec<_>>()));
                    }
                }
                Ok((sums, rows_of))
            };
            let (sums, rows_of) = match read_block() {
                Ok(r) => r,
                Err(e) => {
                    self.stats.traces_unreadable += at.len() as u64;
                    self.unreadable(bi, &e);
                    continue;
                }
            };
            let mut rows_of = rows_of.into_iter();
            for (i, s) in at.into_iter().zip(sums) {
                read.insert((bi, i), (s, rows_of.next().unwrap_or(Loaded::Spans(Vec::new()))));
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for (position, src) in batch {
            let (summary, loaded) = match src {
                Source::Block(b, i) => match read.remove(&(b, i)) {
                    Some(x) => x,
                    None => continue,
                },
                Source::Whole(summary) => {
                    let all = if spans {
                        match self.store.trace(&summary.trace_id) {
                            Ok(t) => t.map(|(_, s)| s).unwrap_or_default(),
                            Err(e) => {
                                self.stats.traces_unreadable += 1;
                                if self.stats.errors.len() < MAX_ERRORS {
                                    self.stats.errors.push(format!("trace {}: {e}", hex(&summary.trace_id)));
                                }
                                continue;
                            }
                        }
                    } else {
                        Vec::new()
                    };
                    (*summary, Loaded::Spans(all))
                }
            };
            let (all, rows) = match loaded {
                Loaded::Spans(s) => (s, Vec::new()),
                Loaded::Rows(r) => (Vec::new(), r),
            };
            let spans = match self.q.load {
                Load::Summary => Vec::new(),
                Load::AllSpans | Load::AllRows => all,
                Load::MatchedSpans => {
                    all.into_iter().filter(|s| self.q.filter.matches_any_spanset(s, &summary)).collect()
                }
            };
            out.push(Hit { summary, spans, rows, position });
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! Searches against a brute-force reference: a dataset with known
    //! content, spread over two blocks (one holding late spans of traces in
    //! the other) and the head; random filters, windows, orders and page sizes
    //! must return exactly the traces (and matched spans) a scan of every span
    //! of every trace returns, in order, across pages.

    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{Span, Status};
    use proptest::prelude::*;
    use prost::Message;
    use weft_traceql::Filter;

    use super::*;
    use crate::span::Origin;
    use crate::store::StoreConfig;

    const SERVICES: [&str; 5] = ["api", "db", "auth", "cart", "web"];
    const NAMES: [&str; 5] = ["GET /", "POST /x", "query", "SELECT", "auth.check"];
    const BASE: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;

    fn kv(k: &str, v: V) -> KeyValue {
        KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
    }

    /// Deterministic pseudo-random numbers (the dataset must be the same in
    /// every run, so failures reproduce).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    pub(crate) struct Data {
        pub(crate) store: Arc<Store>,
        /// Every span of every trace, as the reference sees them.
        pub(crate) traces: BTreeMap<[u8; 16], Vec<FullSpan>>,
        _dir: tempfile::TempDir,
    }

    fn span(rng: &mut Lcg, trace: &[u8; 16], i: u64, root_start: u64, parent: Option<u64>) -> (Arc<Origin>, Span) {
        let svc = SERVICES[rng.next(5) as usize];
        let mut resource = vec![kv("service.name", V::StringValue(svc.into()))];
        if rng.next(2) == 0 {
            resource.push(kv("deployment", V::StringValue(["prod", "dev"][rng.next(2) as usize].into())));
        }
        let origin = Arc::new(Origin::new(resource, InstrumentationScope::default()));
        let mut attributes = vec![kv("http.status", V::IntValue([200, 404, 500, 503][rng.next(4) as usize]))];
        if rng.next(3) > 0 {
            attributes.push(kv("region", V::StringValue(["eu", "us"][rng.next(2) as usize].into())));
        }
        if rng.next(2) == 0 {
            attributes.push(kv("ratio", V::DoubleValue(rng.next(100) as f64 / 100.0)));
        }
        if rng.next(2) == 0 {
            attributes.push(kv("cached", V::BoolValue(rng.next(2) == 0)));
        }
        let start = root_start + if parent.is_some() { rng.next(50) * MS } else { 0 };
        let sp = Span {
            trace_id: trace.to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: parent.map(|p| (p + 1).to_be_bytes().to_vec()).unwrap_or_default(),
            name: NAMES[rng.next(5) as usize].into(),
            kind: rng.next(6) as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + rng.next(300) * MS,
            attributes,
            status: Some(Status { code: rng.next(3) as i32, message: String::new() }),
            ..Default::default()
        };
        (origin, sp)
    }

    fn stored(origin: &Arc<Origin>, sp: &Span) -> StoredSpan {
        let mut trace_id = [0u8; 16];
        trace_id.copy_from_slice(&sp.trace_id);
        StoredSpan { origin: origin.clone(), trace_id, span: bytes::Bytes::from(sp.encode_to_vec()) }
    }

    /// Two blocks and a head of known content (built once per test binary).
    pub(crate) fn data() -> &'static Data {
        static DATA: OnceLock<Data> = OnceLock::new();
        DATA.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = StoreConfig::new(dir.path().to_path_buf());
            cfg.trace_idle = Duration::from_secs(3600);
            cfg.compact_below_spans = 0;
            let store = Store::open(cfg, Arc::new(AtomicUsize::new(0)), |_| {}).unwrap();
            let mut rng = Lcg(42);
            let mut traces: BTreeMap<[u8; 16], Vec<FullSpan>> = BTreeMap::new();
            let mut batches: Vec<Vec<StoredSpan>> = vec![Vec::new(), Vec::new(), Vec::new()];
            for t in 0..90u64 {
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&(rng.next(u64::MAX >> 1) | 1).to_be_bytes());
                id[15] = t as u8;
                // Some traces share a start, so ties are broken by ID.
                let root_start = BASE + (t / 2) * 10 * MS;
                let phase = (t / 30) as usize;
                let n = 1 + rng.next(6);
                for i in 0..n {
                    let (origin, sp) = span(&mut rng, &id, i, root_start, (i > 0).then_some(0));
                    batches[phase].push(stored(&origin, &sp));
                    traces.entry(id).or_default().push(FullSpan { origin, span: sp });
                }
                // Late spans: traces of phase 0 get some in phase 1 (a second
                // block) and in phase 2 (the head).
                if phase == 0 && t % 5 == 0 {
                    for (late_phase, i) in [(1usize, 10u64), (2, 11)] {
                        if t % 10 == 0 || late_phase == 1 {
                            let (origin, sp) = span(&mut rng, &id, i, root_start, Some(0));
                            batches[late_phase].push(stored(&origin, &sp));
                            traces.entry(id).or_default().push(FullSpan { origin, span: sp });
                        }
                    }
                }
            }
            for (phase, batch) in batches.iter().enumerate() {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
                store.insert(0, now, batch);
                if phase < 2 {
                    store.seal(now, true).unwrap();
                }
            }
            assert_eq!(store.blocks().len(), 2);
            assert!(!store.split_traces().is_empty());
            Data { store, traces, _dir: dir }
        })
    }

    /// The reference: every trace, whole, tested span by span.
    fn brute(d: &Data, f: &Filter, start: u64, end: u64, order: Order) -> Vec<([u8; 16], Vec<[u8; 8]>)> {
        let mut out = Vec::new();
        for (id, spans) in &d.traces {
            let summary = TraceSummary::of(*id, spans);
            let mut marks = vec![false; f.spansets()];
            for s in spans {
                f.mark_span(s, &summary, &mut marks);
            }
            if f.trace_matches(&marks) && summary.start >= start && summary.start < end {
                let mut matched: Vec<[u8; 8]> =
                    spans.iter().filter(|s| f.matches_any_spanset(*s, &summary)).map(|s| s.facts().span_id).collect();
                matched.sort_unstable();
                out.push((Position::of(order, summary.start, id), *id, matched));
            }
        }
        out.sort_by_key(|(p, _, _)| *p);
        out.into_iter().map(|(_, id, m)| (id, m)).collect()
    }

    fn paged(
        d: &Data,
        f: &Filter,
        start: u64,
        end: u64,
        order: Order,
        limit: usize,
        max_pending: usize,
    ) -> Vec<([u8; 16], Vec<[u8; 8]>)> {
        let mut out = Vec::new();
        let mut after = None;
        for _ in 0..1000 {
            let q = Search {
                start,
                end,
                filter: f,
                order,
                limit,
                after,
                load: Load::MatchedSpans,
                deadline: Instant::now() + Duration::from_secs(60),
                max_pending,
            };
            let end = d
                .store
                .search(&q, |h| {
                    let mut ids: Vec<[u8; 8]> = h.spans.iter().map(|s| s.facts().span_id).collect();
                    ids.sort_unstable();
                    out.push((h.summary.trace_id, ids));
                    true
                })
                .unwrap();
            match end.next {
                Some(p) => after = Some(p),
                None => return out,
            }
        }
        panic!("paging did not end");
    }

    fn condition() -> impl Strategy<Value = String> {
        let s = |v: &[&str]| prop::sample::select(v.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        prop_oneof![
            s(&SERVICES).prop_map(|v| format!("resource.service.name = \"{v}\"")),
            s(&NAMES).prop_map(|v| format!("name = \"{v}\"")),
            Just("name =~ \"(GET|POST) .*\"".to_string()),
            Just("name !~ \"SEL.*\"".to_string()),
            s(&["200", "404", "500", "503"]).prop_map(|v| format!("span.http.status >= {v}")),
            s(&["200", "404"]).prop_map(|v| format!("span.http.status = {v}")),
            s(&["eu", "us"]).prop_map(|v| format!(".region = \"{v}\"")),
            Just("resource.deployment != \"prod\"".to_string()),
            Just("span.ratio < 0.5".to_string()),
            Just("span.cached = true".to_string()),
            s(&["error", "ok", "unset"]).prop_map(|v| format!("status = {v}")),
            s(&["server", "client", "internal"]).prop_map(|v| format!("kind != {v}")),
            (0u64..300).prop_map(|v| format!("duration > {v}ms")),
            (0u64..300).prop_map(|v| format!("trace:duration <= {v}ms")),
            s(&SERVICES).prop_map(|v| format!("trace:rootService = \"{v}\"")),
            s(&NAMES).prop_map(|v| format!("trace:rootName = \"{v}\"")),
            Just("span.region = nil".to_string()),
            Just(".deployment != nil".to_string()),
            Just("true".to_string()),
        ]
    }

    fn spanset() -> impl Strategy<Value = String> {
        (condition(), prop::option::of((prop::bool::ANY, condition()))).prop_map(|(a, rest)| match rest {
            None => format!("{{ {a} }}"),
            Some((and, b)) => format!("{{ {a} {} {b} }}", if and { "&&" } else { "||" }),
        })
    }

    fn filter() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => Just(String::new()),
            4 => spanset(),
            3 => (spanset(), prop::bool::ANY, spanset())
                .prop_map(|(a, and, b)| format!("{a} {} {b}", if and { "&&" } else { "||" })),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn searches_return_what_a_scan_of_every_span_returns(
            text in filter(),
            from in 0u64..500,
            len in 1u64..600,
            newest in prop::bool::ANY,
            limit in 1usize..12,
            max_pending in prop::sample::select(vec![3usize, 1000]),
        ) {
            let d = data();
            let f = Filter::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let (start, end) = (BASE + from * MS, BASE + (from + len) * MS);
            let order = if newest { Order::NewestFirst } else { Order::OldestFirst };
            let want = brute(d, &f, start, end, order);
            let got = paged(d, &f, start, end, order, limit, max_pending);
            if got != want {
                let g: Vec<u8> = got.iter().map(|x| x.0[15]).collect();
                let w: Vec<u8> = want.iter().map(|x| x.0[15]).collect();
                let diff: Vec<_> = got.iter().zip(&want).filter(|(a, b)| a != b).take(2).collect();
                prop_assert!(false, "filter {}: got {:?} want {:?} first diff {:?}", text, g, w, diff);
            }
        }
    }

    #[test]
    fn an_unlimited_search_of_everything_returns_every_trace_once() {
        let d = data();
        let f = Filter::parse("").unwrap();
        let got = paged(d, &f, 0, u64::MAX, Order::OldestFirst, usize::MAX, 1 << 20);
        assert_eq!(got.len(), d.traces.len());
        let q = Search {
            start: 0,
            end: u64::MAX,
            filter: &f,
            order: Order::NewestFirst,
            limit: 5,
            after: None,
            load: Load::Summary,
            deadline: Instant::now() + Duration::from_secs(60),
            max_pending: 100,
        };
        let n = AtomicUsize::new(0);
        let end = d.store.search(&q, |_| n.fetch_add(1, AtomicOrdering::Relaxed) < 1000).unwrap();
        assert_eq!(n.load(AtomicOrdering::Relaxed), 5);
        assert!(end.next.is_some(), "{end:?}");
        assert!(end.stats.unsealed_traces > 0, "{:?}", end.stats);
    }

    #[test]
    fn a_passed_deadline_ends_the_page_with_a_position_that_resumes() {
        let d = data();
        let f = Filter::parse("{ span.http.status >= 200 }").unwrap();
        let want = brute(d, &f, 0, u64::MAX, Order::NewestFirst);
        let mut got = Vec::new();
        let mut after = None;
        for _ in 0..1000 {
            let q = Search {
                start: 0,
                end: u64::MAX,
                filter: &f,
                order: Order::NewestFirst,
                limit: 1000,
                after,
                load: Load::Summary,
                deadline: Instant::now(),
                max_pending: 1000,
            };
            let end = d.store.search(&q, |h| {
                got.push(h.summary.trace_id);
                true
            });
            let end = end.unwrap();
            match end.next {
                Some(p) => {
                    assert_eq!(end.stats.stopped, Some("deadline"));
                    after = Some(p);
                }
                None => break,
            }
        }
        assert_eq!(got, want.into_iter().map(|(id, _)| id).collect::<Vec<_>>());
    }

    #[test]
    fn a_damaged_block_is_skipped_and_reported_and_the_rest_still_answers() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = StoreConfig::new(dir.path().to_path_buf());
        cfg.trace_idle = Duration::from_secs(3600);
        cfg.compact_below_spans = 0;
        let store = Store::open(cfg, Arc::new(AtomicUsize::new(0)), |_| {}).unwrap();
        let mut rng = Lcg(7);
        for block in 0..2u8 {
            let mut batch = Vec::new();
            for t in 0..10u8 {
                let mut id = [block + 1; 16];
                id[15] = t;
                let (origin, sp) = span(&mut rng, &id, 0, BASE + u64::from(block) * 1000 * MS, None);
                batch.push(stored(&origin, &sp));
            }
            store.insert(0, BASE, &batch);
            store.seal(BASE, true).unwrap();
        }
        assert_eq!(store.blocks().len(), 2);
        let first = store.blocks()[0].dir.clone();
        for f in ["spans.parquet", "traces.parquet"] {
            let path = first.join(f);
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            std::fs::write(&path, vec![0x55u8; len]).unwrap();
        }
        for (filter, load) in [("{ span.http.status >= 200 }", Load::AllSpans), ("", Load::Summary)] {
            let f = Filter::parse(filter).unwrap();
            let q = Search {
                start: 0,
                end: u64::MAX,
                filter: &f,
                order: Order::NewestFirst,
                limit: 100,
                after: None,
                load,
                deadline: Instant::now() + Duration::from_secs(60),
                max_pending: 1000,
            };
            let mut got = Vec::new();
            let end = d_search(&store, &q, &mut got);
            assert_eq!(got.len(), 10, "{filter:?}: the undamaged block still answers: {:?}", end.stats);
            assert!(got.iter().all(|id| id[0] == 2));
            assert_eq!(end.stats.blocks_unreadable, 1, "{:?}", end.stats);
            assert!(!end.stats.errors.is_empty());
            assert_eq!(end.next, None, "the search went past the damaged block");
        }
        store.close();
    }

    fn d_search(store: &Store, q: &Search<'_>, got: &mut Vec<[u8; 16]>) -> SearchEnd {
        store
            .search(q, |h| {
                got.push(h.summary.trace_id);
                true
            })
            .unwrap()
    }
}
