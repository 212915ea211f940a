//! opentelemetry_sdk 0.33 with `BatchSpanProcessor` defaults. Parents are passed
//! explicitly as `Context`s (`start_with_context`), which skips the thread-local
//! context stack: the fastest idiomatic form.

use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};

use super::{Outcome, Sink};
use crate::driver::drive;
use crate::{RunConfig, Workload};

/// A counting exporter for opentelemetry_sdk (also used under tracing-opentelemetry).
#[derive(Debug)]
pub struct CountingOtel(pub &'static Sink);

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sink")
    }
}

impl SpanExporter for CountingOtel {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let wants = self.0.wants_ids();
        self.0.batch(
            batch.len(),
            batch.iter().filter(|_| wants).map(|s| u128::from_be_bytes(s.span_context.trace_id().to_bytes())),
        );
        Ok(())
    }
}

/// A provider with the batch processor at its defaults.
pub fn provider(cfg: &RunConfig, sink: &'static Sink) -> SdkTracerProvider {
    let mut b = SdkTracerProvider::builder().with_batch_exporter(CountingOtel(sink));
    if cfg.workload == Workload::Unsampled {
        b = b.with_sampler(Sampler::AlwaysOff);
    }
    b.build()
}

pub fn run(cfg: &RunConfig, threads: usize, sink: &'static Sink) -> Outcome {
    let provider = provider(cfg, sink);
    let tracer = provider.tracer("weft-bench");
    let driven = drive(cfg, threads, move |measure| {
        let root = tracer.start("request");
        let cx = Context::current_with_span(root);
        let child = tracer.start_with_context("child", &cx);
        let cx2 = cx.with_span(child);
        let t = measure.then(Instant::now);
        {
            let mut leaf = tracer.start_with_context("leaf", &cx2);
            leaf.set_attribute(KeyValue::new("http.status_code", 200i64));
            leaf.set_attribute(KeyValue::new("component", "bench"));
            leaf.end();
        }
        let l = t.map_or(0, |t| t.elapsed().as_nanos() as u32);
        cx2.span().end();
        cx.span().end();
        l
    });
    finish(provider, driven)
}

/// Flushes and shuts the provider down, timing it.
pub fn finish(provider: SdkTracerProvider, driven: crate::driver::Driven) -> Outcome {
    let t = Instant::now();
    let _ = provider.force_flush();
    let _ = provider.shutdown_with_timeout(Duration::from_secs(120));
    Outcome {
        driven,
        flush: t.elapsed(),
        // The batch processor counts queue-full drops only in a log line at
        // shutdown; the program cannot read it.
        counted: None,
        detail: serde_json::json!({"note": "drops only logged at shutdown"}),
    }
}
