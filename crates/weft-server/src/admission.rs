//! The ingest byte budget: everything accepted but not yet durable in the
//! store is charged to it — requests being read, decoded, logged and routed
//! (permits), and the spans the store's head holds until their block is written
//! (a gauge the store keeps) — and a request that would go over it is refused,
//! with a retry delay, before its body is read in full.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::metrics::Metrics;

/// The budget shared by every request.
#[derive(Debug)]
pub struct Budget {
    used: AtomicUsize,
    /// Bytes held by the store's head (kept by the store).
    held: Arc<AtomicUsize>,
    limit: usize,
    metrics: Arc<Metrics>,
}

/// Bytes held against the budget; returned when dropped.
#[derive(Debug)]
pub struct Permit {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        Self::with_held(limit, metrics, Arc::default())
    }

    /// A budget of `limit` bytes that also counts `held` (the store's head).
    pub fn with_held(limit: usize, metrics: Arc<Metrics>, held: Arc<AtomicUsize>) -> Arc<Self> {
        metrics.budget_limit_bytes.store(limit as u64, Ordering::Relaxed);
        Arc::new(Budget { used: AtomicUsize::new(0), held, limit, metrics })
    }

    /// Bytes held by permits (requests in flight).
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes in use: permits and the store's head.
    pub fn total(&self) -> usize {
        self.used().saturating_add(self.held.load(Ordering::Relaxed))
    }

    /// Whether `bytes` more would fit now.
    pub fn has_room(&self, bytes: usize) -> bool {
        self.total().saturating_add(bytes) <= self.limit
    }

    /// Takes `bytes`, or nothing if they do not fit.
    pub fn try_take(self: &Arc<Self>, bytes: usize) -> Option<Permit> {
        let mut cur = self.used.load(Ordering::Relaxed);
        let held = self.held.load(Ordering::Relaxed);
        loop {
            let next = cur.checked_add(bytes).filter(|n| n.saturating_add(held) <= self.limit)?;
            match self.used.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => {
                    self.metrics.budget_used_bytes.store((next + held) as u64, Ordering::Relaxed);
                    return Some(Permit { budget: self.clone(), bytes });
                }
                Err(now) => cur = now,
            }
        }
    }
}

impl Permit {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
    /// Adds `more` bytes to this permit if they fit.
    pub fn grow(&mut self, more: usize) -> bool {
        match self.budget.try_take(more) {
            Some(p) => {
                self.bytes += p.bytes;
                std::mem::forget(p);
                true
            }
            None => false,
        }
    }
    /// Splits off a permit of `bytes` (at most all of them).
    pub fn split(&mut self, bytes: usize) -> Permit {
        let bytes = bytes.min(self.bytes);
        self.bytes -= bytes;
        Permit { budget: self.budget.clone(), bytes }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let now = self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        let held = self.budget.held.load(Ordering::Relaxed);
        self.budget.metrics.budget_used_bytes.store((now + held) as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_grows_splits_and_returns() {
        let b = Budget::new(100, Arc::new(Metrics::new(1)));
        let mut p = b.try_take(60).unwrap();
        assert!(b.try_take(41).is_none());
        assert!(!p.grow(41));
        assert!(p.grow(40));
        assert_eq!(b.used(), 100);
        let q = p.split(30);
        assert_eq!((p.bytes(), q.bytes()), (70, 30));
        drop(p);
        assert_eq!(b.used(), 30);
        drop(q);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let b = Budget::new(1000, Arc::new(Metrics::new(1)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        if let Some(p) = b.try_take(7) {
                            assert!(b.used() <= 1000);
                            drop(p);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(b.used(), 0);
    }
}
