//! DuckDB (from PyPI, installed into `.venv` by `scripts/test`) reads weft's
//! sealed Parquet blocks directly and sees what weft's own API returns: the
//! same number of spans, the same trace IDs — every acknowledged one — and the
//! same fields of a known trace (`tests/python/duckdb_reads_blocks.py`).

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::{http, known_trace, loadgen, temp_dir, Serve, TRACE_HEX};

fn venv_python_with_duckdb() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let ok = p.exists() && Command::new(&p).args(["-c", "import duckdb"]).status().is_ok_and(|s| s.success());
    ok.then_some(p)
}

/// Trace IDs and span count of a full export through `traces:query`.
fn weft_export(addr: std::net::SocketAddr) -> (BTreeSet<String>, u64) {
    let (mut ids, mut spans, mut cursor) = (BTreeSet::new(), 0, serde_json::Value::Null);
    loop {
        let mut body = serde_json::json!({ "start": 0, "end": u64::MAX, "limit": 1000 });
        if !cursor.is_null() {
            body["cursor"] = cursor;
        }
        let (st, _, b) = http(addr, "POST", "/weft/v1/traces:query", &[], body.to_string().as_bytes());
        assert_eq!(st, 200);
        let text = String::from_utf8(b).unwrap();
        let mut lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let last = lines.pop().unwrap();
        for l in lines {
            assert!(ids.insert(l["traceId"].as_str().unwrap().to_owned()), "a trace came twice");
            spans += l["summary"]["spanCount"].as_u64().unwrap();
        }
        cursor = last["nextCursor"].clone();
        if cursor.is_null() {
            return (ids, spans);
        }
    }
}

#[test]
fn duckdb_sees_the_spans_and_trace_ids_weft_returns() {
    let Some(python) = venv_python_with_duckdb() else {
        assert!(std::env::var_os("CI").is_none(), "DuckDB is missing: scripts/test installs it into .venv");
        eprintln!("skipped: no .venv with duckdb (run scripts/test once)");
        return;
    };
    let dir = temp_dir("duckdb");
    let data = dir.join("data");
    let serve = Serve::start(&data, &["--trace-idle", "1s"]);
    let p = serve.ports;
    let (st, _, _) =
        http(p.otlp_http, "POST", "/v1/traces", &[("Content-Type", "application/x-protobuf")], &known_trace());
    assert_eq!(st, 200);
    let ack = dir.join("ack.txt");
    let s = loadgen(&[
        "--endpoint",
        &format!("http://{}", p.grpc),
        "--duration",
        "1s",
        "--rate",
        "20000",
        "--ack-log",
        ack.to_str().unwrap(),
    ]);
    assert_eq!(s["failed_spans"], 0, "{s}");
    let acked = common::acked(&ack);
    assert!(acked.len() > 100, "{s}");
    let (lost, _) = common::missing(p.http, &acked);
    assert!(lost.is_empty());
    common::wait_sealed(p.http);
    let (weft_ids, weft_spans) = weft_export(p.http);
    // Stop the server so no compaction replaces blocks while DuckDB reads them.
    assert!(serve.terminate().success());

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/duckdb_reads_blocks.py");
    let out = Command::new(&python).arg(&script).arg(&data).arg(TRACE_HEX).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    let duck_ids: BTreeSet<String> =
        v["trace_ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
    let summary_ids: BTreeSet<String> =
        v["summary_trace_ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
    assert_eq!(duck_ids, weft_ids, "DuckDB and weft see different traces");
    assert_eq!(summary_ids, weft_ids, "traces.parquet and spans.parquet disagree");
    assert_eq!(v["span_rows"], weft_spans, "span count: DuckDB {} vs weft {weft_spans}", v["span_rows"]);
    assert_eq!(v["distinct_spans"], weft_spans, "a span is stored twice");
    for id in &acked {
        assert!(duck_ids.contains(id), "acknowledged trace {id} not in the blocks");
    }
    let t = v["trace"].as_array().unwrap();
    assert_eq!(t.len(), 3, "{v}");
    for (i, span) in t.iter().enumerate() {
        assert_eq!(span["name"], format!("op-{}", i + 1));
        assert_eq!(span["service"], "checkout");
        assert_eq!(span["method"], if i == 2 { "POST" } else { "GET" });
        assert_eq!(span["status"], if i == 2 { 2 } else { 0 });
    }
    assert_eq!(t[0]["duration_ns"], 250_000_000 - 1000);
    let _ = std::fs::remove_dir_all(dir);
}
