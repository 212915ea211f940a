//! Interop with a collector no one here wrote: weft exports OTLP (gRPC and HTTP)
//! to Rotel (`rotel-agent` from the `rotel` PyPI package, installed by
//! `scripts/test` into `.venv`), which forwards to the in-test receiver; every
//! span arrives with every field intact.

mod support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::spans::{by_id, expected, rich_traces, Tee};
use support::Receiver;
use weft_otlp::{OtlpExporter, Protocol};

/// `rotel-agent` from `WEFT_ROTEL_AGENT` or the workspace's `.venv`.
fn rotel_agent() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEFT_ROTEL_AGENT") {
        return Some(PathBuf::from(p));
    }
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|d| d.path().join("site-packages/rotel/rotel-agent"))
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

struct Rotel(Child);

impl Drop for Rotel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rotel_forwards_weft_spans_intact() {
    let Some(agent) = rotel_agent() else {
        assert!(std::env::var_os("CI").is_none(), "rotel-agent missing: scripts/test installs it into .venv");
        eprintln!("skipped: rotel-agent not installed (run scripts/test once to create .venv)");
        return;
    };
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let rx = Receiver::start();
        let (grpc, http) = (free_port(), free_port());
        let child = Command::new(&agent)
            .args(["start", "--otlp-grpc-endpoint", &format!("127.0.0.1:{grpc}")])
            .args(["--otlp-http-endpoint", &format!("127.0.0.1:{http}")])
            .args(["--exporter", "otlp", "--otlp-exporter-protocol", "grpc"])
            .args(["--otlp-exporter-endpoint", &rx.grpc_url()])
            .args(["--batch-timeout", "100ms"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rotel-agent starts");
        let _rotel = Rotel(child);
        let port = if protocol == Protocol::Grpc { grpc } else { http };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "rotel-agent did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = if protocol == Protocol::Grpc {
            format!("http://127.0.0.1:{grpc}")
        } else {
            format!("http://127.0.0.1:{http}/v1/traces")
        };
        let exporter = OtlpExporter::builder().protocol(protocol).endpoint(url).build().expect("exporter");
        let tee = Tee::new(exporter);
        let (copies, resource) = (tee.copies.clone(), tee.resource.clone());
        let tracer = weft::builder()
            .service_name("rotel-interop")
            .exporter(tee)
            .log_at_shutdown(false)
            .install()
            .expect("tracer");
        rich_traces(20);
        let stats = tracer.shutdown(Duration::from_secs(20)).expect("shutdown");
        assert_eq!((stats.exported, stats.dropped.total()), (60, 0), "{stats}");

        let records = copies.lock().unwrap().clone();
        let resource = resource.lock().unwrap().clone().expect("resource");
        let (want, want_resource) = expected(&resource, &records);
        let deadline = Instant::now() + Duration::from_secs(20);
        while rx.spans().len() < want.len() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let got = by_id(rx.spans());
        assert_eq!(got.len(), want.len(), "{protocol:?}: every span forwarded");
        assert_eq!(got, by_id(want), "{protocol:?}: spans intact through Rotel");
        for req in rx.accepted() {
            for rs in req.resource_spans {
                let attrs = rs.resource.expect("resource").attributes;
                for kv in &want_resource {
                    assert!(attrs.contains(kv), "{protocol:?}: resource attribute {} kept", kv.key);
                }
            }
        }
    }
}
