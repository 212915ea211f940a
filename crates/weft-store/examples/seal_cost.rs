//! Measures what sealing costs per span: builds loadgen-like spans (11
//! attributes, 10 spans a trace), writes them as blocks, and prints the time
//! per span of reading them in place with their summaries, of the block write
//! (Arrow, Parquet, fsyncs), and the block's bytes per span.
//! `cargo run --release -p weft-store --example seal_cost [SPANS]`
use std::sync::Arc;
use std::time::Instant;

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use weft_store::block::{self, TraceRows};
use weft_store::wire::{parse_span, Scratch};
use weft_store::{Origin, TraceSummary};

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(65_536);
    let origin = Arc::new(Origin::new(
        vec![KeyValue {
            key: "service.name".into(),
            value: Some(AnyValue { value: Some(Value::StringValue("service-1".into())) }),
            ..Default::default()
        }],
        InstrumentationScope { name: "weft-loadgen".into(), ..Default::default() },
    ));
    let mut x = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut encoded = Vec::with_capacity(n);
    let now = 1_700_000_000_000_000_000u64;
    let mut trace = [0u8; 16];
    for i in 0..n {
        if i % 10 == 0 {
            trace[..8].copy_from_slice(&next().to_le_bytes());
            trace[8..].copy_from_slice(&next().to_le_bytes());
        }
        let attrs = (0..11)
            .map(|a| KeyValue {
                key: format!("attr.{a}"),
                value: Some(AnyValue {
                    value: Some(if a % 3 == 0 {
                        Value::IntValue(a * 7)
                    } else {
                        Value::StringValue(format!("value-{}", a * 31 + (i % 10) as i64))
                    }),
                }),
                ..Default::default()
            })
            .collect();
        let span = Span {
            trace_id: trace.to_vec(),
            span_id: (next() | 1).to_le_bytes().to_vec(),
            parent_span_id: if i % 10 == 0 { vec![] } else { vec![1; 8] },
            name: if i % 10 == 0 { "GET /api/orders".into() } else { format!("step-{}", i % 10) },
            kind: 1,
            start_time_unix_nano: now + i as u64 * 1000,
            end_time_unix_nano: now + i as u64 * 1000 + 1_000_000,
            attributes: attrs,
            ..Default::default()
        };
        encoded.push((trace, span.encode_to_vec()));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for round in 0..5 {
        let t0 = Instant::now();
        let mut scratch = Scratch::default();
        let mut traces: Vec<TraceRows<'_>> = Vec::new();
        for chunk in encoded.chunks(10) {
            let spans: Vec<_> =
                chunk.iter().map(|(_, b)| (&*origin, parse_span(b, &mut scratch).expect("parses"))).collect();
            let facts: Vec<_> = spans.iter().map(|(o, s)| s.facts(&o.service)).collect();
            traces.push(TraceRows { summary: TraceSummary::of_facts(chunk[0].0, &facts), spans, continued: false });
        }
        let t1 = Instant::now();
        let b = block::write(dir.path(), round, round, traces, &scratch, vec![]).expect("writes");
        let t2 = Instant::now();
        println!(
            "parse+summary {:.0} ns/span, write {:.0} ns/span, {:.1} B/span",
            (t1 - t0).as_nanos() as f64 / n as f64,
            (t2 - t1).as_nanos() as f64 / n as f64,
            b.meta.bytes as f64 / n as f64
        );
    }
}
