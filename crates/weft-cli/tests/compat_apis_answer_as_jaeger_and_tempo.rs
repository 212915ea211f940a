//! Contract tests of the Jaeger (v1 JSON, api_v3) and Tempo query APIs against
//! a real `weft serve`, built from the requests Jaeger UI and Grafana's Jaeger
//! and Tempo data sources send (see `shared/reference/query-apis.md`): health
//! checks, services and operations, searches with tags and durations, traces
//! by ID in every accepted ID form, dependencies, tag names and values. Every
//! answer is checked against the documented shape field by field, and
//! malformed parameters get the error shape of the API they were sent to.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{http, temp_dir, Serve};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status, TracesData};
use prost::Message;
use serde_json::{json, Value as J};

const A: &str = "5b8efff798038103d269b633813fc60c";
const B16: &str = "00000000000000b2";
const B: &str = "000000000000000000000000000000b2";

fn attr(k: &str, v: Value) -> KeyValue {
    KeyValue { key: k.into(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
}

fn s(k: &str, v: &str) -> KeyValue {
    attr(k, Value::StringValue(v.into()))
}

fn unhex(h: &str) -> Vec<u8> {
    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect()
}

struct Sp {
    trace: &'static str,
    id: u8,
    parent: Option<u8>,
    name: &'static str,
    kind: i32,
    start_ms: u64,
    dur_ms: u64,
    attrs: Vec<KeyValue>,
    error: bool,
}

/// Three services, two traces. Trace A: frontend `GET /checkout` (server) →
/// frontend `call checkout` (client) → checkout `POST /pay` (server, error,
/// `http.status_code` 500, an event, a link to B) → payments `charge`
/// (server). Trace B: one payments span, with a 64-bit trace ID.
fn dataset(now_ms: u64) -> Vec<u8> {
    let t0 = now_ms - 60_000;
    let spans = [
        Sp {
            trace: A,
            id: 1,
            parent: None,
            name: "GET /checkout",
            kind: 2,
            start_ms: 0,
            dur_ms: 300,
            attrs: vec![s("http.method", "GET")],
            error: false,
        },
        Sp {
            trace: A,
            id: 2,
            parent: Some(1),
            name: "call checkout",
            kind: 3,
            start_ms: 10,
            dur_ms: 250,
            attrs: vec![],
            error: false,
        },
        Sp {
            trace: A,
            id: 3,
            parent: Some(2),
            name: "POST /pay",
            kind: 2,
            start_ms: 20,
            dur_ms: 200,
            attrs: vec![attr("http.status_code", Value::IntValue(500)), attr("big", Value::IntValue(1 << 60))],
            error: true,
        },
        Sp {
            trace: A,
            id: 4,
            parent: Some(3),
            name: "charge",
            kind: 2,
            start_ms: 30,
            dur_ms: 20,
            attrs: vec![],
            error: false,
        },
        Sp {
            trace: B,
            id: 9,
            parent: None,
            name: "charge",
            kind: 2,
            start_ms: 1000,
            dur_ms: 5,
            attrs: vec![],
            error: false,
        },
    ];
    let service_of = |id: u8| match id {
        1 | 2 => "frontend",
        3 => "checkout",
        _ => "payments",
    };
    let mut resource_spans = Vec::new();
    for svc in ["frontend", "checkout", "payments"] {
        let list: Vec<Span> = spans
            .iter()
            .filter(|x| service_of(x.id) == svc)
            .map(|x| Span {
                trace_id: unhex(x.trace),
                span_id: vec![x.id; 8],
                parent_span_id: x.parent.map(|p| vec![p; 8]).unwrap_or_default(),
                name: x.name.into(),
                kind: x.kind,
                start_time_unix_nano: (t0 + x.start_ms) * 1_000_000,
                end_time_unix_nano: (t0 + x.start_ms + x.dur_ms) * 1_000_000,
                attributes: x.attrs.clone(),
                status: x.error.then(|| Status { code: 2, message: "card declined".into() }),
                events: if x.id == 3 {
                    vec![span::Event {
                        time_unix_nano: (t0 + 25) * 1_000_000,
                        name: "retry".into(),
                        attributes: vec![attr("attempt", Value::IntValue(2))],
                        dropped_attributes_count: 0,
                    }]
                } else {
                    vec![]
                },
                links: if x.id == 3 {
                    vec![span::Link { trace_id: unhex(B), span_id: vec![9; 8], ..Default::default() }]
                } else {
                    vec![]
                },
                ..Default::default()
            })
            .collect();
        resource_spans.push(ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", svc), s("host.name", "h-1")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "shop-lib".into(),
                    version: "1.0".into(),
                    ..Default::default()
                }),
                spans: list,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    ExportTraceServiceRequest { resource_spans }.encode_to_vec()
}

fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String, Vec<u8>) {
    http(addr, "GET", path, headers, b"")
}

fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, J) {
    let (st, head, body) = get(addr, path, &[]);
    let v = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&body)));
    assert!(head.to_ascii_lowercase().contains("content-type: application/json"), "{path}: {head}");
    (st, v)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Jaeger v1 envelope of data, no errors.
fn envelope_ok(v: &J) -> &J {
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "{v}");
    for k in ["data", "total", "limit", "offset", "errors"] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert!(v["errors"].is_null(), "{v}");
    assert_eq!((v["limit"].as_u64(), v["offset"].as_u64()), (Some(0), Some(0)));
    if let Some(a) = v["data"].as_array() {
        assert_eq!(v["total"].as_u64(), Some(a.len() as u64), "{v}");
    }
    &v["data"]
}

/// A Jaeger v1 error envelope with one error of `code`.
fn envelope_err(st: u16, v: &J, code: u16) -> String {
    assert_eq!(st, code, "{v}");
    assert!(v["data"].is_null(), "{v}");
    assert_eq!(v["errors"][0]["code"].as_u64(), Some(u64::from(code)), "{v}");
    v["errors"][0]["msg"].as_str().unwrap().to_owned()
}

fn v3_err(st: u16, v: &J, code: u16) -> String {
    assert_eq!(st, code, "{v}");
    assert_eq!(v["error"]["httpCode"].as_u64(), Some(u64::from(code)), "{v}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

/// Checks a Jaeger trace field by field; returns its spans by operation name.
fn check_jaeger_trace(t: &J, trace_id: &str, spans: usize) -> std::collections::HashMap<String, J> {
    assert_eq!(t["traceID"], trace_id);
    assert!(t["warnings"].is_null());
    let procs = t["processes"].as_object().unwrap();
    for (k, p) in procs {
        assert!(k.starts_with('p'), "{k}");
        assert!(p["serviceName"].is_string());
        for tag in p["tags"].as_array().unwrap() {
            assert_ne!(tag["key"], "service.name", "service.name is the process's serviceName, not a tag");
        }
    }
    let list = t["spans"].as_array().unwrap();
    assert_eq!(list.len(), spans, "{t}");
    let mut by_name = std::collections::HashMap::new();
    let mut last_start = 0;
    for sp in list {
        assert_eq!(sp["traceID"], trace_id);
        let id = sp["spanID"].as_str().unwrap();
        assert!(id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{id}");
        assert!(sp["operationName"].is_string());
        let start = sp["startTime"].as_u64().unwrap();
        assert!(start >= last_start, "spans by start time");
        last_start = start;
        assert!(start > 1_600_000_000_000_000 && start < 2_000_000_000_000_000, "µs since the epoch: {start}");
        assert!(sp["duration"].is_u64());
        assert_eq!(sp["flags"], 1);
        assert!(procs.contains_key(sp["processID"].as_str().unwrap()));
        assert!(sp["warnings"].is_null());
        for r in sp["references"].as_array().unwrap() {
            assert!(r["refType"] == "CHILD_OF" || r["refType"] == "FOLLOWS_FROM", "{r}");
            assert!(r["traceID"].is_string() && r["spanID"].is_string());
        }
        for tag in sp["tags"].as_array().unwrap() {
            let ty = tag["type"].as_str().unwrap();
            assert!(["string", "bool", "int64", "float64", "binary"].contains(&ty), "{tag}");
            assert!(tag["key"].is_string());
        }
        for log in sp["logs"].as_array().unwrap() {
            assert!(log["timestamp"].is_u64() && log["fields"].is_array());
        }
        by_name.insert(sp["operationName"].as_str().unwrap().to_owned(), sp.clone());
    }
    by_name
}

fn tag<'a>(span: &'a J, key: &str) -> &'a J {
    span["tags"].as_array().unwrap().iter().find(|t| t["key"] == key).unwrap_or_else(|| panic!("no tag {key}: {span}"))
}

fn otlp_spans(resource_spans: &J) -> Vec<J> {
    resource_spans
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["scopeSpans"].as_array().unwrap().iter())
        .flat_map(|s| s["spans"].as_array().unwrap().iter().cloned())
        .collect()
}

#[test]
fn jaeger_and_tempo_clients_get_the_answers_they_expect() {
    let dir = temp_dir("compat-apis");
    let serve = Serve::start(&dir.join("data"), &[]);
    let p = serve.ports;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let (st, _, _) =
        http(p.otlp_http, "POST", "/v1/traces", &[("Content-Type", "application/x-protobuf")], &dataset(now_ms));
    assert_eq!(st, 200);
    let q = p.http;
    // The server answers once the spans are in its write-ahead log; they reach
    // the store's head just after, on the shard threads. Wait for that before
    // checking answers field by field.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while get_json(q, "/api/services").1["total"] != 3 {
        assert!(std::time::Instant::now() < deadline, "the ingested services never became visible");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // --- Jaeger v1: Grafana's "Save & test" parses /api/services as {data: [...]}.
    let (st, v) = get_json(q, "/api/services");
    assert_eq!(st, 200);
    assert_eq!(envelope_ok(&v), &json!(["checkout", "frontend", "payments"]));
    assert_eq!(v["total"], 3);

    let (_, v) = get_json(q, "/api/services/frontend/operations");
    assert_eq!(envelope_ok(&v), &json!(["GET /checkout", "call checkout"]));
    let (_, v) = get_json(q, "/api/services/no-such-service/operations");
    assert_eq!(envelope_ok(&v), &json!([]));
    let (_, v) = get_json(q, "/api/operations?service=frontend");
    assert_eq!(
        envelope_ok(&v),
        &json!([{"name": "GET /checkout", "spanKind": "server"}, {"name": "call checkout", "spanKind": "client"}])
    );
    let (_, v) = get_json(q, "/api/operations?service=frontend&spanKind=client");
    assert_eq!(envelope_ok(&v), &json!([{"name": "call checkout", "spanKind": "client"}]));
    let (st, v) = get_json(q, "/api/operations");
    assert!(envelope_err(st, &v, 400).contains("service"));
    let (st, v) = get_json(q, "/api/operations?service=frontend&spanKind=sideways");
    envelope_err(st, &v, 400);

    // Search as Jaeger UI sends it (µs window, lookback, limit, tags as JSON).
    let (start_us, end_us) = ((now_ms - 3_600_000) * 1000, (now_ms + 1000) * 1000);
    let window = format!("start={start_us}&end={end_us}&lookback=1h&limit=20");
    let (st, v) =
        get_json(q, &format!("/api/traces?service=checkout&{window}&tags={}", enc(r#"{"http.status_code":"500"}"#)));
    assert_eq!(st, 200, "{v}");
    let data = envelope_ok(&v).as_array().unwrap();
    assert_eq!(data.len(), 1, "{v}");
    let spans = check_jaeger_trace(&data[0], A, 4);
    let pay = &spans["POST /pay"];
    assert_eq!(tag(pay, "http.status_code"), &json!({"key": "http.status_code", "type": "int64", "value": 500}));
    assert_eq!(tag(pay, "big")["value"], json!((1u64 << 60).to_string()), "int64 past 2^53 as text");
    assert_eq!(tag(pay, "error"), &json!({"key": "error", "type": "bool", "value": true}));
    assert_eq!(tag(pay, "otel.status_code")["value"], "ERROR");
    assert_eq!(tag(pay, "otel.status_description")["value"], "card declined");
    assert_eq!(tag(pay, "span.kind")["value"], "server");
    assert_eq!(tag(pay, "otel.scope.name")["value"], "shop-lib");
    assert_eq!(pay["references"][0], json!({"refType": "CHILD_OF", "traceID": A, "spanID": "0202020202020202"}));
    assert_eq!(pay["references"][1], json!({"refType": "FOLLOWS_FROM", "traceID": B16, "spanID": "0909090909090909"}));
    assert_eq!(pay["duration"], 200_000);
    assert_eq!(pay["logs"][0]["timestamp"].as_u64(), Some((now_ms - 60_000 + 25) * 1000));
    assert!(pay["logs"][0]["fields"]
        .as_array()
        .unwrap()
        .contains(&json!({"key": "event", "type": "string", "value": "retry"})));
    let pay_proc = &data[0]["processes"][pay["processID"].as_str().unwrap()];
    assert_eq!(
        pay_proc,
        &json!({"serviceName": "checkout", "tags": [{"key": "host.name", "type": "string", "value": "h-1"}]})
    );
    assert_eq!(data[0]["processes"].as_object().unwrap().len(), 3);

    // Repeated tag=k:v, operation, durations (Go syntax), and what must not match.
    for (query, found) in [
        (format!("service=checkout&operation={}&tag=error:true&minDuration=100ms&maxDuration=1s", enc("POST /pay")), 1),
        ("service=frontend&minDuration=1.5s".to_owned(), 0),
        ("service=payments".to_owned(), 2),
        (format!("service=payments&tags={}", enc(r#"{"http.status_code":"500"}"#)), 0),
        ("service=checkout&tag=span.kind:server&tag=http.status_code:500".to_owned(), 1),
        ("service=nobody".to_owned(), 0),
    ] {
        let (st, v) = get_json(q, &format!("/api/traces?{query}&{window}"));
        assert_eq!(st, 200, "{query}: {v}");
        assert_eq!(envelope_ok(&v).as_array().unwrap().len(), found, "{query}: {v}");
    }
    for (query, says) in [
        ("operation=x".to_owned(), "service"),
        ("service=checkout&minDuration=2s&maxDuration=1s".to_owned(), "greater"),
        ("service=checkout&minDuration=soon".to_owned(), "minDuration"),
        ("service=checkout&tags=not-json".to_owned(), "tags"),
        ("service=checkout&tag=nocolon".to_owned(), "tag"),
        ("service=checkout&start=yesterday".to_owned(), "start"),
        ("service=checkout&limit=many".to_owned(), "limit"),
    ] {
        let (st, v) = get_json(q, &format!("/api/traces?{query}"));
        assert!(envelope_err(st, &v, 400).contains(says), "{query}: {v}");
    }

    // By ID: 32 and 16 digits, µs and ms hints (Grafana sends ms), unknown, malformed.
    let (st, v) = get_json(q, &format!("/api/traces/{A}?start={start_us}&end={end_us}"));
    assert_eq!(st, 200);
    check_jaeger_trace(&envelope_ok(&v)[0], A, 4);
    let (st, v) = get_json(q, &format!("/api/traces/{A}?start={}&end={}", start_us / 1000, end_us / 1000));
    assert_eq!(st, 200, "{v}");
    let (st, v) = get_json(q, &format!("/api/traces/{B16}"));
    assert_eq!(st, 200);
    check_jaeger_trace(&envelope_ok(&v)[0], B16, 1);
    let (st, v) = get_json(q, &format!("/api/traces/{B}"));
    assert_eq!((st, envelope_ok(&v)[0]["traceID"].as_str()), (200, Some(B16)));
    let (st, v) = get_json(q, "/api/traces/0123456789abcdef0123456789abcdef");
    assert_eq!(envelope_err(st, &v, 404), "trace not found");
    let (st, v) = get_json(q, "/api/traces/xyz");
    envelope_err(st, &v, 400);
    let (st, v) = get_json(q, &format!("/api/traces/{A}?start=noon"));
    envelope_err(st, &v, 400);

    // Multi-get: found traces in data, unknown ones as 404 errors beside them.
    let (st, v) = get_json(q, &format!("/api/traces?traceID={A}&traceID=0123456789abcdef0123456789abcdef"));
    assert_eq!(st, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["errors"][0]["code"], 404);
    assert_eq!(v["errors"][0]["traceID"], "0123456789abcdef0123456789abcdef");

    // Dependencies: calls across services, from parent/child spans.
    let (st, v) = get_json(q, &format!("/api/dependencies?endTs={}&lookback=3600000", now_ms + 1000));
    assert_eq!(st, 200);
    let mut deps = envelope_ok(&v).as_array().unwrap().clone();
    deps.sort_by_key(|d| d["parent"].as_str().unwrap().to_owned());
    assert_eq!(
        deps,
        vec![
            json!({"parent": "checkout", "child": "payments", "callCount": 1}),
            json!({"parent": "frontend", "child": "checkout", "callCount": 1}),
        ]
    );
    let (_, v) = get_json(q, &format!("/api/dependencies?endTs={}&lookback=1000", now_ms - 3_600_000));
    assert_eq!(envelope_ok(&v), &json!([]));
    let (st, v) = get_json(q, "/api/dependencies?endTs=later");
    envelope_err(st, &v, 400);

    // --- Jaeger api_v3.
    let (st, v) = get_json(q, "/api/v3/services");
    assert_eq!((st, v), (200, json!({"services": ["checkout", "frontend", "payments"]})));
    let (_, v) = get_json(q, "/api/v3/operations?service=frontend&span_kind=server");
    assert_eq!(v, json!({"operations": [{"name": "GET /checkout", "spanKind": "server"}]}));
    let (_, v) = get_json(q, "/api/v3/operations?service=frontend&spanKind=client");
    assert_eq!(v, json!({"operations": [{"name": "call checkout", "spanKind": "client"}]}));
    let (st, v) = get_json(q, &format!("/api/v3/traces/{A}"));
    assert_eq!(st, 200);
    let spans = otlp_spans(&v["result"]["resourceSpans"]);
    assert_eq!(spans.len(), 4);
    assert!(spans.iter().all(|s| s["traceId"] == A), "OTLP JSON with hex IDs");
    assert!(spans.iter().any(|s| s["name"] == "POST /pay" && s["status"]["code"] == 2));
    let (st, v) = get_json(q, "/api/v3/traces/0123456789abcdef0123456789abcdef");
    v3_err(st, &v, 404);
    let (st, v) = get_json(q, "/api/v3/traces/nothex");
    v3_err(st, &v, 400);

    let rfc =
        |ms: u64| enc(&humantime::format_rfc3339_nanos(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string());
    let win3 = format!("query.start_time_min={}&query.start_time_max={}", rfc(now_ms - 3_600_000), rfc(now_ms + 1000));
    let win3_camel =
        format!("query.startTimeMin={}&query.startTimeMax={}", rfc(now_ms - 3_600_000), rfc(now_ms + 1000));
    for query in [
        format!("query.service_name=checkout&{win3}&query.attributes={}", enc(r#"{"http.status_code":"500"}"#)),
        format!(
            "query.serviceName=checkout&query.operationName={}&{win3_camel}&query.durationMin=100ms",
            enc("POST /pay")
        ),
    ] {
        let (st, v) = get_json(q, &format!("/api/v3/traces?{query}"));
        assert_eq!(st, 200, "{query}: {v}");
        let spans = otlp_spans(&v["result"]["resourceSpans"]);
        assert_eq!(spans.len(), 4, "{query}: the whole trace");
    }
    let (st, v) = get_json(q, &format!("/api/v3/traces?query.service_name=nobody&{win3}"));
    assert_eq!(v3_err(st, &v, 404), "No traces found");
    let (st, v) = get_json(q, "/api/v3/traces?query.service_name=checkout");
    assert!(v3_err(st, &v, 400).contains("start_time_min"));
    let (st, v) = get_json(q, &format!("/api/v3/traces?{win3}&query.duration_min=1s&query.duration_max=1ms"));
    v3_err(st, &v, 400);
    let (st, v) = get_json(q, &format!("/api/v3/traces?{win3}&query.attributes=oops"));
    v3_err(st, &v, 400);
    let (st, v) = get_json(q, &format!("/api/v3/trace-summaries?query.service_name=checkout&{win3}"));
    assert_eq!(st, 200, "{v}");
    let sm = &v["summaries"][0];
    assert_eq!(sm["traceId"], A);
    assert_eq!(sm["rootServiceName"], "frontend");
    assert_eq!(sm["rootOperationName"], "GET /checkout");
    assert_eq!(sm["spanCount"], 4);
    assert_eq!(sm["errorSpanCount"], 1);
    assert_eq!(sm["orphanSpanCount"], 0);
    assert_eq!(sm["minStartTimeUnixNano"], ((now_ms - 60_000) * 1_000_000).to_string());
    assert_eq!(sm["maxEndTimeUnixNano"], ((now_ms - 60_000 + 300) * 1_000_000).to_string());
    assert_eq!(
        sm["services"],
        json!([
            {"name": "checkout", "spanCount": 1, "errorSpanCount": 1},
            {"name": "frontend", "spanCount": 2, "errorSpanCount": 0},
            {"name": "payments", "spanCount": 1, "errorSpanCount": 0},
        ])
    );

    // --- Tempo: Grafana's "Save & test", then trace by ID in JSON and protobuf.
    let (st, _, body) = get(q, "/api/echo", &[]);
    assert_eq!((st, body.as_slice()), (200, b"echo".as_slice()));
    assert_eq!(get(q, "/ready", &[]).0, 200);
    let b64 = |h: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(unhex(h))
    };
    for id in [A.to_owned(), b64(A), A.trim_start_matches('0').to_owned()] {
        let (st, v) = get_json(q, &format!("/api/v2/traces/{}", enc(&id)));
        assert_eq!(st, 200, "{id}: {v}");
        assert_eq!(v["status"], "COMPLETE");
        let spans = otlp_spans(&v["trace"]["resourceSpans"]);
        assert_eq!(spans.len(), 4);
        assert!(spans.iter().all(|s| s["traceId"] == b64(A)), "Tempo's JSON carries base64 IDs");
        assert!(spans
            .iter()
            .any(|s| s["spanId"] == b64("0303030303030303") && s["parentSpanId"] == b64("0202020202020202")));
    }
    let (st, head, body) = get(q, &format!("/api/v2/traces/{A}"), &[("Accept", "application/protobuf")]);
    assert_eq!(st, 200);
    assert!(head.contains("application/protobuf"), "{head}");
    // TraceByIDResponse { Trace trace = 1; } and Trace has TracesData's layout.
    #[derive(Clone, PartialEq, prost::Message)]
    struct TraceByIdResponse {
        #[prost(message, optional, tag = "1")]
        trace: Option<TracesData>,
    }
    let r = TraceByIdResponse::decode(body.as_slice()).unwrap();
    let n: usize = r.trace.unwrap().resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
    assert_eq!(n, 4);
    let (st, _, _) = get(q, "/api/v2/traces/0123456789abcdef0123456789abcdef", &[("Accept", "application/protobuf")]);
    assert_eq!(st, 404);
    let (st, _, body) = get(q, "/api/v2/traces/not*an*id", &[]);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    // Grafana's fallback, /api/traces/{id} in protobuf: a bare tempopb.Trace.
    let (st, _, body) = get(q, &format!("/api/traces/{A}"), &[("Accept", "application/protobuf")]);
    assert_eq!(st, 200);
    assert_eq!(TracesData::decode(body.as_slice()).unwrap().resource_spans.len(), 3);
    // Under /tempo every path is Tempo's: {"batches"} in JSON.
    let (st, v) = get_json(q, &format!("/tempo/api/traces/{A}"));
    assert_eq!(st, 200);
    assert_eq!(otlp_spans(&v["batches"]).len(), 4);
    assert_eq!(get(q, "/tempo/api/echo", &[]).2, b"echo");

    // Search: TraceQL in q, or logfmt tags with durations; start/end in seconds.
    let (s_sec, e_sec) = (now_ms / 1000 - 3600, now_ms / 1000 + 1);
    let (st, v) = get_json(
        q,
        &format!(
            "/api/search?q={}&limit=20&spss=2&start={s_sec}&end={e_sec}",
            enc(r#"{ span.http.status_code = 500 }"#)
        ),
    );
    assert_eq!(st, 200, "{v}");
    let t = &v["traces"][0];
    assert_eq!(v["traces"].as_array().unwrap().len(), 1);
    assert_eq!(t["traceID"], A);
    assert_eq!(t["rootServiceName"], "frontend");
    assert_eq!(t["rootTraceName"], "GET /checkout");
    assert_eq!(t["startTimeUnixNano"], ((now_ms - 60_000) * 1_000_000).to_string());
    assert_eq!(t["durationMs"], 300);
    let set = &t["spanSets"][0];
    assert_eq!(set["matched"], 1);
    assert_eq!(set["spans"][0]["spanID"], "0303030303030303");
    assert_eq!(set["spans"][0]["name"], "POST /pay");
    assert_eq!(set["spans"][0]["durationNanos"], "200000000");
    assert_eq!(set["spans"][0]["attributes"][0]["key"], "http.status_code");
    assert_eq!(t["spanSet"], *set);
    assert!(v["metrics"]["inspectedTraces"].is_u64());
    let (_, v) = get_json(q, &format!("/api/search?q={}&spss=1&start={s_sec}&end={e_sec}", enc("{ }")));
    assert_eq!(v["traces"].as_array().unwrap().len(), 2);
    assert_eq!(v["traces"][0]["spanSet"]["spans"].as_array().unwrap().len(), 1, "spss bounds the spans shown");
    for (tags, extra, found) in [
        ("service.name=checkout", "", 1),
        ("service.name=checkout", "&minDuration=1s", 0),
        ("http.status_code=500 name=\"POST /pay\"", "&minDuration=100ms&maxDuration=1s", 1),
        ("root.service.name=payments", "", 1),
        ("", "&maxDuration=10ms", 1),
    ] {
        let (st, v) = get_json(q, &format!("/api/search?tags={}{extra}&start={s_sec}&end={e_sec}", enc(tags)));
        assert_eq!(st, 200, "{tags}: {v}");
        assert_eq!(v["traces"].as_array().unwrap().len(), found, "{tags}{extra}: {v}");
    }
    for bad in [
        format!("q={}", enc("{ name = }")),
        "tags=novalue".to_owned(),
        "minDuration=fast".to_owned(),
        "minDuration=2s&maxDuration=1s".to_owned(),
        "start=yesterday".to_owned(),
        "limit=-1".to_owned(),
    ] {
        let (st, _, body) = get(q, &format!("/api/search?{bad}"), &[]);
        assert_eq!(st, 400, "{bad}: {}", String::from_utf8_lossy(&body));
        assert!(!body.is_empty());
    }

    // Tag names and values, v1 (unscoped) and v2 (scoped) forms.
    let (_, v) = get_json(q, "/api/search/tags");
    let names = v["tagNames"].as_array().unwrap();
    for n in ["http.status_code", "service.name", "host.name", "http.method"] {
        assert!(names.contains(&json!(n)), "{n}: {v}");
    }
    let (_, v) = get_json(q, "/api/v2/search/tags?scope=resource");
    assert_eq!(v["scopes"].as_array().unwrap().len(), 1);
    assert_eq!(v["scopes"][0]["name"], "resource");
    assert!(v["scopes"][0]["tags"].as_array().unwrap().contains(&json!("service.name")));
    let (_, v) = get_json(q, "/api/v2/search/tags");
    let scopes: Vec<&str> = v["scopes"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(scopes, ["resource", "span", "intrinsic"]);
    let (_, v) = get_json(q, "/api/search/tag/http.status_code/values");
    assert_eq!(v, json!({"tagValues": ["500"]}));
    let (_, v) = get_json(q, "/api/v2/search/tag/resource.service.name/values");
    assert_eq!(
        v,
        json!({"tagValues": [
            {"type": "string", "value": "checkout"},
            {"type": "string", "value": "frontend"},
            {"type": "string", "value": "payments"},
        ]})
    );
    let (st, _, _) = get(q, "/api/v2/search/tag/resource./values", &[]);
    assert_eq!(st, 400);
    let (st, _, _) = get(q, "/api/v2/search/tags?scope=galaxy", &[]);
    assert_eq!(st, 400);

    // Unknown API paths are 404s, not the UI's page.
    assert_eq!(get(q, "/api/nothing", &[]).0, 404);

    // The UI is served at / with a policy that forbids foreign scripts.
    let (st, head, body) = get(q, "/", &[]);
    assert_eq!(st, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("<html"), "the page");
    assert_eq!(get(q, "/ui/no-such-file.js", &[]).0, 404);
}
