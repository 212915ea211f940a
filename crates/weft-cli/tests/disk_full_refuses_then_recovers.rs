//! Disk full: with its log on a small tmpfs that fills up, `weft serve` refuses
//! new requests with a retry delay and a clear log line, keeps everything it
//! acknowledged, and takes data again once space returns — the retrying load
//! generator loses nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{acked, metric, missing, temp_dir, Serve, WEFT};

#[test]
fn disk_full_refuses_with_retry_then_recovers() {
    let dir = temp_dir("diskfull");
    let mnt = dir.join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(std::env::var_os("CI").is_none(), "cannot mount a tmpfs for the disk-full test (needs root)");
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let data = mnt.join("data");
    let serve = Serve::start(&data, &[]);
    // Leave about 1.5 MiB free (the load writes about 6 MB/s; freeing the filler
    // leaves room for the rest of the run).
    let filler = mnt.join("filler");
    let out = Command::new("df").args(["--output=avail", "-B1"]).arg(&mnt).output().unwrap();
    let avail: u64 = String::from_utf8_lossy(&out.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
    std::fs::write(&filler, vec![0u8; (avail - 1_500_000) as usize]).unwrap();

    let ack = dir.join("ack.txt");
    let load = Command::new(WEFT)
        .args([
            "loadgen",
            "--endpoint",
            &format!("http://{}", serve.ports.grpc),
            "--duration",
            "4s",
            "--concurrency",
            "4",
        ])
        .args(["--rate", "20000", "--json", "--ack-log"])
        .arg(&ack)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the disk to fill and the refusals to start.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while metric(serve.ports.http, "weft_ingest_refused_total{reason=\"log\"}") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "the log never reported a full disk:\n{}", serve.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let acked_while_full = acked(&ack);
    std::thread::sleep(Duration::from_millis(500));
    // Space returns.
    std::fs::remove_file(&filler).unwrap();
    let out = load.wait_with_output().unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["failed_spans"], 0, "{summary}");
    assert_eq!(summary["sent_spans"], summary["accepted_spans"], "the retrying client lost nothing: {summary}");
    assert!(summary["refused_requests"].as_u64().unwrap() > 0, "{summary}");
    assert!(serve.log_text().contains("write-ahead log write failed"), "a clear log line:\n{}", serve.log_text());

    // Everything acknowledged — before, during and after — is there, also after a restart.
    let ids = acked(&ack);
    assert!(ids.len() > acked_while_full.len(), "ingest resumed after space returned");
    let (lost, _) = missing(serve.ports.http, &ids);
    assert!(lost.is_empty(), "{} acknowledged traces lost", lost.len());
    serve.kill9();
    let serve = Serve::start(&data, &[]);
    let (lost, _) = missing(serve.ports.http, &ids);
    assert!(lost.is_empty(), "{} acknowledged traces lost after restart", lost.len());
    assert_eq!(metric(serve.ports.http, "weft_log_corrupt_records_total"), 0.0);
    drop(serve);
}
