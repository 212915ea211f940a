//! The store's in-place span reader (`weft_store::wire`), which turns every
//! kept span into a Parquet row: on any bytes it must not panic, and a span it
//! accepts must be what `prost` decodes from the same bytes, and must build a
//! row.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use weft_store::columns::SpanBatch;
use weft_store::wire::{parse_span, Scratch};
use weft_store::Origin;

fuzz_target!(|data: &[u8]| {
    let mut scratch = Scratch::default();
    let Ok(s) = parse_span(data, &mut scratch) else { return };
    let want = Span::decode(data).expect("prost decodes what the reader accepts");
    assert_eq!(s.name, want.name);
    assert_eq!(s.span_id.as_slice(), want.span_id.as_slice());
    assert_eq!(s.start, want.start_time_unix_nano);
    assert_eq!(s.attributes.len(), want.attributes.len());
    assert_eq!(s.events.len(), want.events.len());
    assert_eq!(s.links.len(), want.links.len());
    let origin = Arc::new(Origin::default());
    let mut batch = SpanBatch::with_capacity(1);
    batch.push(&origin, &s, &scratch);
    assert_eq!(batch.finish().expect("a row builds").num_rows(), 1);
});
