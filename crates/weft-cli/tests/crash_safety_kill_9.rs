//! Crash safety: `weft loadgen --ack-log` sends to `weft serve`, the server is
//! killed with SIGKILL at a random moment, restarted on the same data directory,
//! and every trace the load generator saw acknowledged must be there, whole —
//! after each round, and at the end through `traces:batchGet` and a full
//! `traces:query` export read with `weft query`.
//! 20 rounds here; `scripts/crash-test` runs 100 (`WEFT_CRASH_ROUNDS`).

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{acked, missing, temp_dir, Serve, WEFT};

#[test]
fn no_acknowledged_trace_is_lost_across_kill_9() {
    let rounds: usize = std::env::var("WEFT_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = temp_dir("crash");
    let data = dir.join("data");
    let ack = dir.join("acked.txt");
    let mut seed = std::process::id() as u64 | 1;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..rounds {
        let serve = Serve::start(&data, &["--shards", "2"]);
        let protocol = if round % 2 == 0 { "grpc" } else { "http" };
        let endpoint = if protocol == "grpc" {
            format!("http://{}", serve.ports.grpc)
        } else {
            format!("http://{}", serve.ports.otlp_http)
        };
        let mut load = Command::new(WEFT)
            .args([
                "loadgen",
                "--endpoint",
                &endpoint,
                "--protocol",
                protocol,
                "--duration",
                "30s",
                "--concurrency",
                "8",
                "--rate",
                "20000",
            ])
            .args(["--spans-per-trace", "5", "--traces-per-request", "4", "--attributes", "3", "--ack-log"])
            .arg(&ack)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill at a random moment while acknowledgements are flowing: once this
        // round's first one is logged (on a loaded CI machine the load
        // generator's start can take longer than the shortest delay, and a
        // kill before any acknowledgement tests nothing), then 0–750 ms later.
        let before = acked(&ack).len();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while acked(&ack).len() <= before && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rand() % 750));
        serve.kill9();
        let _ = load.kill();
        let _ = load.wait();

        let serve = Serve::start(&data, &["--shards", "2"]);
        let ids = acked(&ack);
        assert!(ids.len() > before, "round {round}: nothing was acknowledged in 30 s of load");
        let (lost, spans) = missing(serve.ports.http, &ids);
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged traces lost, e.g. {:?}\n{}",
            lost.len(),
            ids.len(),
            &lost[..lost.len().min(3)],
            serve.log_text()
        );
        assert!(
            spans >= ids.len() as u64 * 5,
            "round {round}: acknowledged traces are whole ({spans} spans for {} traces)",
            ids.len()
        );
        serve.kill9();
    }
    let total = acked(&ack).len();
    // Once more, through the query API a user reads with (`weft query`):
    // every acknowledged trace answers `traces:batchGet`, whole, and is in a
    // full `traces:query` export of everything stored.
    let serve = Serve::start(&data, &["--shards", "2"]);
    let ids = acked(&ack);
    let endpoint = format!("http://{}", serve.ports.http);
    let mut get = Command::new(WEFT)
        .args(["query", "--endpoint", &endpoint, "get", "-", "--no-cache", "--format", "ndjson", "--batch", "5000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = get.stdin.take().unwrap();
    let list = ids.join("\n");
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, list.as_bytes()));
    let out = get.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), ids.len());
    for (id, l) in ids.iter().zip(&lines) {
        assert_eq!(l["traceId"], id.as_str());
        assert_eq!(l["found"], true, "batchGet lost {id}");
        assert!(l["summary"]["spanCount"].as_u64().unwrap() >= 5, "{l}");
    }
    let export = Command::new(WEFT)
        .args(["query", "--endpoint", &endpoint, "traces", "--start", "0", "--format", "ndjson", "--order", "oldest"])
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let exported: std::collections::HashSet<String> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["traceId"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = ids.iter().filter(|id| !exported.contains(*id)).collect();
    assert!(lost.is_empty(), "the export lacks {} acknowledged traces, e.g. {:?}", lost.len(), lost.first());
    serve.kill9();
    eprintln!("{rounds} rounds of kill -9: {total} acknowledged traces, none lost (debug check, batchGet, export)");
    let _ = std::fs::remove_dir_all(dir);
}
