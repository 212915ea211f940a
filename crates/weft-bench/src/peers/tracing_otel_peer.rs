//! `tracing` spans bridged to opentelemetry_sdk by tracing-opentelemetry 0.34:
//! what most instrumented Rust services run.

use std::time::Instant;

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;

use super::otel_peer::provider;
use super::{Outcome, Sink};
use crate::driver::drive;
use crate::RunConfig;

pub fn run(cfg: &RunConfig, threads: usize, sink: &'static Sink) -> Outcome {
    let provider = provider(cfg, sink);
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("weft-bench")));
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        panic!("installing the tracing subscriber: {e}");
    }
    let driven = drive(cfg, threads, request);
    super::otel_peer::finish(provider, driven)
}

/// The nested request in `tracing`'s idiom (shared with the weft bridge peer).
pub fn request(measure: bool) -> u32 {
    let root = tracing::info_span!("request");
    let _r = root.enter();
    let child = tracing::info_span!("child");
    let _c = child.enter();
    let t = measure.then(Instant::now);
    {
        let leaf = tracing::info_span!("leaf", http.status_code = 200i64, component = "bench");
        let _l = leaf.enter();
    }
    t.map_or(0, |t| t.elapsed().as_nanos() as u32)
}
