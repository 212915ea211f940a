//! What the store receives: a span still encoded as its OTLP `Span` message,
//! with the resource and instrumentation scope it came under.
//!
//! Spans arrive as slices of the request buffer they were sent in (no decoding
//! on the ingest path); the head copies them out before keeping them, so a kept
//! span never pins a whole request in memory and its bytes are counted exactly.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span;

/// The resource and scope a span was sent under (shared by a request's spans).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    /// `service.name` of the resource ("" if none).
    pub service: Arc<str>,
    /// The resource's attributes.
    pub resource: Vec<KeyValue>,
    /// The instrumentation scope (name, version, attributes).
    pub scope: InstrumentationScope,
}

impl Origin {
    /// An origin for `resource` attributes and a scope; the service name is
    /// taken from the attributes.
    pub fn new(resource: Vec<KeyValue>, scope: InstrumentationScope) -> Self {
        Origin { service: Arc::from(service_name(&resource)), resource, scope }
    }

    /// Bytes it takes in memory, roughly (for accounting).
    pub fn approx_bytes(&self) -> usize {
        let kv = |v: &[KeyValue]| v.iter().map(|k| k.key.len() + 48).sum::<usize>();
        size_of::<Self>() + self.service.len() + kv(&self.resource) + kv(&self.scope.attributes)
    }
}

/// The `service.name` string attribute among `attrs`, or "".
pub fn service_name(attrs: &[KeyValue]) -> &str {
    attrs
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(AnyValue::StringValue(s)) => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

/// A span as received: its origin, trace ID and encoded `Span` message.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSpan {
    /// Resource and scope.
    pub origin: Arc<Origin>,
    /// Its trace.
    pub trace_id: [u8; 16],
    /// The encoded OTLP `Span` message.
    pub span: bytes::Bytes,
}

impl StoredSpan {
    /// The span, decoded (`None` if the bytes are not a `Span`, which the
    /// receivers never let through).
    pub fn decode(&self) -> Option<Span> {
        <Span as prost::Message>::decode(self.span.clone()).ok()
    }

    /// Bytes it holds (message, entry, share of the origin not counted).
    pub fn approx_bytes(&self) -> usize {
        size_of::<Self>() + self.span.len()
    }
}

/// A decoded span with its origin: what blocks are built from and queries return.
#[derive(Clone, Debug, PartialEq)]
pub struct FullSpan {
    /// Resource and scope.
    pub origin: Arc<Origin>,
    /// The span.
    pub span: Span,
}
