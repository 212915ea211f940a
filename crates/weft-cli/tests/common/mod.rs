//! Starting the real `weft` binary and talking to it over 127.0.0.1.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weft-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The addresses a running server wrote to `ports.json`.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    pub grpc: SocketAddr,
    pub otlp_http: SocketAddr,
    pub http: SocketAddr,
}

/// A `weft serve` child process, killed when dropped.
pub struct Serve {
    pub child: Child,
    pub ports: Ports,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Serve {
    /// Starts `weft serve` on free ports in `dir`, with extra flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Serve {
        Serve::start_with_env(dir, extra, &[])
    }

    /// [`Serve::start`] with extra environment variables for the server.
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
        let _ = std::fs::remove_file(dir.join("ports.json"));
        // Logs live outside the data directory (which a test may fill up).
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!("weft-serve-{}-{n}.log", std::process::id()));
        let child = Command::new(WEFT)
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("weft serve starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let ports = loop {
            if let Ok(text) = std::fs::read_to_string(dir.join("ports.json")) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                    let p = |k: &str| v[k].as_str().unwrap().parse().unwrap();
                    break Ports { grpc: p("otlp_grpc"), otlp_http: p("otlp_http"), http: p("http") };
                }
            }
            assert!(Instant::now() < deadline, "no ports.json: {}", std::fs::read_to_string(&log).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(20));
        };
        Serve { child, ports, dir: dir.to_path_buf(), log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "weft serve did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 exchange: (status, headers text, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a response");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = out[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..nl]).unwrap().trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
    out
}

/// Runs `weft loadgen` and returns its JSON summary.
pub fn loadgen(args: &[&str]) -> serde_json::Value {
    let out = Command::new(WEFT).arg("loadgen").args(args).arg("--json").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "loadgen failed: {}\n{}", text, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

/// Asks the server which of these trace IDs it does not hold: (missing, spans held).
///
/// Acknowledged means durable in the log; the shards make spans readable a
/// moment later, so this asks again for up to 10 s while some are missing.
pub fn missing(addr: SocketAddr, ids: &[String]) -> (Vec<String>, u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _, body) = http(addr, "POST", "/api/debug/missing", &[], ids.join("\n").as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let missing: Vec<String> =
            v["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_owned()).collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            return (missing, v["spans"].as_u64().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whole trace IDs from an ack log (a line cut by a kill is skipped).
pub fn acked(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.len() == 32 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

/// A metric's value from `GET /metrics` (-1 if absent).
pub fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (_, _, body) = http(addr, "GET", "/metrics", &[], b"");
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// The trace ID of [`known_trace`].
pub const TRACE_HEX: &str = "0000000000000000a1a2a3a4a5a6a7a8";

/// A string attribute.
pub fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(Value::StringValue(v.into())) }),
        ..Default::default()
    }
}

/// One trace of three spans in service "checkout"; the third one failed.
pub fn known_trace() -> Vec<u8> {
    let trace = [0, 0, 0, 0, 0, 0, 0, 0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8];
    let spans = (1..=3u8)
        .map(|i| Span {
            trace_id: trace.to_vec(),
            span_id: vec![i; 8],
            parent_span_id: if i == 1 { vec![] } else { vec![1; 8] },
            name: format!("op-{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i) * 1000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            attributes: vec![kv("http.method", if i == 3 { "POST" } else { "GET" })],
            status: (i == 3).then(|| Status { code: 2, message: "boom".into() }),
            ..Default::default()
        })
        .collect();
    let rs = ResourceSpans {
        resource: Some(Resource { attributes: vec![kv("service.name", "checkout")], ..Default::default() }),
        scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
        ..Default::default()
    };
    ExportTraceServiceRequest { resource_spans: vec![rs] }.encode_to_vec()
}

/// Waits (up to 30 s) until the head holds no trace: everything is in blocks.
pub fn wait_sealed(addr: SocketAddr) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, _, b) = http(addr, "GET", "/weft/v1/stats", &[], b"");
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        if v["store"]["headTraces"] == 0 {
            return v;
        }
        assert!(Instant::now() < deadline, "never sealed: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
