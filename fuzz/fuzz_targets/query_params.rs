//! The query parameters of the Jaeger- and Tempo-compatible APIs, as a client
//! sends them: query strings (percent-decoded), Go durations, trace IDs in hex
//! or base64, logfmt tag lists and the filters built from them. None of it may
//! panic, and every filter built from parameters must parse back from its text
//! (unless the text is over the parser's size cap).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_server::compat_query::{parse_go_duration, parse_kind, tag_condition, SpanSearch};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs = weft_server::api::form_pairs(&text);
    let _ = parse_go_duration(&text);
    let _ = parse_kind(&text);
    let _ = weft_server::tempo_api::parse_id(&text);
    let _ = weft_server::api::parse_trace_id(&text);
    let mut search = SpanSearch::default();
    if let Ok(tags) = weft_server::tempo_api::logfmt(&text) {
        search.tags = tags;
    }
    for (k, v) in pairs {
        let _ = tag_condition(&k, &v);
        search.tags.push((k, v));
    }
    let q = search.query();
    let text = q.to_string();
    match weft_traceql::parse(&text) {
        Ok(back) => assert_eq!(back, q),
        // The parser caps filters at 16 KiB of text; nothing else may fail.
        Err(e) => assert!(text.len() > 16 * 1024, "{e}: {text}"),
    }
});
