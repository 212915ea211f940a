//! Head samplers: the decision, taken when a span starts, whether its trace is
//! recorded.
//!
//! The standard OpenTelemetry samplers ([`AlwaysOn`], [`AlwaysOff`],
//! [`ParentBased`], [`TraceIdRatio`]) plus [`RateLimiting`] (traces per second),
//! [`RuleBased`] (a sampler chosen by root span name, kind and attributes) and
//! [`AllOf`] to compose them (`rule → rate limit → ratio`). The tracer adds the
//! [`adaptive`] stage after them on every new local root: when buffered memory
//! rises, new traces are shed whole, consistently, with the effective probability
//! written to `ot=th` in their trace state.
//!
//! Probabilistic samplers use consistent probability sampling ([`threshold`]), so
//! composed samplers and samplers in other processes agree on which traces to keep.

pub mod adaptive;
mod rate_limit;
mod rule;
pub mod threshold;

use std::fmt;
use std::sync::Arc;

pub use rate_limit::RateLimiting;
pub use rule::{Rule, RuleBased};
pub use threshold::Threshold;

use crate::context::SpanContext;
use crate::ids::TraceId;
use crate::record::{Link, SpanKind};
use crate::value::KeyValue;

/// Why a trace was not sampled. Counted per reason in [`crate::Stats`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// [`AlwaysOff`] (or `OTEL_SDK_DISABLED`-style configuration).
    AlwaysOff = 0,
    /// A [`TraceIdRatio`] sampler.
    Ratio = 1,
    /// A [`RateLimiting`] sampler.
    RateLimit = 2,
    /// A [`RuleBased`] rule whose sampler dropped the trace.
    Rule = 3,
    /// The adaptive stage, because buffered memory was high.
    Adaptive = 4,
    /// The parent was not sampled.
    Parent = 5,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 6;
    /// Every reason, in index order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::AlwaysOff,
        DropReason::Ratio,
        DropReason::RateLimit,
        DropReason::Rule,
        DropReason::Adaptive,
        DropReason::Parent,
    ];
    /// A short, stable name for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::AlwaysOff => "always_off",
            DropReason::Ratio => "ratio",
            DropReason::RateLimit => "rate_limit",
            DropReason::Rule => "rule",
            DropReason::Adaptive => "adaptive",
            DropReason::Parent => "parent",
        }
    }
    pub(crate) fn from_index(i: u8) -> DropReason {
        Self::ALL.get(i as usize).copied().unwrap_or(DropReason::Parent)
    }
}

/// A sampling decision.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SamplingDecision {
    /// Not recorded, and why.
    Drop(DropReason),
    /// Recorded and exported. The threshold is the probability the trace was kept
    /// with, written to `ot=th`; `None` when no probability applies (rate limits).
    Sample(Option<Threshold>),
}

/// What a sampler sees about the span being started.
#[derive(Debug)]
pub struct SamplingParams<'a> {
    /// The parent, if any (local or remote; see [`SpanContext::is_remote`]).
    pub parent: Option<&'a SpanContext>,
    /// The trace ID (the parent's, or a new one for a root).
    pub trace_id: TraceId,
    /// The 56 bits of randomness consistent sampling compares.
    pub randomness: u64,
    /// The span name.
    pub name: &'a str,
    /// The span kind.
    pub kind: SpanKind,
    /// Attributes given at start.
    pub attributes: &'a [KeyValue],
    /// Links given at start.
    pub links: &'a [Link],
}

/// Decides whether a new span's trace is recorded.
pub trait Sampler: Send + Sync + fmt::Debug + 'static {
    /// The decision for one span.
    fn should_sample(&self, params: &SamplingParams<'_>) -> SamplingDecision;

    /// True if, for a span whose parent is local, this sampler always follows the
    /// parent's decision. The tracer then skips calling it for local children —
    /// the common case, kept free of dynamic dispatch.
    fn follows_local_parent(&self) -> bool {
        false
    }

    /// True if this sampler samples every span without a parent, with probability
    /// 1 — the tracer then starts new traces without calling it.
    fn always_samples_roots(&self) -> bool {
        false
    }

    /// True if this sampler drops every span without a parent — the tracer then
    /// starts new traces as non-recording without calling it.
    fn never_samples_roots(&self) -> bool {
        false
    }
}

/// Smart pointers to samplers are samplers.
macro_rules! delegate_sampler {
    ($($ptr:ident),*) => {$(
        impl<S: Sampler + ?Sized> Sampler for $ptr<S> {
            fn should_sample(&self, params: &SamplingParams<'_>) -> SamplingDecision {
                (**self).should_sample(params)
            }
            fn follows_local_parent(&self) -> bool {
                (**self).follows_local_parent()
            }
            fn always_samples_roots(&self) -> bool {
                (**self).always_samples_roots()
            }
            fn never_samples_roots(&self) -> bool {
                (**self).never_samples_roots()
            }
        }
    )*};
}

delegate_sampler!(Arc, Box);

/// Samples every trace.
#[derive(Copy, Clone, Debug, Default)]
pub struct AlwaysOn;

impl Sampler for AlwaysOn {
    fn should_sample(&self, _: &SamplingParams<'_>) -> SamplingDecision {
        SamplingDecision::Sample(Some(Threshold::ALWAYS))
    }
    fn always_samples_roots(&self) -> bool {
        true
    }
}

/// Samples no trace.
#[derive(Copy, Clone, Debug, Default)]
pub struct AlwaysOff;

impl Sampler for AlwaysOff {
    fn should_sample(&self, _: &SamplingParams<'_>) -> SamplingDecision {
        SamplingDecision::Drop(DropReason::AlwaysOff)
    }
    fn never_samples_roots(&self) -> bool {
        true
    }
    /// Under `AlwaysOff` no local parent is ever sampled, so following the parent
    /// gives the same answer without the call.
    fn follows_local_parent(&self) -> bool {
        true
    }
}

/// Keeps a fixed fraction of traces, consistently: the same trace ID gives the same
/// answer here and in every other consistent sampler with this probability.
#[derive(Copy, Clone, Debug)]
pub struct TraceIdRatio {
    threshold: Threshold,
}

impl TraceIdRatio {
    /// Keeps traces with probability `p` (clamped to `[0, 1]`).
    pub fn new(p: f64) -> Self {
        TraceIdRatio { threshold: Threshold::from_probability(p) }
    }
    /// The probability this sampler keeps.
    pub fn probability(&self) -> f64 {
        self.threshold.probability()
    }
}

impl Sampler for TraceIdRatio {
    fn should_sample(&self, p: &SamplingParams<'_>) -> SamplingDecision {
        if self.threshold.keeps(p.randomness) {
            SamplingDecision::Sample(Some(self.threshold))
        } else {
            SamplingDecision::Drop(DropReason::Ratio)
        }
    }
}

/// Follows the parent's decision; uses `root` for spans without a parent.
#[derive(Clone, Debug)]
pub struct ParentBased {
    root: Arc<dyn Sampler>,
    remote_sampled: Arc<dyn Sampler>,
    remote_not_sampled: Arc<dyn Sampler>,
    local_sampled: Arc<dyn Sampler>,
    local_not_sampled: Arc<dyn Sampler>,
    defaults_for_local: bool,
}

impl ParentBased {
    /// Parent-based with `root` for roots and the default delegates: sampled
    /// parents → on, unsampled parents → off.
    pub fn new(root: impl Sampler) -> Self {
        ParentBased {
            root: Arc::new(root),
            remote_sampled: Arc::new(AlwaysOn),
            remote_not_sampled: Arc::new(AlwaysOff),
            local_sampled: Arc::new(AlwaysOn),
            local_not_sampled: Arc::new(AlwaysOff),
            defaults_for_local: true,
        }
    }
    /// The sampler for spans whose remote parent is sampled.
    pub fn remote_parent_sampled(mut self, s: impl Sampler) -> Self {
        self.remote_sampled = Arc::new(s);
        self
    }
    /// The sampler for spans whose remote parent is not sampled.
    pub fn remote_parent_not_sampled(mut self, s: impl Sampler) -> Self {
        self.remote_not_sampled = Arc::new(s);
        self
    }
    /// The sampler for spans whose local parent is sampled.
    pub fn local_parent_sampled(mut self, s: impl Sampler) -> Self {
        self.local_sampled = Arc::new(s);
        self.defaults_for_local = false;
        self
    }
    /// The sampler for spans whose local parent is not sampled.
    pub fn local_parent_not_sampled(mut self, s: impl Sampler) -> Self {
        self.local_not_sampled = Arc::new(s);
        self.defaults_for_local = false;
        self
    }
}

impl Sampler for ParentBased {
    fn should_sample(&self, p: &SamplingParams<'_>) -> SamplingDecision {
        let Some(parent) = p.parent.filter(|c| c.is_valid()) else {
            return self.root.should_sample(p);
        };
        let delegate = match (parent.is_remote(), parent.is_sampled()) {
            (true, true) => &self.remote_sampled,
            (true, false) => &self.remote_not_sampled,
            (false, true) => &self.local_sampled,
            (false, false) => &self.local_not_sampled,
        };
        match delegate.should_sample(p) {
            // Following a sampled parent keeps the probability it was sampled with.
            SamplingDecision::Sample(Some(Threshold::ALWAYS)) if parent.is_sampled() => {
                SamplingDecision::Sample(parent.trace_state().threshold())
            }
            SamplingDecision::Drop(DropReason::AlwaysOff) => SamplingDecision::Drop(DropReason::Parent),
            d => d,
        }
    }
    fn follows_local_parent(&self) -> bool {
        self.defaults_for_local
    }
    fn always_samples_roots(&self) -> bool {
        self.root.always_samples_roots()
    }
    fn never_samples_roots(&self) -> bool {
        self.root.never_samples_roots()
    }
}

/// Samples only if every sampler in the list does, evaluated in order (a later
/// sampler is not asked once one drops — put cheap or token-consuming samplers
/// accordingly). The kept threshold is the strictest of all.
#[derive(Clone, Debug)]
pub struct AllOf(Vec<Arc<dyn Sampler>>);

impl AllOf {
    /// Composes samplers.
    pub fn new(samplers: Vec<Arc<dyn Sampler>>) -> Self {
        AllOf(samplers)
    }
}

impl Sampler for AllOf {
    fn should_sample(&self, p: &SamplingParams<'_>) -> SamplingDecision {
        let mut th = Some(Threshold::ALWAYS);
        for s in &self.0 {
            match s.should_sample(p) {
                SamplingDecision::Drop(r) => return SamplingDecision::Drop(r),
                SamplingDecision::Sample(t) => {
                    th = match (th, t) {
                        (Some(a), Some(b)) => Some(a.max(b)),
                        _ => None,
                    }
                }
            }
        }
        SamplingDecision::Sample(th)
    }
}

#[cfg(test)]
pub(crate) fn params_for(trace_id: TraceId, name: &str) -> SamplingParams<'_> {
    SamplingParams {
        parent: None,
        trace_id,
        randomness: trace_id.randomness(),
        name,
        kind: SpanKind::Internal,
        attributes: &[],
        links: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceState;
    use crate::ids::{SpanId, TraceFlags};

    #[test]
    fn parent_based_follows_each_kind_of_parent() {
        let s = ParentBased::new(AlwaysOff);
        let t = TraceId::from_u128(7);
        let mk = |remote, sampled| {
            SpanContext::new(
                t,
                SpanId::from_u64(1),
                if sampled { TraceFlags::SAMPLED } else { TraceFlags::NONE },
                remote,
                TraceState::default(),
            )
        };
        assert_eq!(s.should_sample(&params_for(t, "x")), SamplingDecision::Drop(DropReason::AlwaysOff));
        for remote in [true, false] {
            let sampled = mk(remote, true);
            let mut p = params_for(t, "x");
            p.parent = Some(&sampled);
            assert!(matches!(s.should_sample(&p), SamplingDecision::Sample(_)));
            let unsampled = mk(remote, false);
            let mut p = params_for(t, "x");
            p.parent = Some(&unsampled);
            assert_eq!(s.should_sample(&p), SamplingDecision::Drop(DropReason::Parent));
        }
        assert!(s.follows_local_parent());
        assert!(!ParentBased::new(AlwaysOn).local_parent_sampled(AlwaysOff).follows_local_parent());
    }

    #[test]
    fn ratio_is_deterministic_and_near_its_probability() {
        let s = TraceIdRatio::new(0.25);
        let mut kept = 0;
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = TraceId::from_u128(u128::from(x) << 8 | 0xff);
            let d = s.should_sample(&params_for(t, "x"));
            assert_eq!(d, s.should_sample(&params_for(t, "x")));
            if let SamplingDecision::Sample(th) = d {
                assert_eq!(th.unwrap().to_th().unwrap(), "c");
                kept += 1;
            }
        }
        assert!((23_500..26_500).contains(&kept), "{kept}");
    }

    #[test]
    fn all_of_takes_the_strictest_threshold_and_stops_at_the_first_drop() {
        let s = AllOf::new(vec![Arc::new(TraceIdRatio::new(0.5)), Arc::new(TraceIdRatio::new(0.25))]);
        let keep = TraceId::from_u128(u128::from(threshold::MAX_RANDOMNESS));
        assert_eq!(
            s.should_sample(&params_for(keep, "x")),
            SamplingDecision::Sample(Some(Threshold::from_probability(0.25)))
        );
        let drop = TraceId::from_u128(1);
        assert_eq!(s.should_sample(&params_for(drop, "x")), SamplingDecision::Drop(DropReason::Ratio));
        let rl = AllOf::new(vec![Arc::new(AlwaysOn), Arc::new(RateLimiting::new(1000.0))]);
        assert_eq!(rl.should_sample(&params_for(keep, "x")), SamplingDecision::Sample(None));
    }
}
