//! The OTLP bytes weft writes straight from its records decode, with the
//! `opentelemetry-proto` types (generated from the OpenTelemetry protos by
//! another project), into exactly the spans, attributes, events, links, status
//! and resource that were recorded.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as PValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as PKeyValue};
use proptest::prelude::*;
use prost::Message;
use weft::otlp_encode::encode_export_request;
use weft::{
    Array, InMemoryExporter, KeyValue, Resource, Span, SpanContext, SpanId, SpanKind, SpanRecord, Status, TraceFlags,
    TraceId, TraceState, Value,
};

fn to_proto(v: &Value) -> AnyValue {
    let value = match v {
        Value::Bool(b) => PValue::BoolValue(*b),
        Value::I64(i) => PValue::IntValue(*i),
        Value::F64(f) => PValue::DoubleValue(*f),
        Value::String(s) => PValue::StringValue(s.to_string()),
        Value::Array(a) => {
            let values = match a {
                Array::Bool(v) => v.iter().map(|b| to_proto(&Value::Bool(*b))).collect(),
                Array::I64(v) => v.iter().map(|i| to_proto(&Value::I64(*i))).collect(),
                Array::F64(v) => v.iter().map(|f| to_proto(&Value::F64(*f))).collect(),
                Array::String(v) => v.iter().map(|s| to_proto(&Value::String(s.clone()))).collect(),
            };
            PValue::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue { values })
        }
    };
    AnyValue { value: Some(value) }
}

fn expect_attrs(got: &[PKeyValue], want: &[KeyValue]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.key, w.key);
        assert_eq!(g.value.as_ref(), Some(&to_proto(&w.value)), "attribute {}", w.key);
    }
}

fn check(resource: &Resource, spans: &[SpanRecord]) {
    let bytes = encode_export_request(resource, spans.iter());
    let req = ExportTraceServiceRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(req.encoded_len(), bytes.len(), "same size as the reference encoder would write");
    assert_eq!(req.resource_spans.len(), 1);
    let rs = &req.resource_spans[0];
    expect_attrs(&rs.resource.as_ref().unwrap().attributes, resource.attributes());
    let ss = &rs.scope_spans[0];
    assert_eq!(ss.scope.as_ref().unwrap().name, "weft");
    assert_eq!(ss.spans.len(), spans.len());
    for (p, s) in ss.spans.iter().zip(spans) {
        assert_eq!(p.trace_id, s.trace_id.to_bytes());
        assert_eq!(p.span_id, s.span_id.to_bytes());
        if s.parent_span_id.is_valid() {
            assert_eq!(p.parent_span_id, s.parent_span_id.to_bytes());
        } else {
            assert!(p.parent_span_id.is_empty());
        }
        assert_eq!(p.trace_state, s.trace_state.header_value());
        assert_eq!(p.name, s.name);
        assert_eq!(p.kind, s.kind as i32);
        assert_eq!((p.start_time_unix_nano, p.end_time_unix_nano), (s.start_unix_nanos, s.end_unix_nanos));
        expect_attrs(&p.attributes, &s.attributes);
        assert_eq!(p.dropped_attributes_count, s.dropped_attributes_count);
        assert_eq!(p.events.len(), s.events().len());
        for (pe, e) in p.events.iter().zip(s.events()) {
            assert_eq!((pe.name.as_str(), pe.time_unix_nano), (&*e.name, e.time_unix_nanos));
            expect_attrs(&pe.attributes, &e.attributes);
        }
        assert_eq!(p.links.len(), s.links().len());
        for (pl, l) in p.links.iter().zip(s.links()) {
            assert_eq!(pl.trace_id, l.context.trace_id().to_bytes());
            assert_eq!(pl.span_id, l.context.span_id().to_bytes());
            expect_attrs(&pl.attributes, &l.attributes);
            assert_eq!(pl.flags & 0xff, u32::from(l.context.flags().to_u8()));
        }
        match &s.status {
            Status::Unset => assert!(p.status.is_none() || p.status.as_ref().unwrap().code == 0),
            Status::Ok => assert_eq!(p.status.as_ref().unwrap().code, 1),
            Status::Error { message } => {
                let st = p.status.as_ref().unwrap();
                assert_eq!((st.code, st.message.as_str()), (2, &**message));
            }
        }
        assert_eq!(p.flags & 0xff, u32::from(s.flags.to_u8()));
        assert_eq!(p.flags & 0x100, 0x100, "the remote bit is stated");
        assert_eq!(p.flags & 0x200 != 0, s.parent_is_remote);
    }
}

#[test]
fn recorded_spans_round_trip_field_by_field() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder()
        .service_name("otlp-test")
        .resource_attribute("host.arch", "x86_64")
        .exporter(mem.clone())
        .log_at_shutdown(false)
        .install()
        .unwrap();
    let remote = SpanContext::new(
        TraceId::from_u128(0x0af7651916cd43dd8448eb211c80319c),
        SpanId::from_u64(0xb7ad6b7169203331),
        TraceFlags::SAMPLED,
        true,
        TraceState::parse("ot=th:8,congo=t61rcWkgMzE").unwrap(),
    );
    {
        let mut server =
            Span::builder("GET /x").kind(SpanKind::Server).parent(&remote).attribute("http.method", "GET").enter();
        server.set_attribute("ints", vec![1i64, -2, i64::MAX]);
        server.set_attribute("floats", vec![0.5f64, -1e300]);
        server.set_attribute("bools", vec![true, false]);
        server.set_attribute("strings", vec!["a", "", "ü"]);
        server.set_attribute("empty", "");
        server.set_attribute("neg", -1i64);
        server.add_event("retry", vec![KeyValue::new("attempt", 2), KeyValue::new("ok", false)]);
        server.add_link(remote.clone(), vec![KeyValue::new("why", "follows")]);
        server.set_status(Status::error("boom"));
        let mut c = Span::child("child");
        c.set_status(Status::Ok);
    }
    tracer.shutdown(Duration::from_secs(5)).unwrap();
    let spans = mem.spans();
    assert_eq!(spans.len(), 2);
    check(tracer.resource(), &spans);
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan()).prop_map(Value::F64),
        "\\PC{0,12}".prop_map(Value::from),
        proptest::collection::vec(any::<i64>(), 0..4).prop_map(Value::from),
        proptest::collection::vec("\\PC{0,6}", 0..4).prop_map(Value::from),
    ]
}

proptest! {
    #[test]
    fn any_attributes_round_trip(values in proptest::collection::vec(arb_value(), 0..12), dropped in any::<u32>(), kind in 1u8..=5) {
        let mut r = weft_record();
        r.attributes = values.into_iter().enumerate().map(|(i, v)| KeyValue::new(format!("k{i}"), v)).collect();
        r.dropped_attributes_count = dropped;
        r.kind = match kind { 1 => SpanKind::Internal, 2 => SpanKind::Server, 3 => SpanKind::Client, 4 => SpanKind::Producer, _ => SpanKind::Consumer };
        check(&Resource::default_for_process(), &[r]);
    }
}

/// A record built through the public API.
fn weft_record() -> SpanRecord {
    let mem = InMemoryExporter::new();
    // Each proptest case runs in this process: install, record, shut down.
    let tracer = weft::builder().exporter(mem.clone()).log_at_shutdown(false).install().unwrap();
    drop(Span::root("prop"));
    tracer.shutdown(Duration::from_secs(5)).unwrap();
    mem.spans().remove(0)
}
