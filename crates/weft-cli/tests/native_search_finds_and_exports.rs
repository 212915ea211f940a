//! `traces:query` and `spans:query` against a real `weft serve`: a full export
//! paged by cursor returns every acknowledged trace exactly once, from the
//! head and again once sealed into blocks; filters find exactly the trace
//! they describe; answers stream as NDJSON (gzip on request) and end with the
//! cursor/completeness line; bad queries get a 400 that says what is wrong.
//! Tag names and values list what the data holds.

mod common;

use std::collections::HashSet;
use std::io::Read;

use common::{http, known_trace, loadgen, temp_dir, Serve, TRACE_HEX};

/// Posts a query; returns the data lines and the last (control) line.
fn query(
    addr: std::net::SocketAddr,
    path: &str,
    body: serde_json::Value,
) -> (Vec<serde_json::Value>, serde_json::Value) {
    let (st, _, b) = http(addr, "POST", path, &[], body.to_string().as_bytes());
    let text = String::from_utf8(b).unwrap();
    assert_eq!(st, 200, "{path} {body}: {text}");
    let mut lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect();
    let last = lines.pop().expect("a last line");
    assert!(last.get("nextCursor").is_some(), "{last}");
    assert!(last.get("error").is_none(), "{last}");
    (lines, last)
}

/// Every trace ID of a full export, paged `page` at a time.
fn export(addr: std::net::SocketAddr, page: u64) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = serde_json::Value::Null;
    for _ in 0..10_000 {
        let mut body =
            serde_json::json!({ "start": 0, "end": u64::MAX, "view": "full", "limit": page, "order": "oldest" });
        if !cursor.is_null() {
            body["cursor"] = cursor.clone();
        }
        let (lines, last) = query(addr, "/weft/v1/traces:query", body);
        for l in lines {
            let spans: usize = l["resourceSpans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["scopeSpans"].as_array().unwrap())
                .map(|s| s["spans"].as_array().unwrap().len())
                .sum();
            assert_eq!(spans as u64, l["summary"]["spanCount"].as_u64().unwrap(), "{l}");
            ids.push(l["traceId"].as_str().unwrap().to_owned());
        }
        cursor = last["nextCursor"].clone();
        if cursor.is_null() {
            return ids;
        }
    }
    panic!("the export never ended");
}

fn check_export(addr: std::net::SocketAddr, acked: &[String]) {
    let ids = export(addr, 173);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a trace came twice");
    let missing: Vec<&String> = acked.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "{} of {} acknowledged traces not exported", missing.len(), acked.len());
    assert!(unique.contains(&TRACE_HEX.to_owned()));
}

#[test]
fn searches_find_what_they_describe_and_exports_miss_nothing() {
    let dir = temp_dir("native-search");
    let serve = Serve::start(&dir.join("data"), &["--trace-idle", "1s"]);
    let p = serve.ports;
    let (st, _, _) =
        http(p.otlp_http, "POST", "/v1/traces", &[("Content-Type", "application/x-protobuf")], &known_trace());
    assert_eq!(st, 200);
    let ack = dir.join("ack.txt");
    let s =
        loadgen(&["--endpoint", &format!("http://{}", p.grpc), "--duration", "1s", "--ack-log", ack.to_str().unwrap()]);
    assert_eq!(s["failed_spans"], 0, "{s}");
    let acked = common::acked(&ack);
    assert!(acked.len() > 100, "{s}");
    // Readable once processed (a moment after the acknowledgement).
    let (lost, _) = common::missing(p.http, &acked);
    assert!(lost.is_empty());

    // From the head (and whatever was sealed meanwhile).
    check_export(p.http, &acked);

    // Filters: exactly the known trace.
    let one = |filter: &str| {
        let (lines, last) = query(
            p.http,
            "/weft/v1/traces:query",
            serde_json::json!({ "start": 0, "end": u64::MAX, "filter": filter }),
        );
        assert!(last["stats"]["returned"].is_u64(), "{last}");
        lines.into_iter().map(|l| l["traceId"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    let filters = [
        r#"{ resource.service.name = "checkout" && status = error }"#,
        r#"{ span.http.method = "GET" && resource.service.name = "checkout" } && { span.http.method = "POST" }"#,
        r#"{ trace:rootService = "checkout" && trace:duration > 249ms }"#,
        r#"{ .service.name =~ "check.*" && name = "op-2" }"#,
    ];
    for f in filters {
        assert_eq!(one(f), [TRACE_HEX], "{f}");
    }
    assert!(one(r#"{ resource.service.name = "nope" }"#).is_empty(), "an empty answer is 200 with no trace lines");

    // spans:query: the matched spans, each with its trace's fields.
    let (lines, last) = query(
        p.http,
        "/weft/v1/spans:query",
        serde_json::json!({ "start": 0, "end": u64::MAX, "filter": r#"{ resource.service.name = "checkout" && status = error }"# }),
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["name"], "op-3");
    assert_eq!(lines[0]["traceId"], TRACE_HEX);
    assert_eq!(lines[0]["traceRootName"], "op-1");
    assert_eq!(lines[0]["traceSpanCount"], 3);
    assert_eq!(lines[0]["service"], "checkout");
    assert_eq!(last["nextCursor"], serde_json::Value::Null);

    // Sealed into blocks: the same export.
    common::wait_sealed(p.http);
    check_export(p.http, &acked);
    for f in filters {
        assert_eq!(one(f), [TRACE_HEX], "{f} (from blocks)");
    }

    // The same export through `weft query`, and the known trace by ID (complete
    // once sealed, so the second `get` comes from the disk cache).
    let out = dir.join("export.ndjson");
    let endpoint = format!("http://{}", p.http);
    let run = |args: &[&str]| {
        let o = std::process::Command::new(common::WEFT)
            .args(["query", "--endpoint", &endpoint])
            .args(args)
            .env("WEFT_CACHE_DIR", dir.join("cache"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8(o.stdout).unwrap(), String::from_utf8(o.stderr).unwrap())
    };
    let (_, said) =
        run(&["traces", "--start", "0", "--view", "full", "--order", "oldest", "--out", out.to_str().unwrap()]);
    let exported: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["traceId"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = exported.iter().collect();
    assert_eq!(unique.len(), exported.len(), "{said}");
    assert!(acked.iter().all(|id| unique.contains(id)), "weft query traces missed acknowledged traces: {said}");
    let (line, _) = run(&["get", TRACE_HEX, "--format", "ndjson"]);
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!((v["found"].as_bool(), v["complete"].as_bool()), (Some(true), Some(true)), "{v}");
    let (again, said) = run(&["get", TRACE_HEX, "--format", "ndjson"]);
    assert_eq!(again, line);
    assert!(said.contains("1 from the cache"), "{said}");
    let (table, _) = run(&["traces", "--start", "0", "--format", "table", "--filter", r#"{ status = error }"#]);
    assert!(table.starts_with("TRACE ID") && table.contains(TRACE_HEX) && table.contains("checkout"), "{table}");
    let (tags, _) = run(&["values", "span.http.method"]);
    assert!(tags.contains("\"POST\""), "{tags}");

    // Tag names and values, for query builders.
    let get = |path: &str| {
        let (st, _, b) = http(p.http, "GET", path, &[], b"");
        (st, serde_json::from_slice::<serde_json::Value>(&b).unwrap_or_else(|_| panic!("not JSON: {b:?}")))
    };
    let (st, tags) = get("/weft/v1/tags");
    assert_eq!(st, 200, "{tags}");
    let scope = |name: &str| -> Vec<String> {
        let s = tags["scopes"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap();
        s["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
    };
    assert!(scope("span").contains(&"http.method".to_owned()), "{tags}");
    assert!(scope("span").contains(&"attr.0".to_owned()), "{tags}");
    assert!(scope("resource").contains(&"service.name".to_owned()), "{tags}");
    assert!(scope("intrinsic").contains(&"trace:duration".to_owned()), "{tags}");
    assert_eq!(tags["complete"], true);
    let (_, only) = get("/weft/v1/tags?scope=span");
    assert_eq!(only["scopes"].as_array().unwrap().len(), 1, "{only}");
    let (st, v) = get("/weft/v1/tags/span.http.method/values");
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["values"],
        serde_json::json!([{"type": "string", "value": "GET"}, {"type": "string", "value": "POST"}])
    );
    assert_eq!(v["complete"], true);
    assert!(v["stats"]["blocksRead"].as_u64().unwrap() >= 1, "{v}");
    let (_, v) = get("/weft/v1/tags/resource.service.name/values");
    assert!(v["values"].as_array().unwrap().iter().any(|x| x["value"] == "checkout"), "{v}");
    let (_, v) = get("/weft/v1/tags/.attr.1/values?limit=3");
    assert_eq!(v["values"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["complete"], false, "{v}");
    let (_, v) = get("/weft/v1/tags/status/values");
    assert_eq!(v["values"].as_array().unwrap().len(), 3, "{v}");
    for (path, says) in [
        ("/weft/v1/tags?scope=everything", "scope"),
        ("/weft/v1/tags?color=red", "unknown parameter"),
        ("/weft/v1/tags/http.method/values", "not a tag"),
        ("/weft/v1/tags//values", "not a tag"),
        ("/weft/v1/tags/duration/values", "not listed"),
        ("/weft/v1/tags/span.x/values?limit=0", "limit"),
        ("/weft/v1/tags/span.x/values?start=yesterday", "RFC 3339"),
        ("/weft/v1/tags/span.x/values?start=5&end=4", "before"),
        ("/weft/v1/tags/%2E/values", "not a tag"),
    ] {
        let (st, v) = get(path);
        assert_eq!(st, 400, "{path}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{path}: {v}");
    }

    // gzip on request.
    let body = serde_json::json!({ "start": 0, "end": u64::MAX, "limit": 10 }).to_string();
    let (st, head, b) = http(p.http, "POST", "/weft/v1/traces:query", &[("Accept-Encoding", "gzip")], body.as_bytes());
    assert_eq!(st, 200);
    assert!(head.to_ascii_lowercase().contains("content-encoding: gzip"), "{head}");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&b[..]).read_to_string(&mut text).unwrap();
    assert_eq!(text.lines().count(), 11, "{text}");

    // Bad queries: 400 and a JSON error naming the problem.
    let bad = |body: &[u8], says: &str| {
        let (st, _, b) = http(p.http, "POST", "/weft/v1/traces:query", &[], body);
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_else(|_| panic!("not JSON: {b:?}"));
        assert_eq!(st, 400, "{v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{v}");
    };
    bad(br#"{"filter": "{ name = }"}"#, "at column 10: expected a quoted string");
    bad(br#"{"filter": "{ duration > 5 }"}"#, "duration");
    bad(br#"{"cursor": "00ff"}"#, "cursor");
    bad(br#"{"view": "everything"}"#, "view");
    bad(br#"{"start": "last tuesday"}"#, "RFC 3339");
    bad(br#"{"limt": 3}"#, "unknown field");
    bad(br#"{"limit": -1}"#, "query shape");
    bad(b"[1,2", "not valid JSON");
    // And it still answers.
    assert_eq!(one(filters[0]), [TRACE_HEX]);
}
