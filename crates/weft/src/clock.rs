//! The span clock: raw ticks on the hot path, Unix nanoseconds by integer math.
//!
//! On x86-64 with an invariant, synchronised TSC (checked once by `fastant`) a
//! tick is one `rdtsc` (~10 ns in a VM, the cheapest clock there is); elsewhere it
//! is a nanosecond of `std::time::Instant`. Ticks become Unix time with one
//! 128-bit multiply against an anchor — measured ~2× cheaper than the float
//! conversion `fastant::Instant::as_unix_nanos` does — when an exporter first
//! reads a batch (see `SpanBatch`), not on the thread that ended the span.
//!
//! The rate is measured against the monotonic clock over an ever longer baseline:
//! the collector calls [`Clock::recalibrate`] about once a second, which moves the
//! anchor to "now" and refines the rate, so conversion error does not accumulate
//! with uptime. Readers take the anchor through a sequence lock (three loads and
//! a check; no write).

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A tick reading, its Unix time in nanoseconds, and nanoseconds per tick in
/// 32.32 fixed point.
pub(crate) type Anchor = (u64, u64, u64);

pub(crate) struct Clock {
    seq: AtomicU64,
    base_ticks: AtomicU64,
    base_unix: AtomicU64,
    /// Nanoseconds per tick, 32.32 fixed point.
    mult: AtomicU64,
    origin_ticks: u64,
    origin_mono: Instant,
    tsc: bool,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

impl Clock {
    /// A calibrated clock (spends about 2 ms measuring the tick rate).
    pub(crate) fn new() -> Clock {
        let tsc = cfg!(target_arch = "x86_64") && fastant::is_tsc_available();
        let origin_mono = Instant::now();
        let mut c = Clock {
            seq: AtomicU64::new(0),
            base_ticks: AtomicU64::new(0),
            base_unix: AtomicU64::new(0),
            mult: AtomicU64::new(1 << 32),
            origin_ticks: 0,
            origin_mono,
            tsc,
        };
        c.origin_ticks = c.ticks();
        if tsc {
            let spin = Instant::now();
            while spin.elapsed() < Duration::from_millis(2) {
                std::hint::spin_loop();
            }
        }
        c.recalibrate();
        c
    }

    /// Now, in ticks.
    #[inline(always)]
    pub(crate) fn ticks(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            // SAFETY: rdtsc has no preconditions; availability was checked above.
            #[allow(unused_unsafe)]
            return unsafe { core::arch::x86_64::_rdtsc() };
        }
        self.origin_mono.elapsed().as_nanos() as u64
    }

    /// Moves the anchor to now and refines the rate from the whole baseline.
    pub(crate) fn recalibrate(&self) {
        let t = self.ticks();
        let mono = self.origin_mono.elapsed().as_nanos();
        let u = unix_now();
        let dt = u128::from(t.wrapping_sub(self.origin_ticks));
        let mult = if self.tsc {
            // At most 2^40 (a tick of 256 ns; TSCs tick in well under 1 ns):
            // `convert` is exact while tick differences times the rate stay
            // below 2^95.
            (mono << 32).checked_div(dt).map_or(1 << 32, |m| m.clamp(1, 1 << 40) as u64)
        } else {
            1 << 32
        };
        // Sequence lock: odd while writing. Only the collector (and `new`) write.
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.base_ticks.store(t, Ordering::Relaxed);
        self.base_unix.store(u, Ordering::Relaxed);
        self.mult.store(mult, Ordering::Relaxed);
        self.seq.store(s + 2, Ordering::Release);
    }

    /// The current anchor: ticks, Unix nanoseconds and rate, for
    /// [`Clock::convert`].
    #[inline(always)]
    pub(crate) fn anchor(&self) -> Anchor {
        loop {
            let s1 = self.seq.load(Ordering::Acquire);
            let a = (
                self.base_ticks.load(Ordering::Relaxed),
                self.base_unix.load(Ordering::Relaxed),
                self.mult.load(Ordering::Relaxed),
            );
            fence(Ordering::Acquire);
            if s1 & 1 == 0 && self.seq.load(Ordering::Relaxed) == s1 {
                return a;
            }
            std::hint::spin_loop();
        }
    }

    /// One signed 64×64→128 multiply and an add, no branch: the tick
    /// difference from the anchor, scaled, added to the anchor's Unix time.
    ///
    /// Exact (floor of the scaled difference) while the tick difference from
    /// the anchor times the rate stays below 2^95 and the result is a Unix
    /// time below 2^64: with a TSC (a tick of ~0.3 ns, rate ~2^30.4) that is
    /// any difference an `i64` holds, and with `recalibrate`'s cap of 2^40,
    /// over a year of ticks. The property test checks differences within
    /// 2^62 ticks at rates below 2^33. The saturating unsigned
    /// version it replaced, branching on the side of the anchor, took ~12
    /// more instructions per timestamp (callgrind).
    #[inline(always)]
    pub(crate) fn convert((bt, bu, m): Anchor, t: u64) -> u64 {
        let delta = t.wrapping_sub(bt) as i64;
        let scaled = ((i128::from(delta) * i128::from(m)) >> 32) as i64;
        bu.wrapping_add_signed(scaled)
    }

    /// About how many ticks `d` lasts.
    pub(crate) fn ticks_for(&self, d: Duration) -> u64 {
        let (_, _, m) = self.anchor();
        ((d.as_nanos() << 32) / u128::from(m.max(1))).min(u128::from(u64::MAX)) as u64
    }

    /// Converts ticks to Unix nanoseconds.
    #[inline]
    pub(crate) fn to_unix(&self, t: u64) -> u64 {
        Self::convert(self.anchor(), t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_system_clock() {
        let c = Clock::new();
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(20));
            c.recalibrate();
            let ours = c.to_unix(c.ticks()) as i128;
            let sys = unix_now() as i128;
            assert!((ours - sys).abs() < 2_000_000, "off by {} ns", ours - sys);
        }
        let a = c.ticks();
        std::thread::sleep(Duration::from_millis(10));
        let b = c.ticks();
        let (ua, ub) = (c.to_unix(a), c.to_unix(b));
        let d = ub as i128 - ua as i128;
        assert!((9_000_000..50_000_000).contains(&d), "10 ms measured as {d} ns");
    }

    proptest::proptest! {
        /// The conversion equals exact math (floor of the scaled signed
        /// difference) over its domain: readings within 2^62 ticks of the
        /// anchor, rates below 2^33, Unix times below 2^63.
        #[test]
        fn conversion_matches_exact_math(
            bt: u64,
            bu in 0u64..(1 << 63),
            m in 0u64..(1 << 33),
            d in -(1i64 << 62)..(1i64 << 62),
        ) {
            let t = bt.wrapping_add_signed(d);
            let exact = i128::from(bu) + ((i128::from(d) * i128::from(m)) >> 32);
            // Times before 1970 or past 2^64 ns are not this clock's.
            proptest::prop_assume!((0..=i128::from(u64::MAX)).contains(&exact));
            proptest::prop_assert_eq!(i128::from(Clock::convert((bt, bu, m), t)), exact);
        }
    }

    #[test]
    fn conversion_on_both_sides_of_the_anchor() {
        // 1 ns per tick: 2^32 in 32.32 fixed point.
        let anchor = (1_000, 5_000_000, 1u64 << 32);
        assert_eq!(Clock::convert(anchor, 1_000), 5_000_000);
        assert_eq!(Clock::convert(anchor, 1_250), 5_000_250);
        assert_eq!(Clock::convert(anchor, 750), 4_999_750);
        // A third of a nanosecond per tick, floored, before and after.
        let anchor = (u64::MAX - 10, 1 << 60, (1u64 << 32) / 3);
        assert_eq!(Clock::convert(anchor, 20), (1 << 60) + 10, "across the counter's wrap");
        assert_eq!(Clock::convert(anchor, u64::MAX - 40), (1 << 60) - 10, "-9.99 ns floors to -10");
    }

    #[test]
    fn readings_before_the_anchor_convert_backwards() {
        let c = Clock::new();
        let t = c.ticks();
        std::thread::sleep(Duration::from_millis(5));
        c.recalibrate();
        let u = c.to_unix(t);
        assert!(u < c.to_unix(c.ticks()));
    }
}
