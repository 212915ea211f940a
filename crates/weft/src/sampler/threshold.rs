//! Consistent probability sampling arithmetic (OpenTelemetry "TraceState: probability
//! sampling"): 56 bits of randomness R from the trace ID, a rejection threshold T,
//! keep when `R >= T`, and the `th` value written into `tracestate`.
//!
//! Because every participant compares the same R against its own T, samplers that
//! each keep with probability p keep nested subsets of traces, and a backend can
//! extrapolate counts from the `th` recorded on every kept span.

use crate::error::ParseError;

/// Number of random bits the threshold is compared with.
pub const RANDOMNESS_BITS: u32 = 56;
/// 2^56: the threshold that rejects everything.
pub const MAX_THRESHOLD: u64 = 1 << RANDOMNESS_BITS;
/// The largest value R can take (2^56 - 1).
pub const MAX_RANDOMNESS: u64 = MAX_THRESHOLD - 1;

/// A rejection threshold in `[0, 2^56]`: keep when randomness ≥ threshold.
/// `0` keeps everything (probability 1); `2^56` keeps nothing.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(u64);

impl Threshold {
    /// Keeps every trace.
    pub const ALWAYS: Threshold = Threshold(0);
    /// Keeps no trace.
    pub const NEVER: Threshold = Threshold(MAX_THRESHOLD);

    /// The threshold for keep probability `p`: `T = round((1 − p)·2^56)`.
    /// Values of `p` outside `[0, 1]` (and NaN) are clamped.
    pub fn from_probability(p: f64) -> Self {
        if p.is_nan() || p <= 0.0 {
            return Self::NEVER;
        }
        if p >= 1.0 {
            return Self::ALWAYS;
        }
        // Computed from the keep side: p·2^56 keeps full f64 precision for the small
        // probabilities that matter most (0.1 %, 1 %), where 1 − p would lose bits.
        let keep = (p * MAX_THRESHOLD as f64).round() as u64;
        // A probability > 0 must keep at least one value of R.
        Threshold(MAX_THRESHOLD - keep.clamp(1, MAX_THRESHOLD))
    }

    /// Builds a threshold from its raw value, if it is in range.
    #[inline]
    pub fn from_raw(t: u64) -> Option<Self> {
        (t <= MAX_THRESHOLD).then_some(Threshold(t))
    }

    /// The raw 56-bit rejection threshold.
    #[inline]
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The keep probability this threshold stands for.
    pub fn probability(self) -> f64 {
        (MAX_THRESHOLD - self.0) as f64 / MAX_THRESHOLD as f64
    }

    /// Whether a trace with this randomness is kept.
    #[inline(always)]
    pub fn keeps(self, randomness: u64) -> bool {
        randomness >= self.0
    }

    /// The stricter (less probable) of two thresholds: what keeping under both means.
    #[inline]
    pub fn max(self, other: Threshold) -> Threshold {
        if self.0 >= other.0 {
            self
        } else {
            other
        }
    }

    /// The `th` value: 14 hex digits with trailing zeros removed (`0` for always).
    /// `None` for [`Threshold::NEVER`], which is never written (nothing is kept).
    pub fn to_th(self) -> Option<String> {
        if self.0 >= MAX_THRESHOLD {
            return None;
        }
        if self.0 == 0 {
            return Some("0".to_string());
        }
        let s = format!("{:014x}", self.0);
        Some(s.trim_end_matches('0').to_string())
    }

    /// Parses a `th` value: 1 to 14 hex digits, right-padded with zeros.
    pub fn parse_th(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 14 {
            return Err(ParseError::new("th", "expected 1 to 14 hex digits"));
        }
        let mut v: u64 = 0;
        for c in s.bytes() {
            let d = crate::ids::hex_val(c).ok_or_else(|| ParseError::new("th", "not a hex digit"))?;
            // Only lowercase is valid on the wire, but accepting uppercase costs nothing.
            v = v << 4 | u64::from(d);
        }
        v <<= 4 * (14 - s.len() as u32);
        Ok(Threshold(v))
    }
}

/// Parses an `rv` value: exactly 14 hex digits of explicit randomness.
pub fn parse_rv(s: &str) -> Result<u64, ParseError> {
    if s.len() != 14 {
        return Err(ParseError::new("rv", "expected exactly 14 hex digits"));
    }
    u64::from_str_radix(s, 16).map_err(|e| ParseError::new("rv", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        // From the specification's table: 100 % → 0, 50 % → 8, 25 % → c, 1/3 → aaaaaaaaaaaaab (rounded).
        assert_eq!(Threshold::from_probability(1.0).to_th().unwrap(), "0");
        assert_eq!(Threshold::from_probability(0.5).to_th().unwrap(), "8");
        assert_eq!(Threshold::from_probability(0.25).to_th().unwrap(), "c");
        assert_eq!(Threshold::from_probability(0.1).to_th().unwrap(), "e6666666666666");
        assert_eq!(Threshold::parse_th("c").unwrap().probability(), 0.25);
        assert_eq!(Threshold::from_probability(0.0), Threshold::NEVER);
        assert_eq!(Threshold::NEVER.to_th(), None);
    }

    #[test]
    fn malformed_th_is_rejected() {
        for bad in ["", "g", "123456789012345", "-1", " 8"] {
            assert!(Threshold::parse_th(bad).is_err(), "{bad}");
        }
        assert!(parse_rv("abc").is_err());
        assert_eq!(parse_rv("ffffffffffffff").unwrap(), MAX_RANDOMNESS);
    }

    proptest! {
        #[test]
        fn th_round_trips(t in 0u64..MAX_THRESHOLD) {
            let th = Threshold(t);
            let s = th.to_th().unwrap();
            prop_assert!(s.len() <= 14);
            prop_assert_eq!(Threshold::parse_th(&s).unwrap(), th);
        }

        #[test]
        fn probability_round_trips_within_precision(p in 1e-12f64..=1.0) {
            let th = Threshold::from_probability(p);
            prop_assert!((th.probability() - p).abs() <= 1e-15);
            prop_assert!(th != Threshold::NEVER);
        }

        #[test]
        fn higher_probability_never_has_a_higher_threshold(a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(Threshold::from_probability(hi) <= Threshold::from_probability(lo));
        }

        #[test]
        fn kept_sets_are_nested(a in 0.0f64..=1.0, b in 0.0f64..=1.0, r in 0u64..=MAX_RANDOMNESS) {
            // Consistency: if the stricter sampler keeps R, the looser one keeps it too.
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            if Threshold::from_probability(lo).keeps(r) {
                prop_assert!(Threshold::from_probability(hi).keeps(r));
            }
        }

        #[test]
        fn keep_fraction_matches_probability(p in 0.0f64..=1.0) {
            // Count kept values over an evenly spread grid of R: fraction ≈ p.
            let th = Threshold::from_probability(p);
            let n = 4096u64;
            let kept = (0..n).filter(|i| th.keeps(i * (MAX_THRESHOLD / n))).count() as f64;
            prop_assert!((kept / n as f64 - p).abs() <= 1.0 / n as f64 + 1e-9);
        }
    }
}
