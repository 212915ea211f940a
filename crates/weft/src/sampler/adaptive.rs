//! The adaptive stage: turns memory pressure into whole-trace head sampling.
//!
//! Below the high-water mark every new trace the configured sampler keeps is kept.
//! Above it, the keep probability for *new root traces* falls linearly to zero at
//! the "zero" mark, and rises again as the exporter drains the buffer. Spans of
//! traces already kept are never shed by this stage, so every kept trace stays
//! whole; the room between the zero mark and the limit is what in-progress kept
//! traces may still use. Decisions are consistent (same randomness as the ratio
//! sampler) and the effective probability is written to `ot=th`.

use super::threshold::Threshold;

/// Where the adaptive stage starts shedding and where it sheds everything, as
/// fractions of the memory limit.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct AdaptiveConfig {
    /// Usage fraction above which new traces start to be shed (default 0.75).
    pub high_water: f64,
    /// Usage fraction at which every new trace is shed (default 0.9).
    pub zero_at: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        // High, because a collector thread that the OS deschedules for 2-3 ms
        // (measured on 2-vCPU VMs) lets a busy program buffer ~20 MB; shedding
        // then would lose traces to a hiccup rather than to a slow exporter. The
        // last 10 % is room for the rest of traces already kept: a chunk for
        // each of ~130 threads at the default 32 MiB.
        AdaptiveConfig { high_water: 0.75, zero_at: 0.9 }
    }
}

impl AdaptiveConfig {
    /// Whether the marks are ordered and within `(0, 1]`.
    pub fn is_valid(&self) -> bool {
        self.high_water > 0.0 && self.high_water < self.zero_at && self.zero_at <= 1.0
    }

    /// The keep probability for new traces at `used` of `limit` bytes.
    pub fn probability(&self, used: usize, limit: usize) -> f64 {
        if limit == 0 {
            return 0.0;
        }
        let u = used as f64 / limit as f64;
        if u <= self.high_water {
            1.0
        } else if u >= self.zero_at {
            0.0
        } else {
            (self.zero_at - u) / (self.zero_at - self.high_water)
        }
    }

    /// The threshold for `probability(used, limit)`.
    pub fn threshold(&self, used: usize, limit: usize) -> Threshold {
        Threshold::from_probability(self.probability(used, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn marks() {
        let a = AdaptiveConfig::default();
        assert_eq!(a.probability(0, 100), 1.0);
        assert_eq!(a.probability(75, 100), 1.0);
        assert_eq!(a.probability(90, 100), 0.0);
        assert!((a.probability(825, 1000) - 0.5).abs() < 1e-9);
        assert_eq!(a.threshold(100, 100), Threshold::NEVER);
        assert!(a.is_valid());
        assert!(!AdaptiveConfig { high_water: 0.9, zero_at: 0.5 }.is_valid());
    }

    proptest! {
        #[test]
        fn probability_falls_as_usage_rises(a in 0usize..2000, b in 0usize..2000) {
            let c = AdaptiveConfig::default();
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(c.probability(hi, 1000) <= c.probability(lo, 1000));
            prop_assert!((0.0..=1.0).contains(&c.probability(a, 1000)));
        }
    }
}
