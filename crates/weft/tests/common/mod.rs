//! Shared helpers for the integration tests: exporters that count, stall, fail,
//! and a check that every kept trace is complete.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft::{ExportError, ExportResult, SpanBatch, SpanExporter, SpanRecord, TraceId};

/// What the recorder keeps of a span: trace, span ID, parent ID, name.
pub type Seen = (TraceId, u64, u64, String);

/// Counts spans and keeps (trace, span, parent) triples, optionally sleeping per batch.
#[derive(Clone, Default)]
pub struct Recorder {
    pub spans: Arc<Mutex<Vec<Seen>>>,
    pub count: Arc<AtomicU64>,
    pub delay: Duration,
}

impl Recorder {
    pub fn with_delay(delay: Duration) -> Self {
        Recorder { delay, ..Default::default() }
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }
}

impl SpanExporter for Recorder {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let mut s = self.spans.lock().unwrap();
        for r in batch.iter() {
            s.push((r.trace_id, r.span_id.to_u64(), r.parent_span_id.to_u64(), r.name.to_string()));
        }
        self.count.fetch_add(batch.len() as u64, Ordering::SeqCst);
        Ok(())
    }
}

/// Fails every batch (or rejects part of it).
pub struct Failing {
    pub reject: Option<u64>,
}

impl SpanExporter for Failing {
    fn export(&mut self, _batch: SpanBatch) -> ExportResult {
        match self.reject {
            Some(n) => Err(ExportError::PartiallyRejected { rejected: n, message: "bad spans".into() }),
            None => Err(ExportError::Failed("backend down".into())),
        }
    }
}

/// Checks that every trace seen has a root and that every span's parent is in the
/// same trace: no trace was cut. `per_trace` is the expected span count.
pub fn assert_traces_complete(spans: &[Seen], per_trace: usize) {
    let mut by_trace: HashMap<TraceId, Vec<(u64, u64)>> = HashMap::new();
    for (t, s, p, _) in spans {
        by_trace.entry(*t).or_default().push((*s, *p));
    }
    for (t, v) in &by_trace {
        assert_eq!(v.len(), per_trace, "trace {t} has {} spans, expected {per_trace}", v.len());
        let ids: HashSet<u64> = v.iter().map(|x| x.0).collect();
        assert_eq!(v.iter().filter(|x| x.1 == 0).count(), 1, "trace {t} has one root");
        for (_, p) in v {
            assert!(*p == 0 || ids.contains(p), "trace {t}: parent {p:x} missing");
        }
    }
}

/// Records with a given name.
pub fn named<'a>(spans: &'a [SpanRecord], name: &str) -> Vec<&'a SpanRecord> {
    spans.iter().filter(|s| s.name == name).collect()
}
