//! The OTLP/JSON body weft writes decodes (with the `opentelemetry-proto` serde
//! types) into exactly the message its protobuf body decodes into.

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::time::Duration;
use weft::InMemoryExporter;

#[test]
fn json_and_protobuf_bodies_carry_the_same_spans() {
    let mem = InMemoryExporter::new();
    let tracer = weft::builder()
        .service_name("json \"quoted\" service")
        .exporter(mem.clone())
        .log_at_shutdown(false)
        .install()
        .expect("tracer");
    support::spans::rich_traces(5);
    tracer.shutdown(Duration::from_secs(10)).expect("shutdown");
    let records = mem.spans();
    let resource = mem.resource().expect("resource");
    assert_eq!(records.len(), 15);

    let pb = weft::otlp_encode::encode_export_request(&resource, records.iter());
    let from_pb = ExportTraceServiceRequest::decode(pb.as_slice()).expect("protobuf decodes");
    let json = weft_otlp::json::encode_export_request_json(&resource, records.iter());
    let from_json: ExportTraceServiceRequest = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("JSON decodes: {e}\n{}", String::from_utf8_lossy(&json)));
    assert_eq!(from_json, from_pb);
    // The JSON mapping's OTLP-specific rules, checked on the text itself.
    let text = String::from_utf8(json).expect("utf-8");
    let s0 = &records[0];
    assert!(text.contains(&format!("\"traceId\":\"{}\"", s0.trace_id)), "hex trace IDs");
    assert!(text.contains("\"intValue\":\""), "64-bit integers as strings");
    assert!(text.contains("\"kind\":2"), "enums as integers");
}
