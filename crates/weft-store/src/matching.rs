//! The store's three forms of a span, as the query matcher sees them
//! ([`weft_traceql::SpanLike`]): a decoded [`FullSpan`], a span read in place
//! from the head ([`HeadSpan`]), and a row of a block's span columns
//! ([`SpanRows`]). All three answer alike; the search tests hold them to it.
//!
//! `resource.service.name` is answered from the span's service (the column
//! blocks keep, and prune by) and is absent when that is empty.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, BooleanArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use weft_traceql::{AttrValue, SpanLike, TraceLike};

use crate::span::{FullSpan, Origin};
use crate::summary::TraceSummary;
use crate::wire::{KvRef, SpanRef, ValueRef};
use crate::StoreError;

const SERVICE_NAME: &str = "service.name";

impl TraceLike for TraceSummary {
    fn duration_ns(&self) -> u64 {
        self.duration
    }
    fn root_name(&self) -> &str {
        &self.root_name
    }
    fn root_service(&self) -> &str {
        &self.root_service
    }
}

/// End minus start as blocks store it (`duration_ns`, signed): a span that
/// ends before it starts lasts 0.
fn duration(start: u64, end: u64) -> u64 {
    (end.wrapping_sub(start) as i64).max(0) as u64
}

fn service(s: &str) -> Option<AttrValue<'_>> {
    (!s.is_empty()).then_some(AttrValue::Str(s))
}

fn decoded<'a>(kvs: &'a [KeyValue], key: &str) -> Option<AttrValue<'a>> {
    let kv = kvs.iter().find(|kv| kv.key == key)?;
    Some(match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => AttrValue::Str(s),
        Some(AnyValue::IntValue(i)) => AttrValue::Int(*i),
        Some(AnyValue::DoubleValue(d)) => AttrValue::Float(*d),
        Some(AnyValue::BoolValue(b)) => AttrValue::Bool(*b),
        _ => AttrValue::Other,
    })
}

impl SpanLike for FullSpan {
    fn name(&self) -> &str {
        &self.span.name
    }
    fn kind(&self) -> i32 {
        self.span.kind
    }
    fn status(&self) -> i32 {
        self.span.status.as_ref().map_or(0, |s| s.code)
    }
    fn duration_ns(&self) -> u64 {
        duration(self.span.start_time_unix_nano, self.span.end_time_unix_nano)
    }
    fn span_attr(&self, key: &str) -> Option<AttrValue<'_>> {
        decoded(&self.span.attributes, key)
    }
    fn resource_attr(&self, key: &str) -> Option<AttrValue<'_>> {
        if key == SERVICE_NAME {
            return service(&self.origin.service);
        }
        decoded(&self.origin.resource, key)
    }
}

/// A span of the head, read in place, with its attribute list and origin.
#[derive(Debug, Clone, Copy)]
pub struct HeadSpan<'s, 'a> {
    /// The span.
    pub span: &'s SpanRef<'a>,
    /// The scratch's attribute list the span's ranges point into.
    pub kvs: &'s [KvRef<'a>],
    /// Its resource and scope.
    pub origin: &'s Origin,
}

impl SpanLike for HeadSpan<'_, '_> {
    fn name(&self) -> &str {
        self.span.name
    }
    fn kind(&self) -> i32 {
        self.span.kind
    }
    fn status(&self) -> i32 {
        self.span.status_code
    }
    fn duration_ns(&self) -> u64 {
        duration(self.span.start, self.span.end)
    }
    fn span_attr(&self, key: &str) -> Option<AttrValue<'_>> {
        let kv = self.kvs.get(self.span.attributes.clone())?.iter().find(|kv| kv.key == key)?;
        Some(match kv.value {
            ValueRef::Str(s) => AttrValue::Str(s),
            ValueRef::Int(i) => AttrValue::Int(i),
            ValueRef::Double(d) => AttrValue::Float(d),
            ValueRef::Bool(b) => AttrValue::Bool(b),
            ValueRef::Empty | ValueRef::Other(_) => AttrValue::Other,
        })
    }
    fn resource_attr(&self, key: &str) -> Option<AttrValue<'_>> {
        if key == SERVICE_NAME {
            return service(&self.origin.service);
        }
        decoded(&self.origin.resource, key)
    }
}

/// A column of attribute lists, split into its parts.
#[derive(Debug)]
struct KvColumn<'b> {
    offsets: &'b [i32],
    key: &'b StringArray,
    string: &'b StringArray,
    int: &'b Int64Array,
    double: &'b Float64Array,
    boolean: &'b BooleanArray,
}

fn bad(what: &str) -> StoreError {
    StoreError::Format(format!("block column {what} has an unexpected type"))
}

impl<'b> KvColumn<'b> {
    fn of(batch: &'b RecordBatch, name: &str) -> Result<Option<Self>, StoreError> {
        let Some(col) = batch.column_by_name(name) else { return Ok(None) };
        let list = col.as_list_opt::<i32>().ok_or_else(|| bad(name))?;
        let st = list.values().as_struct_opt().ok_or_else(|| bad(name))?;
        Ok(Some(KvColumn {
            offsets: list.value_offsets(),
            key: st.column(0).as_string_opt::<i32>().ok_or_else(|| bad("key"))?,
            string: st.column(1).as_string_opt::<i32>().ok_or_else(|| bad("string"))?,
            int: st.column(2).as_primitive_opt::<Int64Type>().ok_or_else(|| bad("int"))?,
            double: st.column(3).as_primitive_opt::<Float64Type>().ok_or_else(|| bad("double"))?,
            boolean: st.column(4).as_boolean_opt().ok_or_else(|| bad("bool"))?,
        }))
    }

    fn find(&self, row: usize, key: &str) -> Option<AttrValue<'b>> {
        let (from, to) = (*self.offsets.get(row)? as usize, *self.offsets.get(row + 1)? as usize);
        let i = (from..to).find(|&i| self.key.value(i) == key)?;
        Some(if self.string.is_valid(i) {
            AttrValue::Str(self.string.value(i))
        } else if self.int.is_valid(i) {
            AttrValue::Int(self.int.value(i))
        } else if self.double.is_valid(i) {
            AttrValue::Float(self.double.value(i))
        } else if self.boolean.is_valid(i) {
            AttrValue::Bool(self.boolean.value(i))
        } else {
            AttrValue::Other
        })
    }
}

/// Span columns read from a block for a search: the intrinsics always, the
/// attribute lists only when the filter looks at them.
#[derive(Debug)]
pub struct SpanRows<'b> {
    rows: usize,
    name: &'b StringArray,
    service: &'b StringArray,
    kind: &'b Int32Array,
    status: &'b Int32Array,
    duration: &'b Int64Array,
    attributes: Option<KvColumn<'b>>,
    resource: Option<KvColumn<'b>>,
}

impl<'b> SpanRows<'b> {
    /// The columns a search reads; `span`/`resource` say whether to include the
    /// attribute lists.
    pub fn columns(span: bool, resource: bool) -> Vec<&'static str> {
        let mut c = vec!["service", "name", "kind", "duration_ns", "status_code"];
        if span {
            c.push("attributes");
        }
        if resource {
            c.push("resource_attributes");
        }
        c
    }

    /// Views a batch read with (a superset of) [`SpanRows::columns`].
    pub fn of(batch: &'b RecordBatch) -> Result<Self, StoreError> {
        let col = |n: &str| batch.column_by_name(n).ok_or_else(|| bad(n));
        Ok(SpanRows {
            rows: batch.num_rows(),
            name: col("name")?.as_string_opt::<i32>().ok_or_else(|| bad("name"))?,
            service: col("service")?.as_string_opt::<i32>().ok_or_else(|| bad("service"))?,
            kind: col("kind")?.as_primitive_opt::<Int32Type>().ok_or_else(|| bad("kind"))?,
            status: col("status_code")?.as_primitive_opt::<Int32Type>().ok_or_else(|| bad("status_code"))?,
            duration: col("duration_ns")?.as_primitive_opt::<Int64Type>().ok_or_else(|| bad("duration_ns"))?,
            attributes: KvColumn::of(batch, "attributes")?,
            resource: KvColumn::of(batch, "resource_attributes")?,
        })
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether it has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Row `i` (< [`SpanRows::len`]).
    pub fn row(&self, i: usize) -> Row<'_, 'b> {
        Row { cols: self, i }
    }
}

/// One row of [`SpanRows`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'r, 'b> {
    cols: &'r SpanRows<'b>,
    i: usize,
}

impl SpanLike for Row<'_, '_> {
    fn name(&self) -> &str {
        self.cols.name.value(self.i)
    }
    fn kind(&self) -> i32 {
        self.cols.kind.value(self.i)
    }
    fn status(&self) -> i32 {
        self.cols.status.value(self.i)
    }
    fn duration_ns(&self) -> u64 {
        self.cols.duration.value(self.i).max(0) as u64
    }
    fn span_attr(&self, key: &str) -> Option<AttrValue<'_>> {
        self.cols.attributes.as_ref()?.find(self.i, key)
    }
    fn resource_attr(&self, key: &str) -> Option<AttrValue<'_>> {
        if key == SERVICE_NAME {
            return service(self.cols.service.value(self.i));
        }
        self.cols.resource.as_ref()?.find(self.i, key)
    }
}
