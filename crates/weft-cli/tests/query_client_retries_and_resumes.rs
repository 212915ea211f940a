//! `weft query` against a server that fails on purpose: 503 and 429 with
//! `Retry-After`, 500, connections dropped before answering, answers cut off
//! mid-page (chunked and close-delimited) and batches cut short. Exports must
//! come out whole — every trace once, in order — having waited at least what
//! the server asked; refusals (4xx) stop at once with the server's message;
//! endless failures stop after `--retries`; complete traces come from the
//! disk cache when the server is gone.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{temp_dir, WEFT};

/// What the fake server does with one request.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Answers properly.
    Ok,
    /// This status, with `Retry-After` seconds if given.
    Status(u16, Option<u64>),
    /// Closes the connection without answering.
    Drop,
    /// Sends this many lines of the answer (chunked), then closes.
    CutChunked(usize),
    /// Sends this many lines (no length: the body ends at close), then closes.
    CutClose(usize),
}

/// A request as the fake server saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    body: serde_json::Value,
}

struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// While set, every connection is closed unanswered (a server that is down).
    down: Arc<std::sync::atomic::AtomicBool>,
}

const TRACES: usize = 25;

fn trace_id(i: usize) -> String {
    format!("{i:032x}")
}

fn trace_line(i: usize, complete: bool) -> String {
    serde_json::json!({
        "traceId": trace_id(i),
        "found": true,
        "complete": complete,
        "summary": {"start": 1000 + i, "duration": 5_000_000, "spanCount": 2, "errorCount": 0,
                    "rootService": "svc", "rootName": format!("op-{i}")},
    })
    .to_string()
}

/// The proper answer: search pages keyed by an index cursor, or batchGet lines.
fn answer(path: &str, body: &serde_json::Value) -> Vec<String> {
    if path == "/weft/v1/traces:batchGet" {
        return body["traceIds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let id = id.as_str().unwrap();
                let i = usize::from_str_radix(id, 16).unwrap();
                if i >= 1000 {
                    serde_json::json!({ "traceId": id, "found": false }).to_string()
                } else {
                    trace_line(i, i % 2 == 0)
                }
            })
            .collect();
    }
    let from: usize = body["cursor"].as_str().map_or(0, |c| c.parse().unwrap());
    let limit = body["limit"].as_u64().unwrap() as usize;
    let to = (from + limit).min(TRACES);
    let mut lines: Vec<String> = (from..to).map(|i| trace_line(i, true)).collect();
    let next = if to < TRACES { serde_json::json!(to.to_string()) } else { serde_json::Value::Null };
    lines.push(
        serde_json::json!({ "nextCursor": next, "completeUntil": "2026-11-22T10:00:00Z", "stats": {} }).to_string(),
    );
    lines
}

fn serve_one(mut s: TcpStream, act: Act, seen: &Mutex<Vec<Seen>>) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut request_line = String::new();
    if r.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    seen.lock().unwrap().push(Seen { path: path.clone(), body: body.clone() });
    let lines = answer(&path, &body);
    let _ = match act {
        Act::Drop => Ok(()),
        Act::Status(code, after) => {
            let msg = format!("{{\"error\":\"failing on purpose with {code}\"}}");
            let ra = after.map(|a| format!("Retry-After: {a}\r\n")).unwrap_or_default();
            write!(s, "HTTP/1.1 {code} X\r\n{ra}Content-Length: {}\r\nConnection: close\r\n\r\n{msg}", msg.len())
        }
        Act::Ok | Act::CutChunked(_) => {
            let n = match act {
                Act::CutChunked(n) => n,
                _ => lines.len(),
            };
            let mut out = String::from("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
            for l in &lines[..n] {
                out.push_str(&format!("{:x}\r\n{l}\n\r\n", l.len() + 1));
            }
            if matches!(act, Act::Ok) {
                out.push_str("0\r\n\r\n");
            }
            s.write_all(out.as_bytes())
        }
        Act::CutClose(n) => {
            let mut out = String::from("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            for l in &lines[..n] {
                out.push_str(l);
                out.push('\n');
            }
            // Half a line, then the end.
            out.push_str("{\"traceId\":\"00");
            s.write_all(out.as_bytes())
        }
    };
    let _ = s.flush();
    let _ = s.shutdown(std::net::Shutdown::Both);
}

impl Fake {
    /// A server that acts out `script` one request at a time, then answers properly.
    fn start(script: Vec<Act>) -> Fake {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let s2 = seen.clone();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d2 = down.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                if d2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue;
                }
                let act = script.lock().unwrap().pop_front().unwrap_or(Act::Ok);
                let seen = s2.clone();
                std::thread::spawn(move || serve_one(conn, act, &seen));
            }
        });
        Fake { addr, seen, down }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn query(addr: SocketAddr, args: &[&str]) -> Output {
    Command::new(WEFT)
        .args(["query", "--endpoint", &format!("http://{addr}")])
        .args(args)
        .env("WEFT_CACHE_DIR", std::env::temp_dir().join(format!("weft-query-cache-{}", std::process::id())))
        .output()
        .unwrap()
}

fn ids_of(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["traceId"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_export_survives_every_kind_of_failure_whole_and_in_order() {
    let fake = Fake::start(vec![
        Act::Status(503, Some(1)),
        Act::CutChunked(3),
        Act::Status(429, Some(0)),
        Act::Ok,
        Act::Drop,
        Act::CutClose(4),
        Act::Status(500, None),
        Act::Ok,
        Act::Ok,
    ]);
    let dir = temp_dir("query-export");
    let out = dir.join("export.ndjson");
    let began = Instant::now();
    let r = query(
        fake.addr,
        &[
            "traces",
            "--start",
            "0",
            "--end",
            "5000",
            "--page-size",
            "10",
            "--format",
            "ndjson",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let elapsed = began.elapsed();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    let ids = ids_of(&std::fs::read_to_string(&out).unwrap());
    let want: Vec<String> = (0..TRACES).map(trace_id).collect();
    assert_eq!(ids, want, "every trace once, in order\n{stderr}");
    assert!(elapsed >= Duration::from_secs(1), "Retry-After: 1 was not honoured ({elapsed:?})");
    assert!(stderr.contains("503 failing on purpose") && stderr.contains("retrying in"), "{stderr}");
    assert!(
        stderr.contains("25 traces (50 spans)") && stderr.contains("complete up to 2026-11-22T10:00:00Z"),
        "{stderr}"
    );
    // Pages resumed from the right cursor: retries of a page ask for it again.
    let cursors: Vec<Option<String>> =
        fake.seen().iter().map(|s| s.body["cursor"].as_str().map(str::to_owned)).collect();
    let c = |s: &str| Some(s.to_owned());
    assert_eq!(cursors, [None, None, None, None, c("10"), c("10"), c("10"), c("10"), c("20")], "{stderr}");
    assert!(fake.seen().iter().all(|s| s.path == "/weft/v1/traces:query"));
    assert!(fake.seen().iter().all(|s| s.body["start"] == 0 && s.body["end"] == 5000 && s.body["limit"] == 10));

    // --limit: stops after that many, with a smaller last page.
    let fake = Fake::start(vec![]);
    let r = query(fake.addr, &["traces", "--since", "1h", "--limit", "13", "--page-size", "10", "--format", "json"]);
    assert!(r.status.success());
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 13);
    let limits: Vec<u64> = fake.seen().iter().map(|s| s.body["limit"].as_u64().unwrap()).collect();
    assert_eq!(limits, [10, 3]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refusals_stop_at_once_and_endless_failures_give_up() {
    let fake = Fake::start(vec![Act::Status(400, None)]);
    let r = query(fake.addr, &["traces", "--filter", "{ nonsense"]);
    assert!(!r.status.success());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("400 failing on purpose with 400"), "{stderr}");
    assert_eq!(fake.seen().len(), 1, "a 400 is not retried");

    let fake = Fake::start(vec![Act::Status(503, None); 50]);
    let r = query(fake.addr, &["--retries", "3", "services"]);
    assert!(!r.status.success());
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("gave up after 3 attempts"), "{stderr}");
    assert_eq!(fake.seen().len(), 3);

    // Nothing listening: connection errors are retried, then reported.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let r = query(port, &["--retries", "2", "stats"]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("gave up after 2 attempts"));
}

#[test]
fn batch_gets_resume_cut_batches_keep_order_and_cache_complete_traces() {
    let cache = temp_dir("query-cache");
    // 12 IDs in batches of 5, two at a time; the first batch is cut after 2 lines.
    let fake = Fake::start(vec![Act::CutChunked(2), Act::Ok, Act::Status(503, Some(0))]);
    let ids: Vec<String> = (0..12).map(trace_id).collect();
    let mut args = vec!["get", "--batch", "5", "--concurrency", "2", "--format", "ndjson", "--cache-dir"];
    args.push(cache.to_str().unwrap());
    args.extend(ids.iter().map(String::as_str));
    args.push("00000000000003e8"); // 1000: not found (a 16-digit ID)
    let r = query(fake.addr, &args);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    let mut want = ids.clone();
    want.push(trace_id(1000));
    assert_eq!(ids_of(&String::from_utf8_lossy(&r.stdout)), want, "{stderr}");
    assert!(stderr.contains("12 of 13 traces found"), "{stderr}");
    // The cut batch asked again only for what it lacked.
    let asked: Vec<usize> = fake.seen().iter().map(|s| s.body["traceIds"].as_array().unwrap().len()).collect();
    assert!(asked.contains(&3), "the rest of the cut batch: {asked:?}");

    // The server is down: the complete (even) traces come from the cache.
    fake.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let before = fake.seen().len();
    let even: Vec<String> = (0..12).step_by(2).map(trace_id).collect();
    let mut args = vec!["get", "--format", "ndjson", "--cache-dir", cache.to_str().unwrap()];
    args.extend(even.iter().map(String::as_str));
    let r2 = query(fake.addr, &args);
    let stderr = String::from_utf8_lossy(&r2.stderr);
    assert!(r2.status.success(), "{stderr}");
    assert_eq!(ids_of(&String::from_utf8_lossy(&r2.stdout)), even);
    assert!(stderr.contains("6 from the cache"), "{stderr}");
    assert_eq!(before, fake.seen().len(), "no request for cached traces");
    // Incomplete (odd) traces were not cached.
    let r3 = query(fake.addr, &["--retries", "2", "get", "--cache-dir", cache.to_str().unwrap(), &trace_id(1)]);
    assert!(!r3.status.success(), "an incomplete trace must not come from the cache");
    let _ = std::fs::remove_dir_all(cache);
}

#[test]
fn bad_arguments_get_a_clear_error_before_any_request() {
    let fake = Fake::start(vec![]);
    for (args, says) in [
        (vec!["get", "xyz"], "not a trace ID"),
        (vec!["traces", "--since", "banana"], "banana"),
        (vec!["traces", "--since", "1h", "--start", "0"], "cannot be used with"),
        (vec!["traces", "--since", "1h", "--end", "2026-01-01T00:00:00Z"], "--since counts back"),
        (vec!["traces", "--format", "xml"], "xml"),
        (vec!["traces", "--page-size", "0"], "page-size"),
        (vec!["get", "--concurrency", "0", "00000000000000ff"], "concurrency"),
    ] {
        let r = query(fake.addr, &args);
        assert!(!r.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let r = Command::new(WEFT).args(["query", "--endpoint", "ftp://x", "stats"]).output().unwrap();
    assert!(String::from_utf8_lossy(&r.stderr).contains("only http://"));
    assert!(fake.seen().is_empty(), "no request was made");
}
