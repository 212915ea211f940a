//! Helpers for the crate's own unit tests.

use crate::attributes::Attributes;
use crate::context::TraceState;
use crate::ids::{SpanId, TraceFlags, TraceId};
use crate::record::{SpanKind, SpanRecord, Status};

/// A plain record with the given name.
pub(crate) fn record(name: &'static str) -> SpanRecord {
    SpanRecord {
        trace_id: TraceId::from_u128(1),
        span_id: SpanId::from_u64(1),
        parent_span_id: SpanId::INVALID,
        flags: TraceFlags::SAMPLED,
        parent_is_remote: false,
        kind: SpanKind::Internal,
        trace_state: TraceState::default(),
        name: name.into(),
        start_unix_nanos: 1,
        end_unix_nanos: 2,
        raw_times: 0,
        attributes: Attributes::new(),
        dropped_attributes_count: 0,
        status: Status::Unset,
        extras: None,
    }
}
