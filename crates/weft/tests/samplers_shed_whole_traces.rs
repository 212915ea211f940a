//! Samplers installed in a tracer: the kept share, the `ot=th` written on every
//! span, drops counted by sampler, and the adaptive stage keeping memory under its
//! bound by shedding whole new traces.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_traces_complete, Recorder};
use weft::sampler::{AllOf, AlwaysOff, AlwaysOn, ParentBased, RateLimiting, Rule, RuleBased, Sampler, TraceIdRatio};
use weft::{InMemoryExporter, Span};

fn nested(n: usize) {
    for _ in 0..n {
        let _r = Span::enter("request");
        let _c = Span::enter("child");
        let mut leaf = Span::child("leaf");
        leaf.set_attribute("a", 1);
    }
}

#[test]
fn ratio_keeps_its_share_of_whole_traces_and_writes_th_on_every_span() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder()
        .sampler(ParentBased::new(TraceIdRatio::new(0.25)))
        .exporter(mem.clone())
        .log_at_shutdown(false)
        .install()
        .unwrap();
    nested(20_000);
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    let kept_traces = stats.exported / 3;
    assert!((4_500..5_500).contains(&kept_traces), "{stats:?}");
    assert_eq!(stats.sampled_out_traces.ratio, 20_000 - kept_traces);
    assert_eq!(stats.sampled_out, 3 * stats.sampled_out_traces.ratio);
    let spans = mem.spans();
    assert!(spans.iter().all(|s| s.trace_state.header_value() == "ot=th:c"));
    let triples: Vec<_> =
        spans.iter().map(|s| (s.trace_id, s.span_id.to_u64(), s.parent_span_id.to_u64(), s.name.to_string())).collect();
    assert_traces_complete(&triples, 3);
}

#[test]
fn rate_limiting_caps_traces_per_second() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder()
        .sampler(ParentBased::new(RateLimiting::new(200.0)))
        .exporter(mem.clone())
        .log_at_shutdown(false)
        .install()
        .unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_millis(500) {
        nested(10);
        n += 10;
    }
    let secs = start.elapsed().as_secs_f64();
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap();
    let kept = stats.exported / 3;
    // A burst of one second's worth, then the rate.
    let max = 200.0 + 200.0 * secs + 2.0;
    assert!(kept as f64 <= max && kept >= 200, "kept {kept} of {n} in {secs:.2}s");
    assert_eq!(stats.sampled_out_traces.rate_limit, n - kept);
    assert!(mem.spans().iter().all(|s| s.trace_state.threshold().is_none()), "no probability for rate limits");
}

#[test]
fn rules_pick_samplers_by_name_and_attributes_and_compose() {
    let mem = InMemoryExporter::new();
    let rules = RuleBased::new(AlwaysOn)
        .rule(Rule::new(AlwaysOff).name("GET /health"))
        .rule(Rule::new(TraceIdRatio::new(0.5)).attribute("tenant", "free"));
    let composed: Vec<Arc<dyn Sampler>> = vec![Arc::new(rules), Arc::new(RateLimiting::new(1e9))];
    let tracer = weft::builder()
        .sampler(ParentBased::new(AllOf::new(composed)))
        .exporter(mem.clone())
        .log_at_shutdown(false)
        .install()
        .unwrap();
    for _ in 0..1000 {
        drop(Span::builder("GET /health").start());
        drop(Span::builder("GET /x").attribute("tenant", "free").start());
        drop(Span::builder("GET /x").attribute("tenant", "gold").start());
    }
    let stats = tracer.shutdown(Duration::from_secs(10)).unwrap();
    assert!(stats.is_balanced());
    let spans = mem.spans();
    assert_eq!(common::named(&spans, "GET /health").len(), 0);
    let free = spans.iter().filter(|s| s.attribute("tenant") == Some(&weft::Value::from("free"))).count();
    let gold = spans.iter().filter(|s| s.attribute("tenant") == Some(&weft::Value::from("gold"))).count();
    assert_eq!(gold, 1000);
    assert!((400..600).contains(&free), "{free}");
    assert_eq!(stats.sampled_out_traces.rule, 2000 - free as u64);
}

#[test]
fn adaptive_sampling_bounds_memory_and_keeps_every_kept_trace_whole() {
    let rec = Recorder::with_delay(Duration::from_millis(2));
    let limit = 2 << 20;
    let tracer = weft::builder()
        .exporter(rec.clone())
        .memory_limit_bytes(limit)
        .max_batch_spans(512)
        .log_at_shutdown(false)
        .install()
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let hs: Vec<_> = (0..8)
        .map(|_| {
            std::thread::spawn(move || {
                while Instant::now() < deadline {
                    nested(64);
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    let stats = tracer.shutdown(Duration::from_secs(30)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    assert!(stats.sampled_out_traces.adaptive > 0, "the adaptive stage engaged: {stats:?}");
    assert_eq!(stats.dropped.total(), 0, "no span of a kept trace was dropped: {stats:?}");
    assert!(stats.memory_peak_bytes <= limit as u64, "{stats:?}");
    assert_eq!(stats.exported, rec.count());
    let spans = rec.spans.lock().unwrap().clone();
    assert_traces_complete(&spans, 3);
}

#[test]
fn without_the_adaptive_stage_a_full_buffer_counts_its_drops() {
    let rec = Recorder::with_delay(Duration::from_millis(20));
    let tracer = weft::builder()
        .exporter(rec.clone())
        .memory_limit_bytes(256 * 1024)
        .adaptive(None)
        .log_at_shutdown(false)
        .install()
        .unwrap();
    nested(50_000);
    let stats = tracer.shutdown(Duration::from_secs(30)).unwrap();
    assert!(stats.dropped.memory_bound > 0, "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(stats.exported, rec.count());
    assert!(stats.memory_peak_bytes <= 256 * 1024);
}

/// A sampler that records a span of its own the first time it is asked (as a
/// sampler that logs or meters through weft might).
#[derive(Debug)]
struct StartsSpans;

impl Sampler for StartsSpans {
    fn should_sample(&self, params: &weft::sampler::SamplingParams<'_>) -> weft::sampler::SamplingDecision {
        thread_local! {
            static INSIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        }
        if params.name != "inside the sampler" && !INSIDE.with(|i| i.replace(true)) {
            let mut s = Span::root("inside the sampler");
            s.set_attribute("asked.for", params.name.to_string());
            drop(s);
            INSIDE.with(|i| i.set(false));
        }
        AlwaysOn.should_sample(params)
    }
}

#[test]
fn a_sampler_may_start_spans_itself() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder().exporter(mem.clone()).sampler(StartsSpans).log_at_shutdown(false).install().unwrap();
    {
        let _root = Span::enter("outer");
        let _child = Span::child("outer child");
    }
    let stats = tracer.shutdown(Duration::from_secs(5)).unwrap();
    assert!(stats.is_balanced(), "{stats:?}");
    // The sampler is asked for both outer spans (it does not follow parents)
    // and records one span of its own each time.
    let mut names: Vec<String> = mem.spans().iter().map(|s| s.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["inside the sampler", "inside the sampler", "outer", "outer child"]);
}
