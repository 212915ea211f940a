//! `tracing` spans recorded by weft through `weft_tracing::WeftLayer`: the same
//! instrumented code as the tracing-opentelemetry peer, with weft underneath.

use tracing_subscriber::layer::SubscriberExt;

use super::{weft_peer, Outcome, Sink};
use crate::driver::drive;
use crate::RunConfig;

pub fn run(cfg: &RunConfig, threads: usize, sink: &'static Sink) -> Outcome {
    let tracer = weft_peer::install(cfg, sink);
    let subscriber = tracing_subscriber::registry().with(weft_tracing::WeftLayer::new());
    if let Err(e) = tracing::subscriber::set_global_default(subscriber) {
        panic!("installing the tracing subscriber: {e}");
    }
    let driven = drive(cfg, threads, super::tracing_otel_peer::request);
    weft_peer::finish(tracer, driven)
}

/// The same `tracing` request through `weft_tracing::WeftSubscriber` (no registry).
pub fn run_subscriber(cfg: &RunConfig, threads: usize, sink: &'static Sink) -> Outcome {
    let tracer = weft_peer::install(cfg, sink);
    if let Err(e) = tracing::subscriber::set_global_default(weft_tracing::WeftSubscriber::new()) {
        panic!("installing the tracing subscriber: {e}");
    }
    let driven = drive(cfg, threads, super::tracing_otel_peer::request);
    weft_peer::finish(tracer, driven)
}
