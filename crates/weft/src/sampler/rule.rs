//! `RuleBased`: the sampler is chosen by what the span is — its name, kind and
//! attributes given at start — so health checks can be dropped while checkout
//! requests are always kept (seed 002's context-aware sampling). First match wins.

use std::sync::Arc;

use super::{DropReason, Sampler, SamplingDecision, SamplingParams};
use crate::record::SpanKind;
use crate::value::{Key, Value};

#[derive(Clone, Debug)]
enum NameMatch {
    Exact(String),
    Prefix(String),
}

/// One rule: conditions that must all hold, and the sampler to use then.
#[derive(Clone, Debug)]
pub struct Rule {
    name: Option<NameMatch>,
    kind: Option<SpanKind>,
    attributes: Vec<(Key, Value)>,
    sampler: Arc<dyn Sampler>,
}

impl Rule {
    /// A rule that matches every span and uses `sampler`; narrow it with the
    /// methods below.
    pub fn new(sampler: impl Sampler) -> Self {
        Rule { name: None, kind: None, attributes: Vec::new(), sampler: Arc::new(sampler) }
    }
    /// Matches spans with exactly this name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(NameMatch::Exact(name.into()));
        self
    }
    /// Matches spans whose name starts with `prefix`.
    pub fn name_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.name = Some(NameMatch::Prefix(prefix.into()));
        self
    }
    /// Matches spans of this kind.
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = Some(kind);
        self
    }
    /// Matches spans started with this attribute equal to `value`.
    pub fn attribute(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Self {
        self.attributes.push((key.into(), value.into()));
        self
    }

    fn matches(&self, p: &SamplingParams<'_>) -> bool {
        let name_ok = match &self.name {
            None => true,
            Some(NameMatch::Exact(n)) => p.name == n,
            Some(NameMatch::Prefix(n)) => p.name.starts_with(n.as_str()),
        };
        name_ok
            && self.kind.is_none_or(|k| k == p.kind)
            && self.attributes.iter().all(|(k, v)| p.attributes.iter().any(|kv| kv.key == *k && kv.value == *v))
    }
}

/// Chooses a sampler by the first matching [`Rule`], else the default.
#[derive(Clone, Debug)]
pub struct RuleBased {
    rules: Vec<Rule>,
    default: Arc<dyn Sampler>,
}

impl RuleBased {
    /// No rules yet; `default` decides when none matches.
    pub fn new(default: impl Sampler) -> Self {
        RuleBased { rules: Vec::new(), default: Arc::new(default) }
    }
    /// Adds a rule after the existing ones.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }
}

impl Sampler for RuleBased {
    fn should_sample(&self, p: &SamplingParams<'_>) -> SamplingDecision {
        match self.rules.iter().find(|r| r.matches(p)) {
            Some(rule) => match rule.sampler.should_sample(p) {
                SamplingDecision::Drop(_) => SamplingDecision::Drop(DropReason::Rule),
                d => d,
            },
            None => self.default.should_sample(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{params_for, AlwaysOff, AlwaysOn, TraceIdRatio};
    use super::*;
    use crate::ids::TraceId;
    use crate::value::KeyValue;

    #[test]
    fn first_matching_rule_decides() {
        let s = RuleBased::new(TraceIdRatio::new(0.0))
            .rule(Rule::new(AlwaysOff).name("GET /health"))
            .rule(Rule::new(AlwaysOn).name_prefix("checkout").kind(SpanKind::Server))
            .rule(Rule::new(AlwaysOn).attribute("tenant", "gold"));
        let t = TraceId::from_u128(1);
        assert_eq!(s.should_sample(&params_for(t, "GET /health")), SamplingDecision::Drop(DropReason::Rule));
        let mut p = params_for(t, "checkout/pay");
        assert_eq!(s.should_sample(&p), SamplingDecision::Drop(DropReason::Ratio), "kind does not match: default");
        p.kind = SpanKind::Server;
        assert!(matches!(s.should_sample(&p), SamplingDecision::Sample(_)));
        let attrs = [KeyValue::new("tenant", "gold")];
        let mut p = params_for(t, "other");
        p.attributes = &attrs;
        assert!(matches!(s.should_sample(&p), SamplingDecision::Sample(_)));
    }
}
