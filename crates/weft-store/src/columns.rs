//! The columnar layout of spans in a block, and the conversions between OTLP
//! spans and Arrow record batches (which the Parquet writer and reader use).
//!
//! One row per span. Attributes (of the span, its events, links, resource and
//! scope) are lists of a `KeyValue` struct with one column per value type, so
//! standard tools read them as typed values: `string`, `int`, `double`, `bool`;
//! bytes, arrays and maps go to `other` as an encoded OTLP `AnyValue`. The end
//! time is stored as `duration_ns` (small numbers compress far better than a
//! second timestamp); `start_time + duration_ns` gives it back exactly.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampNanosecondBuilder, UInt32Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType, UInt32Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray, TimestampNanosecondArray, UInt32Array,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as Any, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{Span, Status};
use prost::Message;

use crate::span::{FullSpan, Origin};
use crate::wire::{self, KvRef, Scratch, SpanRef, ValueRef};
use crate::StoreError;

fn kv_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("string", DataType::Utf8, true),
        Field::new("int", DataType::Int64, true),
        Field::new("double", DataType::Float64, true),
        Field::new("bool", DataType::Boolean, true),
        Field::new("other", DataType::Binary, true),
    ])
}

fn kv_list() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(kv_fields()), false)))
}

fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", kv_list(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("trace_state", DataType::Utf8, true),
        Field::new("attributes", kv_list(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("flags", DataType::UInt32, false),
    ])
}

/// Column names, in schema order.
pub mod col {
    #![allow(missing_docs)]
    pub const TRACE_ID: usize = 0;
    pub const SPAN_ID: usize = 1;
    pub const PARENT_SPAN_ID: usize = 2;
    pub const SERVICE: usize = 3;
    pub const NAME: usize = 4;
    pub const KIND: usize = 5;
    pub const START: usize = 6;
    pub const DURATION: usize = 7;
    pub const STATUS_CODE: usize = 8;
    pub const STATUS_MESSAGE: usize = 9;
    pub const TRACE_STATE: usize = 10;
    pub const FLAGS: usize = 11;
    pub const ATTRIBUTES: usize = 12;
    pub const EVENTS: usize = 13;
    pub const LINKS: usize = 14;
    pub const DROPPED_ATTRIBUTES: usize = 15;
    pub const DROPPED_EVENTS: usize = 16;
    pub const DROPPED_LINKS: usize = 17;
    pub const RESOURCE_ATTRIBUTES: usize = 18;
    pub const SCOPE_NAME: usize = 19;
    pub const SCOPE_VERSION: usize = 20;
    pub const SCOPE_ATTRIBUTES: usize = 21;
}

/// The schema of a block's spans.
pub static SPAN_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("trace_id", DataType::FixedSizeBinary(16), false),
        Field::new("span_id", DataType::FixedSizeBinary(8), false),
        Field::new("parent_span_id", DataType::FixedSizeBinary(8), true),
        Field::new("service", DataType::Utf8, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Int32, false),
        Field::new("start_time", DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())), false),
        Field::new("duration_ns", DataType::Int64, false),
        Field::new("status_code", DataType::Int32, false),
        Field::new("status_message", DataType::Utf8, true),
        Field::new("trace_state", DataType::Utf8, true),
        Field::new("flags", DataType::UInt32, false),
        Field::new("attributes", kv_list(), false),
        Field::new(
            "events",
            DataType::List(Arc::new(Field::new("item", DataType::Struct(event_fields()), false))),
            false,
        ),
        Field::new(
            "links",
            DataType::List(Arc::new(Field::new("item", DataType::Struct(link_fields()), false))),
            false,
        ),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
        Field::new("dropped_events_count", DataType::UInt32, false),
        Field::new("dropped_links_count", DataType::UInt32, false),
        Field::new("resource_attributes", kv_list(), false),
        Field::new("scope_name", DataType::Utf8, false),
        Field::new("scope_version", DataType::Utf8, false),
        Field::new("scope_attributes", kv_list(), false),
    ]))
});

/// Builds a list of `KeyValue` structs.
#[derive(Default)]
struct KvCols {
    offsets: Vec<i32>,
    key: StringBuilder,
    string: StringBuilder,
    int: Int64Builder,
    double: Float64Builder,
    boolean: BooleanBuilder,
    other: BinaryBuilder,
    n: i32,
}

impl KvCols {
    fn with_capacity(rows: usize, items: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        KvCols {
            offsets,
            key: StringBuilder::with_capacity(items, items * 8),
            string: StringBuilder::with_capacity(items, items * 8),
            int: Int64Builder::with_capacity(items),
            double: Float64Builder::with_capacity(items),
            boolean: BooleanBuilder::with_capacity(items),
            other: BinaryBuilder::with_capacity(items, 0),
            n: 0,
        }
    }

    fn item(&mut self, key: &str, v: ValueRef<'_>) {
        self.key.append_value(key);
        match v {
            ValueRef::Str(s) => self.string.append_value(s),
            _ => self.string.append_null(),
        }
        match v {
            ValueRef::Int(i) => self.int.append_value(i),
            _ => self.int.append_null(),
        }
        match v {
            ValueRef::Double(d) => self.double.append_value(d),
            _ => self.double.append_null(),
        }
        match v {
            ValueRef::Bool(b) => self.boolean.append_value(b),
            _ => self.boolean.append_null(),
        }
        match v {
            ValueRef::Other(o) => self.other.append_value(o),
            _ => self.other.append_null(),
        }
        self.n += 1;
    }

    /// Ends the current row's list.
    fn end_row(&mut self) {
        self.offsets.push(self.n);
    }

    fn push_refs(&mut self, kvs: &[KvRef<'_>]) {
        for kv in kvs {
            self.item(kv.key, kv.value);
        }
        self.end_row();
    }

    fn push_decoded(&mut self, kvs: &[KeyValue]) {
        for kv in kvs {
            let any = kv.value.as_ref();
            let other;
            let v = match any.and_then(|a| a.value.as_ref()) {
                None => ValueRef::Empty,
                Some(AnyValue::StringValue(s)) => ValueRef::Str(s),
                Some(AnyValue::IntValue(i)) => ValueRef::Int(*i),
                Some(AnyValue::DoubleValue(d)) => ValueRef::Double(*d),
                Some(AnyValue::BoolValue(b)) => ValueRef::Bool(*b),
                Some(_) => {
                    other = any.map(Message::encode_to_vec).unwrap_or_default();
                    ValueRef::Other(&other)
                }
            };
            self.item(&kv.key, v);
        }
        self.end_row();
    }

    fn finish(mut self) -> ArrayRef {
        let values = StructArray::new(
            kv_fields(),
            vec![
                Arc::new(self.key.finish()),
                Arc::new(self.string.finish()),
                Arc::new(self.int.finish()),
                Arc::new(self.double.finish()),
                Arc::new(self.boolean.finish()),
                Arc::new(self.other.finish()),
            ],
            None,
        );
        Arc::new(ListArray::new(
            Arc::new(Field::new("item", DataType::Struct(kv_fields()), false)),
            OffsetBuffer::new(self.offsets.into()),
            Arc::new(values),
            None,
        ))
    }
}

fn fixed(width: i32, n: usize) -> FixedSizeBinaryBuilder {
    FixedSizeBinaryBuilder::with_capacity(n, width)
}

fn push_id(b: &mut FixedSizeBinaryBuilder, id: &[u8], width: usize) {
    if id.len() == width {
        let _ = b.append_value(id);
    } else {
        // A link whose sender left an ID out: a zero ID keeps the row well formed.
        let _ = b.append_value(vec![0u8; width]);
    }
}

fn list_of(fields: Fields, offsets: Vec<i32>, arrays: Vec<ArrayRef>) -> ArrayRef {
    let values = StructArray::new(fields.clone(), arrays, None);
    Arc::new(ListArray::new(
        Arc::new(Field::new("item", DataType::Struct(fields), false)),
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        None,
    ))
}

fn ts(n: usize) -> TimestampNanosecondBuilder {
    TimestampNanosecondBuilder::with_capacity(n).with_timezone("UTC")
}

/// Builds one record batch of spans, row by row, from spans read in place
/// ([`crate::wire`]); no span is decoded into owned structs on the way.
pub struct SpanBatch {
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent: FixedSizeBinaryBuilder,
    service: StringBuilder,
    name: StringBuilder,
    kind: Int32Builder,
    start: TimestampNanosecondBuilder,
    duration: Int64Builder,
    status_code: Int32Builder,
    status_message: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    attributes: KvCols,
    ev_off: Vec<i32>,
    ev_time: TimestampNanosecondBuilder,
    ev_name: StringBuilder,
    ev_attrs: KvCols,
    ev_dropped: UInt32Builder,
    ln_off: Vec<i32>,
    ln_trace: FixedSizeBinaryBuilder,
    ln_span: FixedSizeBinaryBuilder,
    ln_state: StringBuilder,
    ln_attrs: KvCols,
    ln_dropped: UInt32Builder,
    ln_flags: UInt32Builder,
    dropped: [UInt32Builder; 3],
    resource: KvCols,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attrs: KvCols,
    rows: usize,
}

impl SpanBatch {
    /// A builder sized for about `n` spans.
    pub fn with_capacity(n: usize) -> Self {
        SpanBatch {
            trace_id: fixed(16, n),
            span_id: fixed(8, n),
            parent: fixed(8, n),
            service: StringBuilder::with_capacity(n, n * 8),
            name: StringBuilder::with_capacity(n, n * 16),
            kind: Int32Builder::with_capacity(n),
            start: ts(n),
            duration: Int64Builder::with_capacity(n),
            status_code: Int32Builder::with_capacity(n),
            status_message: StringBuilder::with_capacity(n, 0),
            trace_state: StringBuilder::with_capacity(n, 0),
            flags: UInt32Builder::with_capacity(n),
            attributes: KvCols::with_capacity(n, n * 8),
            ev_off: Vec::from([0]),
            ev_time: ts(0),
            ev_name: StringBuilder::new(),
            ev_attrs: KvCols::with_capacity(0, 0),
            ev_dropped: UInt32Builder::new(),
            ln_off: Vec::from([0]),
            ln_trace: fixed(16, 0),
            ln_span: fixed(8, 0),
            ln_state: StringBuilder::new(),
            ln_attrs: KvCols::with_capacity(0, 0),
            ln_dropped: UInt32Builder::new(),
            ln_flags: UInt32Builder::new(),
            dropped: [
                UInt32Builder::with_capacity(n),
                UInt32Builder::with_capacity(n),
                UInt32Builder::with_capacity(n),
            ],
            resource: KvCols::with_capacity(n, n * 2),
            scope_name: StringBuilder::with_capacity(n, n * 8),
            scope_version: StringBuilder::with_capacity(n, 0),
            scope_attrs: KvCols::with_capacity(n, 0),
            rows: 0,
        }
    }

    /// Rows added so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row has been added.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Adds a span (parsed by [`crate::wire::parse_span`] into `scratch`).
    pub fn push(&mut self, origin: &Origin, s: &SpanRef<'_>, scratch: &Scratch<'_>) {
        self.rows += 1;
        let _ = self.trace_id.append_value(s.trace_id);
        let _ = self.span_id.append_value(s.span_id);
        match &s.parent_span_id {
            Some(p) => {
                let _ = self.parent.append_value(p);
            }
            None => self.parent.append_null(),
        }
        self.service.append_value(&*origin.service);
        self.name.append_value(s.name);
        self.kind.append_value(s.kind);
        self.start.append_value(s.start as i64);
        self.duration.append_value(s.end.wrapping_sub(s.start) as i64);
        self.status_code.append_value(s.status_code);
        if s.status_message.is_empty() {
            self.status_message.append_null();
        } else {
            self.status_message.append_value(s.status_message);
        }
        if s.trace_state.is_empty() {
            self.trace_state.append_null();
        } else {
            self.trace_state.append_value(s.trace_state);
        }
        self.flags.append_value(s.flags);
        self.attributes.push_refs(&scratch.kvs[s.attributes.clone()]);
        for e in &scratch.events[s.events.clone()] {
            self.ev_time.append_value(e.time as i64);
            self.ev_name.append_value(e.name);
            self.ev_attrs.push_refs(&scratch.kvs[e.attributes.clone()]);
            self.ev_dropped.append_value(e.dropped_attributes);
        }
        self.ev_off.push(self.ev_off[self.ev_off.len() - 1] + s.events.len() as i32);
        for l in &scratch.links[s.links.clone()] {
            push_id(&mut self.ln_trace, l.trace_id, 16);
            push_id(&mut self.ln_span, l.span_id, 8);
            if l.trace_state.is_empty() {
                self.ln_state.append_null();
            } else {
                self.ln_state.append_value(l.trace_state);
            }
            self.ln_attrs.push_refs(&scratch.kvs[l.attributes.clone()]);
            self.ln_dropped.append_value(l.dropped_attributes);
            self.ln_flags.append_value(l.flags);
        }
        self.ln_off.push(self.ln_off[self.ln_off.len() - 1] + s.links.len() as i32);
        self.dropped[0].append_value(s.dropped_attributes);
        self.dropped[1].append_value(s.dropped_events);
        self.dropped[2].append_value(s.dropped_links);
        self.resource.push_decoded(&origin.resource);
        self.scope_name.append_value(&origin.scope.name);
        self.scope_version.append_value(&origin.scope.version);
        self.scope_attrs.push_decoded(&origin.scope.attributes);
    }

    /// The batch of the rows added.
    pub fn finish(self) -> Result<RecordBatch, StoreError> {
        let SpanBatch {
            mut trace_id,
            mut span_id,
            mut parent,
            mut service,
            mut name,
            mut kind,
            mut start,
            mut duration,
            mut status_code,
            mut status_message,
            mut trace_state,
            mut flags,
            attributes,
            ev_off,
            mut ev_time,
            mut ev_name,
            ev_attrs,
            mut ev_dropped,
            ln_off,
            mut ln_trace,
            mut ln_span,
            mut ln_state,
            ln_attrs,
            mut ln_dropped,
            mut ln_flags,
            dropped,
            resource,
            mut scope_name,
            mut scope_version,
            scope_attrs,
            rows: _,
        } = self;
        let [mut d0, mut d1, mut d2] = dropped;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(trace_id.finish()),
            Arc::new(span_id.finish()),
            Arc::new(parent.finish()),
            Arc::new(service.finish()),
            Arc::new(name.finish()),
            Arc::new(kind.finish()),
            Arc::new(start.finish()),
            Arc::new(duration.finish()),
            Arc::new(status_code.finish()),
            Arc::new(status_message.finish()),
            Arc::new(trace_state.finish()),
            Arc::new(flags.finish()),
            attributes.finish(),
            list_of(
                event_fields(),
                ev_off,
                vec![
                    Arc::new(ev_time.finish()),
                    Arc::new(ev_name.finish()),
                    ev_attrs.finish(),
                    Arc::new(ev_dropped.finish()),
                ],
            ),
            list_of(
                link_fields(),
                ln_off,
                vec![
                    Arc::new(ln_trace.finish()),
                    Arc::new(ln_span.finish()),
                    Arc::new(ln_state.finish()),
                    ln_attrs.finish(),
                    Arc::new(ln_dropped.finish()),
                    Arc::new(ln_flags.finish()),
                ],
            ),
            Arc::new(d0.finish()),
            Arc::new(d1.finish()),
            Arc::new(d2.finish()),
            resource.finish(),
            Arc::new(scope_name.finish()),
            Arc::new(scope_version.finish()),
            scope_attrs.finish(),
        ];
        RecordBatch::try_new(SPAN_SCHEMA.clone(), columns).map_err(|e| StoreError::Format(e.to_string()))
    }
}

/// Builds the record batch of decoded `spans`, in the order given, by encoding
/// each and reading it back in place: the one row-building path, used where
/// spans are at hand decoded (tests, tools). Spans that do not parse (an ID of
/// the wrong length) are an error.
pub fn to_batch(spans: &[&FullSpan]) -> Result<RecordBatch, StoreError> {
    let encoded: Vec<Vec<u8>> = spans.iter().map(|s| s.span.encode_to_vec()).collect();
    let mut scratch = Scratch::default();
    let mut batch = SpanBatch::with_capacity(spans.len());
    for (fs, bytes) in spans.iter().zip(&encoded) {
        let s = wire::parse_span(bytes, &mut scratch).map_err(|e| StoreError::Format(e.to_string()))?;
        batch.push(&fs.origin, &s, &scratch);
    }
    batch.finish()
}

fn bad(what: &str) -> StoreError {
    StoreError::Format(format!("block column {what} has an unexpected type"))
}

/// A column of `KeyValue` lists, its struct fields looked up once (they were
/// looked up per row, which showed in export profiles).
pub(crate) struct Kvs<'a> {
    offsets: &'a [i32],
    pub(crate) key: &'a StringArray,
    pub(crate) string: &'a StringArray,
    pub(crate) int: &'a Int64Array,
    pub(crate) double: &'a Float64Array,
    pub(crate) boolean: &'a BooleanArray,
    pub(crate) other: &'a BinaryArray,
}

impl<'a> Kvs<'a> {
    fn of(list: &'a ListArray) -> Result<Kvs<'a>, StoreError> {
        let st = list.values().as_struct_opt().ok_or_else(|| bad("attributes"))?;
        Ok(Kvs {
            offsets: list.value_offsets(),
            key: st.column(0).as_string_opt::<i32>().ok_or_else(|| bad("key"))?,
            string: st.column(1).as_string_opt::<i32>().ok_or_else(|| bad("string"))?,
            int: st.column(2).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("int"))?,
            double: st.column(3).as_primitive_opt::<Float64Type>().ok_or_else(|| bad("double"))?,
            boolean: st.column(4).as_boolean_opt().ok_or_else(|| bad("bool"))?,
            other: st.column(5).as_binary_opt::<i32>().ok_or_else(|| bad("other"))?,
        })
    }

    pub(crate) fn range(&self, row: usize) -> std::ops::Range<usize> {
        self.offsets[row] as usize..self.offsets[row + 1] as usize
    }

    /// The list at `row`.
    pub(crate) fn read(&self, row: usize) -> Result<Vec<KeyValue>, StoreError> {
        let r = self.range(row);
        let mut out = Vec::with_capacity(r.len());
        for i in r {
            let value = if self.string.is_valid(i) {
                Some(AnyValue::StringValue(self.string.value(i).to_owned()))
            } else if self.int.is_valid(i) {
                Some(AnyValue::IntValue(self.int.value(i)))
            } else if self.double.is_valid(i) {
                Some(AnyValue::DoubleValue(self.double.value(i)))
            } else if self.boolean.is_valid(i) {
                Some(AnyValue::BoolValue(self.boolean.value(i)))
            } else if self.other.is_valid(i) {
                Any::decode(self.other.value(i)).map_err(|e| StoreError::Format(format!("attribute value: {e}")))?.value
            } else {
                None
            };
            out.push(KeyValue {
                key: self.key.value(i).to_owned(),
                value: value.map(|v| Any { value: Some(v) }),
                ..Default::default()
            });
        }
        Ok(out)
    }

    /// Whether the list at row `a` equals `other`'s at row `b`, compared in place.
    pub(crate) fn same(&self, a: usize, other: &Kvs<'_>, b: usize) -> bool {
        let (ra, rb) = (self.range(a), other.range(b));
        let o = other;
        ra.len() == rb.len()
            && ra.zip(rb).all(|(i, j)| {
                self.key.value(i) == o.key.value(j)
                    && opt(self.string, i) == opt(o.string, j)
                    && self.int.is_valid(i) == o.int.is_valid(j)
                    && (!self.int.is_valid(i) || self.int.value(i) == o.int.value(j))
                    && self.double.is_valid(i) == o.double.is_valid(j)
                    && (!self.double.is_valid(i) || self.double.value(i).to_bits() == o.double.value(j).to_bits())
                    && self.boolean.is_valid(i) == o.boolean.is_valid(j)
                    && (!self.boolean.is_valid(i) || self.boolean.value(i) == o.boolean.value(j))
                    && self.other.is_valid(i) == o.other.is_valid(j)
                    && (!self.other.is_valid(i) || self.other.value(i) == o.other.value(j))
            })
    }
}

/// The string at `i`, if set.
pub(crate) fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn kv_list_col(batch: &RecordBatch, c: usize) -> Result<&ListArray, StoreError> {
    batch.column(c).as_list_opt::<i32>().ok_or_else(|| bad(batch.schema().field(c).name()))
}

pub(crate) fn opt_str(a: &StringArray, i: usize) -> String {
    if a.is_valid(i) {
        a.value(i).to_owned()
    } else {
        String::new()
    }
}

/// The typed columns of a full-schema span batch, looked up once.
pub(crate) struct SpanCols<'a> {
    pub(crate) trace_id: &'a FixedSizeBinaryArray,
    pub(crate) span_id: &'a FixedSizeBinaryArray,
    pub(crate) parent: &'a FixedSizeBinaryArray,
    pub(crate) service: &'a StringArray,
    pub(crate) name: &'a StringArray,
    pub(crate) kind: &'a Int32Array,
    pub(crate) start: &'a TimestampNanosecondArray,
    pub(crate) duration: &'a Int64Array,
    pub(crate) status_code: &'a Int32Array,
    pub(crate) status_message: &'a StringArray,
    pub(crate) trace_state: &'a StringArray,
    pub(crate) flags: &'a UInt32Array,
    pub(crate) attributes: Kvs<'a>,
    pub(crate) event_offsets: &'a [i32],
    pub(crate) ev_time: &'a TimestampNanosecondArray,
    pub(crate) ev_name: &'a StringArray,
    pub(crate) ev_attrs: Kvs<'a>,
    pub(crate) ev_dropped: &'a UInt32Array,
    pub(crate) link_offsets: &'a [i32],
    pub(crate) ln_trace: &'a FixedSizeBinaryArray,
    pub(crate) ln_span: &'a FixedSizeBinaryArray,
    pub(crate) ln_state: &'a StringArray,
    pub(crate) ln_attrs: Kvs<'a>,
    pub(crate) ln_dropped: &'a UInt32Array,
    pub(crate) ln_flags: &'a UInt32Array,
    /// Dropped attributes, events, links.
    pub(crate) dropped: [&'a UInt32Array; 3],
    pub(crate) resource: Kvs<'a>,
    pub(crate) scope_name: &'a StringArray,
    pub(crate) scope_version: &'a StringArray,
    pub(crate) scope_attrs: Kvs<'a>,
}

impl<'a> SpanCols<'a> {
    /// The columns of `batch`, checked against [`SPAN_SCHEMA`].
    pub(crate) fn of(batch: &'a RecordBatch) -> Result<SpanCols<'a>, StoreError> {
        if batch.num_columns() != SPAN_SCHEMA.fields().len() {
            return Err(StoreError::Format(format!(
                "block has {} columns, expected {}",
                batch.num_columns(),
                SPAN_SCHEMA.fields().len()
            )));
        }
        let fsb = |c: usize| batch.column(c).as_fixed_size_binary_opt().ok_or_else(|| bad("id"));
        let string = |c: usize| batch.column(c).as_string_opt::<i32>().ok_or_else(|| bad("string"));
        let i32s = |c: usize| batch.column(c).as_primitive_opt::<Int32Type>().ok_or_else(|| bad("int32"));
        let u32s = |c: usize| batch.column(c).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad("uint32"));
        let events = kv_list_col(batch, col::EVENTS)?;
        let ev = events.values().as_struct_opt().ok_or_else(|| bad("events"))?;
        let links = kv_list_col(batch, col::LINKS)?;
        let ln = links.values().as_struct_opt().ok_or_else(|| bad("links"))?;
        Ok(SpanCols {
            trace_id: fsb(col::TRACE_ID)?,
            span_id: fsb(col::SPAN_ID)?,
            parent: fsb(col::PARENT_SPAN_ID)?,
            service: string(col::SERVICE)?,
            name: string(col::NAME)?,
            kind: i32s(col::KIND)?,
            start: batch
                .column(col::START)
                .as_primitive_opt::<TimestampNanosecondType>()
                .ok_or_else(|| bad("start_time"))?,
            duration: batch.column(col::DURATION).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("duration_ns"))?,
            status_code: i32s(col::STATUS_CODE)?,
            status_message: string(col::STATUS_MESSAGE)?,
            trace_state: string(col::TRACE_STATE)?,
            flags: u32s(col::FLAGS)?,
            attributes: Kvs::of(kv_list_col(batch, col::ATTRIBUTES)?)?,
            event_offsets: events.value_offsets(),
            ev_time: ev.column(0).as_primitive_opt::<TimestampNanosecondType>().ok_or_else(|| bad("events.time"))?,
            ev_name: ev.column(1).as_string_opt::<i32>().ok_or_else(|| bad("events.name"))?,
            ev_attrs: Kvs::of(ev.column(2).as_list_opt::<i32>().ok_or_else(|| bad("events.attributes"))?)?,
            ev_dropped: ev.column(3).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad("events.dropped"))?,
            link_offsets: links.value_offsets(),
            ln_trace: ln.column(0).as_fixed_size_binary_opt().ok_or_else(|| bad("links.trace_id"))?,
            ln_span: ln.column(1).as_fixed_size_binary_opt().ok_or_else(|| bad("links.span_id"))?,
            ln_state: ln.column(2).as_string_opt::<i32>().ok_or_else(|| bad("links.trace_state"))?,
            ln_attrs: Kvs::of(ln.column(3).as_list_opt::<i32>().ok_or_else(|| bad("links.attributes"))?)?,
            ln_dropped: ln.column(4).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad("links.dropped"))?,
            ln_flags: ln.column(5).as_primitive_opt::<UInt32Type>().ok_or_else(|| bad("links.flags"))?,
            dropped: [u32s(col::DROPPED_ATTRIBUTES)?, u32s(col::DROPPED_EVENTS)?, u32s(col::DROPPED_LINKS)?],
            resource: Kvs::of(kv_list_col(batch, col::RESOURCE_ATTRIBUTES)?)?,
            scope_name: string(col::SCOPE_NAME)?,
            scope_version: string(col::SCOPE_VERSION)?,
            scope_attrs: Kvs::of(kv_list_col(batch, col::SCOPE_ATTRIBUTES)?)?,
        })
    }

    /// Rows in the batch.
    pub(crate) fn len(&self) -> usize {
        self.trace_id.len()
    }

    /// Whether row `i` has the same resource and scope as row `j` of `other`.
    pub(crate) fn same_origin(&self, i: usize, other: &SpanCols<'_>, j: usize) -> bool {
        self.service.value(i) == other.service.value(j)
            && opt(self.scope_name, i) == opt(other.scope_name, j)
            && opt(self.scope_version, i) == opt(other.scope_version, j)
            && self.resource.same(i, &other.resource, j)
            && self.scope_attrs.same(i, &other.scope_attrs, j)
    }

    /// Row `i`'s end time, as stored (start plus duration).
    pub(crate) fn end(&self, i: usize) -> u64 {
        (self.start.value(i) as u64).wrapping_add(self.duration.value(i) as u64)
    }
}

/// Turns a full-schema batch back into spans (origins shared between
/// consecutive rows with the same resource and scope).
pub fn from_batch(batch: &RecordBatch) -> Result<Vec<FullSpan>, StoreError> {
    let c = SpanCols::of(batch)?;
    let mut out = Vec::with_capacity(batch.num_rows());
    let mut last: Option<Arc<Origin>> = None;
    for i in 0..c.len() {
        // Rows of one origin are usually adjacent: compare in place, and
        // build (allocate) an origin only when it changes.
        let origin = match &last {
            Some(o) if i > 0 && c.same_origin(i, &c, i - 1) => o.clone(),
            _ => {
                let o = Arc::new(Origin {
                    service: Arc::from(c.service.value(i)),
                    resource: c.resource.read(i)?,
                    scope: InstrumentationScope {
                        name: c.scope_name.value(i).to_owned(),
                        version: c.scope_version.value(i).to_owned(),
                        attributes: c.scope_attrs.read(i)?,
                        dropped_attributes_count: 0,
                    },
                });
                last = Some(o.clone());
                o
            }
        };
        let (eo, lo) = (c.event_offsets, c.link_offsets);
        let mut events = Vec::new();
        for e in eo[i] as usize..eo[i + 1] as usize {
            events.push(Event {
                time_unix_nano: c.ev_time.value(e) as u64,
                name: c.ev_name.value(e).to_owned(),
                attributes: c.ev_attrs.read(e)?,
                dropped_attributes_count: c.ev_dropped.value(e),
            });
        }
        let mut links = Vec::new();
        for l in lo[i] as usize..lo[i + 1] as usize {
            links.push(Link {
                trace_id: c.ln_trace.value(l).to_vec(),
                span_id: c.ln_span.value(l).to_vec(),
                trace_state: opt_str(c.ln_state, l),
                attributes: c.ln_attrs.read(l)?,
                dropped_attributes_count: c.ln_dropped.value(l),
                flags: c.ln_flags.value(l),
            });
        }
        let code = c.status_code.value(i);
        let message = opt_str(c.status_message, i);
        let span = Span {
            trace_id: c.trace_id.value(i).to_vec(),
            span_id: c.span_id.value(i).to_vec(),
            trace_state: opt_str(c.trace_state, i),
            parent_span_id: if c.parent.is_valid(i) { c.parent.value(i).to_vec() } else { Vec::new() },
            flags: c.flags.value(i),
            name: c.name.value(i).to_owned(),
            kind: c.kind.value(i),
            start_time_unix_nano: c.start.value(i) as u64,
            end_time_unix_nano: c.end(i),
            attributes: c.attributes.read(i)?,
            dropped_attributes_count: c.dropped[0].value(i),
            events,
            dropped_events_count: c.dropped[1].value(i),
            links,
            dropped_links_count: c.dropped[2].value(i),
            status: (code != 0 || !message.is_empty()).then_some(Status { code, message }),
        };
        out.push(FullSpan { origin, span });
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
    use proptest::prelude::*;

    use super::*;

    fn val(v: AnyValue) -> Option<Any> {
        Some(Any { value: Some(v) })
    }

    /// A span with every field set (for round trips).
    pub(crate) fn rich_span(trace: u8, id: u8) -> FullSpan {
        let kv = |k: &str, v: AnyValue| KeyValue { key: k.into(), value: val(v), ..Default::default() };
        let attrs = vec![
            kv("s", AnyValue::StringValue("str".into())),
            kv("i", AnyValue::IntValue(-7)),
            kv("d", AnyValue::DoubleValue(1.5)),
            kv("b", AnyValue::BoolValue(true)),
            kv("bytes", AnyValue::BytesValue(vec![0, 1, 2])),
            kv("arr", AnyValue::ArrayValue(ArrayValue { values: vec![Any { value: Some(AnyValue::IntValue(1)) }] })),
            kv("map", AnyValue::KvlistValue(KeyValueList { values: vec![kv("inner", AnyValue::BoolValue(false))] })),
            KeyValue { key: "empty".into(), value: None, ..Default::default() },
        ];
        FullSpan {
            origin: Arc::new(Origin::new(
                vec![kv("service.name", AnyValue::StringValue("svc".into())), kv("host", AnyValue::IntValue(3))],
                InstrumentationScope {
                    name: "lib".into(),
                    version: "1.0".into(),
                    attributes: attrs[..1].to_vec(),
                    dropped_attributes_count: 0,
                },
            )),
            span: Span {
                trace_id: vec![trace; 16],
                span_id: vec![id; 8],
                trace_state: "k=v".into(),
                parent_span_id: vec![9; 8],
                flags: 0x301,
                name: "op".into(),
                kind: 3,
                start_time_unix_nano: 1_700_000_000_000_000_000,
                end_time_unix_nano: 1_700_000_000_000_123_456,
                attributes: attrs.clone(),
                dropped_attributes_count: 1,
                events: vec![Event {
                    time_unix_nano: 1_700_000_000_000_000_100,
                    name: "ev".into(),
                    attributes: attrs[2..4].to_vec(),
                    dropped_attributes_count: 2,
                }],
                dropped_events_count: 3,
                links: vec![Link {
                    trace_id: vec![4; 16],
                    span_id: vec![5; 8],
                    trace_state: "a=b".into(),
                    attributes: attrs[..2].to_vec(),
                    dropped_attributes_count: 4,
                    flags: 1,
                }],
                dropped_links_count: 5,
                status: Some(Status { code: 2, message: "boom".into() }),
            },
        }
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let a = rich_span(1, 1);
        let mut b = rich_span(1, 2);
        b.span.parent_span_id.clear();
        b.span.status = None;
        b.span.trace_state.clear();
        b.span.end_time_unix_nano = b.span.start_time_unix_nano - 5; // broken clients happen
        let batch = to_batch(&[&a, &b]).unwrap();
        let back = from_batch(&batch).unwrap();
        assert_eq!(back, vec![a, b]);
    }

    proptest! {
        #[test]
        fn random_spans_round_trip(
            name in ".{0,20}", start in any::<u64>(), end in any::<u64>(), kind in 0i32..6,
            ints in proptest::collection::vec(any::<i64>(), 0..5), s in ".{0,10}", code in 0i32..3,
        ) {
            let mut f = rich_span(2, 3);
            f.span.name = name;
            f.span.start_time_unix_nano = start;
            f.span.end_time_unix_nano = end;
            f.span.kind = kind;
            f.span.attributes = ints.iter().enumerate().map(|(i, v)| KeyValue { key: format!("k{i}"), value: val(AnyValue::IntValue(*v)), ..Default::default() }).collect();
            f.span.attributes.push(KeyValue { key: "s".into(), value: val(AnyValue::StringValue(s)), ..Default::default() });
            f.span.status = (code != 0).then(|| Status { code, message: String::new() });
            let back = from_batch(&to_batch(&[&f]).unwrap()).unwrap();
            prop_assert_eq!(back, vec![f]);
        }
    }
}
