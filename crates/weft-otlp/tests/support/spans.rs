//! Spans that use every field OTLP carries, and a tee exporter that keeps a
//! copy of what it forwards, for comparing what a backend received.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span as PSpan;
use prost::Message;
use weft::{
    Array, ExportResult, KeyValue, Resource, Settlement, Span, SpanBatch, SpanExporter, SpanKind, SpanRecord, Status,
    Value,
};

/// Ends a few traces using every attribute type, events, links, kinds, status.
pub fn rich_traces(n: usize) {
    for i in 0..n {
        let mut root = Span::builder("GET /orders/{id}")
            .kind(SpanKind::Server)
            .attribute("http.route", "/orders/{id}")
            .attribute("i", i as i64)
            .enter();
        root.set_attribute("ok", true);
        root.set_attribute("ratio", 0.25);
        root.set_attribute("tags", Value::Array(Array::String(vec!["a".into(), "b\"c".into()])));
        root.set_attribute("codes", Value::Array(Array::I64(vec![1, -2, i64::MAX])));
        root.set_attribute("flags", Value::Array(Array::Bool(vec![true, false])));
        root.set_attribute("weights", Value::Array(Array::F64(vec![1.5, -0.0])));
        root.set_attribute("unicode", "naïve ☃ \u{1F600}");
        let link_to = root.context();
        {
            let mut db = Span::builder("db.query").kind(SpanKind::Client).start();
            db.set_attribute("db.system", "postgresql");
            db.add_event("retry", vec![KeyValue::new("attempt", 2i64), KeyValue::new("why", "timeout")]);
            db.set_status(Status::Error { message: "deadlock \"detected\"".into() });
        }
        let mut job = Span::builder("enqueue")
            .kind(SpanKind::Producer)
            .root()
            .link(link_to, vec![KeyValue::new("rel", "caused-by")])
            .start();
        job.set_status(Status::Ok);
        job.end();
        root.set_status(Status::Ok);
    }
}

/// Forwards to another exporter and keeps a copy of every span.
pub struct Tee<E> {
    pub inner: E,
    pub copies: Arc<Mutex<Vec<SpanRecord>>>,
    pub resource: Arc<Mutex<Option<Arc<Resource>>>>,
}

impl<E: SpanExporter> Tee<E> {
    pub fn new(inner: E) -> Self {
        Tee { inner, copies: Arc::default(), resource: Arc::default() }
    }
}

impl<E: SpanExporter> SpanExporter for Tee<E> {
    fn export(&mut self, batch: SpanBatch) -> ExportResult {
        self.copies.lock().unwrap().extend(batch.iter().cloned());
        self.inner.export(batch)
    }
    fn submit(&mut self, batch: SpanBatch, settlement: Settlement) {
        self.copies.lock().unwrap().extend(batch.iter().cloned());
        *self.resource.lock().unwrap() = Some(batch.resource().clone());
        self.inner.submit(batch, settlement)
    }
    fn force_flush(&mut self) -> ExportResult {
        self.inner.force_flush()
    }
    fn shutdown(&mut self) -> ExportResult {
        self.inner.shutdown()
    }
}

/// The spans as the reference protobuf encoding (checked field by field against
/// the records in the weft crate's tests) says they are.
pub fn expected(
    resource: &Resource,
    records: &[SpanRecord],
) -> (Vec<PSpan>, Vec<opentelemetry_proto::tonic::common::v1::KeyValue>) {
    let bytes = weft::otlp_encode::encode_export_request(resource, records.iter());
    let req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("reference encoding decodes");
    let rs = req.resource_spans.into_iter().next().expect("one resource");
    let attrs = rs.resource.map(|r| r.attributes).unwrap_or_default();
    (rs.scope_spans.into_iter().flat_map(|s| s.spans).collect(), attrs)
}

/// Sorts spans by span ID for comparison.
pub fn by_id(mut spans: Vec<PSpan>) -> Vec<PSpan> {
    spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    spans
}
