//! The head: traces received but not yet sealed into a block, in memory.
//!
//! One partition per server shard; a shard only ever touches its own partition
//! (the mutex is uncontended on the ingest path; queries and the sealer take it
//! briefly). Span bytes are copied out of the request buffer on insert, so the
//! head's byte count is what it really holds and no request buffer is pinned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::span::StoredSpan;

/// Per-span bookkeeping beyond its bytes (entry, vector slot, hash share).
const SPAN_OVERHEAD: usize = 64;

/// Which partition (shard) owns a trace: the same function the server routes by.
pub fn shard_of(trace_id: &[u8], n: usize) -> usize {
    let mut k = [0u8; 8];
    let take = trace_id.len().min(8);
    k[..take].copy_from_slice(&trace_id[trace_id.len() - take..]);
    (u64::from_le_bytes(k) % n.max(1) as u64) as usize
}

/// A trace in the head.
#[derive(Debug, Default, Clone)]
pub struct HeadTrace {
    /// Its spans, in arrival order (duplicates possible: clients retry).
    pub spans: Vec<StoredSpan>,
    /// Receive time of its first span here, Unix ns.
    pub first_recv: u64,
    /// Receive time of its latest span, Unix ns.
    pub last_recv: u64,
    /// Bytes it holds.
    pub bytes: usize,
}

#[derive(Default)]
struct Part {
    traces: HashMap<[u8; 16], HeadTrace>,
}

/// The head.
pub struct Head {
    parts: Vec<Mutex<Part>>,
    /// Bytes held, including traces being sealed (until their block is durable).
    bytes: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head").field("parts", &self.parts.len()).field("bytes", &self.bytes()).finish()
    }
}

impl Head {
    /// A head of `n` partitions whose byte count is published in `bytes`.
    pub fn new(n: usize, bytes: Arc<AtomicUsize>) -> Head {
        Head { parts: (0..n.max(1)).map(|_| Mutex::new(Part::default())).collect(), bytes }
    }

    /// Partitions.
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    fn part(&self, i: usize) -> MutexGuard<'_, Part> {
        self.parts[i % self.parts.len()].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held (with those being sealed).
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Adds spans received at `recv` (Unix ns) to partition `part`.
    pub fn insert(&self, part: usize, recv: u64, spans: &[StoredSpan]) {
        let mut added = 0;
        let mut p = self.part(part);
        for s in spans {
            let copy = StoredSpan {
                origin: s.origin.clone(),
                trace_id: s.trace_id,
                span: bytes::Bytes::copy_from_slice(&s.span),
            };
            let size = copy.approx_bytes() + SPAN_OVERHEAD;
            let t = p.traces.entry(s.trace_id).or_insert_with(|| HeadTrace { first_recv: recv, ..Default::default() });
            t.first_recv = t.first_recv.min(recv);
            t.last_recv = t.last_recv.max(recv);
            t.bytes += size;
            t.spans.push(copy);
            added += size;
        }
        drop(p);
        self.bytes.fetch_add(added, Ordering::Relaxed);
    }

    /// Removes and returns the traces for which `pick` says yes. Their bytes stay
    /// counted until [`Head::release`].
    pub fn drain(&self, mut pick: impl FnMut(&[u8; 16], &HeadTrace) -> bool) -> Vec<([u8; 16], HeadTrace)> {
        let mut out = Vec::new();
        for i in 0..self.parts.len() {
            let mut p = self.part(i);
            let ids: Vec<[u8; 16]> = p.traces.iter().filter(|(id, t)| pick(id, t)).map(|(id, _)| *id).collect();
            for id in ids {
                if let Some(t) = p.traces.remove(&id) {
                    out.push((id, t));
                }
            }
        }
        out
    }

    /// The oldest traces (by latest arrival) holding at least `bytes`, removed.
    pub fn drain_oldest(&self, bytes: usize) -> Vec<([u8; 16], HeadTrace)> {
        let mut all: Vec<(u64, usize, [u8; 16])> = Vec::new();
        for i in 0..self.parts.len() {
            let p = self.part(i);
            all.extend(p.traces.iter().map(|(id, t)| (t.last_recv, t.bytes, *id)));
        }
        all.sort_unstable();
        let mut freed = 0;
        let mut chosen = std::collections::HashSet::new();
        for (_, b, id) in all {
            if freed >= bytes {
                break;
            }
            freed += b;
            chosen.insert(id);
        }
        self.drain(|id, _| chosen.contains(id))
    }

    /// Forgets `bytes` of sealed traces (their block is durable).
    pub fn release(&self, bytes: usize) {
        let _ = self.bytes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(bytes)));
    }

    /// The spans of one trace held here.
    pub fn get(&self, trace_id: &[u8; 16]) -> Vec<StoredSpan> {
        let p = self.part(shard_of(trace_id, self.parts.len()));
        p.traces.get(trace_id).map(|t| t.spans.clone()).unwrap_or_default()
    }

    /// The earliest receive time of anything held (not counting traces being
    /// sealed), if anything is.
    pub fn oldest_recv(&self) -> Option<u64> {
        (0..self.parts.len()).filter_map(|i| self.part(i).traces.values().map(|t| t.first_recv).min()).min()
    }

    /// Traces held.
    pub fn traces(&self) -> usize {
        (0..self.parts.len()).map(|i| self.part(i).traces.len()).sum()
    }

    /// A copy of every trace held, with its receive times (for searches).
    pub fn snapshot_traces(&self) -> Vec<([u8; 16], HeadTrace)> {
        let mut out = Vec::new();
        for i in 0..self.parts.len() {
            let p = self.part(i);
            out.extend(p.traces.iter().map(|(id, t)| (*id, t.clone())));
        }
        out
    }

    /// A copy of every trace held (for queries over recent data).
    pub fn snapshot(&self) -> Vec<([u8; 16], Vec<StoredSpan>)> {
        let mut out = Vec::new();
        for i in 0..self.parts.len() {
            let p = self.part(i);
            out.extend(p.traces.iter().map(|(id, t)| (*id, t.spans.clone())));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Origin;

    fn s(t: u8, n: usize) -> StoredSpan {
        StoredSpan { origin: Arc::new(Origin::default()), trace_id: [t; 16], span: bytes::Bytes::from(vec![1u8; n]) }
    }

    #[test]
    fn insert_drain_release_keep_the_byte_count() {
        let bytes = Arc::new(AtomicUsize::new(0));
        let h = Head::new(2, bytes.clone());
        h.insert(shard_of(&[1; 16], 2), 10, &[s(1, 100), s(1, 50)]);
        h.insert(shard_of(&[2; 16], 2), 20, &[s(2, 10)]);
        let held = h.bytes();
        assert!(held >= 160);
        assert_eq!(h.get(&[1; 16]).len(), 2);
        assert_eq!(h.oldest_recv(), Some(10));
        let d = h.drain(|_, t| t.last_recv <= 10);
        assert_eq!(d.len(), 1);
        assert_eq!(h.bytes(), held, "bytes stay counted until the block is durable");
        h.release(d[0].1.bytes);
        assert_eq!(h.oldest_recv(), Some(20));
        let old = h.drain_oldest(1);
        assert_eq!(old.len(), 1);
        h.release(old[0].1.bytes);
        assert_eq!((h.bytes(), h.traces()), (0, 0));
    }
}
