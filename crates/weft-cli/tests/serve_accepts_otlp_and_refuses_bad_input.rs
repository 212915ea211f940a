//! `weft serve` as a client sees it: OTLP over gRPC and HTTP (protobuf, JSON,
//! gzip, zstd) accepted and readable back; every kind of bad input answered with a
//! clear error and never a crash; logs and metrics refused as unsupported;
//! health, readiness and metrics endpoints; clean exit on SIGTERM; clear
//! startup errors.

mod common;

use std::process::Command;

use common::{http, loadgen, missing, temp_dir, Serve, WEFT};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

fn span(trace: [u8; 16], id: u8) -> Span {
    Span { trace_id: trace.to_vec(), span_id: vec![id; 8], name: format!("s{id}"), ..Default::default() }
}

#[test]
fn accepts_otlp_reads_it_back_and_refuses_bad_input() {
    let dir = temp_dir("serve");
    let serve = Serve::start(&dir.join("data"), &["--max-request", "64k"]);
    let p = serve.ports;
    let ack = dir.join("ack.txt");

    // Load over both transports, every acknowledged trace readable back.
    for (proto, addr) in [("grpc", p.grpc), ("http", p.otlp_http)] {
        let s = loadgen(&[
            "--endpoint",
            &format!("http://{addr}"),
            "--protocol",
            proto,
            "--duration",
            "500ms",
            "--ack-log",
            ack.to_str().unwrap(),
        ]);
        assert!(s["accepted_spans"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(s["failed_spans"], 0, "{s}");
        assert_eq!(s["sent_spans"], s["accepted_spans"], "{s}");
    }
    let ids = common::acked(&ack);
    let (lost, spans) = missing(p.http, &ids);
    assert!(lost.is_empty(), "{} lost", lost.len());
    // At least once: a request whose answer was lost may have been sent twice.
    assert!(spans >= ids.len() as u64 * 10, "{spans} spans for {} traces", ids.len());

    let post = |ct: &str, extra: &[(&str, &str)], body: &[u8]| {
        let mut h = vec![("Content-Type", ct)];
        h.extend_from_slice(extra);
        http(p.otlp_http, "POST", "/v1/traces", &h, body)
    };

    // JSON and gzip'd protobuf.
    let json = br#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"json-svc"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"from json","kind":2,"startTimeUnixNano":"1","endTimeUnixNano":"2"}]}]}]}"#;
    let (st, _, body) = post("application/json", &[], json);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    // Accepted means durable in the log; the shards make it readable a moment later.
    let read = || http(p.http, "GET", "/api/debug/traces/5b8efff798038103d269b633813fc60c", &[], b"");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (mut st, _, mut body) = read();
    while st != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
        (st, _, body) = read();
    }
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["spans"][0]["service"], "json-svc");
    assert_eq!(v["spans"][0]["span"]["name"], "from json");
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut z, &request(vec![span([7; 16], 1)]).encode_to_vec()).unwrap();
    let (st, _, _) = post("application/x-protobuf", &[("Content-Encoding", "gzip")], &z.finish().unwrap());
    assert_eq!(st, 200);
    let zs = zstd::encode_all(&request(vec![span([8; 16], 1)]).encode_to_vec()[..], 3).unwrap();
    let (st, _, body) = post("application/x-protobuf", &[("Content-Encoding", "zstd")], &zs);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    let ids = ["07070707070707070707070707070707".to_string(), "08080808080808080808080808080808".to_string()];
    assert!(missing(p.http, &ids).0.is_empty());

    // Invalid IDs: rejected one by one, reported through partial_success.
    let mixed = request(vec![span([1; 16], 1), span([0; 16], 2), Span { span_id: vec![3; 4], ..span([2; 16], 3) }]);
    let (st, _, body) = post("application/x-protobuf", &[], &mixed.encode_to_vec());
    assert_eq!(st, 200);
    let resp = ExportTraceServiceResponse::decode(body.as_slice()).unwrap();
    let partial = resp.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 2);
    assert!(partial.error_message.contains("trace_id is all zeros"), "{}", partial.error_message);

    // Bad input, each with a clear answer.
    for (ct, extra, body, want, says) in [
        ("application/x-protobuf", vec![], b"\xff\xff\xff\xff".to_vec(), 400, "not a valid OTLP"),
        ("application/json", vec![], b"{\"resourceSpans\": 7}".to_vec(), 400, "JSON"),
        ("application/json", vec![], b"not json".to_vec(), 400, "JSON"),
        ("application/x-protobuf", vec![("Content-Encoding", "gzip")], b"not gzip".to_vec(), 400, "gzip"),
        ("application/x-protobuf", vec![("Content-Encoding", "zstd")], b"not zstd".to_vec(), 400, "zstd"),
        (
            "application/x-protobuf",
            vec![("Content-Encoding", "br")],
            b"x".to_vec(),
            400,
            "unsupported content-encoding",
        ),
        ("text/plain", vec![], b"hello".to_vec(), 415, "unsupported Content-Type"),
        ("application/x-protobuf", vec![], vec![0u8; 100 * 1024], 413, "limit"),
    ] {
        let (st, _, resp) = post(ct, &extra, &body);
        let text = String::from_utf8_lossy(&resp);
        assert_eq!(st, want, "{ct} {extra:?}: {text}");
        assert!(text.contains(says), "{ct} {extra:?}: {text}");
    }
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut bomb, &vec![0u8; 10 << 20]).unwrap();
    let (st, _, _) = post("application/x-protobuf", &[("Content-Encoding", "gzip")], &bomb.finish().unwrap());
    assert_eq!(st, 413, "a gzip bomb is stopped at the limit");
    let bomb = zstd::encode_all(&vec![0u8; 10 << 20][..], 19).unwrap();
    let (st, _, _) = post("application/x-protobuf", &[("Content-Encoding", "zstd")], &bomb);
    assert_eq!(st, 413, "a zstd bomb is stopped at the limit");
    assert_eq!(http(p.otlp_http, "GET", "/v1/traces", &[], b"").0, 405);
    let (st, _, body) = http(p.otlp_http, "POST", "/v1/logs", &[("Content-Type", "application/x-protobuf")], b"");
    assert_eq!(st, 404);
    assert!(String::from_utf8_lossy(&body).contains("not supported"));
    assert_eq!(http(p.otlp_http, "POST", "/v1/metrics", &[], b"").0, 404);
    assert_eq!(http(p.http, "GET", "/api/debug/traces/xyz", &[], b"").0, 400);
    assert_eq!(http(p.http, "GET", "/api/debug/traces/00000000000000000000000000000abc", &[], b"").0, 404);
    assert_eq!(http(p.http, "POST", "/api/debug/missing", &[], b"nothex").0, 400);

    // gRPC: bad protobuf is INVALID_ARGUMENT, logs and metrics are UNIMPLEMENTED.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = weft_otlp::raw::RawClient::new(
            &format!("http://{}", p.grpc),
            weft_otlp::Protocol::Grpc,
            weft_otlp::Compression::None,
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        match client.send(bytes::Bytes::from_static(b"\xff\xff\xff")).await {
            weft_otlp::raw::Answer::Failed(why) => assert!(why.contains("InvalidArgument"), "{why}"),
            other => panic!("{other:?}"),
        }
        match client.send(bytes::Bytes::from(mixed.encode_to_vec())).await {
            weft_otlp::raw::Answer::Accepted { rejected } => assert_eq!(rejected, 2),
            other => panic!("{other:?}"),
        }
        // A zstd-compressed gRPC message.
        let export = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
        let zc = Some(tonic::codec::CompressionEncoding::Zstd);
        let answer = grpc_send(p.grpc, export, request(vec![span([9; 16], 1)]).encode_to_vec(), zc).await.unwrap();
        assert!(ExportTraceServiceResponse::decode(answer.as_slice()).unwrap().partial_success.is_none());
        assert!(missing(p.http, &["09090909090909090909090909090909".into()]).0.is_empty());
        for path in [
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        ] {
            let code = grpc_call(p.grpc, path).await;
            assert_eq!(code, tonic::Code::Unimplemented, "{path}");
        }
    });

    // Health, readiness, metrics.
    assert_eq!(http(p.http, "GET", "/healthz", &[], b"").0, 200);
    assert_eq!(http(p.http, "GET", "/readyz", &[], b"").0, 200);
    let (st, _, body) = http(p.http, "GET", "/metrics", &[], b"");
    assert_eq!(st, 200);
    let m = String::from_utf8_lossy(&body);
    for name in [
        "weft_ingest_spans_total",
        "weft_ingest_refused_total{reason=\"too_large\"}",
        "weft_ingest_invalid_spans_total 4",
        "weft_log_fsync_seconds_bucket",
        "weft_log_group_commit_size_count",
        "weft_ingest_budget_used_bytes",
        "weft_shard_queue_spans{shard=\"0\"}",
        "weft_watermark_lag_seconds",
    ] {
        assert!(m.contains(name), "metric {name} missing:\n{m}");
    }

    // SIGTERM: a clean exit, the log synced.
    let log_file = serve.log.clone();
    let status = serve.terminate();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(log_file).unwrap();
    assert!(log.contains("the log is synced"), "{log}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Calls a gRPC method with an empty message and returns the status code.
async fn grpc_call(addr: std::net::SocketAddr, path: &'static str) -> tonic::Code {
    grpc_send(addr, path, Vec::new(), None).await.err().map_or(tonic::Code::Ok, |s| s.code())
}

/// Sends `body` as the one message of a unary gRPC call, compressed by tonic
/// when asked, and returns the answer's message bytes.
async fn grpc_send(
    addr: std::net::SocketAddr,
    path: &'static str,
    body: Vec<u8>,
    compression: Option<tonic::codec::CompressionEncoding>,
) -> Result<Vec<u8>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    if let Some(c) = compression {
        grpc = grpc.send_compressed(c);
    }
    grpc.ready().await.unwrap();
    let r = grpc.unary(tonic::Request::new(body), http::uri::PathAndQuery::from_static(path), RawBytes).await?;
    Ok(r.into_inner())
}

/// A codec whose messages are bytes already encoded.
#[derive(Clone, Copy)]
struct RawBytes;
impl tonic::codec::Codec for RawBytes {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }
    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}
impl tonic::codec::Encoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}
impl tonic::codec::Decoder for RawBytes {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(buf);
        Ok(Some(bytes::Buf::copy_to_bytes(buf, n).to_vec()))
    }
}

#[test]
fn startup_errors_are_clear() {
    let dir = temp_dir("startup");
    let run = |args: &[&str]| {
        let out = Command::new(WEFT).args(args).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    // A port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().to_string();
    let data = dir.join("d1");
    let (ok, err) = run(&[
        "serve",
        "--data-dir",
        data.to_str().unwrap(),
        "--otlp-grpc",
        &port,
        "--otlp-http",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("cannot listen on") && err.contains(&port), "{err}");
    // A data directory that is a file.
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let (ok, err) = run(&[
        "serve",
        "--data-dir",
        file.to_str().unwrap(),
        "--otlp-grpc",
        "127.0.0.1:0",
        "--otlp-http",
        "127.0.0.1:0",
        "--http",
        "127.0.0.1:0",
    ]);
    assert!(!ok);
    assert!(err.contains("not writable"), "{err}");
    // Bad values, named.
    for (args, says) in [
        (vec!["serve", "--otlp-grpc", "localhost"], "otlp_grpc (flags)"),
        (vec!["serve", "--shards", "0"], "shards (flags)"),
        (vec!["serve", "--ingest-budget", "lots"], "ingest_budget (flags)"),
        (vec!["serve", "--config", "/nonexistent/weft.toml"], "cannot read config file"),
        (vec!["serve", "--bogus"], "unexpected argument"),
        (vec!["loadgen", "--endpoint", "http://127.0.0.1:1", "--duration", "soon"], "duration"),
        (vec!["loadgen", "--endpoint", "http://127.0.0.1:1", "--rate", "0"], "rate"),
        (vec!["loadgen", "--endpoint", "http://127.0.0.1:1", "--concurrency", "0"], "concurrency"),
        (vec!["loadgen", "--endpoint", "not a url", "--duration", "100ms"], "invalid endpoint"),
    ] {
        let (ok, err) = run(&args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let env_bad = Command::new(WEFT).args(["serve"]).env("WEFT_SHARDS", "many").output().unwrap();
    assert!(!env_bad.status.success());
    assert!(String::from_utf8_lossy(&env_bad.stderr).contains("shards (environment)"));
    let _ = std::fs::remove_dir_all(dir);
}
