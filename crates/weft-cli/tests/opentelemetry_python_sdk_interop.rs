//! Real clients no one here wrote: the OpenTelemetry Python SDK with its gRPC
//! and HTTP OTLP exporters (installed into `.venv` by `scripts/test`) sends
//! traces with attributes of every type, events, links, status and resource;
//! the script reads them back from weft's debug endpoint and compares every
//! field with what the SDK recorded (`tests/python/otel_python_sdk_roundtrip.py`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{temp_dir, Serve};

fn venv_python() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ok = p.exists()
        && Command::new(&p)
            .args(["-c", "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc"])
            .status()
            .is_ok_and(|s| s.success());
    ok.then_some(p)
}

#[test]
fn python_sdk_traces_arrive_field_by_field() {
    let Some(python) = venv_python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the OpenTelemetry Python SDK is missing: scripts/test installs it into .venv"
        );
        eprintln!("skipped: no .venv with the OpenTelemetry Python SDK (run scripts/test once)");
        return;
    };
    let dir = temp_dir("python");
    let serve = Serve::start(&dir.join("data"), &[]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/otel_python_sdk_roundtrip.py");
    for (proto, addr) in [("grpc", serve.ports.grpc), ("http", serve.ports.otlp_http)] {
        let out = Command::new(&python)
            .arg(&script)
            .args([proto, &format!("http://{addr}"), &format!("http://{}", serve.ports.http)])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{proto}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(v["spans_compared"], 3, "{v}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `rotel-agent` from the workspace's `.venv`.
fn rotel_agent() -> Option<PathBuf> {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap()
}

/// Rotel, a collector no one here wrote, forwards the Python SDK's traces to weft
/// over OTLP/gRPC; they arrive field by field.
#[test]
fn rotel_forwards_to_weft_intact() {
    let (Some(python), Some(agent)) = (venv_python(), rotel_agent()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "Rotel or the Python SDK is missing: scripts/test installs them into .venv"
        );
        eprintln!("skipped: .venv lacks rotel or the OpenTelemetry Python SDK (run scripts/test once)");
        return;
    };
    let dir = temp_dir("rotel");
    let serve = Serve::start(&dir.join("data"), &[]);
    let (grpc, http) = (free_port(), free_port());
    let mut rotel = Command::new(agent)
        .args([
            "start",
            "--otlp-grpc-endpoint",
            &format!("127.0.0.1:{grpc}"),
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
        ])
        .args(["--exporter", "otlp", "--otlp-exporter-protocol", "grpc"])
        .args(["--otlp-exporter-endpoint", &format!("http://{}", serve.ports.grpc), "--batch-timeout", "100ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err() {
        assert!(std::time::Instant::now() < deadline, "rotel-agent did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/otel_python_sdk_roundtrip.py");
    let out = Command::new(&python)
        .arg(&script)
        .args(["grpc", &format!("http://127.0.0.1:{grpc}"), &format!("http://{}", serve.ports.http)])
        .output()
        .unwrap();
    let _ = rotel.kill();
    let _ = rotel.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}
