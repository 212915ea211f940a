//! `RateLimiting`: at most N new traces per second, across all threads.
//!
//! A GCRA (generic cell rate algorithm) bucket in one atomic: the "theoretical
//! arrival time" of the next allowed trace. An allowed decision moves it forward
//! with one compare-and-swap; a refused decision only reads it. Under overload
//! almost every decision is a refusal, so threads do not serialise on a shared
//! write, which a mutex-guarded token bucket would force.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{DropReason, Sampler, SamplingDecision, SamplingParams};

/// Samples at most `per_second` traces each second, with up to one second's worth
/// (at least one trace) allowed in a burst.
#[derive(Debug)]
pub struct RateLimiting {
    per_second: f64,
    interval_ns: u64,
    burst_ns: u64,
    tat: AtomicU64,
    epoch: fastant::Instant,
}

impl RateLimiting {
    /// A limit of `per_second` traces per second. Zero or less samples nothing.
    pub fn new(per_second: f64) -> Self {
        let per_second = if per_second.is_finite() { per_second.max(0.0) } else { 0.0 };
        let interval_ns = if per_second > 0.0 { (1e9 / per_second).max(1.0) as u64 } else { u64::MAX };
        let burst = per_second.max(1.0);
        RateLimiting {
            per_second,
            interval_ns,
            burst_ns: (interval_ns as f64 * burst).min(u64::MAX as f64 / 4.0) as u64,
            tat: AtomicU64::new(0),
            epoch: fastant::Instant::now(),
        }
    }

    /// The configured rate.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    fn allow_at(&self, now_ns: u64) -> bool {
        if self.interval_ns == u64::MAX {
            return false;
        }
        // Allow when the bucket is not more than one burst ahead of now.
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            if tat > now_ns.saturating_add(self.burst_ns).saturating_sub(self.interval_ns) {
                return false;
            }
            let new = tat.max(now_ns).saturating_add(self.interval_ns);
            match self.tat.compare_exchange_weak(tat, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }
}

impl Sampler for RateLimiting {
    fn should_sample(&self, _: &SamplingParams<'_>) -> SamplingDecision {
        let now = self.epoch.elapsed().as_nanos() as u64;
        if self.allow_at(now) {
            SamplingDecision::Sample(None)
        } else {
            SamplingDecision::Drop(DropReason::RateLimit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_rate_and_a_burst_of_one_second() {
        let r = RateLimiting::new(10.0);
        // At t=0, a burst of 10 is allowed, then nothing until time passes.
        let allowed = (0..100).filter(|_| r.allow_at(0)).count();
        assert_eq!(allowed, 10);
        // Over the next 10 s, 10 per second.
        let mut n = 0;
        for ms in 1..=10_000u64 {
            if r.allow_at(ms * 1_000_000) {
                n += 1;
            }
        }
        assert!((99..=101).contains(&n), "{n}");
    }

    #[test]
    fn zero_rate_allows_nothing() {
        let r = RateLimiting::new(0.0);
        assert!(!r.allow_at(0));
        assert!(!RateLimiting::new(f64::NAN).allow_at(5));
    }

    #[test]
    fn threads_together_respect_the_limit() {
        let r = std::sync::Arc::new(RateLimiting::new(1000.0));
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let r = r.clone();
                std::thread::spawn(move || (0..100_000).filter(|_| r.allow_at(0)).count())
            })
            .collect();
        let total: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 1000);
    }
}
