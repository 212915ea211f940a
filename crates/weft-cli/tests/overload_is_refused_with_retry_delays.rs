//! Overload: many more concurrent requests than the ingest budget holds. The
//! server refuses the excess with 429 / RESOURCE_EXHAUSTED and a retry delay
//! (never a drop after accepting), its memory stays under its bounds, and the
//! retrying load generator loses nothing.

mod common;

use common::{acked, loadgen, metric, missing, temp_dir, Serve};

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[test]
fn overload_gets_retry_delays_bounded_memory_and_no_loss() {
    let dir = temp_dir("overload");
    let budget_mb = 2;
    // The bound below is about what the server holds. mimalloc hands freed
    // pages back to the system only after a delay (10 ms by default); under
    // this churn that kept 20–70 MiB of freed memory resident at the peak
    // (146–194 MiB measured, 125 MiB in every run with the delay at 0), which
    // made the check a measure of the allocator's timing under whatever else
    // the machine was doing. With the delay at 0 it measures live memory.
    let serve = Serve::start_with_env(
        &dir.join("data"),
        &["--ingest-budget", &format!("{budget_mb}M")],
        &[("MIMALLOC_PURGE_DELAY", "0")],
    );
    let p = serve.ports;
    let ack = dir.join("ack.txt");
    for (proto, addr) in [("grpc", p.grpc), ("http", p.otlp_http)] {
        let s = loadgen(&[
            "--endpoint",
            &format!("http://{addr}"),
            "--protocol",
            proto,
            "--duration",
            "3s",
            "--concurrency",
            "128",
            "--ack-log",
            ack.to_str().unwrap(),
        ]);
        assert!(s["refused_requests"].as_u64().unwrap() > 0, "{proto}: the budget was never reached: {s}");
        assert_eq!(s["failed_spans"], 0, "{proto}: {s}");
        assert_eq!(s["sent_spans"], s["accepted_spans"], "{proto}: the retrying client lost nothing: {s}");
    }
    assert!(metric(p.http, "weft_ingest_refused_total{reason=\"budget\"}") > 0.0);
    let ids = acked(&ack);
    let (absent, _) = missing(p.http, &ids);
    assert!(absent.is_empty(), "{} of {} acknowledged traces absent", absent.len(), ids.len());
    // The head stayed within its share of the budget by sealing early.
    assert!(metric(p.http, "weft_store_traces_sealed_early_total") > 0.0);
    // Bounds: the ingest budget (requests in flight and the head), and a fixed
    // allowance for the runtime, connections, request bodies being read, and the
    // working memory of block writing and compaction (not yet under the budget).
    let peak_mb = peak_rss_kb(serve.child.id()) / 1024;
    let bound = budget_mb + 192;
    eprintln!("peak RSS {peak_mb} MiB (bound {bound} MiB)");
    assert!(peak_mb < bound, "peak RSS {peak_mb} MiB over the {bound} MiB bound");
    let _ = std::fs::remove_dir_all(dir);
}
