//! Crash safety: `weft loadgen --ack-log` sends to `weft serve`, the server is
//! killed with SIGKILL at a random moment, restarted on the same data directory,
//! and every trace the load generator saw acknowledged must be there, whole.
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
        // Kill somewhere between 150 ms and 900 ms into the load.
        std::thread::sleep(Duration::from_millis(150 + rand() % 750));
        serve.kill9();
        let _ = load.kill();
        let _ = load.wait();

        let serve = Serve::start(&data, &["--shards", "2"]);
        let ids = acked(&ack);
        assert!(!ids.is_empty() || round > 0, "round {round}: nothing was acknowledged before the kill");
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
    eprintln!("{rounds} rounds of kill -9: {total} acknowledged traces, none lost");
    let _ = std::fs::remove_dir_all(dir);
}
