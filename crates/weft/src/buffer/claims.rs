//! `Claims`: who may still touch a chunk's slots, and who releases them.
//!
//! A chunk's published records are *claimed* once each, as ranges, by whichever
//! of two parties gets there first: the collector's cursor, and the owning
//! thread handing its sealed chunk straight to the exporter (see
//! `ThreadWriter::grow`). Every party that may touch the slots keeps a *hold*:
//! the owner until it seals, each range, each claim in progress. The slots can
//! be released once the chunk is sealed, every record is claimed and no hold
//! is left — exactly once, by whoever sees that last.
//!
//! The protocol is small but easy to get wrong (a claim racing the last
//! hold's release, two parties both seeing the end), so it lives here on its
//! own and is model-checked with `loom` over every interleaving
//! (`cargo nextest run -p weft --features loom --lib loom`).

// Only weft's own unit tests switch to loom's atomics: a program (or another
// crate's tests) that enables the feature still gets std's.
#[cfg(all(test, feature = "loom"))]
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
#[cfg(not(all(test, feature = "loom")))]
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The claim and hold counts of one chunk.
#[derive(Debug)]
pub(crate) struct Claims {
    /// Records handed out as ranges: `0..claimed`.
    claimed: AtomicUsize,
    /// Parties that may still touch the slots.
    holds: AtomicUsize,
    /// Set by the one party that releases the slots.
    released: AtomicBool,
}

/// What a claim got.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Records from `start` up to the end asked for, with a hold the caller
    /// gives up ([`Claims::drop_hold`]) once done with them.
    Records {
        /// The first record claimed.
        start: usize,
    },
    /// Nothing left to claim; `release` if the caller must release the slots
    /// now (its passing hold was the last).
    Nothing {
        /// Whether the caller releases the slots.
        release: bool,
    },
}

impl Claims {
    /// Counts for a chunk with `holds` holders (1: its owner; 0: a chunk built
    /// sealed, from records).
    pub(crate) fn new(holds: usize) -> Self {
        Claims { claimed: AtomicUsize::new(0), holds: AtomicUsize::new(holds), released: AtomicBool::new(false) }
    }

    /// Claims the records from where the last claim ended up to `end` (at most
    /// the published length). `sealed_len` is the chunk's final length if it is
    /// sealed (read only if the claim gets nothing).
    pub(crate) fn claim(&self, end: usize, sealed_len: impl FnOnce() -> Option<usize>) -> Claim {
        // Hold first, then claim: a party that finds no hold left and every
        // record claimed releases the slots, so no claim may be visible before
        // its hold.
        self.holds.fetch_add(1, Ordering::AcqRel);
        let start = self.claimed.fetch_max(end, Ordering::AcqRel);
        if start < end {
            return Claim::Records { start };
        }
        Claim::Nothing { release: self.drop_hold(sealed_len) }
    }

    /// Whether records below `end` wait to be claimed: one load, for the
    /// collector's check of every thread each round.
    #[inline]
    pub(crate) fn has_unclaimed(&self, end: usize) -> bool {
        self.claimed.load(Ordering::Acquire) < end
    }

    /// Adds a hold for a holder splitting its range (which keeps the count
    /// above zero meanwhile).
    pub(crate) fn add_hold(&self) {
        self.holds.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives up one hold. Returns whether the caller must now release the
    /// slots: its hold was the last, the chunk is sealed (`sealed_len` gives
    /// its final length) with every record claimed, and no one released them
    /// before.
    pub(crate) fn drop_hold(&self, sealed_len: impl FnOnce() -> Option<usize>) -> bool {
        if self.holds.fetch_sub(1, Ordering::AcqRel) != 1 {
            return false;
        }
        let Some(len) = sealed_len() else {
            return false; // the owner still writes (or left it unsealed at exit)
        };
        // `claimed` before `holds`: a claim that made `claimed` final took its
        // hold before, so that hold shows here unless it was given up already
        // — and then its holder checks again itself. Claims after this get
        // nothing and touch no slot.
        if self.claimed.load(Ordering::Acquire) < len || self.holds.load(Ordering::Acquire) != 0 {
            return false;
        }
        !self.released.swap(true, Ordering::AcqRel)
    }

    /// Whether the slots still need releasing when the chunk itself goes
    /// (no party can claim or hold anything then).
    pub(crate) fn release_on_drop(&self) -> bool {
        !self.released.swap(true, Ordering::AcqRel)
    }
}

#[cfg(all(test, feature = "loom"))]
mod loom_tests {
    //! Every interleaving of an owner that publishes two records, seals and
    //! claims what is left, and a collector that claims what it sees twice.

    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// A two-record chunk: slots the release overwrites (loom reports any
    /// access racing it), and how often it was released.
    struct Model {
        claims: Claims,
        len: AtomicUsize,
        sealed: AtomicBool,
        slots: [UnsafeCell<u32>; 2],
        releases: AtomicUsize,
        taken: [AtomicUsize; 2],
    }

    impl Model {
        /// An unsealed chunk owned by its writer, with `len` records
        /// published (slots written as record `i` → `i + 1`).
        fn new(len: usize) -> Arc<Model> {
            let written = |i: usize| if i < len { i as u32 + 1 } else { 0 };
            Arc::new(Model {
                claims: Claims::new(1),
                len: AtomicUsize::new(len),
                sealed: AtomicBool::new(false),
                slots: [UnsafeCell::new(written(0)), UnsafeCell::new(written(1))],
                releases: AtomicUsize::new(0),
                taken: [AtomicUsize::new(0), AtomicUsize::new(0)],
            })
        }
        /// A range holder: reads record `i` (it must be intact), then gives
        /// its hold up and releases if told to.
        fn read_and_let_go(&self, i: usize) {
            let v = self.slots[i].with(|p| unsafe { *p });
            assert_eq!(v, i as u32 + 1, "a held record is intact");
            self.let_go();
        }
        /// Gives a hold up; releases if told to.
        fn let_go(&self) {
            if self.claims.drop_hold(|| self.sealed_len()) {
                self.release();
            }
        }
        fn sealed_len(&self) -> Option<usize> {
            self.sealed.load(Ordering::Acquire).then(|| self.len.load(Ordering::Acquire))
        }
        fn release(&self) {
            for s in &self.slots {
                s.with_mut(|p| unsafe { *p = 0 });
            }
            self.releases.fetch_add(1, Ordering::AcqRel);
        }
        /// Claims up to `end`, reads the records got (each must be written),
        /// gives the hold up, and releases if told to.
        fn take(&self, end: usize) {
            match self.claims.claim(end, || self.sealed_len()) {
                Claim::Records { start } => {
                    for i in start..end {
                        let v = self.slots[i].with(|p| unsafe { *p });
                        assert_eq!(v, i as u32 + 1, "a claimed record is fully written");
                        self.taken[i].fetch_add(1, Ordering::AcqRel);
                    }
                    self.let_go();
                }
                Claim::Nothing { release: true } => self.release(),
                Claim::Nothing { release: false } => {}
            }
        }
    }

    #[test]
    fn every_record_is_claimed_once_and_the_slots_released_once_after_the_last_hold() {
        loom::model(|| {
            let m = Model::new(0);
            let collector = {
                let m = m.clone();
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        let end = m.len.load(Ordering::Acquire);
                        if m.claims.has_unclaimed(end) {
                            m.take(end);
                        }
                    }
                })
            };
            // The owner: publish, seal, hand over what is left, give up its hold.
            for i in 0..2 {
                m.slots[i].with_mut(|p| unsafe { *p = i as u32 + 1 });
                m.len.store(i + 1, Ordering::Release);
            }
            m.sealed.store(true, Ordering::Release);
            m.take(2);
            m.let_go();
            collector.join().unwrap();
            assert_eq!(m.taken[0].load(Ordering::Acquire), 1);
            assert_eq!(m.taken[1].load(Ordering::Acquire), 1);
            assert_eq!(m.releases.load(Ordering::Acquire), 1, "released exactly once");
            assert!(!m.claims.release_on_drop(), "nothing left to release when the chunk goes");
        });
    }

    /// The exporter drops a range of a sealed chunk (its hold the last one)
    /// while the collector claims the chunk's remaining records: the release
    /// must wait for the collector's range, whichever sees the end first.
    #[test]
    fn a_last_hold_dropped_while_the_rest_is_claimed_does_not_release_under_the_claimer() {
        loom::model(|| {
            let m = Model::new(2);
            // The collector took the first record earlier; the owner sealed
            // and let go without handing anything over.
            assert_eq!(m.claims.claim(1, || m.sealed_len()), Claim::Records { start: 0 });
            m.sealed.store(true, Ordering::Release);
            assert!(!m.claims.drop_hold(|| m.sealed_len()));
            let exporter = {
                let m = m.clone();
                loom::thread::spawn(move || m.read_and_let_go(0))
            };
            m.take(2);
            exporter.join().unwrap();
            assert_eq!(m.taken[1].load(Ordering::Acquire), 1);
            assert_eq!(m.releases.load(Ordering::Acquire), 1, "released exactly once");
        });
    }

    /// A holder splits its range (as the collector does to fill a batch)
    /// while the owner drops its hold: the release waits for both halves.
    #[test]
    fn a_split_range_keeps_the_slots_until_both_halves_are_dropped() {
        loom::model(|| {
            let m = Model::new(2);
            assert_eq!(m.claims.claim(2, || m.sealed_len()), Claim::Records { start: 0 });
            m.claims.add_hold();
            let front = {
                let m = m.clone();
                loom::thread::spawn(move || m.read_and_let_go(0))
            };
            let owner = {
                let m = m.clone();
                loom::thread::spawn(move || {
                    m.sealed.store(true, Ordering::Release);
                    m.let_go();
                })
            };
            m.read_and_let_go(1);
            front.join().unwrap();
            owner.join().unwrap();
            assert_eq!(m.releases.load(Ordering::Acquire), 1, "released exactly once");
        });
    }
}
