//! Whole blocks decoded once and kept a little while, for the searches that
//! read most of them.
//!
//! A search emits its matches in start-time order, a few hundred at a time,
//! but a block stores its traces in trace-ID order: the traces of one emit
//! batch are scattered over every page of the block. Reading them with a row
//! selection decodes (decompresses, then skips through) nearly all pages for
//! every batch — a full export spent most of its time doing that again and
//! again. When a batch wants rows on most of a block's pages, the block is
//! instead read in one sequential pass and its decoded Arrow batches kept here,
//! within a byte budget, so later batches slice them for free — and so do the
//! next pages of the same export, which arrive as new requests (the store
//! keeps one cache for all searches; entries unused for a while are let go).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;

use crate::block::{Block, PAGE_ROWS};
use crate::columns;
use crate::span::FullSpan;
use crate::summary::TraceSummary;
use crate::StoreError;

/// A block's summaries and span rows, decoded.
pub(crate) struct WholeBlock {
    /// Summaries by index position.
    sums: Vec<TraceSummary>,
    batches: Vec<RecordBatch>,
    /// First row of each batch.
    firsts: Vec<usize>,
    bytes: usize,
}

impl WholeBlock {
    /// Reads all of `b`.
    pub(crate) fn read(b: &Block) -> Result<WholeBlock, StoreError> {
        let sums: Vec<TraceSummary> = b.all_summaries()?.into_iter().map(|(s, _)| s).collect();
        let batches = b.all_span_batches()?;
        let mut firsts = Vec::with_capacity(batches.len());
        let mut at = 0;
        for batch in &batches {
            firsts.push(at);
            at += batch.num_rows();
        }
        if sums.len() != b.index.len() || at != b.meta.spans as usize {
            return Err(StoreError::Format(format!("{}: row counts disagree", b.dir.display())));
        }
        let bytes = batches.iter().map(RecordBatch::get_array_memory_size).sum::<usize>()
            + sums.iter().map(|s| std::mem::size_of::<TraceSummary>() + s.services.len() * 32).sum::<usize>();
        Ok(WholeBlock { sums, batches, firsts, bytes })
    }

    /// The summary at index position `i`.
    pub(crate) fn summary(&self, i: usize) -> Option<TraceSummary> {
        self.sums.get(i).cloned()
    }

    /// Rows `from..from + len`, as slices of the decoded batches (no copy).
    pub(crate) fn rows(&self, from: usize, len: usize) -> Result<Vec<RecordBatch>, StoreError> {
        let mut out = Vec::with_capacity(2);
        let (mut row, end) = (from, from + len);
        while row < end {
            let bi = self.firsts.partition_point(|&f| f <= row).saturating_sub(1);
            let Some(batch) = self.batches.get(bi) else { break };
            let offset = row - self.firsts[bi];
            if offset >= batch.num_rows() {
                break;
            }
            let take = (end - row).min(batch.num_rows() - offset);
            out.push(batch.slice(offset, take));
            row += take;
        }
        if row != end {
            return Err(StoreError::Format(format!("rows {from}..{end} are not all in the block")));
        }
        Ok(out)
    }

    /// The spans in rows `from..from + len`.
    pub(crate) fn spans(&self, from: usize, len: usize) -> Result<Vec<FullSpan>, StoreError> {
        let mut out = Vec::with_capacity(len);
        for batch in self.rows(from, len)? {
            out.extend(columns::from_batch(&batch)?);
        }
        Ok(out)
    }
}

/// Whether reading the rows `ranges` would touch at least half of `b`'s pages
/// (then one sequential read of everything costs about as much, and serves the
/// batches to come too).
pub(crate) fn worth_reading_whole(b: &Block, ranges: &[(usize, usize)]) -> bool {
    let pages = (b.meta.spans as usize).div_ceil(PAGE_ROWS);
    let mut touched = 0;
    let mut last: Option<usize> = None;
    for &(from, len) in ranges {
        let (first, end) = (from / PAGE_ROWS, (from + len.max(1) - 1) / PAGE_ROWS);
        let first = last.map_or(first, |l| first.max(l + 1));
        if end >= first {
            touched += end - first + 1;
            last = Some(end);
        }
    }
    pages > 0 && touched * 2 >= pages
}

/// Whole blocks kept, by block sequence number; the least recently used are
/// let go beyond `budget` bytes (the newest is kept even if larger, while it
/// is being read from), and any left unused for a while by [`BlockCache::expire`].
pub(crate) struct BlockCache {
    map: HashMap<u64, (Arc<WholeBlock>, Instant)>,
    bytes: usize,
    budget: usize,
}

impl BlockCache {
    /// An empty cache of at most `budget` bytes.
    pub(crate) fn new(budget: usize) -> BlockCache {
        BlockCache { map: HashMap::new(), bytes: 0, budget }
    }

    /// Block `seq`, if kept.
    pub(crate) fn get(&mut self, seq: u64) -> Option<Arc<WholeBlock>> {
        self.map.get_mut(&seq).map(|(w, used)| {
            *used = Instant::now();
            w.clone()
        })
    }

    /// Keeps block `seq`, letting the least recently used go to stay within
    /// the budget.
    pub(crate) fn insert(&mut self, seq: u64, w: WholeBlock) -> Arc<WholeBlock> {
        let w = Arc::new(w);
        self.bytes += w.bytes;
        if let Some((old, _)) = self.map.insert(seq, (w.clone(), Instant::now())) {
            self.bytes -= old.bytes;
        }
        while self.bytes > self.budget && self.map.len() > 1 {
            let lru = self.map.iter().filter(|(k, _)| **k != seq).min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k);
            let Some(old) = lru.and_then(|k| self.map.remove(&k)) else { break };
            self.bytes -= old.0.bytes;
        }
        w
    }

    /// Lets go of blocks unused for `idle` or more.
    pub(crate) fn expire(&mut self, idle: Duration) {
        let now = Instant::now();
        let bytes = &mut self.bytes;
        self.map.retain(|_, (w, used)| {
            let keep = now.duration_since(*used) < idle;
            if !keep {
                *bytes -= w.bytes;
            }
            keep
        });
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(bytes: usize) -> WholeBlock {
        WholeBlock { sums: Vec::new(), batches: Vec::new(), firsts: Vec::new(), bytes }
    }

    #[test]
    fn the_least_recently_used_go_first_and_idle_ones_expire() {
        let mut c = BlockCache::new(100);
        c.insert(1, block(40));
        c.insert(2, block(40));
        assert!(c.get(1).is_some()); // 2 is now the least recently used
        c.insert(3, block(40));
        assert!(c.get(2).is_none() && c.get(1).is_some() && c.get(3).is_some());
        assert_eq!(c.bytes(), 80);
        // One larger than the budget is still kept while it is the newest.
        c.insert(4, block(500));
        assert!(c.get(4).is_some());
        assert_eq!(c.bytes(), 500);
        c.expire(Duration::ZERO);
        assert_eq!((c.bytes(), c.get(4).is_none()), (0, true));
    }
}
