//! The native query API against a real `weft serve`: a trace sent over OTLP
//! comes back by ID as OTLP JSON and as protobuf, field for field, both while
//! it is in the head and once sealed into a block; `traces:batchGet` answers
//! every ID in order; services, operations and stats list what was sent; bad
//! input gets a 4xx with a JSON error saying what is wrong.

mod common;

use std::time::{Duration, Instant};

use common::{http, temp_dir, Serve};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, TracesData};
use prost::Message;

const TRACE: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
const TRACE_HEX: &str = "00000000000000000102030405060708";

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
}

fn spans() -> Vec<Span> {
    (1..=3u8)
        .map(|i| Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![i; 8],
            parent_span_id: if i == 1 { vec![] } else { vec![1; 8] },
            name: format!("op-{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i) * 1000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            attributes: vec![
                kv("http.method", Value::StringValue("GET".into())),
                kv("n", Value::IntValue(-i64::from(i))),
                kv("ratio", Value::DoubleValue(0.5)),
                kv("ok", Value::BoolValue(i % 2 == 0)),
            ],
            events: vec![Event {
                time_unix_nano: 1_700_000_000_000_000_500,
                name: "ev".into(),
                attributes: vec![kv("e", Value::StringValue("<script>".into()))],
                ..Default::default()
            }],
            // An unset status is the same as none in OTLP; blocks keep it as none.
            status: (i == 3).then(|| Status { code: 2, message: "boom".into() }),
            ..Default::default()
        })
        .collect()
}

fn resource_spans() -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", Value::StringValue("checkout".into()))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope { name: "lib".into(), version: "1.2".into(), ..Default::default() }),
            spans: spans(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (st, _, body) = http(addr, "GET", path, &[], b"");
    (st, serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&body))))
}

fn by_id_matches(addr: std::net::SocketAddr) {
    // Protobuf: the very spans sent, resource and scope included.
    let (st, head, body) =
        http(addr, "GET", &format!("/weft/v1/traces/{TRACE_HEX}"), &[("Accept", "application/x-protobuf")], b"");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.to_ascii_lowercase().contains("content-type: application/x-protobuf"), "{head}");
    let data = TracesData::decode(&body[..]).unwrap();
    assert_eq!(data.resource_spans.len(), 1);
    let rs = &data.resource_spans[0];
    assert_eq!(rs.resource, resource_spans().resource);
    assert_eq!(rs.scope_spans[0].scope, resource_spans().scope_spans[0].scope);
    let mut got = rs.scope_spans[0].spans.clone();
    got.sort_by_key(|s| s.span_id.clone());
    assert_eq!(got, spans());
    // JSON: OTLP JSON with hex IDs; the 16-digit form of the ID finds it too.
    let (st, v) = get(addr, "/weft/v1/traces/0102030405060708");
    assert_eq!(st, 200, "{v}");
    let js = &v["resourceSpans"][0]["scopeSpans"][0]["spans"];
    assert_eq!(js.as_array().unwrap().len(), 3, "{v}");
    assert!(js.as_array().unwrap().iter().all(|s| s["traceId"] == TRACE_HEX), "{v}");
    let back: TracesData = serde_json::from_value(v).unwrap();
    let mut got = back.resource_spans[0].scope_spans[0].spans.clone();
    got.sort_by_key(|s| s.span_id.clone());
    assert_eq!(got, spans());
}

#[test]
fn traces_come_back_by_id_from_head_and_blocks_and_bad_input_is_explained() {
    let dir = temp_dir("native-api");
    let serve = Serve::start(&dir.join("data"), &["--trace-idle", "1s"]);
    let p = serve.ports;
    let body = ExportTraceServiceRequest { resource_spans: vec![resource_spans()] }.encode_to_vec();
    let (st, _, _) = http(p.otlp_http, "POST", "/v1/traces", &[("Content-Type", "application/x-protobuf")], &body);
    assert_eq!(st, 200);

    // In the head (processed a moment after the answer).
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(p.http, &format!("/weft/v1/traces/{TRACE_HEX}")).0 != 200 {
        assert!(Instant::now() < deadline, "the trace never became readable");
        std::thread::sleep(Duration::from_millis(20));
    }
    by_id_matches(p.http);
    let (_, ops) = get(p.http, "/weft/v1/operations?service=checkout");
    assert_eq!(ops["operations"].as_array().unwrap().len(), 3, "{ops}");

    // Sealed into a block (trace_idle 1 s), then the same answers.
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::metric(p.http, "weft_store_spans_total") < 3.0 {
        assert!(Instant::now() < deadline, "the trace was never sealed");
        std::thread::sleep(Duration::from_millis(50));
    }
    by_id_matches(p.http);

    // batchGet: one line per ID, in order, unknown ones found: false.
    let unknown = "ffffffffffffffffffffffffffffffff";
    let req = serde_json::json!({ "traceIds": [unknown, TRACE_HEX, "0102030405060708"] }).to_string();
    let (st, head, body) = http(p.http, "POST", "/weft/v1/traces:batchGet", &[], req.as_bytes());
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    assert!(head.to_ascii_lowercase().contains("application/x-ndjson"), "{head}");
    let lines: Vec<serde_json::Value> =
        String::from_utf8(body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!((lines[0]["traceId"].as_str(), lines[0]["found"].as_bool()), (Some(unknown), Some(false)));
    for l in &lines[1..] {
        assert_eq!(l["found"], true, "{l}");
        assert_eq!(l["summary"]["spanCount"], 3, "{l}");
        assert_eq!(l["summary"]["errorCount"], 1, "{l}");
        assert_eq!(l["summary"]["rootName"], "op-1", "{l}");
        assert_eq!(l["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap().len(), 3, "{l}");
    }

    // What is stored, listed.
    let (_, sv) = get(p.http, "/weft/v1/services");
    assert_eq!(sv["services"], serde_json::json!(["checkout"]));
    let (_, ops) = get(p.http, "/weft/v1/operations?service=checkout");
    let names: Vec<&str> = ops["operations"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["op-1", "op-2", "op-3"]);
    let (_, none) = get(p.http, "/weft/v1/operations?service=nope");
    assert_eq!(none["operations"], serde_json::json!([]));
    let (_, stats) = get(p.http, "/weft/v1/stats");
    assert_eq!(stats["received"]["spans"], 3, "{stats}");
    assert_eq!(stats["store"]["spansStored"], 3, "{stats}");
    assert_eq!(stats["rejected"]["invalidSpans"], 0, "{stats}");

    // Bad input: a 4xx and a JSON error that says what is wrong.
    let bad = |method: &str, path: &str, body: &[u8], status: u16, says: &str| {
        let (st, _, b) = http(p.http, method, path, &[], body);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_else(|_| panic!("{path}: not JSON"));
        assert_eq!(st, status, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{path}: {v}");
    };
    bad("GET", "/weft/v1/traces/xyz", b"", 400, "32 (or 16) hex digits");
    bad("GET", "/weft/v1/traces/zz000000000000000102030405060708", b"", 400, "hex digits only");
    bad("GET", "/weft/v1/traces/00000000000000000000000000000abc", b"", 404, "not found");
    bad("POST", "/weft/v1/traces:batchGet", b"{not json", 400, "not valid JSON");
    bad("POST", "/weft/v1/traces:batchGet", b"{}", 400, "traceIds");
    bad("POST", "/weft/v1/traces:batchGet", br#"{"traceIds": ["abc"]}"#, 400, "traceIds[0]");
    bad("POST", "/weft/v1/traces:batchGet", br#"{"traceIds": [7]}"#, 400, "not a string");
    let many = serde_json::json!({ "traceIds": vec![TRACE_HEX; 10_001] }).to_string();
    bad("POST", "/weft/v1/traces:batchGet", many.as_bytes(), 400, "at most 10000");
    bad("GET", "/weft/v1/operations?colour=blue", b"", 400, "unknown parameter");
    bad("GET", "/weft/v1/nothing", b"", 404, "no route");
    // And the server is still answering.
    assert_eq!(get(p.http, "/weft/v1/services").0, 200);
}
