//! The benchmark's command line refuses malformed arguments with a message and a
//! non-zero exit, and never panics.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weft-bench")).args(args).output().expect("the binary runs");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn malformed_arguments_are_refused() {
    for (args, expect) in [
        (&["sdk", "--threads", "0"][..], "at least 1"),
        (&["sdk", "--threads", "two"][..], "invalid value"),
        (&["sdk", "--peers", "nope"][..], "invalid value"),
        (&["sdk", "--workload", "sideways"][..], "invalid value"),
        (&["sdk", "--repeat", "0"][..], "at least 1"),
        (&["sdk", "--requests", "-5"][..], "unexpected argument"),
        (&["sdk-run", "--peer", "weft", "--threads", "0"][..], "at least 1"),
        (&["otlp", "--threads", "0"][..], "at least 1"),
        (&["otlp", "--repeat", "0"][..], "at least 1"),
        (&["otlp", "--transports", "carrier-pigeon"][..], "invalid value"),
        (&["otlp", "--peers", "jaeger"][..], "invalid value"),
        (
            &["otlp-run", "--peer", "weft", "--transport", "grpc", "--endpoint", "not a url", "--threads", "1"][..],
            "invalid OTLP endpoint",
        ),
        (&["frobnicate"][..], "unrecognized subcommand"),
    ] {
        let (ok, stderr) = run(args);
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    }
}

#[test]
fn a_tiny_run_reports_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_weft-bench"))
        .args(["sdk-run", "--peer", "weft", "--threads", "2", "--requests", "1000"])
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    let row: serde_json::Value = serde_json::from_str(line.trim()).expect("one JSON object");
    assert_eq!(row["spans"], 3000);
    assert_eq!(row["delivered"], 3000);
    assert_eq!(row["silent_lost"], 0);
}
